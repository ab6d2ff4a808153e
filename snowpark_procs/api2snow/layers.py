"""CLEAN and ANALYTICS builds: incremental MERGEs whose columns come from the tables declared in sql/.

The typed projections (STG_ views) and the tables are declared once, in sql/; this module only writes the
MERGE that moves rows between them, reading the column list from the target table, so a column added in
sql/ flows through without a code change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from . import ledger
from .key_ranges import MAX_KEYS, key_ranges, range_predicate
from .ledger import BatchRecord
from .settings import Settings
from .sources import SOURCES
from .sources.entities import ANALYSED_ENTITY, SUMMARY_CAMERA_COLUMNS, SUMMARY_DAY_COLUMN
from .sqltime import UTC_NOW, loaded_since

log = logging.getLogger(__name__)
# Past this many runs of consecutive days for one source, BUILD_ANALYTICS refreshes the source's every day in
# one statement instead of one statement per run.
MAX_DAY_RUNS = 32


@dataclass(frozen=True)
class CleanTarget:
    """Where one source's loaded rows are merged: its STG_ view, CLEAN table, key and version column."""

    source: str
    staging_view: str
    table: str
    key: str
    version: str = "UPDATED_AT"


def table_columns(session: Any, qualified_table: str) -> list[str]:
    """Column names of a table in declaration order (DESCRIBE works in Snowflake and locally)."""
    rows = session.sql(f"DESCRIBE TABLE {qualified_table}").collect()
    return [row["name"].upper() for row in rows]


def merge_statement(
    target: str,
    source_query: str,
    keys: list[str],
    columns: list[str],
    stamp_column: str,
    update_condition: str | None = None,
    target_bound: str = "",
) -> str:
    """A MERGE that upserts `source_query` into `target` on `keys`, stamping `stamp_column` with now (UTC).

    `target_bound`, a predicate on the target (`tgt.`) true of every row a source row can match, goes into
    the ON clause: it changes no match, and lets the warehouse skip the rest of the target.
    """
    payload = [c for c in columns if c != stamp_column]
    on = " AND ".join([*(f"tgt.{k} = src.{k}" for k in keys), *([target_bound] if target_bound else [])])
    matched = "WHEN MATCHED" + (f" AND {update_condition}" if update_condition else "")
    updates = ", ".join(f"tgt.{c} = src.{c}" for c in payload if c not in keys)
    insert_cols = ", ".join([*payload, stamp_column])
    insert_vals = ", ".join([*(f"src.{c}" for c in payload), UTC_NOW])
    return (
        f"MERGE INTO {target} AS tgt USING ({source_query}) AS src ON {on} "
        f"{matched} THEN UPDATE SET {updates}, tgt.{stamp_column} = {UTC_NOW} "
        f"WHEN NOT MATCHED THEN INSERT ({insert_cols}) VALUES ({insert_vals})"
    )


def newer_or_changed(target: CleanTarget, columns: list[str]) -> str:
    """The MERGE's update condition: a newer version, or the same version served later with new content.

    Versions with equal `updated_at` resolve to the one served last, as in the batch dedupe; an identical
    re-read (the watermark overlap) changes nothing, so unchanged rows are never rewritten.
    """
    compared = [c for c in columns if c not in (target.key, target.version, "BATCH_ID", "MERGED_AT")]
    changed = " OR ".join(f"src.{c} IS DISTINCT FROM tgt.{c}" for c in compared)
    return (
        f"(src.{target.version} > tgt.{target.version} OR tgt.{target.version} IS NULL "
        f"OR (src.{target.version} = tgt.{target.version} AND ({changed})))"
    )


