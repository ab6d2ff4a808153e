"""Pipeline state in the warehouse: per-source watermarks and the batch ledger.

State lives in tables so that a re-run, a backfill or a second machine sees the same thing. The ledger
moves a batch STARTED -> STAGED -> LOADED -> MERGED; a batch that can no longer finish (FAILED, killed while
STARTED, or STAGED but refused by the pipe) is ABANDONED by the next ingest of its source, its files removed.
The watermark moves only when a batch is LOADED, and `repair_watermark` catches it up with the loaded batches
after a process died between the two statements.

The hourly procedures read the ledger within `ledger_lookback_days` of now (`lookback`): the ledger is
appended in STARTED_AT order, so the bound prunes it and an hourly read costs the same after years of runs.
The ingest's own recovery reads its source's open batches without a bound, so a batch older than that is
still closed by the next ingest, and the daily RECONCILE merges a loaded one and checks that none is left.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import redaction
from .settings import Settings
from .sqltime import UTC_NOW

STARTED, STAGED, LOADED, MERGED, FAILED = "STARTED", "STAGED", "LOADED", "MERGED", "FAILED"
ABANDONED = "ABANDONED"  # terminal: never loaded, its files removed; its window is read again
OPEN_STATUSES = (STARTED, STAGED, FAILED)
# What started a batch (the ledger's KIND; NULL in rows of an earlier release means HOURLY). Only HOURLY
# batches move the watermark: a BACKFILL re-reads a past window and must never rewind or skip it.
HOURLY, BACKFILL = "HOURLY", "BACKFILL"


@dataclass(frozen=True)
class BatchRecord:
    """One ledger row as the load check and the clean-up of abandoned batches need it."""

    batch_id: str
    source: str
    status: str
    staged: int
    rejected: int
    max_updated_at: datetime | None
    manifest: dict[str, Any]
    partition_prefix: str = ""
    started_at: datetime | None = None
    error_message: str | None = None
    age_seconds: int | None = None  # since STARTED, measured by the warehouse (same clock as started_at)
    staged_age_seconds: int | None = None  # since STAGED (STARTED while still staging), same clock
    dq_run_id: str | None = None  # the graph run whose RUN_DQ checked the batch's rows
    kind: str = HOURLY  # HOURLY (the graph's ingest) or BACKFILL (OPS.BACKFILL)


def read_watermark(session: Any, settings: Settings, source: str) -> datetime | None:
    rows = session.sql(
        f"SELECT watermark FROM {settings.table('OPS.WATERMARKS')} WHERE source = ?", params=[source]
    ).collect()
    return rows[0]["WATERMARK"] if rows else None


def advance_watermark(session: Any, settings: Settings, source: str, value: datetime, batch_id: str) -> None:
    """Move the watermark forward, never back (a late, older batch must not rewind it)."""
    session.sql(
        f"""MERGE INTO {settings.table("OPS.WATERMARKS")} AS wm
        USING (
            SELECT CAST(? AS STRING) AS src, CAST(? AS TIMESTAMP_NTZ) AS new_wm, CAST(? AS STRING) AS bid
        ) AS incoming
            ON wm.source = incoming.src
        WHEN MATCHED AND (wm.watermark IS NULL OR incoming.new_wm > wm.watermark) THEN UPDATE SET
            wm.watermark = incoming.new_wm, wm.batch_id = incoming.bid,
            wm.updated_at = {UTC_NOW}
        WHEN NOT MATCHED THEN INSERT (source, watermark, batch_id, updated_at)
            VALUES (incoming.src, incoming.new_wm, incoming.bid,
                {UTC_NOW})""",
        params=[source, value.isoformat(sep=" "), batch_id],
    ).collect()


def lookback(settings: Settings, days: int | None = None) -> str:
    """The hourly bound on ledger reads: batches started within `ledger_lookback_days` (or `days`)."""
    window = settings.get_int("ledger_lookback_days") if days is None else days
    return f"started_at >= DATEADD('day', {-int(window)}, {UTC_NOW})"


def repair_watermark(session: Any, settings: Settings, source: str) -> None:
    """Catch the watermark up with the newest LOADED or MERGED batch (a kill may fall between the two)."""
    rows = session.sql(
        f"SELECT batch_id, max_updated_at FROM {settings.table('OPS.BATCH_LEDGER')} "
        f"WHERE {lookback(settings)} AND source = ? AND status IN ('LOADED', 'MERGED') "
        f"AND COALESCE(kind, '{HOURLY}') = '{HOURLY}' "
        "AND max_updated_at IS NOT NULL ORDER BY max_updated_at DESC LIMIT 1",
        params=[source],
    ).collect()
    if rows:
        advance_watermark(session, settings, source, rows[0]["MAX_UPDATED_AT"], rows[0]["BATCH_ID"])


def recent_request_times(session: Any, settings: Settings, source: str) -> list[float]:
    """Epoch seconds of the requests the newest batch of `source` sent within its last rate-limit window."""
    rows = session.sql(
        f"SELECT http_stats:recent_request_times::STRING AS times FROM {settings.table('OPS.BATCH_LEDGER')} "
        "WHERE source = ? AND http_stats IS NOT NULL ORDER BY staged_at DESC NULLS LAST LIMIT 1",
        params=[source],
    ).collect()
    return [float(t) for t in json.loads(rows[0]["TIMES"] or "[]")] if rows else []


def batch_status(session: Any, settings: Settings, batch_id: str) -> str | None:
    rows = session.sql(
        f"SELECT status FROM {settings.table('OPS.BATCH_LEDGER')} WHERE batch_id = ?", params=[batch_id]
    ).collect()
    return rows[0]["STATUS"] if rows else None


def start_batch(
    session: Any,
    settings: Settings,
    batch_id: str,
    source: str,
    run_id: str,
    window_start: datetime | None,
    window_end: datetime,
    partition_prefix: str,
    kind: str = HOURLY,
) -> None:
    """Open the ledger row of a new batch (ids are never reused: ingest.next_batch_id)."""
    table = settings.table("OPS.BATCH_LEDGER")
    session.sql(
        f"""INSERT INTO {table} (batch_id, source, run_id, window_start, window_end, partition_prefix,
            status, started_at, kind)
        SELECT ?, ?, ?, CAST(? AS TIMESTAMP_NTZ), CAST(? AS TIMESTAMP_NTZ), ?, 'STARTED',
            {UTC_NOW}, ?""",
        params=[
            batch_id,
            source,
            run_id,
            window_start.isoformat(sep=" ") if window_start else None,
            window_end.isoformat(sep=" "),
            partition_prefix,
            kind,
        ],
    ).collect()


def finish_staging(
    session: Any,
    settings: Settings,
    batch_id: str,
    counts: dict[str, int],
    max_updated_at: str | None,
    manifest: dict[str, Any],
    http_stats: dict[str, Any],
) -> None:
    session.sql(
        f"""UPDATE {settings.table("OPS.BATCH_LEDGER")} SET
            status = 'STAGED', fetched = ?, staged = ?, rejected = ?, duplicates = ?, parts = ?,
            max_updated_at = CAST(? AS TIMESTAMP_NTZ), manifest = PARSE_JSON(?), http_stats = PARSE_JSON(?),
            complete = ?, remaining = ?,
            staged_at = {UTC_NOW}
        WHERE batch_id = ?""",
        params=[
            counts["fetched"],
            counts["staged"],
            counts["rejected"],
            counts["duplicates"],
            len(manifest.get("parts", [])),
            max_updated_at,
            json.dumps(manifest),
            json.dumps(http_stats),
            bool(http_stats.get("complete", True)),
            http_stats.get("remaining"),
            batch_id,
        ],
    ).collect()


def note_load_problem(session: Any, settings: Settings, batch_id: str, message: str) -> None:
    """Why a STAGED batch did not load (it stays STAGED; the next ingest of its source abandons it)."""
    session.sql(
        f"UPDATE {settings.table('OPS.BATCH_LEDGER')} SET error_message = ? "
        "WHERE batch_id = ? AND status = ?",
        params=[redaction.redact(message)[:2000], batch_id, STAGED],
    ).collect()


def abandon_batch(session: Any, settings: Settings, batch_id: str, reason: str) -> None:
    """Close a batch that will never load: terminal, with the reason kept next to any earlier error."""
    session.sql(
        f"UPDATE {settings.table('OPS.BATCH_LEDGER')} SET status = ?, "
        "error_message = LEFT(? || COALESCE(' (was: ' || error_message || ')', ''), 2000) WHERE batch_id = ?",
        params=[ABANDONED, reason, batch_id],
    ).collect()


def fail_batch(session: Any, settings: Settings, batch_id: str, message: str) -> None:
    """Mark a batch FAILED; the message is redacted first (it may quote an upstream echoing a secret)."""
    session.sql(
        f"UPDATE {settings.table('OPS.BATCH_LEDGER')} SET status = ?, error_message = ? WHERE batch_id = ?",
        params=[FAILED, redaction.redact(message)[:2000], batch_id],
    ).collect()


def set_status(session: Any, settings: Settings, batches: list[BatchRecord], status: str) -> None:
    """Move batches to LOADED or MERGED, stamping the matching time column."""
    if not batches:
        return
    column = {LOADED: "loaded_at", MERGED: "merged_at"}[status]
    cleared = ", error_message = NULL" if status == LOADED else ""  # a slow load noted earlier did finish
    where, params = by_id(batches)
    session.sql(
        f"UPDATE {settings.table('OPS.BATCH_LEDGER')} SET status = ?{cleared}, {column} = {UTC_NOW} "
        f"WHERE {where}",
        params=[status, *params],
    ).collect()


def by_id(batches: list[BatchRecord]) -> tuple[str, list[Any]]:
    """`batch_id IN (...)`, bounded by the batches' oldest start: the ledger is appended in STARTED_AT order,
    so the warehouse reads only its rows since then, not the whole ledger."""
    marks = ", ".join("?" for _ in batches)
    starts = [b.started_at for b in batches if b.started_at is not None]
    if len(starts) < len(batches):
        return f"batch_id IN ({marks})", [b.batch_id for b in batches]
    return (
        f"started_at >= CAST(? AS TIMESTAMP_NTZ) AND batch_id IN ({marks})",
        [min(starts).isoformat(sep=" "), *(b.batch_id for b in batches)],
    )


def batches(
    session: Any,
    settings: Settings,
    status: str | tuple[str, ...],
    source: str | None = None,
    recent: bool = True,
) -> list[BatchRecord]:
    """Ledger rows in `status` (one or several), oldest first; within the lookback, unless not `recent`."""
    statuses = (status,) if isinstance(status, str) else status
    query = (
        "SELECT batch_id, source, status, staged, rejected, max_updated_at, manifest::STRING AS manifest, "
        f"partition_prefix, started_at, error_message, dq_run_id, COALESCE(kind, '{HOURLY}') AS kind, "
        f"DATEDIFF('second', started_at, {UTC_NOW}) "
        "AS age_seconds, "
        f"DATEDIFF('second', COALESCE(staged_at, started_at), {UTC_NOW}) AS staged_age_seconds "
        f"FROM {settings.table('OPS.BATCH_LEDGER')} WHERE status IN ({', '.join('?' for _ in statuses)})"
    )
    params: list[Any] = list(statuses)
    if recent:
        query += f" AND {lookback(settings)}"
    if source is not None:
        query += " AND source = ?"
        params.append(source)
    rows = session.sql(query + " ORDER BY started_at, batch_id", params=params).collect()
    return [
        BatchRecord(
            batch_id=row["BATCH_ID"],
            source=row["SOURCE"],
            status=row["STATUS"],
            staged=int(row["STAGED"] or 0),
            rejected=int(row["REJECTED"] or 0),
            max_updated_at=row["MAX_UPDATED_AT"],
            manifest=json.loads(row["MANIFEST"] or "{}"),
            partition_prefix=row["PARTITION_PREFIX"] or "",
            started_at=row["STARTED_AT"],
            error_message=row["ERROR_MESSAGE"],
            age_seconds=row["AGE_SECONDS"],
            staged_age_seconds=row["STAGED_AGE_SECONDS"],
            dq_run_id=row["DQ_RUN_ID"],
            kind=row["KIND"],
        )
        for row in rows
    ]
