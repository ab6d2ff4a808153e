"""One ingest batch: API pages -> normalise/validate/dedupe -> gzip JSONL parts on S3 -> ledger row.

Pages stream through: each page is fetched, transformed and written before the next is requested, and
parts roll over by size, so memory does not grow with the extract. The batch id is derived from the
window (source, watermark, hour), so re-running the same hour reuses the same id and S3 keys.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import requests
from botocore.config import Config

from . import ledger, recovery
from .budget import RunBudget
from .gc_pacing import fewer_collections
from .http.client import ApiClient
from .http.prefetch import prefetched
from .http.progress import ProgressGuard
from .http.ratelimit import RateLimiter
from .http.retry import RetryPolicy
from .platform import Platform
from .settings import Settings
from .sources import Source
from .staging import S3BatchWriter, partition_prefix
from .transform import RecordProcessor
from .window import PageWindow

log = logging.getLogger(__name__)
BATCH_NAMESPACE = uuid.UUID("6f1c1a52-7d4e-4d0b-9a59-0b1f5e0c2a10")
AWS_SECRET_KEY = "aws_s3"


def batch_id_for(source: str, since: datetime | None, window_hour: datetime, sequence: int = 0) -> str:
    """Deterministic for a window: the same source, watermark, hour (and sequence) give the same id."""
    since_text = since.isoformat() if since else "beginning"
    name = f"{source}|{since_text}|{window_hour.isoformat()}" + (f"|{sequence}" if sequence else "")
    return str(uuid.uuid5(BATCH_NAMESPACE, name))


def next_batch_id(
    session: Any, settings: Settings, source: str, since: datetime | None, hour: datetime
) -> tuple[str, str | None]:
    """The window's batch id and its ledger status; after a MERGED batch of the window, the next id.

    A batch that completed without moving the watermark (it staged nothing, or only rejects) leaves the
    window open; data that arrives later in the same hour must not reuse its id, S3 keys and load history.
    Nor may an ABANDONED batch, whose files a pipe may have seen. A STAGED or LOADED batch keeps its id, so
    a retry finishes it; an earlier STARTED or FAILED attempt is abandoned first (recovery), so a redo of the
    window gets the next id.
    """
    sequence = 0
    while True:
        batch_id = batch_id_for(source, since, hour, sequence)
        status = ledger.batch_status(session, settings, batch_id)
        if status not in (ledger.MERGED, ledger.ABANDONED):
            return batch_id, status
        sequence += 1


def s3_client(platform: Platform, settings: Settings) -> Any:
    creds = platform.aws_credentials(AWS_SECRET_KEY)
    endpoint = settings.get("s3_endpoint_url") or None
    return boto3.client(
        "s3",
        region_name=settings.get("region"),
        endpoint_url=endpoint,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
        config=Config(
            retries={"max_attempts": 5, "mode": "standard"},
            request_checksum_calculation="when_required",
            # The bucket's own host, which the S3 network rule allows (a custom endpoint, as the local
            # stack's, is addressed by path).
            s3={"addressing_style": "path" if endpoint else "virtual"},
        ),
    )


def api_client(
    source: Source,
    platform: Platform,
    settings: Settings,
    http: requests.Session,
    earlier_requests: Sequence[float] = (),
) -> ApiClient:
    """The source's client; its limiter starts with the requests an earlier run sent (epoch seconds)."""
    limit = settings.get_int(f"{source.name}_rate_limit_per_min")
    limiter = RateLimiter(max_requests=limit, per_seconds=60.0)
    now = time.time()
    limiter.seed([now - sent for sent in earlier_requests])
    return ApiClient(
        base_url=source.base_url(settings),
        auth=source.auth(platform, settings, http),
        rate_limiter=limiter,
        retry_policy=RetryPolicy(max_attempts=settings.get_int("http_max_attempts")),
        http=http,
    )


