"""Finish or close what an earlier run of a source left behind, before its next batch starts.

A process can die anywhere (a task timeout, a warehouse restart, SIGKILL). The next ingest of the source
puts things right first, so that nothing stays half done for longer than one run:

- the watermark is caught up with the newest loaded batch (a kill between LOADED and the watermark update:
  `ledger.repair_watermark`, called by ingest before it reads the watermark);
- a STAGED batch that loads normally is left to this run's refresh and wait, and the ingest does not fetch
  its window a second time;
- a batch that can no longer load (FAILED; STARTED by a process that is certainly dead; STAGED but refused
  by the pipe or missing files) is ABANDONED: its objects on S3 and any rows it put in RAW are removed, so
  every object on S3 belongs to a batch whose ledger status says what became of it. Its window is read
  again, because the watermark never moved past an unloaded batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import ledger
from .ledger import BatchRecord
from .loading import delete_raw_rows
from .settings import Settings
from .sources import Source
from .staging import delete_batch_objects

log = logging.getLogger(__name__)

# No ingest runs longer than its task's USER_TASK_TIMEOUT_MS (sql/06_tasks.sql: 30 minutes; a unit test
# keeps the two equal), so a batch STARTED longer ago than that belongs to a dead process.
DEAD_AFTER_SECONDS = 1800


@dataclass(frozen=True)
class Blocker:
    """A batch of the source that this run must not overtake: still loading, or still being written."""

    batch_id: str
    status: str


def close_dead_batches(
    session: Any, settings: Settings, source: Source, current_batch_id: str, s3_client: Any
) -> Blocker | None:
    """Abandon the source's batches that can no longer finish; returns one the new batch must wait for."""
    blocker: Blocker | None = None
    for batch in ledger.batches(session, settings, ledger.OPEN_STATUSES, source.name, recent=False):
        if batch.batch_id == current_batch_id:
            continue  # the window this run is about to (re)write: start_batch re-opens it
        reason = _dead_reason(batch)
        if reason is None:
            blocker = blocker or Blocker(batch.batch_id, batch.status)
            continue
        abandon(session, settings, source, batch, reason, s3_client)
    return blocker


def close_earlier_attempt(
    session: Any, settings: Settings, source: Source, batch_id: str, s3_client: Any
) -> bool:
    """Abandon an earlier attempt at this very window so the new one starts under a new id; True if closed.

    A STARTED or FAILED batch of the window is this source's own attempt that died or failed; a STAGED one
    counts only when the pipe could not load it. A new id (never a reused one) means no part of the old
    attempt can mix with the new one's files, whatever became of its objects.
    """
    for batch in ledger.batches(session, settings, ledger.OPEN_STATUSES, source.name, recent=False):
        if batch.batch_id != batch_id:
            continue
        if batch.status == ledger.STAGED:
            reason = _dead_reason(batch)
        else:
            reason = f"abandoned: superseded by a new attempt at its window (it was {batch.status})"
        if reason is None:
            return False
        abandon(session, settings, source, batch, reason, s3_client)
        return True
    return False


def _dead_reason(batch: BatchRecord) -> str | None:
    """Why a batch can no longer finish, or None while it still may."""
    if batch.status == ledger.FAILED:
        return "abandoned: its extract failed"
    if batch.status == ledger.STAGED:
        return f"abandoned: it did not load ({batch.error_message})" if batch.error_message else None
    if batch.age_seconds is not None and batch.age_seconds < DEAD_AFTER_SECONDS:
        return None  # STARTED by a run that may still be going
    return "abandoned: the process writing it died"


def abandon(
    session: Any, settings: Settings, source: Source, batch: BatchRecord, reason: str, s3_client: Any
) -> None:
    """Remove a batch's objects (first, so a pipe cannot load them later) and rows, then close it.

    Objects that cannot be removed (the writer role lacks s3:ListBucket or s3:DeleteObject, say) do not keep
    the source stuck: the batch is closed all the same, its ledger row says which objects stayed, and no
    refresh ever asks for an abandoned batch's folder.
    """
    try:
        removed = delete_batch_objects(
            s3_client, settings.get("bucket"), source.name, batch.batch_id, batch.partition_prefix
        )
        log.warning(
            "%s batch %s %s; removed %d staged object(s)", source.name, batch.batch_id, reason, removed
        )
    except (BotoCoreError, ClientError) as exc:
        reason = f"{reason}; its objects under {batch.partition_prefix}batch_id={batch.batch_id}/ stay: {exc}"
        log.warning("%s batch %s %s", source.name, batch.batch_id, reason)
    delete_raw_rows(session, settings, source.name, [batch.batch_id], batch.started_at)
    ledger.abandon_batch(session, settings, batch.batch_id, reason)
