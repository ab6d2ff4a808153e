"""Snowpipe side of a batch: wait until RAW holds every row, and catch what auto-ingest missed.

The pipes auto-ingest: each part is queued by the bucket's event notification as it is written. REFRESH
is only the safety net (Snowflake documents it for recovery, not routine loads): a batch whose parts are
still not all in RAW `pipe_refresh_grace_seconds` after it was staged has the folders of its missing
parts refreshed. REFRESH sees only files staged in the last 7 days, so a batch older than that (a suspended
graph, a long outage) has exactly its files that have no row in RAW copied with the pipe's own COPY
(platform.copy_files); a file with rows in RAW is never copied, so nothing loads twice.

Completion is judged in plain SQL on the RAW tables (rows per file of the batch against the manifest),
the same query in Snowflake and locally, so "staged = loaded" is checked exactly, not assumed.
"""

from __future__ import annotations

import logging
import math
import posixpath
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from . import ledger
from .ledger import BatchRecord
from .platform import Platform
from .settings import Settings
from .sources import SOURCES, get_source
from .sqltime import UTC_NOW, loaded_since

log = logging.getLogger(__name__)
REJECTS_PIPE = "RAW.REJECTED_RECORDS_PIPE"
REJECTS_TABLE = "RAW.REJECTED_RECORDS"
# REFRESH queues files staged within the last 7 days; a day less leaves room for a batch's files being
# staged up to an ingest timeout after the batch started, and for clocks.
COPY_AFTER_SECONDS = 6 * 86_400
# Auto-ingest can load a part after its batch was abandoned (the notification was queued before the objects
# were removed); it does so within minutes of the part's creation, so abandoned batches this recent are
# cleared of such rows by every WAIT_FOR_LOAD.
LATE_LOAD_SECONDS = 2 * 86_400
FIRST_POLL_SECONDS = 0.25


class Landing(NamedTuple):
    """Where one kind of staged file of a source lands: its manifest list, stage path, pipe and RAW table."""

    manifest_key: str
    stage_path: str
    pipe: str
    table: str


def landings(source_name: str) -> tuple[Landing, Landing]:
    """The source's parts and its rejects (paths as sql/02_raw.sql's pipes read them)."""
    source = get_source(source_name)
    return (
        Landing("parts", f"source={source.name}/", source.pipe, source.raw_table),
        Landing("rejects", "_rejects/", REJECTS_PIPE, REJECTS_TABLE),
    )


def _batch_prefix(key: str, root: str) -> str:
    """The refresh PREFIX of a staged file: its folder relative to the pipe's stage path `root`."""
    folder = posixpath.dirname(key) + "/"
    return folder[len(root) :] if folder.startswith(root) else folder


def refresh(session: Any, platform: Platform, settings: Settings, source_name: str) -> dict[str, Any]:
    """The safety net for a source's STAGED batches: queue the parts auto-ingest has not loaded once the
    batch is past the grace period (REFRESH, or COPY past REFRESH's window); a newer batch is left alone."""
    landings(source_name)  # validates the name even when nothing is staged
    grace = settings.get_int("pipe_refresh_grace_seconds")
    caught: dict[str, list[str]] = {"refresh": [], "copy": []}
    for batch in ledger.batches(session, settings, ledger.STAGED, source_name):
        if (batch.staged_age_seconds or 0) < grace:
            continue  # auto-ingest's time: not even RAW is read for it
        missing, problem = unloaded_parts(session, settings, batch)
        if missing and problem is None:
            caught[catch_missed(session, platform, settings, batch, missing)].append(batch.batch_id)
    return {
        "source": source_name,
        "batches_refreshed": len(caught["refresh"]),
        "batches_copied": len(caught["copy"]),
        "batch_ids": caught["refresh"] + caught["copy"],
    }


