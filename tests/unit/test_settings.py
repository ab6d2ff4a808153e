"""Settings: one declaration per key, checked before any work, read through typed accessors."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from api2snow.settings import (
    SETTINGS,
    ConfigError,
    Settings,
    UndeclaredSetting,
    load_settings,
    validate,
)
from api2snow.sources import SOURCES

from api2snow_cli import settings_doc
from api2snow_cli.deploy import load_project
from api2snow_cli.project import PROJECT_ROOT

TABLE = "DB.OPS.PIPELINE_CONFIG"
GRAPH = "the task graph CONFIG of DB.PIPELINE.ROOT"
VALID = {
    "env_name": "dev",
    "bucket": "landing",
    "region": "eu-west-1",
    "s3_endpoint_url": "",
    "api_a_base_url": "https://api-a.example.com",
    "api_a_auth": "snowflake_oauth",
    "api_a_scope": "events:read",
    "api_b_base_url": "https://api-b.example.com",
    "api_c_base_url": "http://127.0.0.1:8443/base",
    "part_max_mb": "64",
    # every other declared source's base URL (a new source needs nothing here)
    **{
        f"{name}_base_url": f"https://{name}.example.com"
        for name in SOURCES
        if name not in ("api_a", "api_b", "api_c")
    },
}


class _Result:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def collect(self) -> list[dict[str, Any]]:
        return self.rows


class _Session:
    """Just what load_settings asks of a Snowpark Session: the database and PIPELINE_CONFIG's rows."""

    def __init__(self, rows: list[tuple[str, str | None]]) -> None:
        self.rows = [{"CONFIG_KEY": k, "CONFIG_VALUE": v} for k, v in rows]
        self.queries: list[str] = []

    def get_current_database(self) -> str:
        return '"DB"'

    def sql(self, query: str) -> _Result:
        self.queries.append(query)
        return _Result(self.rows)


class _Platform:
    def __init__(self, graph: dict[str, Any] | None = None) -> None:
        self.graph = graph or {}

    def graph_config(self, session: Any) -> dict[str, Any]:
        return self.graph


def _load(graph: dict[str, Any] | None = None, **changes: str | None) -> Settings:
    values = {**VALID, **changes}
    rows = [(key, value) for key, value in values.items() if value is not None]
    return load_settings(_Session(rows), _Platform(graph))


def _error(graph: dict[str, Any] | None = None, **changes: str | None) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(graph, **changes)
    return str(caught.value)


# ---- load_settings ----------------------------------------------------------------------------------------
def test_valid_settings_load_with_typed_values_and_registry_defaults():
    settings = _load()
    assert settings.database == "DB"
    assert settings.get_int("part_max_mb") == 64
    assert settings.get("region") == "eu-west-1"
    assert settings.get("s3_endpoint_url") == ""  # empty means unset: the default
    assert settings.get("s3_sse") == "AES256"
    assert settings.get_int("api_b_rate_limit_per_min") == 60
    assert settings.get_int("http_max_attempts") == 6
    assert settings.get_float("load_poll_seconds") == 5.0
    assert settings.get_int("incremental_overlap_seconds") == 300
    assert settings.get_int("max_record_bytes") == 8 * 1024 * 1024
    assert settings.get_int("pagination_overlap_records") == 5
    assert settings.get_int("max_stalled_pages") == 3


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("part_max_mb", "abc", "setting part_max_mb must be an integer from 1 to 256, got 'abc'"),
        ("part_max_mb", "0", "setting part_max_mb must be an integer from 1 to 256, got '0'"),
        ("part_max_mb", "257", "setting part_max_mb must be an integer from 1 to 256, got '257'"),
        ("part_max_mb", "6.4", "setting part_max_mb must be an integer from 1 to 256, got '6.4'"),
        ("part_max_mb", " 64", "setting part_max_mb must be an integer from 1 to 256, got ' 64'"),
        ("http_max_attempts", "1_0", "setting http_max_attempts must be an integer from 1 to 10, got '1_0'"),
        ("load_poll_seconds", "nan", "setting load_poll_seconds must be a number from 0.1 to 300, got 'nan'"),
        ("load_poll_seconds", "0", "setting load_poll_seconds must be a number from 0.1 to 300, got '0'"),
        ("api_b_rate_limit_per_min", "0",
         "setting api_b_rate_limit_per_min must be an integer from 1 to 100000, got '0'"),
        ("max_record_bytes", "16777216",
         "setting max_record_bytes must be an integer from 1024 to 16000000, got '16777216'"),
        ("s3_sse", "aes256", "setting s3_sse must be AES256 or aws:kms, got 'aes256'"),
        ("api_a_auth", "magic",
         "setting api_a_auth must be client_credentials or snowflake_oauth, got 'magic'"),
        ("api_b_base_url", "ftp://b.example", "setting api_b_base_url must be an http(s) URL with a host, "
         "got 'ftp://b.example'"),
        ("api_b_base_url", "https://", "setting api_b_base_url must be an http(s) URL with a host, got 'https://'"),
        ("api_b_base_url", "http://b:port", "setting api_b_base_url must be an http(s) URL with a host, "
         "got 'http://b:port'"),
    ],
)  # fmt: skip
def test_a_malformed_or_out_of_range_value_is_named_with_its_range_and_table(key, value, message):
    assert _error(**{key: value}) == f"{message} (in {TABLE})"


