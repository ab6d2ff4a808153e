"""Every timestamp is naive UTC end to end: no SQL may depend on the session's TIMEZONE.

`CURRENT_TIMESTAMP()` is TIMESTAMP_LTZ; cast to TIMESTAMP_NTZ it is wall time in the session's time zone
(a fresh account's is America/Los_Angeles), 7-8 hours from the UTC values the pipeline stores. "Now" is
written one way, `CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ`: SYSDATE() means the same in
Snowflake, but the local warehouse (fakesnow) loses its UTC inside a MERGE. This check reads sql/,
external_access/ and every SQL string of snowpark_procs/ and the CLI (not local/, which emulates
Snowflake's own LTZ values); the local warehouse runs in America/Los_Angeles to catch what it misses.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from api2snow.platform import copy_history_paths, match_load_errors

ROOT = Path(__file__).resolve().parents[2]

# Each depends on the session's TIMEZONE (or TIMESTAMP_TYPE_MAPPING, for bare TIMESTAMP / TO_TIMESTAMP).
SESSION_DEPENDENT = re.compile(
    r"\b(?:CURRENT_TIMESTAMP|CURRENT_DATE|CURRENT_TIME|LOCALTIMESTAMP|LOCALTIME|SYSTIMESTAMP|GETDATE"
    r"|TIMESTAMP_LTZ|TO_TIMESTAMP_LTZ|TIMESTAMP_TZ|TO_TIMESTAMP_TZ|TO_TIMESTAMP)\b"
    r"|::\s*TIMESTAMP\b(?!_)|\bAS\s+TIMESTAMP\s*\)"
    r"|\bSYSDATE\b",  # UTC in Snowflake, but local time inside a MERGE in the local warehouse
    re.IGNORECASE,
)
# Allowed: an explicit conversion to UTC, an instant written with its UTC offset (sqltime.loaded_since), and a
# table function's instant argument (TIMESTAMP_LTZ is what COPY_HISTORY's START_TIME and TASK_HISTORY's
# SCHEDULED_TIME_RANGE_START take).
ALLOWED = (
    re.compile(r"CONVERT_TIMEZONE\(\s*'UTC'\s*,\s*CURRENT_TIMESTAMP\(\)\s*\)", re.IGNORECASE),
    re.compile(r"'[^']*\+00:00'::TIMESTAMP_TZ\b", re.IGNORECASE),
    re.compile(
        r"\b(?:START_TIME|END_TIME|SCHEDULED_TIME_RANGE_START|SCHEDULED_TIME_RANGE_END)\s*=>\s*"
        r"(?:DATEADD\(\s*'?\w+'?\s*,\s*-?\d+\s*,\s*CURRENT_TIMESTAMP\(\)\s*\)|CURRENT_TIMESTAMP\(\))",
        re.IGNORECASE,
    ),
)
# The one TIMESTAMP_LTZ column: RAW's LOADED_AT, Snowpipe's METADATA$START_SCAN_TIME (an instant), which
# VW_RAW_STATS reads as CONVERT_TIMEZONE('UTC', ...)::TIMESTAMP_NTZ.
RAW_LOADED_AT = re.compile(r"\bLOADED_AT\s+TIMESTAMP_LTZ\b", re.IGNORECASE)
NOW = "write now as CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ"


def session_dependent(sql: str, raw_layer: bool = False) -> list[str]:
    """The session-time-zone-dependent expressions in `sql` (comments ignored)."""
    text = re.sub(r"--[^\n]*", "", sql)
    for allowed in ALLOWED:
        text = allowed.sub("<utc>", text)
    if raw_layer:
        text = RAW_LOADED_AT.sub("<raw loaded_at>", text)
    return [m.group(0) for m in SESSION_DEPENDENT.finditer(text)]


def python_sql_strings(path: Path) -> list[tuple[int, str]]:
    """String literals of a module (f-strings with `{}` for their fields), docstrings left out."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant | ast.JoinedStr)
    }
    fields = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    strings: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in docstrings or id(node) in fields:
            continue
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in node.values]
            strings.append((node.lineno, "".join(str(p) for p in parts)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.append((node.lineno, node.value))
    return strings


def _sql_files() -> list[Path]:
    return sorted([*(ROOT / "sql").glob("*.sql"), *(ROOT / "external_access").glob("*.sql")])


def _python_files() -> list[Path]:
    cli = [p for p in (ROOT / "api2snow_cli").rglob("*.py") if "local" not in p.relative_to(ROOT).parts]
    return sorted([*(ROOT / "snowpark_procs").rglob("*.py"), *cli])


def test_the_check_reads_the_project():
    assert len(_sql_files()) >= 7
    names = {p.name for p in _python_files()}
    assert {"ledger.py", "layers.py", "quality.py", "reporting.py", "platform.py", "deploy.py"} <= names


@pytest.mark.parametrize("path", _sql_files(), ids=lambda p: p.name)
def test_sql_files_take_now_in_utc(path: Path):
    found = session_dependent(path.read_text(), raw_layer=path.name == "02_raw.sql")
    assert not found, f"{path.name}: session-time-zone-dependent {found}; {NOW}"


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_sql_in_python_takes_now_in_utc(path: Path):
    found = [(line, hit) for line, text in python_sql_strings(path) for hit in session_dependent(text)]
    assert not found, f"{path.relative_to(ROOT)}: session-time-zone-dependent {found}; {NOW}"


# What the code said before issue 9 fails the check; what it says now passes.
@pytest.mark.parametrize(
    "sql",
    [
        "DATEDIFF('minute', events.last_event_at, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ)",
        "DATEDIFF('minute', loads.last_loaded_at, CURRENT_TIMESTAMP())",
        "WHERE occurred_at >= DATEADD('day', -7, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ)",
        "UPDATE t SET staged_at = CURRENT_TIMESTAMP",
        "SELECT GETDATE()",
        "SELECT LOCALTIMESTAMP()",
        "SELECT SYSTIMESTAMP()",
        "WHERE event_date = CURRENT_DATE()",
        "SELECT x::TIMESTAMP_LTZ",
        "CAST(? AS TIMESTAMP)",
        "SELECT TO_TIMESTAMP(?)",
        "CREATE TABLE t (stamp TIMESTAMP_LTZ)",
        "CREATE TABLE t (loaded_at TIMESTAMP_LTZ)",  # outside RAW
        "UPDATE t SET stamp = SYSDATE()",  # right in Snowflake, local time in a local MERGE
    ],
)
def test_the_check_rejects_session_time_zone_expressions(sql: str):
    assert session_dependent(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "DATEDIFF('minute', last_event_at, CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ)",
        "UPDATE t SET staged_at = CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ",
        "SELECT CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ",
        "SELECT CONVERT_TIMEZONE('UTC', MAX(loaded_at))::TIMESTAMP_NTZ AS last_loaded_at",
        "COPY_HISTORY(TABLE_NAME => ?, START_TIME => DATEADD('day', -13, CURRENT_TIMESTAMP()))",
        "TASK_HISTORY(SCHEDULED_TIME_RANGE_START => DATEADD('day', -1, CURRENT_TIMESTAMP()))",
        "CAST(? AS TIMESTAMP_NTZ)",
        "payload:occurred_at::TIMESTAMP_NTZ AS occurred_at",
        "-- a comment may say CURRENT_TIMESTAMP()",
    ],
)
def test_the_check_accepts_utc_expressions(sql: str):
    assert not session_dependent(sql)


def test_the_check_allows_ltz_only_for_raw_loaded_at():
    assert not session_dependent("CREATE TABLE RAW.T (LOADED_AT TIMESTAMP_LTZ)", raw_layer=True)
    assert session_dependent("CREATE TABLE RAW.T (OTHER TIMESTAMP_LTZ)", raw_layer=True)


def test_docstrings_are_not_sql(tmp_path: Path):
    module = tmp_path / "m.py"
    module.write_text(
        '"""Module: CURRENT_TIMESTAMP() is LTZ."""\n'
        "def f(x):\n"
        '    """CURRENT_TIMESTAMP() explained."""\n'
        '    return f"SELECT {x}, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ"\n'
    )
    found = [hit for _, text in python_sql_strings(module) for hit in session_dependent(text)]
    assert found == ["CURRENT_TIMESTAMP"]


def test_copy_history_starts_strictly_inside_its_14_day_window():
    calls = [
        text
        for path in _python_files()
        for _, text in python_sql_strings(path)
        if "COPY_HISTORY(" in text.upper()
    ]
    assert calls
    for text in calls:
        days = re.search(r"START_TIME\s*=>\s*DATEADD\(\s*'day'\s*,\s*-(\d+)", text, re.IGNORECASE)
        assert days and int(days.group(1)) < 14, text


# ---- COPY_HISTORY's FILE_NAME against the keys of a batch ----------------------------------------------
KEY = "source=api_a/dt=2026-11-30/hour=10/batch_id=b1/part-0001.jsonl.gz"
OTHER = "source=api_a/dt=2026-11-30/hour=10/batch_id=b2/part-0001.jsonl.gz"


@pytest.mark.parametrize(
    ("file_name", "stage_location"),
    [
        (f"s3://landing-bucket/{KEY}", "s3://landing-bucket/"),  # full URL, stage at the bucket's root
        (f"s3://landing-bucket/{KEY}", None),  # full URL, no stage location
        (KEY, "s3://landing-bucket/"),  # relative to the stage
        (KEY, None),
        (f"/{KEY}", "@VIDEO_ANALYTICS.RAW.LANDING"),  # leading slash; an internal stage's name
    ],
)
def test_a_failure_matches_its_key_whichever_way_copy_history_spells_it(file_name, stage_location):
    failures = [(file_name, stage_location, "JSON parse error")]
    assert match_load_errors([KEY, OTHER], failures) == {KEY: "JSON parse error"}


def test_a_stage_with_a_path_prefix_matches_bucket_and_stage_relative_names():
    stage = "s3://landing-bucket/api2snow/landing/"
    bucket_key = f"api2snow/landing/{KEY}"
    assert copy_history_paths(f"s3://landing-bucket/{bucket_key}", stage) == {bucket_key, KEY}
    assert copy_history_paths(KEY, stage) == {KEY, bucket_key}
    assert copy_history_paths(KEY, stage.rstrip("/")) == {KEY, bucket_key}
    for failure in [(f"s3://landing-bucket/{bucket_key}", stage, "e"), (KEY, stage, "e")]:
        assert match_load_errors([bucket_key], [failure]) == {bucket_key: "e"}  # keys relative to the bucket
        assert match_load_errors([KEY], [failure]) == {KEY: "e"}  # paths relative to the stage


def test_other_files_and_other_buckets_paths_do_not_match():
    assert match_load_errors([KEY], [(f"s3://landing-bucket/{OTHER}", "s3://landing-bucket/", "e")]) == {}
    assert match_load_errors([KEY], [(f"{KEY}.bak", None, "e")]) == {}
    assert match_load_errors([KEY], [("part-0001.jsonl.gz", None, "e")]) == {}  # a bare name is not enough
    assert match_load_errors([], [(KEY, None, "e")]) == {}


def test_the_first_failure_of_a_file_is_kept():
    failures = [(KEY, None, "first"), (f"s3://b/{KEY}", None, "second")]
    assert match_load_errors([KEY], failures) == {KEY: "first"}


class _Row:
    def __init__(self, **values):
        self.values = values

    def as_dict(self):
        return dict(self.values)


class _Session:
    def __init__(self, rows):
        self.rows, self.statements = rows, []

    def sql(self, statement, params=None):
        self.statements.append((statement, params))
        return self

    def collect(self):
        return self.rows


def test_snowflake_load_errors_reads_copy_history_inside_its_window_and_matches_full_urls():
    from api2snow.platform import SnowflakePlatform

    session = _Session(
        [
            _Row(
                FILE_NAME=f"s3://landing-bucket/{KEY}",
                STAGE_LOCATION="s3://landing-bucket/",
                FIRST_ERROR_MESSAGE="Error parsing JSON",
                STATUS="Load failed",
            ),
            _Row(
                FILE_NAME=f"s3://landing-bucket/{OTHER}",
                STAGE_LOCATION="s3://landing-bucket/",
                FIRST_ERROR_MESSAGE=None,
                STATUS="Load failed",
            ),
        ]
    )
    errors = SnowflakePlatform().load_errors(session, "DB.RAW.API_A_EVENTS", [KEY])
    assert errors == {KEY: "Error parsing JSON"}
    statement, params = session.statements[0]
    assert "DB.INFORMATION_SCHEMA.COPY_HISTORY(" in statement and params == ["DB.RAW.API_A_EVENTS"]
    assert "DATEADD('day', -13, CURRENT_TIMESTAMP())" in statement
    no_stage_column = _Session([_Row(FILE_NAME=KEY, FIRST_ERROR_MESSAGE=None)])
    assert SnowflakePlatform().load_errors(no_stage_column, "DB.RAW.T", [KEY]) == {KEY: "load failed"}
