"""Stage one batch as gzip JSON-lines part files on S3, plus rejects and a manifest.

Layout (docs/CONTRACTS.md), with ``{prefix}`` the optional key prefix:

- parts:    ``{prefix}source=<src>/dt=YYYY-MM-DD/hour=HH/batch_id=<id>/part-0001.jsonl.gz``
- rejects:  ``{prefix}_rejects/source=<src>/dt=YYYY-MM-DD/hour=HH/batch_id=<id>/rejects-0001.jsonl.gz``
- manifest: ``{prefix}_manifests/source=<src>/batch_id=<id>.json`` (written last: its presence means the
  batch is complete)

Memory does not depend on the size of an extract or of a part: a part streams to S3 as a multipart upload
in chunks of ``upload_chunk_bytes`` (8 MiB; S3 wants at least 5 MiB for every part but the last), so at most
one chunk per stream (records, rejects) is held. A part smaller than one chunk is a single ``put_object``.
Every object-creating request carries the SSE setting; an upload that fails or is abandoned is aborted, so
no incomplete upload is left behind, and a part becomes visible only when it is whole.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from . import jsonl

log = logging.getLogger(__name__)

__all__ = [
    "Manifest",
    "S3BatchWriter",
    "delete_batch_objects",
    "manifest_key",
    "part_key",
    "partition_prefix",
    "reject_key",
]

# Level 3, zlib's fastest deflate strategy that still matches strings well: on our JSON lines it spends about
# 0.7x level 5's CPU for parts about 15% larger (level 1 is larger still and no faster). The procedure's
# warehouse time is what we pay for; S3 bytes of a landing file cost far less, and Snowpipe's work is per
# file and per row, not per compressed byte.
GZIP_COMPRESSLEVEL = 3
DEFAULT_MAX_PART_BYTES = 64 * 1024 * 1024
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024  # one multipart part: what a stream holds in memory at most
MIN_UPLOAD_CHUNK_BYTES = 5 * 1024 * 1024  # S3's minimum for every part of a multipart upload but the last
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
    earlier attempt is left for a pipe to find. Deleting a key that is not there is not an error. A part
    whose multipart upload a killed run left open is aborted too (it is not an object, but S3 keeps its
    chunks, and bills them, until then).
    """
    folders = batch_folders(batch_id, partition_prefix, key_prefix)
    for folder in folders:
        _abort_open_uploads(s3_client, bucket, folder)
    keys = [key for folder in folders for key in _keys(s3_client, bucket, folder)]
    keys.append(manifest_key(source, batch_id, key_prefix))
    for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
        chunk = [{"Key": key} for key in keys[start : start + 1000]]
        s3_client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
    return len(keys) - 1