def catch_missed(
    session: Any,
    platform: Platform,
    settings: Settings,
    batch: BatchRecord,
    missing: dict[Landing, list[str]],
) -> str:
    """Queue a batch's missing parts: REFRESH their folders, or, past REFRESH's window, COPY exactly the
    files without a row in RAW. Returns "refresh" or "copy"."""
    if (batch.age_seconds or 0) >= COPY_AFTER_SECONDS:
        for landing, keys in missing.items():
            # read just before the COPY: a file with any row in RAW (however it got there) is not copied
            loaded = _loaded_rows(session, settings.table(landing.table), batch)
            absent = [key for key in keys if loaded.get(posixpath.basename(key), 0) == 0]
            if absent:
                platform.copy_files(session, settings.table(landing.pipe), absent)
        log.warning(
            "%s batch %s is past REFRESH's 7-day window: copied its missing files",
            batch.source,
            batch.batch_id,
        )
        return "copy"
    for landing, keys in missing.items():
        for prefix in sorted({_batch_prefix(key, landing.stage_path) for key in keys}):
            platform.refresh_pipe(session, settings.table(landing.pipe), prefix)
    log.info(
        "%s batch %s: refreshed %d part(s) auto-ingest had not loaded",
        batch.source,
        batch.batch_id,
        sum(len(keys) for keys in missing.values()),
    )
    return "refresh"


def delete_raw_rows(
    session: Any, settings: Settings, source_name: str, batch_ids: list[str], started_at: datetime | None
) -> None:
    """Remove the rows these batches of a source, the oldest started at `started_at`, put in RAW (its events
    and its rejects); the start bounds the delete to the RAW rows loaded since."""
    marks = ", ".join("?" for _ in batch_ids)
    for landing in landings(source_name):
        session.sql(
            f"DELETE FROM {settings.table(landing.table)} WHERE {loaded_since(started_at)} "
            f"AND batch_id IN ({marks})",
            params=batch_ids,
        ).collect()


def purge_late_loads(session: Any, settings: Settings) -> int:
    """Clear RAW of rows auto-ingest loaded for recently abandoned batches; returns how many batches.
    CLEAN never reads them (it merges LOADED batches only); this keeps RAW to what the ledger accounts for."""
    rows = session.sql(
        f"SELECT source, batch_id, started_at FROM {settings.table('OPS.BATCH_LEDGER')} WHERE status = ? "
        f"AND started_at >= DATEADD('second', ?, {UTC_NOW})",
        params=[ledger.ABANDONED, -LATE_LOAD_SECONDS],
    ).collect()
    by_source: dict[str, list[Any]] = {}
    for row in rows:
        by_source.setdefault(row["SOURCE"], []).append(row)
    for source_name, abandoned in by_source.items():
        if source_name in SOURCES:
            oldest = min(row["STARTED_AT"] for row in abandoned)
            delete_raw_rows(session, settings, source_name, [row["BATCH_ID"] for row in abandoned], oldest)
    return len(rows)


def _loaded_rows(session: Any, table: str, batch: BatchRecord) -> dict[str, int]:
    """Rows in RAW per file of the batch; bounded by its start, so the read prunes RAW to recent loads."""
    rows = session.sql(
        f"SELECT file_name, COUNT(*) AS row_count FROM {table} WHERE {loaded_since(batch.started_at)} "
        "AND batch_id = ? GROUP BY file_name",
        params=[batch.batch_id],
    ).collect()
    return {posixpath.basename(r["FILE_NAME"]): int(r["ROW_COUNT"]) for r in rows}


def unloaded_parts(
    session: Any, settings: Settings, batch: BatchRecord
) -> tuple[dict[Landing, list[str]], str | None]:
    """Staged files of the batch not (all) in RAW yet, by landing; and a problem waiting cannot fix.

    A file with more rows in RAW than it holds was loaded twice: reported at once, never waited for.
    """
    missing: dict[Landing, list[str]] = {}
    for landing in landings(batch.source):
        files = batch.manifest.get(landing.manifest_key, [])
        if not files:
            continue
        loaded = _loaded_rows(session, settings.table(landing.table), batch)
        counts = {f["key"]: (loaded.get(posixpath.basename(f["key"]), 0), f["rows"]) for f in files}
        twice = [key for key, (have, want) in counts.items() if have > want]
        if twice:
            have, want = counts[twice[0]]
            return {}, f"{twice[0]} has {have} rows in {landing.table}, more than the {want} it holds"
        keys = [key for key, (have, want) in counts.items() if have != want]
        if keys:
            missing[landing] = keys
    return missing, None


