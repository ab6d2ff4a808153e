"""Stage one batch as gzip JSON-lines part files on S3, plus rejects and a manifest.

Layout (docs/CONTRACTS.md), with ``{prefix}`` the optional key prefix:

- parts:    ``{prefix}source=<src>/dt=YYYY-MM-DD/hour=HH/batch_id=<id>/part-0001.jsonl.gz``
- rejects:  ``{prefix}_rejects/source=<src>/dt=YYYY-MM-DD/hour=HH/batch_id=<id>/rejects-0001.jsonl.gz``
- manifest: ``{prefix}_manifests/source=<src>/batch_id=<id>.json`` (written last: its presence means the
  batch is complete)

Memory is bounded by one in-memory part buffer for records (plus one for rejects, normally tiny); nothing
else grows per record except counters. Parts are uploaded with a single ``put_object`` each (no multipart).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from . import jsonl

__all__ = [
    "Manifest",
    "S3BatchWriter",
    "delete_batch_objects",
    "manifest_key",
    "part_key",
    "partition_prefix",
    "reject_key",
]

# Level 5 compresses JSON lines within a few percent of level 9 at about half the CPU; the procedure's
# warehouse time is what we pay for, and upload bandwidth from Snowflake to S3 is rarely the bottleneck.
GZIP_COMPRESSLEVEL = 5
DEFAULT_MAX_PART_BYTES = 64 * 1024 * 1024
# zlib holds back output until its internal buffers fill, so the flushed size lags the true compressed size.
# We sync-flush (exact size) once the uncompressed bytes written since the last flush could have filled the
# remaining budget, but at most every _MIN_FLUSH_INTERVAL bytes (or max_part_bytes / 8 for small parts), since
# each flush costs a little compression ratio. The overshoot past max_part_bytes is about one such interval.
_MIN_FLUSH_INTERVAL = 256 * 1024
_SSE_VALUES = ("AES256", "aws:kms")
MAX_REJECT_LINE_BYTES = 1024 * 1024  # a reject keeps its whole raw record up to this size...
REJECT_EXCERPT_BYTES = 4096  # ...and beyond it, the start of the record and its size


def _utc(partition_time: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted."""
    if partition_time.tzinfo is None:
        return partition_time
    return partition_time.astimezone(UTC)


def _norm_prefix(key_prefix: str) -> str:
    """``"raw"`` and ``"raw/"`` both mean the folder ``raw/``; ``""`` is the bucket root."""
    return key_prefix if not key_prefix or key_prefix.endswith("/") else key_prefix + "/"


def partition_prefix(source: str, partition_time: datetime, key_prefix: str = "") -> str:
    """``{prefix}source=<src>/dt=YYYY-MM-DD/hour=HH/`` for ``partition_time`` in UTC (pipe refresh, tests)."""
    t = _utc(partition_time)
    return f"{_norm_prefix(key_prefix)}source={source}/dt={t:%Y-%m-%d}/hour={t:%H}/"


def part_key(source: str, batch_id: str, partition_time: datetime, part_no: int, key_prefix: str = "") -> str:
    """Key of data part ``part_no`` (1-based, 4 digits)."""
    prefix = partition_prefix(source, partition_time, key_prefix)
    return f"{prefix}batch_id={batch_id}/part-{part_no:04d}.jsonl.gz"


def reject_key(
    source: str, batch_id: str, partition_time: datetime, part_no: int, key_prefix: str = ""
) -> str:
    """Key of rejects file ``part_no`` (1-based, 4 digits)."""
    prefix = _norm_prefix(key_prefix)
    rel = partition_prefix(source, partition_time)
    return f"{prefix}_rejects/{rel}batch_id={batch_id}/rejects-{part_no:04d}.jsonl.gz"


def manifest_key(source: str, batch_id: str, key_prefix: str = "") -> str:
    return f"{_norm_prefix(key_prefix)}_manifests/source={source}/batch_id={batch_id}.json"


def batch_folders(batch_id: str, partition_prefix: str, key_prefix: str = "") -> tuple[str, str]:
    """The folders of a batch's parts and of its rejects (``partition_prefix`` as the ledger keeps it)."""
    root = _norm_prefix(key_prefix)
    return (
        f"{root}{partition_prefix}batch_id={batch_id}/",
        f"{root}_rejects/{partition_prefix}batch_id={batch_id}/",
    )


