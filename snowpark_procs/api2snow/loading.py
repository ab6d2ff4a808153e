"""Snowpipe side of a batch: queue its parts (ALTER PIPE REFRESH) and wait until RAW holds every row.

Completion is judged in plain SQL on the RAW tables (rows per file of the batch against the manifest),
the same query in Snowflake and locally, so "staged = loaded" is checked exactly, not assumed.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from . import ledger
from .ledger import BatchRecord
from .platform import Platform
from .settings import Settings
from .sources import SOURCES, get_source

REJECTS_PIPE = "RAW.REJECTED_RECORDS_PIPE"
REJECTS_TABLE = "RAW.REJECTED_RECORDS"


class LoadTimeout(RuntimeError):
    """Snowpipe did not load every staged part within the timeout."""


class LoadFailed(RuntimeError):
    """Snowpipe reported a staged file of a batch as failed: waiting longer would not help."""


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


def missing_parts(session: Any, settings: Settings, batch: BatchRecord) -> dict[Landing, list[str]]:
    """Staged files of the batch whose rows are not (all) in RAW yet, by landing; {} when fully loaded."""
    missing: dict[Landing, list[str]] = {}
    for landing in landings(batch.source):
        files = batch.manifest.get(landing.manifest_key, [])
        if not files:
            continue
        loaded = _loaded_rows(session, settings.table(landing.table), batch.batch_id)
        keys = [f["key"] for f in files if loaded.get(posixpath.basename(f["key"]), 0) != f["rows"]]
        if keys:
            missing[landing] = keys
    return missing


def _fail_fast(
    session: Any,
    platform: Platform,
    settings: Settings,
    batch: BatchRecord,
    missing: dict[Landing, list[str]],
) -> None:
    """Raise LoadFailed when the pipe's load history shows a missing file of the batch as failed."""
    for landing, keys in missing.items():
        errors = platform.load_errors(session, settings.table(landing.table), keys)
        if errors:
            file_name, error = next(iter(errors.items()))
            raise LoadFailed(
                f"{batch.source} batch {batch.batch_id}: Snowpipe failed to load {file_name}: {error}"
            )


def wait_for_load(
    session: Any,
    platform: Platform,
    settings: Settings,
    timeout_s: float,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Block until every STAGED batch is fully in RAW; mark them LOADED and advance the watermarks."""
    deadline = time.monotonic() + timeout_s
    pending = ledger.batches(session, settings, ledger.STAGED)
    loaded: list[str] = []
    while True:
        waiting: list[tuple[BatchRecord, int]] = []
        for batch in pending:
            missing = missing_parts(session, settings, batch)
            if missing:
                _fail_fast(session, platform, settings, batch, missing)
                waiting.append((batch, sum(len(keys) for keys in missing.values())))
                continue
            _mark_loaded(session, settings, batch)
            loaded.append(batch.batch_id)
        if not waiting:
            return {"batches_loaded": len(loaded), "batch_ids": loaded}
        if time.monotonic() >= deadline:
            detail = "; ".join(f"{b.source} batch {b.batch_id}: {n} part(s) not loaded" for b, n in waiting)
            raise LoadTimeout(f"Snowpipe did not load every staged part within {timeout_s:.0f}s: {detail}")
        pending = [batch for batch, _ in waiting]
        sleep(poll_s)


def _mark_loaded(session: Any, settings: Settings, batch: BatchRecord) -> None:
    ledger.set_status(session, settings, [batch.batch_id], ledger.LOADED)
    if batch.max_updated_at is not None and SOURCES[batch.source].incremental:
        ledger.advance_watermark(session, settings, batch.source, batch.max_updated_at, batch.batch_id)
