"""OPS.BACKFILL: re-ingest one source's time window through the hourly path, and merge it.

The same path as the hourly ingest: one bounded batch in the batch ledger (KIND = 'BACKFILL'), the rate
limiter seeded with the source's latest requests (and leaving its own for the next run), parts and rejects
on S3, Snowpipe into RAW, the exact rows-per-file reconciliation against the manifest, then the CLEAN MERGE
of that batch and the summary days it touched. The call waits for its own batch's load (at most
`backfill_load_timeout_seconds`) and merges it itself, so its result says exactly what was fetched, staged,
loaded and merged; the DQ checks of the merged batch are the next graph run's RUN_DQ, as for any batch.

Safety beside the hourly graph:
- one open batch per source: a backfill does not start while an hourly (or another backfill's) batch of the
  source is being written or waits for its load, and refuses with a one-line error saying so; right after
  opening its ledger row it checks again and gives way if a batch started at the same moment (the hourly
  ingest makes the same check and gives way too), so the two never fetch the same source at once;
- the watermark never moves: a backfill batch is never the hourly read's starting point (ledger KIND);
- idempotent: the batch id is derived from (source, window), the MERGE keeps the newest version and rewrites
  a row only when a column differs, so re-running the same window changes nothing in CLEAN.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from . import ingest, layers, ledger, loading, recovery
from .ledger import BatchRecord
from .platform import Platform
from .settings import Settings
from .sources import Source
from .window import PageWindow, TimeWindow, utc_now

log = logging.getLogger(__name__)
BACKFILL_NAMESPACE = uuid.UUID("3b0f7f5e-8a51-4b8e-9d0c-1f6c1c2b7a44")


class BackfillRefused(RuntimeError):
    """The backfill cannot run now or for this source (one line, saying why and what to do)."""


def backfill_batch_id(source: str, window: TimeWindow, sequence: int = 0) -> str:
    """Deterministic for (source, window, sequence): a retry of the same call finds its own batch."""
    name = f"{source}|backfill|{window.start.isoformat()}|{window.end.isoformat()}|{sequence}"
    return str(uuid.uuid5(BACKFILL_NAMESPACE, name))


def next_backfill_id(
    session: Any, settings: Settings, source: str, window: TimeWindow
) -> tuple[str, str | None]:
    """The window's batch id and its status; past MERGED and ABANDONED ones (never reused), the next id."""
    sequence = 0
    while True:
        batch_id = backfill_batch_id(source, window, sequence)
        status = ledger.batch_status(session, settings, batch_id)
        if status not in (ledger.MERGED, ledger.ABANDONED):
            return batch_id, status
        sequence += 1


def refuse_full_read(source: Source) -> None:
    if not source.incremental:
        raise BackfillRefused(
            f"BACKFILL cannot read {source.name} by time: its API has no updated-since filter, so every "
            "hourly run already re-reads it in full"
        )


def run_backfill(
    session: Any, platform: Platform, settings: Settings, source: Source, window: TimeWindow
) -> dict[str, Any]:
    """Fetch, stage, load and merge the window; returns what each step did (docs/ANALYSTS.md)."""
    refuse_full_read(source)
    started = time.monotonic()
    s3 = ingest.s3_client(platform, settings)
    watermark = ledger.read_watermark(session, settings, source.name)
    batch_id, existing = next_backfill_id(session, settings, source.name, window)
    if existing == ledger.STARTED:
        running = _batch(session, settings, source, batch_id, ledger.STARTED, recent=False)
        if running is not None and (running.age_seconds or 0) < recovery.DEAD_AFTER_SECONDS:
            raise _busy(source, recovery.Blocker(batch_id, ledger.STARTED))  # the same call, still running
    if existing is not None and recovery.close_earlier_attempt(session, settings, source, batch_id, s3):
        batch_id, existing = next_backfill_id(session, settings, source.name, window)
    summary: dict[str, Any] = {
        "source": source.name,
        "from_ts": window.start.isoformat(),
        "to_ts": window.end.isoformat(),
        "batch_id": batch_id,
        "kind": ledger.BACKFILL,
    }
    if existing in (ledger.STAGED, ledger.LOADED):  # an earlier call of this window staged it: finish it
        summary.update(resumed=existing, outside_window=None)
    else:
        summary.update(_fetch(session, platform, settings, source, window, batch_id, s3))
    summary.update(_load_and_merge(session, platform, settings, source, batch_id))
    summary.update(_counts(session, settings, batch_id))
    loaded = summary["status"] in (ledger.LOADED, ledger.MERGED)
    summary["loaded_rows"] = summary["staged"] if loaded else 0  # checked per file against the manifest
    summary["watermark"] = _iso(ledger.read_watermark(session, settings, source.name))
    if summary["watermark"] != _iso(watermark):  # never: only HOURLY batches move it (ledger.KIND)
        raise RuntimeError(
            f"the watermark of {source.name} moved during BACKFILL: {watermark} -> {summary['watermark']}"
        )
    summary["seconds"] = round(time.monotonic() - started, 3)
    return {key: summary[key] for key in RESULT_ORDER if key in summary}


