"""Snowpipe side of a batch: queue its parts (ALTER PIPE REFRESH) and wait until RAW holds every row.

Completion is judged in plain SQL on the RAW tables (rows per file of the batch against the manifest),
the same query in Snowflake and locally, so "staged = loaded" is checked exactly, not assumed.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable
from typing import Any

from . import ledger
from .ledger import BatchRecord
from .platform import Platform
from .settings import Settings
from .sources import SOURCES, get_source

log = logging.getLogger(__name__)
REJECTS_PIPE = "RAW.REJECTED_RECORDS_PIPE"
REJECTS_TABLE = "RAW.REJECTED_RECORDS"


class LoadTimeout(RuntimeError):
    """Snowpipe did not load every staged part within the timeout."""


class LoadFailed(RuntimeError):
    """Snowpipe reported a staged file of a batch as failed: waiting longer would not help."""


def _batch_prefix(key: str, root: str) -> str:
    """The refresh PREFIX of a staged file: its folder relative to the pipe's stage path `root`."""
    folder = posixpath.dirname(key) + "/"
    return folder[len(root) :] if folder.startswith(root) else folder


def refresh(session: Any, platform: Platform, settings: Settings, source_name: str) -> dict[str, Any]:
    """Queue every STAGED batch of a source on its pipe (and its rejects on the rejects pipe)."""
    source = get_source(source_name)
    queued = []
    for batch in ledger.batches(session, settings, ledger.STAGED, source.name):
        prefixes = {
            _batch_prefix(p["key"], f"source={source.name}/") for p in batch.manifest.get("parts", [])
        }
        for prefix in sorted(prefixes):
            platform.refresh_pipe(session, settings.table(source.pipe), prefix)
        reject_prefixes = {_batch_prefix(r["key"], "_rejects/") for r in batch.manifest.get("rejects", [])}
        for prefix in sorted(reject_prefixes):
            platform.refresh_pipe(session, settings.table(REJECTS_PIPE), prefix)
        queued.append(batch.batch_id)
    return {"source": source.name, "batches_refreshed": len(queued), "batch_ids": queued}


def _loaded_rows(session: Any, table: str, batch_id: str) -> dict[str, int]:
    rows = session.sql(
        f"SELECT file_name, COUNT(*) AS row_count FROM {table} WHERE batch_id = ? GROUP BY file_name",
        params=[batch_id],
    ).collect()
    return {posixpath.basename(r["FILE_NAME"]): int(r["ROW_COUNT"]) for r in rows}


def missing_parts(session: Any, settings: Settings, batch: BatchRecord) -> list[str]:
    """Staged files of the batch whose rows are not (all) in RAW yet; [] when the batch is fully loaded."""
    source = get_source(batch.source)
    missing = []
    checks = (
        (settings.table(source.raw_table), batch.manifest.get("parts", [])),
        (settings.table(REJECTS_TABLE), batch.manifest.get("rejects", [])),
    )
    for table, files in checks:
        if not files:
            continue
        loaded = _loaded_rows(session, table, batch.batch_id)
        missing += [f["key"] for f in files if loaded.get(posixpath.basename(f["key"]), 0) != f["rows"]]
    return missing


def _fail_fast(
    session: Any, platform: Platform, settings: Settings, batch: BatchRecord, missing: list[str]
) -> None:
    """Raise LoadFailed when the pipe's load history shows a missing file of the batch as failed."""
    source = get_source(batch.source)
    for table, root in ((source.raw_table, f"source={source.name}/"), (REJECTS_TABLE, "_rejects/")):
        names = [key for key in missing if key.startswith(root)]
        errors = platform.load_errors(session, settings.table(table), names) if names else {}
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
        still = []
        for batch in pending:
            missing = missing_parts(session, settings, batch)
            if missing:
                _fail_fast(session, platform, settings, batch, missing)
                still.append(batch)
                continue
            _mark_loaded(session, settings, batch)
            loaded.append(batch.batch_id)
        pending = still
        if not pending:
            return {"batches_loaded": len(loaded), "batch_ids": loaded}
        if time.monotonic() >= deadline:
            detail = "; ".join(
                f"{b.source} batch {b.batch_id}: "
                f"{len(missing_parts(session, settings, b))} part(s) not loaded"
                for b in pending
            )
            raise LoadTimeout(f"Snowpipe did not load every staged part within {timeout_s:.0f}s: {detail}")
        sleep(poll_s)


def _mark_loaded(session: Any, settings: Settings, batch: BatchRecord) -> None:
    ledger.set_status(session, settings, [batch.batch_id], ledger.LOADED)
    if batch.max_updated_at is not None and SOURCES[batch.source].incremental:
        ledger.advance_watermark(session, settings, batch.source, batch.max_updated_at, batch.batch_id)