def test_values_at_the_edges_of_a_range_are_accepted():
    settings = _load(
        part_max_mb="256", http_max_attempts="1", load_poll_seconds="0.1", max_record_bytes="1024"
    )
    assert (settings.get_int("part_max_mb"), settings.get_float("load_poll_seconds")) == (256, 0.1)


def test_an_unknown_key_is_reported_with_the_closest_declared_one():
    assert (
        _error(part_max_mbb="8") == f"unknown setting 'part_max_mbb' in {TABLE} (did you mean part_max_mb?)"
    )
    assert _error(PART_MAX_MB="8") == f"unknown setting 'PART_MAX_MB' in {TABLE} (did you mean part_max_mb?)"


def test_an_unknown_key_without_a_close_match_points_at_the_list_of_settings():
    assert (
        _error(colour="blue")
        == f"unknown setting 'colour' in {TABLE} (the settings are listed in docs/SETTINGS.md)"
    )


def test_an_unknown_key_never_shows_its_value():
    assert "hunter2" not in _error(api_b_key="hunter2")


def test_a_required_setting_must_be_present_and_not_empty():
    assert _error(bucket=None) == f"setting bucket is required but not set (in {TABLE})"
    assert _error(api_c_base_url="") == f"setting api_c_base_url is required but not set (in {TABLE})"


def test_every_problem_is_reported_on_one_line():
    message = _error(part_max_mbb="8", part_max_mb="0", bucket=None)
    assert message.startswith("3 problems with the settings: unknown setting 'part_max_mbb'")
    assert "part_max_mb must be an integer from 1 to 256, got '0'" in message
    assert "bucket is required" in message and "\n" not in message


def test_two_rows_of_one_key_with_different_values_are_refused():
    session = _Session([*VALID.items(), ("part_max_mb", "8")])
    with pytest.raises(
        ConfigError, match=r"setting part_max_mb has more than one row in DB.OPS.PIPELINE_CONFIG"
    ):
        load_settings(session, _Platform())


def test_a_kms_key_needs_kms_encryption():
    assert _error(s3_kms_key_id="k1") == f"setting s3_kms_key_id needs s3_sse = aws:kms (in {TABLE})"
    assert _load(s3_kms_key_id="k1", s3_sse="aws:kms").get("s3_kms_key_id") == "k1"


def test_the_graph_config_overlays_the_table_and_is_named_as_the_place_of_its_errors():
    assert _load({"env": "dev", "part_max_mb": 8}).get_int("part_max_mb") == 8
    assert (
        _error({"part_max_mb": 0})
        == f"setting part_max_mb must be an integer from 1 to 256, got '0' (in {GRAPH})"
    )
    assert (
        _error({"part_max_mbb": 8})
        == f"unknown setting 'part_max_mbb' in {GRAPH} (did you mean part_max_mb?)"
    )
    assert (
        _error({"part_max_mb": [8]}) == f"setting part_max_mb must be a single value, got list (in {GRAPH})"
    )
    assert _error({"part_max_mb": 8.0}).startswith(
        "setting part_max_mb must be an integer from 1 to 256, got '8.0'"
    )


def test_a_null_value_is_unset():
    assert _load(region=None).get("region") == "us-east-1"
    session = _Session([*((k, v) for k, v in VALID.items() if k != "region"), ("region", None)])
    assert load_settings(session, _Platform()).get("region") == "us-east-1"


# ---- accessors --------------------------------------------------------------------------------------------
def test_reading_an_undeclared_key_is_a_programming_error():
    with pytest.raises(UndeclaredSetting, match="'part_size' is not declared"):
        Settings("DB", {}).get_int("part_size")


def test_reading_a_setting_with_the_wrong_accessor_is_a_programming_error():
    with pytest.raises(TypeError, match=r"part_max_mb is of kind int: read it with Settings.get_int\(\)"):
        Settings("DB", {}).get("part_max_mb")