@dataclass(frozen=True)
class Delta:
    """The RAW rows of some loaded batches of one source, as a prunable query: the STG rows of exactly those
    batches, bounded by load time (the batches' start), so RAW is read only where they landed."""

    target: CleanTarget
    batches: tuple[BatchRecord, ...]

    def where(self, alias: str = "stg") -> str:
        """The STG rows of these batches. Written out, not bound: it goes into a MERGE (see key_ranges); every
        value is the pipeline's own (a declared source name, batch ids minted by ingest, a timestamp)."""
        starts = [b.started_at for b in self.batches]
        since = loaded_since(None if None in starts else min(starts), alias)  # unknown start: no bound
        ids = ", ".join(f"'{b.batch_id}'" for b in self.batches)
        return f"{alias}.source = '{self.target.source}' AND {since} AND {alias}.batch_id IN ({ids})"

    def served_order(self) -> str:
        """(batch_id, served) rows: the batches in the order they were started, which is serving order."""
        rows = ", ".join(f"('{b.batch_id}', {n})" for n, b in enumerate(self.batches))  # ids minted by ingest
        return f"(SELECT column1 AS batch_id, column2 AS served FROM VALUES {rows})"


def key_bound(session: Any, settings: Settings, delta: Delta, column: str) -> str:
    """A predicate on the CLEAN table's key `column` that holds for every row the delta can match."""
    key, view = delta.target.key, settings.table(delta.target.staging_view)
    keys = session.sql(
        f"SELECT DISTINCT stg.{key} AS k FROM {view} AS stg "
        f"WHERE {delta.where()} AND stg.{key} IS NOT NULL LIMIT {MAX_KEYS + 1}"
    ).collect()
    if len(keys) > MAX_KEYS:
        return "TRUE"
    return range_predicate(column, key_ranges(row["K"] for row in keys))


def latest_rows(settings: Settings, delta: Delta, columns: list[str]) -> str:
    """The delta's latest version of each key: the newest version, and among equal versions the one served
    last (the later batch, then the later part file and row; part files of a batch are numbered in order)."""
    target = delta.target
    return (
        f"SELECT {', '.join(f'stg.{c}' for c in columns)} FROM {settings.table(target.staging_view)} AS stg "
        f"INNER JOIN {delta.served_order()} AS served ON served.batch_id = stg.batch_id "
        f"WHERE {delta.where()} "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY stg.{target.key} ORDER BY stg.{target.version} DESC, "
        "served.served DESC, stg.file_name DESC, stg.file_row_number DESC) = 1"
    )


def merge_delta(session: Any, settings: Settings, delta: Delta) -> int:
    """MERGE the delta's latest rows into the CLEAN table, reading only the CLEAN rows it can match (the key
    ranges of the delta, added to the ON clause); returns rows merged. Queues the summary days it changes."""
    target = delta.target
    table = settings.table(target.table)
    columns = table_columns(session, table)
    latest = latest_rows(settings, delta, [c for c in columns if c != "MERGED_AT"])
    bound = key_bound(session, settings, delta, f"tgt.{target.key}")
    days = summary_days_touched(session, settings, delta, bound)
    queue_summary_days(session, settings, target.source, days)
    statement = merge_statement(
        table,
        latest,
        [target.key],
        columns,
        "MERGED_AT",
        update_condition=newer_or_changed(target, columns),
        target_bound=bound,
    )
    rows = session.sql(statement).collect()
    # Again after the MERGE: a BUILD_ANALYTICS run meanwhile read these days before the MERGE changed them.
    queue_summary_days(session, settings, target.source, days)
    return _affected(rows)


def summary_days_touched(session: Any, settings: Settings, delta: Delta, bound: str) -> list[Any]:
    """The summary days the delta changes: those its records fall on, and, for the events it updates, the
    day their CLEAN row falls on now (an update that moves an event leaves that day). None for a dimension
    source whose change affects every day (a camera's site), [] when the summary does not read the source."""
    target = delta.target
    source = SOURCES[target.source]
    if source.declaration.entity != ANALYSED_ENTITY:
        return [None] if _dimension_changed(session, settings, delta, bound) else []
    day, where = SUMMARY_DAY_COLUMN, delta.where()
    view, table = settings.table(target.staging_view), settings.table(target.table)
    rows = session.sql(
        f"SELECT DISTINCT stg.{day} AS day FROM {view} AS stg WHERE {where} "
        f"UNION SELECT DISTINCT tgt.{day} AS day FROM {table} AS tgt WHERE {bound} "
        f"AND tgt.{target.key} IN (SELECT stg.{target.key} FROM {view} AS stg WHERE {where})"
    ).collect()
    return sorted(row["DAY"] for row in rows if row["DAY"] is not None)


