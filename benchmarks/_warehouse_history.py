"""The warehouse history bench_warehouse.py measures against: what months of hourly ingest + Snowpipe leave.

Everything is written with set-based SQL on the local warehouse's DuckDB connection (fakesnow keeps each
Snowflake table as the DuckDB table of the same name, `<DATABASE>.<SCHEMA>.<TABLE>`), so millions of rows take
seconds; the rows are exactly what the Snowflake-side SQL then reads:

- RAW: one row per record version, PAYLOAD the normalised record as the ingest writes it (fields of
  sources/entities.py EVENT_FIELDS / CAMERA_FIELDS, ISO-8601 UTC timestamps, `_batch_id`), FILE_NAME the S3
  key `source=<src>/dt=<day>/hour=<hh>/batch_id=<id>/part-0001.jsonl.gz` of the hourly run that fetched it,
  FILE_ROW_NUMBER in serving (UPDATED_AT) order, LOADED_AT (TIMESTAMP_LTZ) a few seconds after that run
  started. Rows are appended in load order, as Snowpipe appends them.
- OPS.BATCH_LEDGER: one row per batch (source and hour), counts and manifest as `finish_staging` writes them.
- OPS.PIPELINE_RUNS / PIPELINE_METRICS and ANALYTICS.DQ_CHECK_RESULTS: what each past hourly run recorded
  (one run row, 29 metrics, 42 checks: VW_DQ_CHECKS's 14 checks x 3 event sources, as RUN_DQ wrote them
  before its hourly checks became per batch).
- OPS.WATERMARKS: each event source's newest loaded version.

Event `k` of a source (k = 1, 2, ...) gets its fields from `hash(source, k)`, so a later version (an update)
is generated from the same k without reading anything back. Every column is named in the INSERTs, so a
column the pipeline adds later is simply left NULL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

HOUR_US = 3_600_000_000
CAMERA_SOURCE = "api_c"
CAMERA_TABLE = "RAW.API_C_CAMERAS"
CAMERAS_PER_SITE = 10
# (city, country, time zone, latitude, longitude) of the sites, in turn
CITIES = (
    ("Berlin", "DE", "Europe/Berlin", 52.52, 13.40),
    ("Chicago", "US", "America/Chicago", 41.88, -87.63),
    ("London", "GB", "Europe/London", 51.51, -0.12),
    ("Madrid", "ES", "Europe/Madrid", 40.42, -3.70),
    ("Tokyo", "JP", "Asia/Tokyo", 35.68, 139.69),
    ("Sydney", "AU", "Australia/Sydney", -33.87, 151.21),
    ("Toronto", "CA", "America/Toronto", 43.65, -79.38),
    ("Paris", "FR", "Europe/Paris", 48.86, 2.35),
)
SITE_KINDS = ("HQ", "Depot", "Store", "Warehouse", "Plant")
# The checks of VW_DQ_CHECKS (sql/05_dq.sql) per event source: name, severity, threshold.
DQ_CHECKS = (
    ("freshness_load_minutes", "error", 120.0),
    ("freshness_event_minutes", "warn", 1440.0),
    ("volume_clean_rows", "error", 1.0),
    ("volume_last_24h", "warn", 1.0),
    ("null_rate_event_id", "error", 0.0),
    ("null_rate_camera_id", "error", 0.0),
    ("null_rate_category", "error", 0.0),
    ("null_rate_occurred_at", "error", 0.0),
    ("null_rate_updated_at", "error", 0.0),
    ("unique_event_id", "error", 0.0),
    ("accepted_values_category", "warn", 0.0),
    ("accepted_values_event_type", "warn", 0.0),
    ("reconcile_raw_to_clean", "error", 0.0),
    ("reconcile_staged_to_raw", "error", 0.0),
)
LEDGER_METRICS = ("fetched", "staged", "rejected", "duplicates", "requests", "retries", "throttled_429")
LEDGER_COLUMNS = (
    "BATCH_ID, SOURCE, RUN_ID, WINDOW_START, WINDOW_END, MAX_UPDATED_AT, PARTITION_PREFIX, STATUS, FETCHED, "
    "STAGED, REJECTED, DUPLICATES, PARTS, MANIFEST, HTTP_STATS, STARTED_AT, STAGED_AT, LOADED_AT, MERGED_AT, "
    "ERROR_MESSAGE, COMPLETE, REMAINING"
)
RAW_COLUMNS = "PAYLOAD, FILE_NAME, FILE_ROW_NUMBER, BATCH_ID, LOADED_AT"


@dataclass(frozen=True)
class EventSource:
    """An event source as its normaliser shapes ids (`a-00000042`, `b-42`) and where its rows land."""

    name: str
    raw_table: str
    clean_table: str
    id_prefix: str
    id_width: int  # zero padding of k; 0: none

    def id_sql(self, k: str) -> str:
        if self.id_width:
            return f"'{self.id_prefix}' || lpad(({k})::VARCHAR, {self.id_width}, '0')"
        return f"'{self.id_prefix}' || ({k})::VARCHAR"


EVENT_SOURCES = (
    EventSource("api_a", "RAW.API_A_EVENTS", "CLEAN.CLN_API_A_EVENTS", "a-", 8),
    EventSource("api_b", "RAW.API_B_EVENTS", "CLEAN.CLN_API_B_EVENTS", "b-", 0),
    EventSource("api_d", "RAW.API_D_EVENTS", "CLEAN.CLN_API_D_EVENTS", "d-", 8),
)
ZONES = {"api_a": "('lobby', 'entrance', 'parking')", "api_d": "('street', 'yard', 'dock')"}


@dataclass
class History:
    """Where the generated history is, so that later hourly batches continue it."""

    database: str
    bucket: str
    start: (
        datetime  # naive UTC; run j (1..hours) fetched the versions updated in [start + j-1 h, start + j h)
    )
    hours: int
    cameras: int
    counts: dict[str, int]  # history events per source: k = 1..count
    step_us: dict[str, int]  # event k occurs in [start + (k-1) step, start + k step)
    next_k: dict[str, int] = field(default_factory=dict)
    raw_rows: int = 0
    batches: int = 0

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=self.hours)

    def table(self, name: str) -> str:
        return f"{self.database}.{name}"


def _ts(value: datetime) -> str:
    return f"TIMESTAMP '{value.isoformat(sep=' ')}'"


def _iso(column: str) -> str:
    """A naive UTC timestamp as the ingest writes it: 2026-11-30T01:59:58.639000."""
    return f"strftime({column}, '%Y-%m-%dT%H:%M:%S.%f')"


def _uuid(seed: str) -> str:
    """A uuid-shaped id derived from `seed` (deterministic)."""
    h = f"md5({seed})"
    return (
        f"(substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-' || substr({h}, 13, 4) || '-' || "
        f"substr({h}, 17, 4) || '-' || substr({h}, 21, 12))"
    )


def occurred_sql(history: History, source: EventSource, k: str, h: str) -> str:
    """When event k of `source` first occurred (the history's layout; updates keep it)."""
    step = history.step_us[source.name]
    return f"({_ts(history.start)} + to_microseconds(((({k}) - 1) * {step} + {h} % {step})::BIGINT))"


def payload_sql(source: EventSource, cameras: int, v: str = "v", batch_id: str = "b.batch_id") -> str:
    """The normalised event as ingest stages it, from `v.k`, `v.h`, `v.variant`, `v.occurred_at` and
    `v.updated_at`; a later version (another variant) has another category and confidence."""
    zones = ZONES.get(source.name)
    attributes = (
        f"json_object('zone', [{zones[1:-1]}][(1 + ({v}.h >> 40) % 3)::BIGINT])" if zones else "NULL::JSON"
    )
    category = (
        f"CASE (({v}.h >> 16) + {v}.variant * 7) % 20 WHEN 0 THEN 'package' WHEN 1 THEN 'animal' "
        f"WHEN 2 THEN 'bicycle' WHEN 3 THEN 'bicycle' "
        f"ELSE CASE WHEN ({v}.h >> 20) % 2 = 0 THEN 'person' ELSE 'vehicle' END END"
    )
    event_type = (
        f"CASE {v}.h % 20 WHEN 0 THEN 'tamper' WHEN 1 THEN 'line_crossing' WHEN 2 THEN 'line_crossing' "
        f"ELSE CASE WHEN {v}.h % 3 = 0 THEN 'motion' ELSE 'detection' END END"
    )
    return (
        f"json_object('event_id', {source.id_sql(f'{v}.k')}, 'source', '{source.name}', "
        f"'event_type', {event_type}, "
        f"'camera_id', 'cam-' || lpad((1 + ({v}.h >> 8) % {cameras})::VARCHAR, 3, '0'), "
        f"'category', {category}, "
        f"'confidence', round(0.30 + ((({v}.h >> 24) + {v}.variant * 13) % 70) / 100.0, 2), "
        f"'occurred_at', {_iso(f'{v}.occurred_at')}, 'updated_at', {_iso(f'{v}.updated_at')}, "
        f"'duration_ms', (500 + ({v}.h >> 32) % 29500)::BIGINT, 'attributes', {attributes}, "
        f"'_batch_id', {batch_id})"
    )


def _manifest_sql(bucket: str, b: str = "b", n: str = "s.n") -> str:
    """MANIFEST and HTTP_STATS of a batch of one part (none when empty), as `finish_staging` stores them."""
    key = f"{b}.prefix || 'batch_id=' || {b}.batch_id || '/part-0001.jsonl.gz'"
    parts = (
        f"CASE WHEN {n} > 0 THEN json_array(json_object('key', {key}, 'rows', {n}, 'bytes', {n} * 26)) "
        "ELSE '[]'::JSON END"
    )
    manifest = (
        f"json_object('batch_id', {b}.batch_id, 'source', {b}.source, 'bucket', '{bucket}', "
        f"'parts', {parts}, 'rejects', '[]'::JSON, 'staged_rows', {n}, 'rejected_rows', 0)"
    )
    pages = f"({n} // 100 + 1)"
    http_stats = (
        f"json_object('requests', {pages}, 'retries', 0, 'throttled_429', 0, 'waited_s', 0.0, "
        f"'unauthorized_refreshes', 0, 'malformed_bodies', 0, 'inconsistent_pages', 0, 'pages', {pages}, "
        "'recent_request_times', '[]'::JSON, 'complete', TRUE, 'stopped_by', NULL, 'remaining', NULL)"
    )
    return f"{manifest}, {http_stats}"


# ------------------------------------------------------------------------------------------------ history


def generate(
    cur: Any,
    database: str,
    bucket: str,
    events: int,
    days: int,
    end: datetime,
    cameras: int,
    graph_tasks: int,
) -> History:
    """Write `events` events over `days` days of hourly batches ending at `end` (naive UTC), about 10% of
    them updated once in a later batch, a camera directory loaded once before them, and the ops history of
    every hourly run. The batches are LOADED (not merged yet): CLEAN and the summary are still to be built."""
    hours = days * 24
    start = end - timedelta(hours=hours)
    counts = {s.name: events // len(EVENT_SOURCES) for s in EVENT_SOURCES}
    counts[EVENT_SOURCES[0].name] += events - sum(counts.values())
    span_us = hours * HOUR_US - 60_000_000  # the last event occurs a minute before the last run
    history = History(
        database=database,
        bucket=bucket,
        start=start,
        hours=hours,
        cameras=cameras,
        counts=counts,
        step_us={name: span_us // max(n, 1) for name, n in counts.items()},
        next_k={name: n + 1 for name, n in counts.items()},
    )
    cur.execute("SET TimeZone = 'UTC'")  # this connection only: LTZ values below are written as UTC instants
    _batches(cur, history)
    _versions(cur, history)
    for source in EVENT_SOURCES:
        _raw_events(cur, history, source)
    _raw_cameras(cur, history)
    _ledger(cur, history)
    _ops_history(cur, history, graph_tasks)
    _watermarks(cur, history)
    history.raw_rows = cur.execute("SELECT COUNT(*) FROM hist_versions").fetchone()[0] + cameras
    history.batches = cur.execute("SELECT COUNT(*) FROM hist_batches").fetchone()[0]
    for temp in ("hist_versions", "hist_batches", "hist_runs", "batch_stats"):
        cur.execute(f"DROP TABLE IF EXISTS {temp}")
    cur.execute("CHECKPOINT")
    return history


def _batches(cur: Any, history: History) -> None:
    """One batch per event source and hourly run (run j started at start + j h), plus the camera batch."""
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE hist_runs AS
        SELECT j, {_uuid("'run-' || j")} AS run_id, {_ts(history.start)} + to_hours(j) AS run_at
        FROM range(0, {history.hours} + 1) AS t(j)"""
    )
    sources = ", ".join(f"('{s.name}', {i})" for i, s in enumerate(EVENT_SOURCES))
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE hist_batches AS
        WITH planned AS (
            SELECT s.source, r.j, r.run_id, r.run_at,
                r.run_at + to_milliseconds(1000 + s.ord * 37) AS started_at
            FROM hist_runs AS r CROSS JOIN (VALUES {sources}) AS s(source, ord) WHERE r.j >= 1
            UNION ALL
            SELECT '{CAMERA_SOURCE}', 0, run_id, run_at - INTERVAL 30 MINUTE,
                run_at - INTERVAL 30 MINUTE + INTERVAL 1 SECOND
            FROM hist_runs WHERE j = 0
        )
        SELECT source, j, run_id, run_at, started_at, {_uuid("'batch-' || source || '-' || j")} AS batch_id,
            'source=' || source || '/dt=' || strftime(started_at, '%Y-%m-%d') || '/hour='
                || strftime(started_at, '%H') || '/' AS prefix,
            started_at + INTERVAL 1200 MILLISECOND AS staged_at,
            timezone('UTC', started_at + INTERVAL 2 SECOND) AS raw_loaded_at,
            started_at + INTERVAL 3100 MILLISECOND AS loaded_at
        FROM planned"""
    )


def _versions(cur: Any, history: History) -> None:
    """Every version of every history event with the run that fetched it (j): first versions spread evenly
    (updated_at on the next 30 s, as the APIs stamp them), about 10% updated 1-48 h later."""
    cur.execute(
        "CREATE OR REPLACE TEMP TABLE hist_versions (source VARCHAR, k BIGINT, h UBIGINT, variant INTEGER, "
        "occurred_at TIMESTAMP, updated_at TIMESTAMP, j BIGINT)"
    )
    bucket = "time_bucket(INTERVAL 30 SECOND, occurred_at) + INTERVAL 30 SECOND"
    for source in EVENT_SOURCES:
        cur.execute(
            f"""INSERT INTO hist_versions
            WITH ev AS (
                SELECT k, hash('{source.name}', k) AS h
                FROM range(1, {history.counts[source.name]} + 1) AS t(k)
            ),
            timed AS (SELECT k, h, {occurred_sql(history, source, "k", "h")} AS occurred_at FROM ev),
            versions AS (
                SELECT k, h, 0 AS variant, occurred_at, {bucket} AS updated_at FROM timed
                UNION ALL
                SELECT k, h, 1, occurred_at,
                    {bucket} + to_hours((1 + (h >> 52) % 48)::BIGINT) + INTERVAL 7 SECOND
                FROM timed WHERE (h >> 48) % 10 = 0
            )
            SELECT '{source.name}', k, h, variant, occurred_at, updated_at,
                (epoch_us(updated_at) - epoch_us({_ts(history.start)})) // {HOUR_US} + 1 AS j
            FROM versions WHERE updated_at < {_ts(history.end)}"""
        )


def _raw_events(cur: Any, history: History, source: EventSource) -> None:
    payload = payload_sql(source, history.cameras)
    cur.execute(
        f"""INSERT INTO {history.table(source.raw_table)} ({RAW_COLUMNS})
        SELECT {payload}, b.prefix || 'batch_id=' || b.batch_id || '/part-0001.jsonl.gz',
            ROW_NUMBER() OVER (PARTITION BY v.j ORDER BY v.updated_at, v.k, v.variant), b.batch_id,
            b.raw_loaded_at
        FROM hist_versions AS v INNER JOIN hist_batches AS b ON b.source = v.source AND b.j = v.j
        WHERE v.source = '{source.name}'
        ORDER BY v.j, v.updated_at, v.k, v.variant"""
    )


def _raw_cameras(cur: Any, history: History) -> None:
    """The camera directory (API C), CAMERAS_PER_SITE cameras per site, loaded once before the events."""
    cities = ", ".join(
        f"({i}, '{c}', '{cc}', '{tz}', {lat}, {lon})" for i, (c, cc, tz, lat, lon) in enumerate(CITIES)
    )
    kinds = ", ".join(f"'{kind}'" for kind in SITE_KINDS)
    cur.execute(
        f"""INSERT INTO {history.table(CAMERA_TABLE)} ({RAW_COLUMNS})
        WITH cams AS (
            SELECT c, (c - 1) // {CAMERAS_PER_SITE} AS site, hash('{CAMERA_SOURCE}', c) AS h
            FROM range(1, {history.cameras} + 1) AS t(c)
        )
        SELECT json_object('camera_id', 'cam-' || lpad(cams.c::VARCHAR, 3, '0'),
                'site_id', 'site-' || lpad((cams.site + 1)::VARCHAR, 2, '0'),
                'site_name', city.name || ' ' || [{kinds}][1 + cams.site % {len(SITE_KINDS)}],
                'city', city.name, 'country', city.country, 'timezone', city.tz,
                'latitude', round(city.lat + (cams.h % 1000) / 100000.0, 6),
                'longitude', round(city.lon + ((cams.h >> 10) % 1000) / 100000.0, 6),
                'installed_at', {_iso("b.started_at - to_days((30 + cams.h % 600)::BIGINT)")},
                'active', TRUE,
                'updated_at', {_iso("b.started_at - to_days((1 + cams.h % 20)::BIGINT)")},
                '_batch_id', b.batch_id),
            b.prefix || 'batch_id=' || b.batch_id || '/part-0001.jsonl.gz', cams.c, b.batch_id,
            b.raw_loaded_at
        FROM cams
        INNER JOIN (VALUES {cities}) AS city(i, name, country, tz, lat, lon)
            ON city.i = cams.site % {len(CITIES)}
        CROSS JOIN (SELECT * FROM hist_batches WHERE source = '{CAMERA_SOURCE}') AS b
        ORDER BY cams.c"""
    )


def _ledger(cur: Any, history: History) -> None:
    """One LOADED ledger row per batch, in the order the batches started."""
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE batch_stats AS
        SELECT b.source, b.j, COALESCE(v.n, 0) AS n, COALESCE(v.first_versions, 0) AS first_versions,
            v.max_updated
        FROM hist_batches AS b LEFT JOIN (
            SELECT source, j, COUNT(*) AS n, COUNT_IF(variant = 0) AS first_versions,
                MAX(updated_at) AS max_updated
            FROM hist_versions GROUP BY source, j
        ) AS v ON v.source = b.source AND v.j = b.j
        WHERE b.source <> '{CAMERA_SOURCE}'
        UNION ALL
        SELECT '{CAMERA_SOURCE}', 0, {history.cameras}, {history.cameras},
            (SELECT MAX(started_at) - INTERVAL 1 DAY FROM hist_batches WHERE source = '{CAMERA_SOURCE}')"""
    )
    cur.execute(
        f"""INSERT INTO {history.table("OPS.BATCH_LEDGER")} ({LEDGER_COLUMNS})
        SELECT b.batch_id, b.source, b.run_id, b.run_at - INTERVAL 61 MINUTE, b.started_at, s.max_updated,
            b.prefix, 'LOADED', s.n, s.n, 0, 0, CASE WHEN s.n > 0 THEN 1 ELSE 0 END,
            {_manifest_sql(history.bucket)}, b.started_at, b.staged_at, b.loaded_at, NULL, NULL, TRUE, NULL
        FROM hist_batches AS b INNER JOIN batch_stats AS s ON s.source = b.source AND s.j = b.j
        ORDER BY b.started_at"""
    )


def _ops_history(cur: Any, history: History, graph_tasks: int) -> None:
    """What every past hourly run recorded: its PIPELINE_RUNS row, its metrics and its DQ results."""
    cur.execute(
        f"""INSERT INTO {history.table("OPS.PIPELINE_RUNS")}
            (RUN_ID, STATE, TASKS_SUCCEEDED, TASKS_FAILED, FIRST_ERROR, FINISHED_AT)
        SELECT run_id, 'SUCCEEDED', {graph_tasks}, 0, NULL, run_at + INTERVAL 45 SECOND
        FROM hist_runs WHERE j >= 1 ORDER BY j"""
    )
    metrics = ", ".join(f"('{name}', {i})" for i, name in enumerate(LEDGER_METRICS))
    cur.execute(
        f"""INSERT INTO {history.table("OPS.PIPELINE_METRICS")}
            (RUN_ID, METRIC_NAME, SOURCE, METRIC_VALUE, RECORDED_AT)
        WITH cumulative AS (
            SELECT source, j, n, n // 100 + 1 AS requests,
                SUM(n) OVER (PARTITION BY source ORDER BY j) AS raw_rows,
                SUM(first_versions) OVER (PARTITION BY source ORDER BY j) AS clean_rows
            FROM batch_stats WHERE j >= 1
        ),
        metric_values AS (
            SELECT c.j, c.source, m.metric, m.ord,
                CASE WHEN m.metric IN ('fetched', 'staged') THEN c.n
                    WHEN m.metric = 'requests' THEN c.requests ELSE 0 END::DOUBLE AS value
            FROM cumulative AS c CROSS JOIN (VALUES {metrics}) AS m(metric, ord)
            UNION ALL
            SELECT c.j, c.source, l.metric, l.ord, CASE WHEN l.metric = 'raw_rows' THEN c.raw_rows
                ELSE c.clean_rows END::DOUBLE
            FROM cumulative AS c CROSS JOIN (VALUES ('raw_rows', 10), ('clean_rows', 11)) AS l(metric, ord)
            UNION ALL
            SELECT r.j, '{CAMERA_SOURCE}', l.metric, l.ord, {history.cameras}::DOUBLE
            FROM hist_runs AS r CROSS JOIN (VALUES ('raw_rows', 10), ('clean_rows', 11)) AS l(metric, ord)
            WHERE r.j >= 1
        )
        SELECT r.run_id, v.metric, v.source, v.value, r.run_at + INTERVAL 40 SECOND
        FROM metric_values AS v INNER JOIN hist_runs AS r ON r.j = v.j
        ORDER BY v.j, v.ord, v.source"""
    )
    checks = ", ".join(
        f"({i}, '{name}', '{severity}', {threshold})"
        for i, (name, severity, threshold) in enumerate(DQ_CHECKS)
    )
    sources = ", ".join(f"('{s.name}')" for s in EVENT_SOURCES)
    cur.execute(
        f"""INSERT INTO {history.table("ANALYTICS.DQ_CHECK_RESULTS")}
            (RUN_ID, CHECK_NAME, SOURCE, SEVERITY, OBSERVED_VALUE, THRESHOLD, PASSED, DETAILS, CHECKED_AT)
        SELECT r.run_id, c.name, s.source, c.severity, 0.0, c.threshold, TRUE, 'history (bench_warehouse)',
            r.run_at + INTERVAL 35 SECOND
        FROM hist_runs AS r CROSS JOIN (VALUES {checks}) AS c(ord, name, severity, threshold)
        CROSS JOIN (VALUES {sources}) AS s(source)
        WHERE r.j >= 1
        ORDER BY r.j, c.ord, s.source"""
    )


def _watermarks(cur: Any, history: History) -> None:
    cur.execute(
        f"""INSERT INTO {history.table("OPS.WATERMARKS")} (SOURCE, WATERMARK, BATCH_ID, UPDATED_AT)
        SELECT s.source, s.max_updated, b.batch_id, b.loaded_at
        FROM batch_stats AS s INNER JOIN hist_batches AS b ON b.source = s.source AND b.j = s.j
        WHERE s.source <> '{CAMERA_SOURCE}'
        QUALIFY ROW_NUMBER() OVER (PARTITION BY s.source ORDER BY s.j DESC) = 1"""
    )


# ------------------------------------------------------------------------------------------------ an hour


@dataclass(frozen=True)
class HourlyBatch:
    """One staged batch of an event source, as INGEST_<SRC> + Snowpipe leave it."""

    source: str
    batch_id: str
    rows: int
    new: int
    updates: int
    moves: int


def stage_hourly_batches(
    cur: Any,
    history: History,
    run_id: str,
    rows: int,
    window: tuple[datetime, datetime],
    run_number: int,
    moves_per_source: int = 5,
    update_share: float = 0.15,
) -> list[HourlyBatch]:
    """One batch per event source, `rows` in all, for the versions updated in `window` (naive UTC): mostly
    new events, `update_share` updates of events of the last 24 h, and `moves_per_source` updates that move an
    old event's OCCURRED_AT to the day before. Its rows are in RAW (loaded now) and its ledger row is STAGED
    with a manifest that matches them, so WAIT_FOR_LOAD finds it complete."""
    now = datetime.now(UTC)
    started = now.replace(tzinfo=None) - timedelta(seconds=20)
    w0, w1 = window
    span_us = int((w1 - w0).total_seconds() * 1e6) - 1_000_000
    per_source = [rows // len(EVENT_SOURCES)] * len(EVENT_SOURCES)
    per_source[0] += rows - sum(per_source)
    staged = []
    for source, total in zip(EVENT_SOURCES, per_source, strict=True):
        moves = min(moves_per_source, total)
        updates = min(int(total * update_share), total - moves)
        new = total - moves - updates
        _hourly_versions(cur, history, source, (new, updates, moves), w0, span_us, run_number)
        batch_id = str(uuid.uuid4())
        _stage(cur, history, source, batch_id, run_id, started, now, w0)
        history.next_k[source.name] += new
        staged.append(HourlyBatch(source.name, batch_id, total, new, updates, moves))
    cur.execute("DROP TABLE IF EXISTS inc_versions")
    return staged


def _hourly_versions(
    cur: Any,
    history: History,
    source: EventSource,
    counts: tuple[int, int, int],
    w0: datetime,
    span_us: int,
    run_number: int,
) -> None:
    new, updates, moves = counts
    n = history.counts[source.name]
    recent = max(updates, n * 24 // history.hours)  # the events of the last 24 h of history
    first_new = history.next_k[source.name]
    at = f"{_ts(w0)} + to_microseconds"
    occurred = occurred_sql(history, source, "k", "h")
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE inc_versions AS
        WITH fresh AS (
            SELECT {first_new} + i AS k, hash('{source.name}', {first_new} + i) AS h, 0 AS variant,
                {at}((i * {span_us} // {max(new, 1)})::BIGINT) AS occurred_at
            FROM range({new}) AS t(i)
        ),
        updated AS (
            SELECT k, hash('{source.name}', k) AS h, i FROM (
                SELECT {n} - {recent} + 1 + (i * {recent}) // {max(updates, 1)} AS k, i
                FROM range({updates}) AS t(i)
            )
        ),
        moved AS (
            SELECT k, hash('{source.name}', k) AS h, i FROM (
                SELECT 1 + ({n} * (10 + 7 * i + 3 * {run_number})) // 100 AS k, i FROM range({moves}) AS t(i)
            )
        )
        SELECT k, h, variant, occurred_at, occurred_at + INTERVAL 500 MILLISECOND AS updated_at FROM fresh
        UNION ALL
        SELECT k, h, 10 + {run_number}, {occurred},
            {at}((i * {span_us} // {max(updates, 1)} + 250000)::BIGINT)
        FROM updated
        UNION ALL
        SELECT k, h, 20 + {run_number}, {occurred} - INTERVAL 25 HOUR,
            {at}((i * {span_us} // {max(moves, 1)} + 750000)::BIGINT)
        FROM moved"""
    )


def _stage(
    cur: Any,
    history: History,
    source: EventSource,
    batch_id: str,
    run_id: str,
    started: datetime,
    loaded: datetime,
    w0: datetime,
) -> None:
    prefix = f"source={source.name}/dt={started:%Y-%m-%d}/hour={started:%H}/"
    batch = (
        f"(SELECT '{source.name}' AS source, '{batch_id}' AS batch_id, '{prefix}' AS prefix, "
        f"'{run_id}' AS run_id) AS b"
    )
    payload = payload_sql(source, history.cameras)
    cur.execute(
        f"""INSERT INTO {history.table(source.raw_table)} ({RAW_COLUMNS})
        SELECT {payload}, b.prefix || 'batch_id=' || b.batch_id || '/part-0001.jsonl.gz',
            ROW_NUMBER() OVER (ORDER BY v.updated_at, v.k), b.batch_id, ?::TIMESTAMPTZ
        FROM inc_versions AS v CROSS JOIN {batch}
        ORDER BY v.updated_at, v.k""",
        [loaded],
    )
    cur.execute(
        f"""INSERT INTO {history.table("OPS.BATCH_LEDGER")} ({LEDGER_COLUMNS})
        SELECT b.batch_id, b.source, b.run_id, {_ts(w0)} - INTERVAL 60 SECOND, {_ts(started)}, s.max_updated,
            b.prefix, 'STAGED', s.n, s.n, 0, 0, 1, {_manifest_sql(history.bucket)},
            {_ts(started)}, {_ts(started)} + INTERVAL 15 SECOND, NULL, NULL, NULL, TRUE, NULL
        FROM {batch}
        CROSS JOIN (SELECT COUNT(*) AS n, MAX(updated_at) AS max_updated FROM inc_versions) AS s"""
    )
