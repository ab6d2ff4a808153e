"""What analysts read through procedures: OPS.PIPELINE_STATUS() and OPS.REJECTS(source, since).

Both return a table (snowflake.yml: `returns: table(...)`, the columns below, in this order); Snowflake
requires a table procedure's handler to return a Snowpark DataFrame. The rows are computed here, so every
value can go through redaction first, and returned as a `SELECT ... FROM VALUES` over bound strings cast to
the declared types (one statement, the same in Snowflake and in the local warehouse).

Every read is bounded: the ledger within `ledger_lookback_days`, runs and DQ results within
`STATUS_DAYS`, rejects by load time and `rejects_max_rows`.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from . import ledger
from .arguments import ArgumentError
from .http.errors import redact as redact_text
from .settings import Settings
from .sources import SOURCES
from .sqltime import UTC_NOW, loaded_since
from .window import parse_utc, utc_now

# (column, type) of each table procedure, as snowflake.yml declares them (a unit test compares the two).
PIPELINE_STATUS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("SOURCE", "STRING"),
    ("READ_MODE", "STRING"),
    ("WATERMARK", "TIMESTAMP_NTZ"),
    ("LAST_LOADED_AT", "TIMESTAMP_NTZ"),
    ("MINUTES_SINCE_LOAD", "NUMBER"),
    ("LAST_RUN_ID", "STRING"),
    ("LAST_RUN_STATE", "STRING"),
    ("LAST_RUN_FINISHED_AT", "TIMESTAMP_NTZ"),
    ("RECENT_RUN_STATES", "STRING"),
    ("RECENT_BATCHES", "STRING"),
    ("LAST_BATCH_ID", "STRING"),
    ("LAST_BATCH_KIND", "STRING"),
    ("LAST_BATCH_STATUS", "STRING"),
    ("LAST_BATCH_STARTED_AT", "TIMESTAMP_NTZ"),
    ("LAST_BATCH_FETCHED", "NUMBER"),
    ("LAST_BATCH_STAGED", "NUMBER"),
    ("LAST_BATCH_REJECTED", "NUMBER"),
    ("LAST_BATCH_DUPLICATES", "NUMBER"),
    ("LAST_BATCH_COMPLETE", "BOOLEAN"),
    ("OPEN_DQ_FAILURES", "NUMBER"),
    ("FAILED_CHECKS", "STRING"),
    ("REJECTS_LAST_DAY", "NUMBER"),
)
REJECTS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("SOURCE", "STRING"),
    ("BATCH_ID", "STRING"),
    ("LOADED_AT", "TIMESTAMP_NTZ"),
    ("FILE_NAME", "STRING"),
    ("FILE_ROW_NUMBER", "NUMBER"),
    ("REASON", "STRING"),
    ("RECORD", "STRING"),
)
RECENT = 5  # graph runs and batches per source shown as "newest first" lists
STATUS_DAYS = 7  # how far back runs and DQ results are read
RECORD_CHARS = 2_000  # a rejected record is shown as compact JSON cut to this many characters
MASK = "***"
# A value under a key like these is masked whatever it looks like (a record echoing a credential).
SECRET_KEY = re.compile(r"(?i)(secret|token|passw|api[_-]?key|authori[sz]ation|credential|private[_-]?key)")


def table_result(session: Any, columns: tuple[tuple[str, str], ...], rows: list[tuple[Any, ...]]) -> Any:
    """A DataFrame of `rows` with the declared column names and types (what a table procedure returns)."""
    casts = ", ".join(f"CAST(column{i} AS {kind}) AS {name}" for i, (name, kind) in enumerate(columns, 1))
    if not rows:
        nulls = ", ".join("NULL" for _ in columns)
        return session.sql(f"SELECT {casts} FROM VALUES ({nulls}) WHERE 1 = 0")
    marks = "(" + ", ".join("?" for _ in columns) + ")"
    params = [_text(value) for row in rows for value in row]
    return session.sql(f"SELECT {casts} FROM VALUES {', '.join(marks for _ in rows)}", params=params)


def _text(value: Any) -> str | None:
    """Every value bound as text and cast in SQL, so a column's VALUES have one type in every row."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