def test_accessors_convert_but_leave_ranges_to_load_settings():
    settings = Settings("DB", {"api_a_rate_limit_per_min": "1000000", "part_max_mb": "x"})
    assert settings.get_int("api_a_rate_limit_per_min") == 1_000_000  # benchmarks lift the limit this way
    with pytest.raises(ConfigError, match=r"^setting part_max_mb must be an integer from 1 to 256, got 'x'"):
        settings.get_int("part_max_mb")
    with pytest.raises(ConfigError, match=f"^setting bucket is required but not set \\(in {TABLE}\\)$"):
        settings.get("bucket")


# ---- the registry ----------------------------------------------------------------------------------------
def test_every_declared_default_passes_its_own_check():
    for setting in SETTINGS.values():
        assert bool(setting.choices) == (setting.kind == "choice"), setting.name
        if setting.kind in ("int", "float"):
            assert setting.minimum is not None and setting.maximum is not None, setting.name
        if setting.default not in (None, ""):
            assert setting.check(str(setting.default)) == setting.default, setting.name


def test_no_setting_looks_like_a_secret():
    secret_words = re.compile(r"secret|password|token|api_key|credential|private")
    assert not [name for name in SETTINGS if secret_words.search(name)]


def test_every_source_declares_its_base_url_and_rate_limit_with_the_source_default():
    for name, source in SOURCES.items():
        assert SETTINGS[f"{name}_base_url"].required
        assert SETTINGS[f"{name}_rate_limit_per_min"].default == source.rate_limit_per_min


def test_the_pagination_overlap_stays_below_every_page_size():
    assert SETTINGS["pagination_overlap_records"].maximum < min(s.page_size for s in SOURCES.values())


def _settings_reads() -> list[tuple[str, str]]:
    """(file, key) of every `settings.get*("key")` in the procedures, f-string keys expanded per source."""
    reads = []
    for path in sorted((PROJECT_ROOT / "snowpark_procs" / "api2snow").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in ("get", "get_int", "get_float", "get_bool") or not node.args:
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "settings"):
                continue
            key = node.args[0]
            if isinstance(key, ast.Constant):
                reads.append((path.name, key.value))
            elif isinstance(key, ast.JoinedStr):
                tail = "".join(part.value for part in key.values if isinstance(part, ast.Constant))
                declared = [name + tail for name in SOURCES if name + tail in SETTINGS]
                reads.append((path.name, declared[0] if declared else f"<source>{tail}"))
            else:
                raise AssertionError(f"{path.name}:{node.lineno}: a settings key that cannot be checked")
            assert len(node.args) == 1 and not node.keywords, (
                f"{path.name}:{node.lineno}: default at call site"
            )
    return reads


def test_every_setting_the_procedures_read_is_declared():
    reads = _settings_reads()
    assert len(reads) >= 10
    assert [(file, key) for file, key in reads if key not in SETTINGS] == []


def test_no_procedure_code_reads_settings_values_directly():
    for path in (PROJECT_ROOT / "snowpark_procs" / "api2snow").rglob("*.py"):
        if path.name != "settings.py":
            assert "settings.values" not in path.read_text(), path


def _deployed_config(env: str) -> tuple[dict[str, str], dict[str, Any]]:
    """PIPELINE_CONFIG's rows as sql/01 writes them, and the root CONFIG of sql/06, for one environment."""
    project = load_project(env)
    setup = project.render((PROJECT_ROOT / "sql" / "01_setup.sql").read_text())
    rows = dict(re.findall(r"\('(\w+)', '((?:[^']|'')*)'\)", setup))
    tasks = project.render((PROJECT_ROOT / "sql" / "06_tasks.sql").read_text())
    config = re.search(r"CONFIG = '(\{.*?\})'", tasks)
    assert rows and config
    return rows, json.loads(config.group(1))


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_what_a_deploy_writes_passes_the_checks(env):
    rows, graph = _deployed_config(env)
    assert "part_max_mb" in rows and "env" in graph
    validate(Settings("DB", {**rows, **{k: str(v) for k, v in graph.items()}}))


# ---- docs ------------------------------------------------------------------------------------------------
def test_docs_settings_table_is_generated_from_the_registry():
    doc = settings_doc.DOC.read_text()
    assert settings_doc.with_table(doc) == doc, (
        "docs/SETTINGS.md is stale: run python -m api2snow_cli.settings_doc"
    )
    for name in SETTINGS:
        assert f"| `{name}` |" in doc


def test_the_docs_link_to_the_settings():
    for doc in ("README.md", "docs/DEPLOY.md"):
        assert "SETTINGS.md" in Path(PROJECT_ROOT / doc).read_text(), doc