def delete_batch_objects(
    s3_client: Any, bucket: str, source: str, batch_id: str, partition_prefix: str, key_prefix: str = ""
) -> int:
    """Remove every object a batch wrote (parts, rejects, manifest); returns how many there were.

    Used for a batch that will never load (abandoned) and before a batch is written again, so no part of an
    earlier attempt is left for a pipe to find. Deleting a key that is not there is not an error.
    """
    keys = [
        key
        for folder in batch_folders(batch_id, partition_prefix, key_prefix)
        for key in _keys(s3_client, bucket, folder)
    ]
    keys.append(manifest_key(source, batch_id, key_prefix))
    for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
        chunk = [{"Key": key} for key in keys[start : start + 1000]]
        s3_client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
    return len(keys) - 1


def _keys(s3_client: Any, bucket: str, folder: str) -> list[str]:
    paginator = s3_client.get_paginator("list_objects_v2")
    return [
        obj["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=folder)
        for obj in page.get("Contents", [])
    ]


@dataclass
class Manifest:
    """What one batch staged: parts and rejects as ``{"key", "rows", "bytes"}`` (bytes = compressed size)."""

    batch_id: str
    source: str
    bucket: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    staged_rows: int = 0
    rejected_rows: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        return cls(**json.loads(text))


class _GzipPart:
    """One gzip JSON-lines file being built in memory."""

    __slots__ = ("buffer", "gz", "rows", "flushed_size", "since_flush")

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        # mtime=0: identical input gives identical bytes (reproducible objects, stable ETags).
        self.gz = gzip.GzipFile(fileobj=self.buffer, mode="wb", compresslevel=GZIP_COMPRESSLEVEL, mtime=0)
        self.rows = 0
        self.flushed_size = 0  # compressed size as of the last sync flush
        self.since_flush = 0  # uncompressed bytes written since then

    def write_lines(self, data: bytes, count: int) -> None:
        self.gz.write(data)
        self.rows += count
        self.since_flush += len(data)

    def reached(self, max_bytes: int) -> bool:
        """True once the compressed size has reached ``max_bytes``; flushes only when it could have."""
        floor = min(_MIN_FLUSH_INTERVAL, max(max_bytes // 8, 1))
        if self.since_flush < max(max_bytes - self.flushed_size, floor):
            return self.buffer.tell() >= max_bytes  # cheap: output zlib has already emitted
        self.gz.flush()  # Z_SYNC_FLUSH: everything written so far is now in the buffer
        self.flushed_size = self.buffer.tell()
        self.since_flush = 0
        return self.flushed_size >= max_bytes

    def finish(self) -> io.BytesIO:
        self.gz.close()  # writes the gzip trailer; leaves the BytesIO open
        self.buffer.seek(0)
        return self.buffer


class _PartStream:
    """A sequence of rolled-over gzip parts sharing a key function; uploads each when full."""

    def __init__(
        self, writer: S3BatchWriter, key_for: Callable[[int], str], entries: list[dict[str, Any]]
    ) -> None:
        self._writer = writer
        self._key_for = key_for
        self._entries = entries
        self._current: _GzipPart | None = None
        self.rows = 0

    def write_lines(self, data: bytes, count: int) -> None:
        """Append `count` newline-terminated lines; rollover is checked after them, so a part may exceed
        the size limit by at most one call's worth (one API page when the writer is fed page by page)."""
        part = self._current
        if part is None:  # created lazily, so a batch never uploads an empty part
            part = self._current = _GzipPart()
        part.write_lines(data, count)
        self.rows += count
        if part.reached(self._writer.max_part_bytes):
            self.flush()

    def flush(self) -> None:
        part, self._current = self._current, None
        if part is None or part.rows == 0:
            return
        key = self._key_for(len(self._entries) + 1)
        body = part.finish()
        size = body.getbuffer().nbytes
        self._writer._put(key, body, "application/json", content_encoding="gzip")
        self._entries.append({"key": key, "rows": part.rows, "bytes": size})

    def discard(self) -> None:
        self._current = None


class S3BatchWriter:
    """Writes one batch's records and rejects to S3 and, on :meth:`close`, its manifest.

    Use as a context manager: an exception inside the ``with`` block discards buffered rows, writes no
    manifest and re-raises, so a failed batch is never marked complete. Parts uploaded before the failure
    remain (they are whole, valid files; the MERGE downstream is idempotent per id/updated_at).
    """

    def __init__(
        self,
        s3_client: Any,
        bucket: str,
        source: str,
        batch_id: str,
        partition_time: datetime,
        max_part_bytes: int = DEFAULT_MAX_PART_BYTES,
        sse: str = "AES256",
        kms_key_id: str | None = None,
        key_prefix: str = "",
    ) -> None:
        for label, value in (("source", source), ("batch_id", batch_id)):
            if not value or "/" in value or "=" in value:
                raise ValueError(f"{label} must be non-empty without '/' or '=': {value!r}")
        if sse not in _SSE_VALUES:
            raise ValueError(f"sse must be one of {_SSE_VALUES}, got {sse!r}")
        if kms_key_id is not None and sse != "aws:kms":
            raise ValueError("kms_key_id requires sse='aws:kms'")
        if max_part_bytes <= 0:
            raise ValueError("max_part_bytes must be positive")
        self.s3 = s3_client
        self.bucket = bucket
        self.source = source
        self.batch_id = batch_id
        self.partition_time = _utc(partition_time)
        self.max_part_bytes = max_part_bytes
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.key_prefix = key_prefix
        self.manifest = Manifest(batch_id=batch_id, source=source, bucket=bucket)
        self._parts = _PartStream(
            self,
            lambda n: part_key(source, batch_id, self.partition_time, n, key_prefix),
            self.manifest.parts,
        )
        self._rejects = _PartStream(
            self,
            lambda n: reject_key(source, batch_id, self.partition_time, n, key_prefix),
            self.manifest.rejects,
        )
        self._closed = False
        self._failed = False

    # -- writing

    def write(self, record: dict[str, Any]) -> None:
        """Append one normalised record (already carrying ``_batch_id``)."""
        self._check_open()
        self._parts.write_lines(jsonl.dumps(record) + b"\n", 1)

    def write_many(self, records: list[dict[str, Any]]) -> None:
        """Append a page of normalised records in one compressor call (the per-record cost is the point)."""
        if not records:
            return
        self._check_open()
        self._parts.write_lines(jsonl.dumps_lines(records), len(records))

    def write_lines(self, lines: list[bytes]) -> None:
        """Append a page of already encoded, newline-terminated JSON lines (RecordProcessor's output)."""
        if not lines:
            return
        self._check_open()
        self._parts.write_lines(b"".join(lines), len(lines))

    def reject(self, raw: Any, reason: str) -> None:
        """Record a raw input that could not be staged, with the reason, in the rejects file(s).

        The line is always loadable: unencodable text is escaped, and a record too large for one VARIANT
        is kept as an excerpt with its size, so one reject cannot make Snowpipe skip the whole file.
        """
        self._check_open()
        line = jsonl.dumps_safe({"reason": reason, "record": raw, "_batch_id": self.batch_id})
        if len(line) > MAX_REJECT_LINE_BYTES:
            excerpt = line[:REJECT_EXCERPT_BYTES].decode("utf-8", "ignore")
            line = jsonl.dumps_safe(
                {
                    "reason": reason,
                    "record": None,
                    "record_bytes": len(line),
                    "record_excerpt": excerpt,
                    "_batch_id": self.batch_id,
                }
            )
        self._rejects.write_lines(line + b"\n", 1)

    @property
    def staged_rows(self) -> int:
        return self._parts.rows

    @property
    def rejected_rows(self) -> int:
        return self._rejects.rows

    # -- finishing

    def close(self) -> Manifest:
        """Upload the remaining buffered rows, then the manifest; returns it. Idempotent."""
        if self._closed:
            return self.manifest
        if self._failed:
            raise RuntimeError("batch writer was aborted; no manifest written")
        self._parts.flush()
        self._rejects.flush()
        self.manifest.staged_rows = self._parts.rows
        self.manifest.rejected_rows = self._rejects.rows
        self._put(
            manifest_key(self.source, self.batch_id, self.key_prefix),
            self.manifest.to_json().encode("utf-8"),
            "application/json",
        )
        self._closed = True
        return self.manifest

    def abort(self) -> None:
        """Drop buffered rows without uploading; no manifest will be written. Nothing multipart to abort:
        each part is a single put_object."""
        self._failed = True
        self._parts.discard()
        self._rejects.discard()

    def __enter__(self) -> S3BatchWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
            return  # re-raise
        self.close()

    # -- internals

    def _check_open(self) -> None:
        if self._closed or self._failed:
            raise RuntimeError("batch writer is closed")

    def _put(self, key: str, body: Any, content_type: str, content_encoding: str | None = None) -> None:
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
            "ServerSideEncryption": self.sse,
        }
        if content_encoding is not None:
            kwargs["ContentEncoding"] = content_encoding
        if self.kms_key_id is not None:
            kwargs["SSEKMSKeyId"] = self.kms_key_id
        try:
            self.s3.put_object(**kwargs)
        except BaseException:
            self._failed = True  # a batch with a missing part must never get a manifest
            raise
