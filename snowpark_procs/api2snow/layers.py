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
from .settings import Settings
from .sources import SOURCES
from .sqltime import UTC_NOW

log = logging.getLogger(__name__)


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
) -> str:
    """A MERGE that upserts `source_query` into `target` on `keys`, stamping `stamp_column` with now (UTC)."""
    payload = [c for c in columns if c != stamp_column]
    on = " AND ".join(f"tgt.{k} = src.{k}" for k in keys)
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


def merge_loaded_batches(session: Any, settings: Settings, target: CleanTarget, batch_ids: list[str]) -> int:
    """MERGE the rows of `batch_ids` into the CLEAN table, latest version per key; returns rows merged.

    Among rows with the same key and version, the one served last wins: the later batch (by its start in
    the ledger), then the later part file and row; part files of a batch are numbered in serving order.
    """
    if not batch_ids:
        return 0
    table = settings.table(target.table)
    columns = table_columns(session, table)
    payload = [c for c in columns if c != "MERGED_AT"]
    ids = ", ".join(f"'{b}'" for b in batch_ids)  # batch ids are uuids minted by ingest, never user input
    latest = (
        f"SELECT {', '.join(f'stg.{c}' for c in payload)} FROM {settings.table(target.staging_view)} AS stg "
        f"INNER JOIN {settings.table('OPS.BATCH_LEDGER')} AS served ON served.batch_id = stg.batch_id "
        f"WHERE stg.source = '{target.source}' AND stg.batch_id IN ({ids}) "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY stg.{target.key} ORDER BY stg.{target.version} DESC, "
        "served.started_at DESC, stg.file_name DESC, stg.file_row_number DESC) = 1"
    )
    statement = merge_statement(
        table, latest, [target.key], columns, "MERGED_AT", update_condition=newer_or_changed(target, columns)
    )
    rows = session.sql(statement).collect()
    return _affected(rows)


class CleanMergeError(RuntimeError):
    """The CLEAN MERGE failed for some sources; the others were merged, and their batches marked."""


def build_clean(session: Any, settings: Settings) -> dict[str, Any]:
    """MERGE every LOADED batch of every source into CLEAN, then mark those batches MERGED.

    Each source merges on its own: one whose MERGE fails keeps its batches LOADED (the next run tries again)
    and fails this call loudly, naming it, after every other source has been merged.
    """
    merged: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for source in SOURCES.values():
        batch_ids = [b.batch_id for b in ledger.batches(session, settings, ledger.LOADED, source.name)]
        target = CleanTarget(source.name, source.staging_view, source.clean_table, source.clean_key)
        try:
            rows = merge_loaded_batches(session, settings, target, batch_ids)
        except Exception as exc:  # noqa: BLE001 - reported below, after the other sources
            log.error("CLEAN merge of %s failed: %s", source.name, exc)
            failed[source.name] = f"{type(exc).__name__}: {exc}"
            continue
        ledger.set_status(session, settings, batch_ids, ledger.MERGED)
        merged[source.name] = {"batches": len(batch_ids), "rows_merged": rows}
    if failed:
        detail = "; ".join(f"{name}: {error}" for name, error in failed.items())
        names = ", ".join(failed)
        raise CleanMergeError(
            f"CLEAN merge failed for {names} (batches stay LOADED; others merged): {detail}"
        )
    return {"merged": merged}


def refresh_daily_summary(session: Any, settings: Settings) -> int:
    """Materialise ANALYTICS.VW_DAILY_SUMMARY into ANL_DAILY_SUMMARY: upsert by source and day, then drop the
    days the view no longer has, so the table always equals a fresh GROUP BY over CLEAN."""
    table = settings.table("ANALYTICS.ANL_DAILY_SUMMARY")
    columns = table_columns(session, table)
    source_query = (
        f"SELECT {', '.join(c for c in columns if c != 'REFRESHED_AT')} "
        f"FROM {settings.table('ANALYTICS.VW_DAILY_SUMMARY')}"
    )
    statement = merge_statement(table, source_query, ["SOURCE", "EVENT_DATE"], columns, "REFRESHED_AT")
    changed = _affected(session.sql(statement).collect())
    # A day whose every event moved to another day (an update of OCCURRED_AT) is no longer in the view: an
    # upsert alone would keep its old row for ever.
    session.sql(
        f"DELETE FROM {table} AS summary WHERE NOT EXISTS (SELECT 1 FROM "
        f"{settings.table('ANALYTICS.VW_DAILY_SUMMARY')} AS fresh "
        "WHERE fresh.source = summary.source AND fresh.event_date = summary.event_date)"
    ).collect()
    return changed


def _affected(rows: list[Any]) -> int:
    """Rows inserted + updated, from a MERGE's result row."""
    if not rows:
        return 0
    values = rows[0].as_dict()
    return int(sum(v for k, v in values.items() if "inserted" in k.lower() or "updated" in k.lower()))