def read_start(session: Any, settings: Settings, source: Source) -> datetime | None:
    """Where an incremental read starts: `incremental_overlap_seconds` before the watermark.

    An API stamps `updated_at` before the record is visible, so a record can commit after a run has read
    past its time (a late commit). Re-reading a short overlap catches those; it costs nothing downstream:
    the batch dedupe and the CLEAN MERGE leave re-read, unchanged records as they are.
    """
    if not source.incremental:
        return None
    watermark = ledger.read_watermark(session, settings, source.name)
    if watermark is None:
        return None
    return watermark - timedelta(seconds=settings.get_int("incremental_overlap_seconds"))


def run_ingest(session: Any, platform: Platform, settings: Settings, source: Source) -> dict[str, Any]:
    """Extract one source since its watermark into one staged batch; returns the batch summary."""
    started = time.monotonic()
    now = datetime.now(UTC).replace(tzinfo=None)
    window_hour = now.replace(minute=0, second=0, microsecond=0)
    if source.incremental:
        ledger.repair_watermark(session, settings, source.name)
    since = read_start(session, settings, source)
    s3 = s3_client(platform, settings)
    batch_id, existing = next_batch_id(session, settings, source.name, since, window_hour)
    if existing is not None and recovery.close_earlier_attempt(session, settings, source, batch_id, s3):
        batch_id, existing = next_batch_id(session, settings, source.name, since, window_hour)
    summary: dict[str, Any] = {"source": source.name, "batch_id": batch_id, "since": _iso(since)}
    if existing in (ledger.STAGED, ledger.LOADED):
        log.info(
            "batch %s of %s is already %s; not fetching the window again", batch_id, source.name, existing
        )
        return {**summary, "status": existing, "skipped": "window already staged"}
    blocker = open_batch(session, platform, settings, source, batch_id, (since, now), now, s3)
    if blocker is not None:  # an earlier batch of the source, or a BACKFILL opened at the same moment
        log.info(
            "%s waits for its batch %s (%s) before fetching more",
            source.name,
            blocker.batch_id,
            blocker.status,
        )
        return {**summary, "status": "WAITING", "skipped": f"batch {blocker.batch_id} is {blocker.status}"}
    staged = stage_batch(session, platform, settings, source, batch_id, since, now, s3)
    counts, max_updated, manifest, stats = staged
    return {
        **summary,
        "status": ledger.STAGED,
        **counts,
        "parts": len(manifest["parts"]),
        "max_updated_at": max_updated,
        "requests": stats.get("requests", 0),
        "retries": stats.get("retries", 0),
        "throttled_429": stats.get("throttled_429", 0),
        "complete": stats["complete"],
        "stopped_by": stats["stopped_by"],
        "remaining": stats["remaining"],
        "seconds": round(time.monotonic() - started, 3),
    }


def open_batch(
    session: Any,
    platform: Platform,
    settings: Settings,
    source: Source,
    batch_id: str,
    window: tuple[datetime | None, datetime],
    partition_time: datetime,
    s3: Any,
    kind: str = ledger.HOURLY,
) -> recovery.Blocker | None:
    """Open `batch_id` (its ledger `window`, its parts under `partition_time`) for the hourly ingest or a
    BACKFILL (`kind`). Returns the batch of the source that blocks it instead, if any: an earlier one still
    open (nothing is opened), or one another run opened at the same moment (`batch_id` is then abandoned,
    giving way to it)."""
    blocker = recovery.close_dead_batches(session, settings, source, batch_id, s3)
    if blocker is not None:
        return blocker
    run_id = platform.run_id(session)
    prefix = partition_prefix(source.name, partition_time)
    ledger.start_batch(session, settings, batch_id, source.name, run_id, *window, prefix, kind=kind)
    rival = recovery.close_dead_batches(session, settings, source, batch_id, s3)
    if rival is not None:
        ledger.abandon_batch(session, settings, batch_id, f"abandoned: gave way to batch {rival.batch_id}")
    return rival