def _dimension_changed(session: Any, settings: Settings, delta: Delta, bound: str) -> bool:
    """Whether the delta adds a camera or changes a column the summary reads (SUMMARY_CAMERA_COLUMNS)."""
    target = delta.target
    columns = [target.key, *(c.upper() for c in SUMMARY_CAMERA_COLUMNS)]
    latest = latest_rows(settings, delta, columns)
    differs = " OR ".join(f"src.{c} IS DISTINCT FROM tgt.{c}" for c in columns[1:])
    rows = session.sql(
        f"SELECT COUNT(*) AS n FROM ({latest}) AS src LEFT JOIN "
        f"(SELECT * FROM {settings.table(target.table)} AS tgt WHERE {bound}) AS tgt "
        f"ON tgt.{target.key} = src.{target.key} "
        f"WHERE tgt.{target.key} IS NULL OR {differs}"
    ).collect()
    return bool(rows[0]["N"])


def queue_summary_days(session: Any, settings: Settings, source: str, days: list[Any]) -> None:
    """Ask BUILD_ANALYTICS to refresh these days of the source (None: every day of every source)."""
    if not days:
        return
    rows = ", ".join("(?, ?)" for _ in days)
    params: list[Any] = []
    for day in days:
        params += [None, None] if day is None else [source, day.isoformat()]
    session.sql(
        f"INSERT INTO {settings.table('OPS.SUMMARY_QUEUE')} (source, event_date, queued_at) "
        f"SELECT column1, column2::DATE, {UTC_NOW} FROM VALUES {rows}",
        params=params,
    ).collect()


class CleanMergeError(RuntimeError):
    """The CLEAN MERGE failed for some sources; the others were merged, and their batches marked."""


def build_clean(session: Any, settings: Settings, recent: bool = True) -> dict[str, Any]:
    """MERGE every LOADED batch of every source into CLEAN, then mark those batches MERGED.

    The hourly run sees the batches within the ledger lookback; RECONCILE (`recent=False`) every one.
    Each source merges on its own: one whose MERGE fails keeps its batches LOADED (the next run tries again)
    and fails this call loudly, naming it, after every other source has been merged.
    """
    merged: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for source in SOURCES.values():
        batches = ledger.batches(session, settings, ledger.LOADED, source.name, recent=recent)
        target = CleanTarget(source.name, source.staging_view, source.clean_table, source.clean_key)
        try:
            rows = merge_delta(session, settings, Delta(target, tuple(batches))) if batches else 0
        except Exception as exc:  # noqa: BLE001 - reported below, after the other sources
            log.error("CLEAN merge of %s failed: %s", source.name, exc)
            failed[source.name] = f"{type(exc).__name__}: {exc}"
            continue
        ledger.set_status(session, settings, batches, ledger.MERGED)
        merged[source.name] = {"batches": len(batches), "rows_merged": rows}
    if failed:
        detail = "; ".join(f"{name}: {error}" for name, error in failed.items())
        names = ", ".join(failed)
        raise CleanMergeError(
            f"CLEAN merge failed for {names} (batches stay LOADED; others merged): {detail}"
        )
    return {"merged": merged}


def refresh_daily_summary(session: Any, settings: Settings) -> dict[str, Any]:
    """Bring ANL_DAILY_SUMMARY up to date with CLEAN for the days the merges queued (every day when a
    camera's site changed), so it always equals a fresh GROUP BY over CLEAN: each queued day's row is
    upserted from VW_DAILY_SUMMARY, or deleted when the day no longer has events."""
    queue = settings.table("OPS.SUMMARY_QUEUE")
    queued = session.sql(f"SELECT DISTINCT source, event_date, queued_at FROM {queue}").collect()
    if not queued:
        return {"days_refreshed": 0, "rows_changed": 0}
    everything = any(row["SOURCE"] is None for row in queued)
    days: dict[str, set[Any]] = {}
    for row in queued:
        if row["SOURCE"] is not None:
            days.setdefault(row["SOURCE"], set()).add(row["EVENT_DATE"])
    changed = _refresh_summary_rows(session, settings, None if everything else days)
    marks = ", ".join("(?, ?, ?)" for _ in queued)
    consumed = [value for row in queued for value in (row["SOURCE"], row["EVENT_DATE"], row["QUEUED_AT"])]
    session.sql(
        f"DELETE FROM {queue} AS q USING (SELECT column1 AS source, column2::DATE AS event_date, "
        f"column3::TIMESTAMP_NTZ AS queued_at FROM VALUES {marks}) AS done "
        "WHERE q.queued_at = done.queued_at AND EQUAL_NULL(q.source, done.source) "
        "AND EQUAL_NULL(q.event_date, done.event_date)",
        params=consumed,
    ).collect()
    refreshed = "all" if everything else sum(len(d) for d in days.values())
    return {"days_refreshed": refreshed, "rows_changed": changed}


