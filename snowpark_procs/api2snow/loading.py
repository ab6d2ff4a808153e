"""Snowpipe side of a batch: queue its parts (ALTER PIPE REFRESH) and wait until RAW holds every row.

Completion is judged in plain SQL on the RAW tables (rows per file of the batch against the manifest),
the same query in Snowflake and locally, so "staged = loaded" is checked exactly, not assumed.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from . import ledger
from .ledger import BatchRecord
from .platform import Platform
from .settings import Settings
from .sources import SOURCES, get_source

log = logging.getLogger(__name__)
REJECTS_PIPE = "RAW.REJECTED_RECORDS_PIPE"
REJECTS_TABLE = "RAW.REJECTED_RECORDS"


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
    """Queue every STAGED batch of a source on its pipe (and its rejects on the rejects pipe)."""
    targets = landings(source_name)  # validates the name even when nothing is staged
    queued = []
    for batch in ledger.batches(session, settings, ledger.STAGED, source_name):
        for landing in targets:
            files = batch.manifest.get(landing.manifest_key, [])
            for prefix in sorted({_batch_prefix(f["key"], landing.stage_path) for f in files}):
                platform.refresh_pipe(session, settings.table(landing.pipe), prefix)
        queued.append(batch.batch_id)
    return {"source": source_name, "batches_refreshed": len(queued), "batch_ids": queued}


def _loaded_rows(session: Any, table: str, batch_id: str) -> dict[str, int]:
    rows = session.sql(
        f"SELECT file_name, COUNT(*) AS row_count FROM {table} WHERE batch_id = ? GROUP BY file_name",
        params=[batch_id],
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
        loaded = _loaded_rows(session, settings.table(landing.table), batch.batch_id)
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
    deadline = time.monotonic() + timeout_s
    pending = ledger.batches(session, settings, ledger.STAGED)
    loaded: list[str] = []
    stuck: dict[str, str] = {}
    while True:
        waiting: list[tuple[BatchRecord, int]] = []
        for batch in pending:
            missing, problem = unloaded_parts(session, settings, batch)
            problem = problem or (_load_failure(session, platform, settings, missing) if missing else None)
            if problem is not None:
                stuck[batch.batch_id] = _note(session, settings, batch, problem)
            elif missing:
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
        sleep(poll_s)
    return {"batches_loaded": len(loaded), "batch_ids": loaded, "stuck": stuck}


def _note(session: Any, settings: Settings, batch: BatchRecord, problem: str) -> str:
    message = f"{batch.source} batch {batch.batch_id}: {problem}"
    log.error(message)
    ledger.note_load_problem(session, settings, batch.batch_id, message)
    return message


def _mark_loaded(session: Any, settings: Settings, batch: BatchRecord) -> None:
    ledger.set_status(session, settings, [batch.batch_id], ledger.LOADED)
    if batch.max_updated_at is not None and SOURCES[batch.source].incremental:
        ledger.advance_watermark(session, settings, batch.source, batch.max_updated_at, batch.batch_id)