# ---- OPS.PIPELINE_STATUS() ------------------------------------------------------------------------------


def pipeline_status(session: Any, settings: Settings) -> list[tuple[Any, ...]]:
    """One row per declared source, in PIPELINE_STATUS_COLUMNS order."""
    table = settings.table
    watermarks = {
        r["SOURCE"]: r["WATERMARK"]
        for r in session.sql(f"SELECT source, watermark FROM {table('OPS.WATERMARKS')}").collect()
    }
    loads = {
        r["SOURCE"]: (r["LAST_LOADED_AT"], r["MINUTES"])
        for r in session.sql(
            f"SELECT source, MAX(loaded_at) AS last_loaded_at, DATEDIFF('minute', MAX(loaded_at), {UTC_NOW}) "
            f"AS minutes FROM {table('OPS.BATCH_LEDGER')} WHERE {ledger.lookback(settings)} "
            f"AND status IN ('LOADED', 'MERGED') AND COALESCE(kind, '{ledger.HOURLY}') = '{ledger.HOURLY}' "
            "GROUP BY source"
        ).collect()
    }
    batches: dict[str, list[Any]] = {}
    for row in session.sql(
        "SELECT source, batch_id, COALESCE(kind, 'HOURLY') AS kind, status, started_at, fetched, staged, "
        f"rejected, duplicates, complete FROM {table('OPS.BATCH_LEDGER')} WHERE {ledger.lookback(settings)} "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY source ORDER BY started_at DESC, batch_id) <= {RECENT} "
        "ORDER BY source, started_at DESC, batch_id"
    ).collect():
        batches.setdefault(row["SOURCE"], []).append(row)
    runs = session.sql(
        f"SELECT run_id, state, finished_at FROM {table('OPS.PIPELINE_RUNS')} "
        f"WHERE finished_at >= DATEADD('day', {-STATUS_DAYS}, {UTC_NOW}) "
        f"ORDER BY finished_at DESC, run_id DESC LIMIT {RECENT}"
    ).collect()
    failing: dict[str, list[str]] = {}
    for row in session.sql(
        f"SELECT source, check_name, passed FROM {table('ANALYTICS.DQ_CHECK_RESULTS')} "
        f"WHERE checked_at >= DATEADD('day', {-STATUS_DAYS}, {UTC_NOW}) AND source IS NOT NULL "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY source, check_name "
        "ORDER BY checked_at DESC, run_id DESC) = 1 "
        "ORDER BY source, check_name"
    ).collect():
        if not row["PASSED"]:
            failing.setdefault(row["SOURCE"], []).append(row["CHECK_NAME"])
    rejects = _rejects_last_day(session, settings)
    last_run = runs[0] if runs else None
    recent_runs = ",".join(r["STATE"] for r in runs)
    rows = []
    for name, source in SOURCES.items():
        recent = batches.get(name, [])
        last = recent[0] if recent else None
        loaded_at, minutes = loads.get(name, (None, None))
        rows.append(
            (
                name,
                "incremental" if source.incremental else "full",
                watermarks.get(name),
                loaded_at,
                minutes,
                last_run["RUN_ID"] if last_run else None,
                last_run["STATE"] if last_run else None,
                last_run["FINISHED_AT"] if last_run else None,
                recent_runs,
                ",".join(r["STATUS"] for r in recent),
                *(_last_batch(last)),
                len(failing.get(name, [])),
                ",".join(failing.get(name, [])),
                rejects.get(name, 0),
            )
        )
    return rows


def _last_batch(row: Any) -> tuple[Any, ...]:
    names = (
        "BATCH_ID",
        "KIND",
        "STATUS",
        "STARTED_AT",
        "FETCHED",
        "STAGED",
        "REJECTED",
        "DUPLICATES",
        "COMPLETE",
    )
    return tuple(None for _ in names) if row is None else tuple(row[n] for n in names)