def summary_days_predicate(source: str | None, first: Any = None, last: Any = None, alias: str = "") -> str:
    """`alias.source = 'src' AND alias.event_date BETWEEN 'd1' AND 'd2'`, one run of consecutive days of one
    source, so each statement's scans of CLEAN are pruned to those days (the view groups by CLEAN's stored
    EVENT_DATE, so the filter reaches them; an OR of several runs would not reach the view's second read of
    CLEAN); every day of the source without `first`, of every source without `source`. Written out (it goes
    into a MERGE): a declared source name and dates only."""
    if source is None:
        return "TRUE"
    prefix = f"{alias}." if alias else ""
    chosen = f"{prefix}source = '{SOURCES[source].name}'"
    if first is None:
        return chosen  # every day of the source
    return (
        f"{chosen} AND {prefix}event_date BETWEEN '{first.isoformat()}'::DATE AND '{last.isoformat()}'::DATE"
    )


def _runs_or_all(dates: list[Any]) -> list[tuple[Any, Any]]:
    """The runs of consecutive days, or one run of every day (None, None) when there are more than
    MAX_DAY_RUNS (a backfill scattered over many days: one statement over the source beats hundreds)."""
    runs = _day_runs(dates)
    return runs if len(runs) <= MAX_DAY_RUNS else [(None, None)]


def _day_runs(dates: list[Any]) -> list[tuple[Any, Any]]:
    runs: list[tuple[Any, Any]] = []
    for day in dates:
        if runs and (day - runs[-1][1]).days == 1:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _refresh_summary_rows(session: Any, settings: Settings, days: dict[str, set[Any]] | None) -> int:
    """Upsert the summary rows of VW_DAILY_SUMMARY for `days` (None: all), one run of consecutive days of one
    source at a time (each statement then reads those days of that source's CLEAN table only), then delete
    the rows of the run the upsert did not touch: the days the view no longer has (every event moved away)."""
    table = settings.table("ANALYTICS.ANL_DAILY_SUMMARY")
    view = settings.table("ANALYTICS.VW_DAILY_SUMMARY")
    columns = table_columns(session, table)
    start = session.sql(f"SELECT {UTC_NOW} AS now").collect()[0]["NOW"]
    changed = 0
    runs: list[tuple[str | None, Any, Any]] = (
        [(None, None, None)]
        if days is None
        else [
            (source, first, last)
            for source, dates in sorted(days.items())
            if source in SOURCES
            for first, last in _runs_or_all(sorted(dates))
        ]
    )
    for source, first, last in runs:
        source_query = (
            f"SELECT {', '.join(f'fresh.{c}' for c in columns if c != 'REFRESHED_AT')} FROM {view} AS fresh "
            f"WHERE {summary_days_predicate(source, first, last, 'fresh')}"
        )
        statement = merge_statement(table, source_query, ["SOURCE", "EVENT_DATE"], columns, "REFRESHED_AT")
        changed += _affected(session.sql(statement).collect())
        session.sql(
            f"DELETE FROM {table} AS summary WHERE {summary_days_predicate(source, first, last, 'summary')} "
            "AND summary.refreshed_at < CAST(? AS TIMESTAMP_NTZ)",
            params=[start.isoformat(sep=" ")],
        ).collect()
    return changed


def _affected(rows: list[Any]) -> int:
    """Rows inserted + updated, from a MERGE's result row."""
    if not rows:
        return 0
    values = rows[0].as_dict()
    return int(sum(v for k, v in values.items() if "inserted" in k.lower() or "updated" in k.lower()))