def _load_failure(
    session: Any,
    platform: Platform,
    settings: Settings,
    missing: dict[Landing, list[str]],
) -> str | None:
    """What the pipe's load history says went wrong with a missing file, if it failed."""
    for landing, keys in missing.items():
        errors = platform.load_errors(session, settings.table(landing.table), keys)
        if errors:
            file_name, error = next(iter(errors.items()))
            return f"Snowpipe failed to load {file_name}: {error}"
    return None


def wait_for_load(
    session: Any,
    platform: Platform,
    settings: Settings,
    timeout_s: float,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Wait until every STAGED batch is fully in RAW; mark them LOADED and advance the watermarks.

    A batch that cannot load (the pipe refused a file, a file loaded twice, or the timeout passed) stops
    only itself: its problem goes to the ledger (`ERROR_MESSAGE`, status still STAGED), the other sources
    go on to CLEAN and ANALYTICS, and the DQ check `load_stuck` fails the graph run loudly. The next ingest
    of that source abandons the batch and reads its window again.
    """
    for source in SOURCES.values():
        if source.incremental:  # a kill between LOADED and the watermark update is repaired here too
            ledger.repair_watermark(session, settings, source.name)
    purge_late_loads(session, settings)
    pending = ledger.batches(session, settings, ledger.STAGED)
    loaded, stuck = wait_for_batches(session, platform, settings, pending, timeout_s, poll_s, sleep)
    return {"batches_loaded": len(loaded), "batch_ids": loaded, "stuck": stuck}


def wait_for_batches(
    session: Any,
    platform: Platform,
    settings: Settings,
    pending: list[BatchRecord],
    timeout_s: float,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[str], dict[str, str]]:
    """Wait until these STAGED batches are fully in RAW and mark them LOADED (WAIT_FOR_LOAD's every STAGED
    batch, or BACKFILL's own); returns the ids loaded and, by id, why a batch is stuck (noted in the
    ledger)."""
    start = time.monotonic()
    deadline = start + timeout_s
    grace = settings.get_int("pipe_refresh_grace_seconds")
    net_due = {b.batch_id: start + max(0, grace - (b.staged_age_seconds or 0)) for b in pending}
    loaded: list[str] = []
    stuck: dict[str, str] = {}
    pauses = poll_pauses(poll_s)
    while True:
        waiting: list[tuple[BatchRecord, int]] = []
        for batch in pending:
            missing, problem = unloaded_parts(session, settings, batch)
            problem = problem or (_load_failure(session, platform, settings, missing) if missing else None)
            if problem is not None:
                stuck[batch.batch_id] = _note(session, settings, batch, problem)
            elif missing:
                if time.monotonic() >= net_due.get(batch.batch_id, math.inf):
                    catch_missed(session, platform, settings, batch, missing)
                    del net_due[batch.batch_id]  # once per batch and call
                waiting.append((batch, sum(len(keys) for keys in missing.values())))
            else:
                _mark_loaded(session, settings, batch)
                loaded.append(batch.batch_id)
        if not waiting:
            break
        if time.monotonic() >= deadline:
            for batch, count in waiting:
                problem = f"Snowpipe did not load {count} part(s) within {timeout_s:.0f}s"
                stuck[batch.batch_id] = _note(session, settings, batch, problem)
            break
        pending = [batch for batch, _ in waiting]
        sleep(next(pauses))
    return loaded, stuck


def poll_pauses(longest: float, first: float = FIRST_POLL_SECONDS) -> Iterator[float]:
    """Pauses between two looks at RAW: short at first, since auto-ingest usually lands the last parts within
    seconds of the ingest, then doubling up to `longest` (load_poll_seconds), so a slow load costs few
    queries."""
    pause = min(first, longest)
    while True:
        yield pause
        pause = min(pause * 2, longest)


def _note(session: Any, settings: Settings, batch: BatchRecord, problem: str) -> str:
    message = f"{batch.source} batch {batch.batch_id}: {problem}"
    log.error(message)
    ledger.note_load_problem(session, settings, batch.batch_id, message)
    return message


def _mark_loaded(session: Any, settings: Settings, batch: BatchRecord) -> None:
    ledger.set_status(session, settings, [batch], ledger.LOADED)
    # A backfill re-reads a past window: its batch never moves the watermark (forward or back).
    if batch.max_updated_at is not None and SOURCES[batch.source].incremental and batch.kind == ledger.HOURLY:
        ledger.advance_watermark(session, settings, batch.source, batch.max_updated_at, batch.batch_id)