def _rejects_last_day(session: Any, settings: Settings) -> dict[str, int]:
    """Rejected records loaded into RAW in the last 24 hours, per source (the source is its batch's)."""
    since = utc_now() - timedelta(days=1)
    rows = session.sql(
        f"SELECT l.source, COUNT(*) AS n FROM {settings.table('RAW.REJECTED_RECORDS')} AS r "
        f"INNER JOIN {settings.table('OPS.BATCH_LEDGER')} AS l ON l.batch_id = r.batch_id "
        f"WHERE {loaded_since(since, 'r')} "
        "AND CONVERT_TIMEZONE('UTC', r.loaded_at)::TIMESTAMP_NTZ >= CAST(? AS TIMESTAMP_NTZ) "
        f"AND l.started_at >= DATEADD('day', ?, {UTC_NOW}) GROUP BY l.source",
        params=[since.isoformat(sep=" "), -settings.get_int("ledger_lookback_days")],
    ).collect()
    return {r["SOURCE"]: int(r["N"]) for r in rows}


# ---- OPS.REJECTS(source, since) --------------------------------------------------------------------------


def check_since(value: Any) -> datetime:
    """REJECTS' `since`: an ISO 8601 timestamp (UTC unless it has an offset), not in the future."""
    since = parse_utc("since", value)
    now = utc_now()
    if since > now:
        raise ArgumentError(
            f"argument since is in the future: {since.isoformat()} is after now, "
            f"{now.isoformat(timespec='seconds')} (UTC)"
        )
    return since


def rejects(session: Any, settings: Settings, source: str, since: datetime) -> list[tuple[Any, ...]]:
    """The source's rejected records loaded since `since`, newest first, at most `rejects_max_rows`, with
    their reasons; secret-looking values masked (REJECTS_COLUMNS order)."""
    limit = settings.get_int("rejects_max_rows")
    rows = session.sql(
        "SELECT l.source, r.batch_id, CONVERT_TIMEZONE('UTC', r.loaded_at)::TIMESTAMP_NTZ AS loaded_at, "
        "r.file_name, r.file_row_number, r.payload:reason::STRING AS reason, r.payload:record AS record, "
        "r.payload:record_excerpt::STRING AS excerpt "
        f"FROM {settings.table('RAW.REJECTED_RECORDS')} AS r "
        f"INNER JOIN {settings.table('OPS.BATCH_LEDGER')} AS l ON l.batch_id = r.batch_id "
        f"WHERE {loaded_since(since, 'r')} "
        "AND CONVERT_TIMEZONE('UTC', r.loaded_at)::TIMESTAMP_NTZ >= CAST(? AS TIMESTAMP_NTZ) "
        "AND l.source = ? "
        f"ORDER BY loaded_at DESC, r.file_name, r.file_row_number LIMIT {int(limit)}",
        params=[since.isoformat(sep=" "), source],
    ).collect()
    return [
        (
            row["SOURCE"],
            row["BATCH_ID"],
            row["LOADED_AT"],
            row["FILE_NAME"],
            row["FILE_ROW_NUMBER"],
            redact_text(row["REASON"] or ""),
            shown_record(row["RECORD"], row["EXCERPT"]),
        )
        for row in rows
    ]


def shown_record(record: Any, excerpt: str | None) -> str | None:
    """A rejected record as compact JSON, values under secret-looking keys masked, then secret-looking text
    (bearer tokens, `password=...`) and the call's known secret values masked, cut to RECORD_CHARS."""
    if record is None:
        text = excerpt  # a record too large to keep whole: the excerpt staging kept
    else:
        try:
            value = json.loads(record) if isinstance(record, str) else record
        except ValueError:
            value = record
        text = json.dumps(mask_secret_keys(value), ensure_ascii=False, separators=(",", ":"), default=str)
    if text is None:
        return None
    shown = redact_text(text)
    return shown if len(shown) <= RECORD_CHARS else shown[: RECORD_CHARS - 3] + "..."


def mask_secret_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if SECRET_KEY.search(str(k)) else mask_secret_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secret_keys(v) for v in value]
    return value