def stage_batch(
    session: Any,
    platform: Platform,
    settings: Settings,
    source: Source,
    batch_id: str,
    since: datetime | None,
    partition_time: datetime,
    s3: Any,
    window: PageWindow | None = None,
) -> tuple[dict[str, int], str | None, dict[str, Any], dict[str, Any]]:
    """`extract` for an opened batch, recorded STAGED in the ledger (FAILED, and raised, when it fails)."""
    try:
        counts, max_updated, manifest, stats = extract(
            source,
            platform,
            settings,
            since,
            batch_id,
            partition_time,
            earlier_requests=ledger.recent_request_times(session, settings, source.name),
            window=window,
            s3=s3,
        )
    except Exception as exc:
        ledger.fail_batch(session, settings, batch_id, f"{type(exc).__name__}: {exc}")
        raise
    ledger.finish_staging(session, settings, batch_id, counts, max_updated, manifest, stats)
    return counts, max_updated, manifest, stats


@fewer_collections()  # the whole extract: making the S3 client allocates much too
def extract(
    source: Source,
    platform: Platform,
    settings: Settings,
    since: datetime | None,
    batch_id: str,
    partition_time: datetime,
    earlier_requests: Sequence[float] = (),
    window: PageWindow | None = None,
    s3: Any = None,
) -> tuple[dict[str, int], str | None, dict[str, Any], dict[str, Any]]:
    """Pages -> records -> parts for one batch; `earlier_requests` are a previous run's sends (epoch s);
    `window` keeps only the records of a backfill's time window and ends the read at its end; `s3` is the
    caller's S3 client (one is made when None)."""
    processor = RecordProcessor(
        source.normalize,
        source.schema,
        source.id_field,
        source.updated_field,
        batch_id,
        max_record_bytes=settings.get_int("max_record_bytes"),
        fast_normalize=source.fast_normalizer(),
    )
    max_updated: str | None = None
    writer = S3BatchWriter(
        s3 if s3 is not None else s3_client(platform, settings),
        settings.get("bucket"),
        source.name,
        batch_id,
        partition_time,
        max_part_bytes=settings.get_int("part_max_mb") * 1024 * 1024,
        sse=settings.get("s3_sse"),
        kms_key_id=settings.get("s3_kms_key_id") or None,
    )
    http = requests.Session()
    client = api_client(source, platform, settings, http, earlier_requests)
    budget = _budget(source, settings)
    with http, client, writer:
        guard = ProgressGuard(source.record_key, settings.get_int("max_stalled_pages"), source.key_hashes)
        paginator = source.paginator(settings)
        first = source.first_request(since, source.page_size_for(settings))
        pages = client.pages(first, paginator, source.parse_page, guard)
        pages = budget.limit(pages) if budget is not None else pages
        for page in prefetched(window.limit(pages) if window is not None else pages):
            staged = processor.process_page(page)
            for raw, reason in staged.rejected:
                writer.reject(raw, reason)
            writer.write_lines(staged.lines)
            if staged.max_updated is not None and (max_updated is None or staged.max_updated > max_updated):
                max_updated = staged.max_updated
        manifest = writer.close()
        now = time.time()  # the next run seeds its limiter with these (wall clock: it is another process)
        sent = [round(now - age, 3) for age in client.rate_limiter.recent_sends()]
        # Stopped by the budget with pages left: the rest is the next run's. (The page after the last one
        # was never requested, so the paginator's state is that of the last page.)
        stopped = budget.stopped_by if budget is not None and paginator.has_next else None
        complete = stopped is None or (window is not None and window.reached_end)  # a backfill's window read
        progress = {"complete": complete, "stopped_by": stopped, "remaining": paginator.remaining}
        stats = {**client.stats, "recent_request_times": sent, **progress}
    return processor.counts, max_updated, asdict(manifest), stats


def _budget(source: Source, settings: Settings) -> RunBudget | None:
    """The run's budget; None for a source read in full each run, which cannot stop half way."""
    if not source.incremental:
        return None
    return RunBudget(settings.get_int("ingest_budget_seconds"), settings.get_int("ingest_max_pages"))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