def _abort_open_uploads(s3_client: Any, bucket: str, folder: str) -> None:
    """Abort every incomplete multipart upload under `folder`."""
    paginator = s3_client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=bucket, Prefix=folder):
        for upload in page.get("Uploads", []):
            s3_client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


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
    """One gzip JSON-lines object being built; its compressed bytes wait in memory only until they fill an
    upload chunk, so memory does not grow with the part's size."""

    __slots__ = ("compressor", "pending", "rows", "size", "since_flush")

    def __init__(self) -> None:
        # wbits 31: zlib writes the gzip header (mtime 0: identical input gives identical bytes, stable
        # ETags) and trailer itself, and computes the CRC in the same pass as the compression.
        self.compressor = zlib.compressobj(GZIP_COMPRESSLEVEL, zlib.DEFLATED, 31)
        self.pending = bytearray()  # compressed bytes not uploaded yet (uploaded as is: no copy)
        self.rows = 0
        self.size = 0  # compressed bytes produced so far (uploaded + pending)
        self.since_flush = 0  # uncompressed bytes written since the last sync flush

    def write_lines(self, data: bytes, count: int) -> None:
        self._emit(self.compressor.compress(data))
        self.rows += count
        self.since_flush += len(data)

    def reached(self, max_bytes: int) -> bool:
        """True once the compressed size has reached ``max_bytes``; flushes only when it could have."""
        floor = min(_MIN_FLUSH_INTERVAL, max(max_bytes // 8, 1))
        if self.since_flush < max(max_bytes - self.size, floor):
            return self.size >= max_bytes  # cheap: output zlib has already emitted
        self._emit(self.compressor.flush(zlib.Z_SYNC_FLUSH))  # everything written so far is now out
        self.since_flush = 0
        return self.size >= max_bytes

    def take(self) -> bytearray:
        """The compressed bytes not uploaded yet, leaving none."""
        body, self.pending = self.pending, bytearray()
        return body

    def finish(self) -> None:
        """Write the gzip trailer; what is pending is then the object's last bytes."""
        self._emit(self.compressor.flush(zlib.Z_FINISH))

    def _emit(self, data: bytes) -> None:
        if data:
            self.pending += data
            self.size += len(data)


class _MultipartUpload:
    """One S3 multipart upload: SSE and headers on CreateMultipartUpload (S3 applies them to the object it
    assembles; UploadPart takes no SSE parameter for SSE-S3 or SSE-KMS), then numbered parts, then Complete.
    Nothing is visible under the key before Complete, so a pipe never sees half a file."""

    def __init__(self, writer: S3BatchWriter, key: str, content_type: str, content_encoding: str) -> None:
        self._writer = writer
        self.key = key
        response = writer.s3.create_multipart_upload(
            **writer._object_args(key, content_type, content_encoding)
        )
        self.upload_id: str = response["UploadId"]
        self.parts: list[dict[str, Any]] = []

    def upload(self, body: bytes | bytearray) -> None:
        number = len(self.parts) + 1
        response = self._writer.s3.upload_part(
            Bucket=self._writer.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"ETag": response["ETag"], "PartNumber": number})

    def complete(self) -> None:
        self._writer.s3.complete_multipart_upload(
            Bucket=self._writer.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        """Remove the uploaded parts (S3 would keep, and bill, an incomplete upload until aborted)."""
        try:
            self._writer.s3.abort_multipart_upload(
                Bucket=self._writer.bucket, Key=self.key, UploadId=self.upload_id
            )
        except Exception as exc:  # the caller is already failing; recovery aborts what is left
            log.warning("could not abort the multipart upload of %s: %s", self.key, exc)


class _PartStream:
    """A sequence of rolled-over gzip parts sharing a key function.

    A part streams to S3: once its compressed bytes fill an upload chunk they go as one part of a multipart
    upload, and the part's last chunk completes it. A part that never fills a chunk is one put_object.
    """

    def __init__(
        self, writer: S3BatchWriter, key_for: Callable[[int], str], entries: list[dict[str, Any]]
    ) -> None:
        self._writer = writer
        self._key_for = key_for
        self._entries = entries
        self._current: _GzipPart | None = None
        self._upload: _MultipartUpload | None = None
        self.rows = 0

    def write_lines(self, data: bytes | list[bytes], count: int) -> None:
        """Append `count` newline-terminated lines (bytes, or a page's lines); rollover is checked after them,
        so a part may exceed the size limit by at most one call's worth (one API page when the writer is fed
        page by page)."""
        if isinstance(data, list):
            data = b"".join(data)
        part = self._current
        if part is None:  # created lazily, so a batch never uploads an empty part
            part = self._current = _GzipPart()
        part.write_lines(data, count)
        self.rows += count
        if part.reached(self._writer.max_part_bytes):
            self.flush()
        elif len(part.pending) >= self._writer.upload_chunk_bytes:
            self._upload_chunk(part)

    def flush(self) -> None:
        """Finish the current part: its last bytes, then the multipart Complete (or one put_object)."""
        part = self._current
        if part is None or part.rows == 0:
            self._current = None
            return
        key = self._key_for(len(self._entries) + 1)
        part.finish()
        self._guarded(self._finish_object, key, part)
        self._current = None
        self._entries.append({"key": key, "rows": part.rows, "bytes": part.size})

    def discard(self) -> None:
        """Drop the buffered rows; an open multipart upload is aborted, so no orphaned parts stay on S3."""
        self._current = None
        upload, self._upload = self._upload, None
        if upload is not None:
            upload.abort()

    def _upload_chunk(self, part: _GzipPart) -> None:
        key = self._key_for(len(self._entries) + 1)

        def send() -> None:
            if self._upload is None:
                self._upload = _MultipartUpload(self._writer, key, "application/json", "gzip")
            self._upload.upload(part.take())

        self._guarded(send)

    def _finish_object(self, key: str, part: _GzipPart) -> None:
        if self._upload is None:
            self._writer._put(key, part.take(), "application/json", content_encoding="gzip")
            return
        self._upload.upload(part.take())
        self._upload.complete()
        self._upload = None

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        """Run an upload step; on failure the batch can never get a manifest, and the open upload goes."""
        try:
            step(*args)
        except BaseException:
            self._writer._failed = True
            self.discard()
            raise


class S3BatchWriter:
    """Writes one batch's records and rejects to S3 and, on :meth:`close`, its manifest.

    Use as a context manager: an exception inside the ``with`` block discards buffered rows, aborts a part's
    open multipart upload, writes no manifest and re-raises, so a failed batch is never marked complete.
    Parts completed before the failure remain (they are whole, valid files; recovery removes a failed
    batch's objects before its window is read again).
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
        upload_chunk_bytes: int = UPLOAD_CHUNK_BYTES,
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
        if upload_chunk_bytes < MIN_UPLOAD_CHUNK_BYTES:
            raise ValueError(
                f"upload_chunk_bytes must be at least {MIN_UPLOAD_CHUNK_BYTES} (S3's minimum part)"
            )
        self.s3 = s3_client
        self.bucket = bucket
        self.source = source
        self.batch_id = batch_id
        self.partition_time = _utc(partition_time)
        self.max_part_bytes = max_part_bytes
        self.upload_chunk_bytes = upload_chunk_bytes
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
        self._parts.write_lines(lines, len(lines))

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
        """Drop buffered rows without uploading and abort open multipart uploads; no manifest will be
        written."""
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

    def _object_args(self, key: str, content_type: str, content_encoding: str | None) -> dict[str, Any]:
        """What every object-creating request carries: key, headers and server-side encryption."""
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": content_type,
            "ServerSideEncryption": self.sse,
        }
        if content_encoding is not None:
            kwargs["ContentEncoding"] = content_encoding
        if self.kms_key_id is not None:
            kwargs["SSEKMSKeyId"] = self.kms_key_id
        return kwargs

    def _put(
        self, key: str, body: bytes | bytearray, content_type: str, content_encoding: str | None = None
    ) -> None:
        try:
            self.s3.put_object(Body=body, **self._object_args(key, content_type, content_encoding))
        except BaseException:
            self._failed = True  # a batch with a missing part must never get a manifest
            raise