# The result's keys, in the order docs/ANALYSTS.md explains them.
RESULT_ORDER = (
    "source",
    "from_ts",
    "to_ts",
    "batch_id",
    "kind",
    "status",
    "problem",
    "resumed",
    "fetched",
    "staged",
    "rejected",
    "duplicates",
    "outside_window",
    "parts",
    "loaded_rows",
    "rows_merged",
    "merged_by",
    "summary_days_refreshed",
    "complete",
    "stopped_by",
    "resume_from",
    "requests",
    "throttled_429",
    "watermark",
    "seconds",
)


def _fetch(
    session: Any,
    platform: Platform,
    settings: Settings,
    source: Source,
    window: TimeWindow,
    batch_id: str,
    s3: Any,
) -> dict[str, Any]:
    """One bounded batch of the window, staged on S3 and recorded STAGED in the ledger."""
    now = utc_now()
    busy = ingest.open_batch(
        session, platform, settings, source, batch_id, (window.start, window.end), now, s3, ledger.BACKFILL
    )
    if busy is not None:  # an hourly ingest is running, its batch awaits its load, or it opened just now
        raise _busy(source, busy)
    # From a little before the start (the APIs filter with a strict `>`, some only to the second); the
    # window cuts the pages to [start, end) and ends the read at the end.
    since = window.start - timedelta(seconds=max(1, settings.get_int("incremental_overlap_seconds")))
    cut = PageWindow(source.wire_version, window.start, window.end)
    staged = ingest.stage_batch(session, platform, settings, source, batch_id, since, now, s3, cut)
    _, max_updated, _, stats = staged
    complete = stats["complete"]
    fetched = {
        "outside_window": cut.outside,
        "complete": complete,
        "requests": stats.get("requests", 0),
        "throttled_429": stats.get("throttled_429", 0),
    }
    if not complete:  # stopped by the run budget: the rest of the window is another call's
        fetched["stopped_by"] = stats["stopped_by"]
        fetched["resume_from"] = max_updated
    return fetched


def _busy(source: Source, blocker: recovery.Blocker) -> BackfillRefused:
    return BackfillRefused(
        f"BACKFILL of {source.name} must wait: its batch {blocker.batch_id} is {blocker.status} (an ingest "
        "of the source is running or its batch awaits its load); call again when it has loaded"
    )


def _load_and_merge(
    session: Any, platform: Platform, settings: Settings, source: Source, batch_id: str
) -> dict[str, Any]:
    """Wait for the batch's load (exact: rows per file against the manifest), then MERGE it into CLEAN and
    refresh the summary days it touched. A batch still loading at the timeout stays STAGED: the next graph
    run's WAIT_FOR_LOAD notes it, and a BACKFILL of the same window later reads it again."""
    batch = _batch(session, settings, source, batch_id, ledger.STAGED)
    if batch is not None:
        timeout = settings.get_int("backfill_load_timeout_seconds")
        poll = settings.get_float("load_poll_seconds")
        _, stuck = loading.wait_for_batches(session, platform, settings, [batch], float(timeout), poll)
        if stuck:
            return {"status": ledger.STAGED, "problem": stuck[batch_id], "rows_merged": 0}
    batch = _batch(session, settings, source, batch_id, ledger.LOADED)
    if batch is None:  # the hourly BUILD_CLEAN merged it meanwhile (the MERGE is the same either way)
        status = ledger.batch_status(session, settings, batch_id)
        return {
            "status": status,
            "merged_by": "the graph's BUILD_CLEAN, meanwhile",
            "rows_merged": None,
        }
    target = layers.CleanTarget(source.name, source.staging_view, source.clean_table, source.clean_key)
    rows = layers.merge_delta(session, settings, layers.Delta(target, (batch,)))
    ledger.set_status(session, settings, [batch], ledger.MERGED)
    summary = layers.refresh_daily_summary(session, settings)
    return {"status": ledger.MERGED, "rows_merged": rows, "summary_days_refreshed": summary["days_refreshed"]}


def _batch(
    session: Any, settings: Settings, source: Source, batch_id: str, status: str, recent: bool = True
) -> BatchRecord | None:
    found = [
        b for b in ledger.batches(session, settings, status, source.name, recent) if b.batch_id == batch_id
    ]
    return found[0] if found else None


def _counts(session: Any, settings: Settings, batch_id: str) -> dict[str, Any]:
    """The ledger's counts of the batch (fetched = staged + rejected + duplicates) and its rows in RAW."""
    row = session.sql(
        f"SELECT fetched, staged, rejected, duplicates, parts FROM {settings.table('OPS.BATCH_LEDGER')} "
        "WHERE batch_id = ?",
        params=[batch_id],
    ).collect()[0]
    return {
        name.lower(): int(row[name] or 0) for name in ("FETCHED", "STAGED", "REJECTED", "DUPLICATES", "PARTS")
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
