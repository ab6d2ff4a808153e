"""Local S3: moto's threaded server on loopback, reached by boto3 through endpoint_url.

As durable as S3: moto keeps objects in memory, so a bucket opened with `restore(bucket, folder)` is kept
on disk too, at `folder/<bucket>/<key>`, and every PUT, copy, completed multipart upload and DELETE is on
disk (atomic rename, fsync) before moto answers it. A process killed right after a PUT keeps the object;
the next start loads the folder back, and nothing has to be saved on stop.

How: moto runs in this process, so the request handlers that finish an object with its metadata (put,
copy) and the backend methods that complete an upload or delete a key (DeleteObjects goes through
delete_object too) are wrapped once. For a kept bucket the wrapper holds the key's lock, lets moto do the
work, then writes what moto now holds for that key, or removes it. If the disk write fails, moto's copy
of the key goes back to what the disk holds and the request fails.

One file per object: a header line (`api2snow-s3-object 1 {json}`) with what a faithful restore needs
(headers such as Content-Type and Content-Encoding, SSE, storage class, ETag, LastModified), then the
bytes, so object and metadata change in one rename. A file without the header (a home from before) is
raw bytes. A key maps to a path segment by segment; a key with an empty, `.` or `..` segment cannot be
kept and is refused (400). Tags, ACLs and object versions are not kept.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

LOCAL_AWS_KEY = "local-access-key"
LOCAL_AWS_SECRET = "local-secret-key"  # moto accepts any credentials; these only exist on loopback
LOCAL_AWS_ROLE_ARN = "arn:aws:iam::000000000000:role/api2snow-local"  # the local AWS_IAM integration's role

HEADER = b"api2snow-s3-object 1 "
TEMP_SUFFIX = ".api2snow-tmp"  # a write in progress; a leftover of a kill is removed on restore
LAYOUT_MARKER = ".api2snow-s3-layout"  # in the root: objects live in one folder per bucket
RAW_FILE_METADATA: dict[str, Any] = {"encryption": "AES256"}  # what a headerless file was restored with

_kept: dict[str, tuple[int, Path]] = {}  # bucket -> (id of the LocalS3 keeping it, its folder)
_kept_lock = threading.Lock()
_key_locks = [threading.RLock() for _ in range(64)]  # one write at a time per key, disk in moto's order


class UnstorableKey(ValueError):
    """A key that does not map to exactly one file inside its bucket's folder."""


# ---- objects on disk -------------------------------------------------------------------------------


def object_path(bucket_folder: Path, key: str) -> Path:
    """The file that keeps `key`; refuses a key that could escape the folder or collide with a folder."""
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\0" in key or key.endswith(TEMP_SUFFIX):
        raise UnstorableKey(f"the local S3 cannot keep the key {key!r} on disk")
    return bucket_folder.joinpath(*parts)


def _fsync_folder(folder: Path) -> None:
    """Make a rename or a new entry in `folder` durable (POSIX; elsewhere the rename alone)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_folders(folder: Path) -> None:
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(exist_ok=True)  # a concurrent write may create it first
        _fsync_folder(created.parent)


def write_atomically(path: Path, *chunks: bytes) -> None:
    """Write to a temporary file beside `path`, fsync it, rename it over `path`: old or new, never half."""
    _make_folders(path.parent)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def remove_durably(path: Path) -> None:
    if not path.is_file():
        return
    path.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def encode_header(metadata: dict[str, Any]) -> bytes:
    return HEADER + json.dumps(metadata, separators=(",", ":"), default=str).encode() + b"\n"


def read_object(path: Path) -> tuple[dict[str, Any], bytes]:
    """An object's metadata and bytes; a file without the header is raw bytes."""
    data = path.read_bytes()
    if not data.startswith(HEADER):
        return dict(RAW_FILE_METADATA), data
    end = data.index(b"\n")
    return json.loads(data[len(HEADER) : end]), data[end + 1 :]


def _object_files(bucket_folder: Path) -> Iterator[Path]:
    """Every kept object under the folder, in key order; leftovers of interrupted writes are removed."""
    for path in sorted(p for p in bucket_folder.rglob("*") if p.is_file()):
        if path.name.endswith(TEMP_SUFFIX):
            path.unlink(missing_ok=True)
        else:
            yield path


def bucket_folder(root: Path, bucket: str) -> Path:
    """`root/<bucket>`, after moving the objects of a home from before (kept directly in `root`, the
    stack's one bucket) into it. Every step is a rename or is repeatable, so a kill midway resumes."""
    previous = root.with_name(root.name + ".before-buckets")
    marker = root / LAYOUT_MARKER
    if not previous.exists() and not marker.exists() and root.is_dir() and any(root.iterdir()):
        root.rename(previous)
    _make_folders(root)
    if not marker.exists():
        write_atomically(marker, b"one folder per bucket\n")
    if previous.exists():
        previous.rename(root / bucket)
        _fsync_folder(root)
    return root / bucket


# ---- moto's memory <-> disk -------------------------------------------------------------------------


def _metadata_of(key: Any) -> dict[str, Any]:
    return {
        "metadata": dict(key.metadata),
        "encryption": key.encryption,
        "kms_key_id": key.kms_key_id,
        "bucket_key_enabled": key.bucket_key_enabled,
        "storage_class": key.storage_class,
        "etag": key.etag.strip('"'),
        "last_modified": key.last_modified.isoformat(),
    }


def _put_into_moto(backend: Any, bucket: str, key: str, metadata: dict[str, Any], body: bytes) -> None:
    """Recreate an object in moto as a PUT with the same headers and SSE would have."""
    new_key = backend.put_object(
        bucket,
        key,
        body,
        storage=metadata.get("storage_class"),
        etag=metadata.get("etag"),
        encryption=metadata.get("encryption"),
        kms_key_id=metadata.get("kms_key_id"),
        bucket_key_enabled=metadata.get("bucket_key_enabled"),
        disable_notification=True,
    )
    new_key.set_metadata(dict(metadata.get("metadata") or {}))
    if metadata.get("last_modified"):
        new_key.last_modified = datetime.fromisoformat(metadata["last_modified"])


def _drop_from_moto(backend: Any, bucket: str, key: str) -> None:
    keys = backend.get_bucket(bucket).keys
    if key in keys:
        keys.pop(key)


def _write_key_to_disk(backend: Any, bucket: str, key: str, path: Path) -> None:
    """Make the disk hold what moto now holds for `key`; on a disk error, moto goes back to the disk."""
    from moto.s3.models import FakeKey

    current = backend.get_bucket(bucket).keys.get(key)
    try:
        if isinstance(current, FakeKey):
            write_atomically(path, encode_header(_metadata_of(current)), current.value)
        else:
            remove_durably(path)
    except OSError:
        if path.is_file():
            _put_into_moto(backend, bucket, key, *read_object(path))
        else:
            _drop_from_moto(backend, bucket, key)
        raise


Target = tuple[Any, str, str] | None  # moto's backend, the bucket and the key a call changes


def _durable(method: Callable[..., Any], target: Callable[..., Target], writes: bool) -> Callable[..., Any]:
    """Wrap a moto method that changes one key (`target` finds it in the arguments): for a kept bucket,
    the change is on disk before the method returns."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = target(self, *args, **kwargs)
        kept = _kept.get(found[1]) if found else None
        if found is None or kept is None:
            return method(self, *args, **kwargs)
        backend, bucket, key = found
        try:
            path = object_path(kept[1], key)
        except UnstorableKey as exc:
            if not writes:  # such a key cannot exist in a kept bucket: nothing to delete on disk
                return method(self, *args, **kwargs)
            from moto.s3.exceptions import InvalidArgumentError

            raise InvalidArgumentError(str(exc), "Key", key) from None
        with _key_locks[hash((bucket, key)) % len(_key_locks)]:
            result = method(self, *args, **kwargs)
            _write_key_to_disk(backend, bucket, key, path)
        return result

    wrapper._api2snow_durable = True  # type: ignore[attr-defined]
    return wrapper


def _request_target(response: Any, *args: Any, **kwargs: Any) -> Target:
    return response.backend, response.bucket_name, response.parse_key_name()


def _delete_target(backend: Any, bucket: str, key: str, *args: Any, **kwargs: Any) -> Target:
    return backend, bucket, key


def _upload_target(backend: Any, bucket: str, upload_id: str, *args: Any, **kwargs: Any) -> Target:
    upload = backend.get_bucket(bucket).multiparts.get(upload_id) if bucket in _kept else None
    return (backend, bucket, upload.key_name) if upload else None


def install_durability() -> None:
    """Wrap moto's S3 once per process; buckets not kept by a LocalS3 behave exactly as before."""
    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response

    if getattr(S3Backend.delete_object, "_api2snow_durable", False):
        return
    S3Response.put_object = _durable(S3Response.put_object, _request_target, writes=True)
    S3Response.copy_object = _durable(S3Response.copy_object, _request_target, writes=True)
    S3Backend.complete_multipart_upload = _durable(
        S3Backend.complete_multipart_upload, _upload_target, writes=True
    )
    S3Backend.delete_object = _durable(S3Backend.delete_object, _delete_target, writes=False)


def _backend_holding(bucket: str) -> Any:
    from moto.s3.models import s3_backends

    partition, account = s3_backends.bucket_accounts[bucket]
    return s3_backends[account][partition]


# ---- the server ------------------------------------------------------------------------------------


class LocalS3:
    def __init__(self, region: str = "us-east-1", host: str = "127.0.0.1") -> None:
        self.region = region
        self.host = host
        self._server: Any = None
        self.endpoint_url = ""
        self._kept_buckets: list[str] = []

    def start(self) -> LocalS3:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=self.host, port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=LOCAL_AWS_KEY,
            aws_secret_access_key=LOCAL_AWS_SECRET,
            config=Config(request_checksum_calculation="when_required"),
        )

    def ensure_bucket(self, bucket: str) -> None:
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)

    def restore(self, bucket: str, folder: Path) -> int:
        """Make `bucket` hold exactly the objects kept in `folder/<bucket>`, then keep it there: every
        later change is on disk before S3 answers. Returns how many objects were loaded."""
        install_durability()
        self.ensure_bucket(bucket)
        kept_in = bucket_folder(folder, bucket)
        with _kept_lock:
            _kept.pop(bucket, None)  # moto's memory is per process: the latest LocalS3 keeps the bucket
        backend = _backend_holding(bucket)
        for key in list(backend.get_bucket(bucket).keys):  # objects of an earlier LocalS3 in this process
            _drop_from_moto(backend, bucket, key)
        count = 0
        for path in _object_files(kept_in):
            _put_into_moto(backend, bucket, path.relative_to(kept_in).as_posix(), *read_object(path))
            count += 1
        with _kept_lock:
            _kept[bucket] = (id(self), kept_in)
        self._kept_buckets.append(bucket)
        return count

    def stop(self) -> None:
        with _kept_lock:
            for bucket in self._kept_buckets:
                if _kept.get(bucket, (None,))[0] == id(self):
                    del _kept[bucket]
        self._kept_buckets.clear()
        if self._server is not None:
            self._server.stop()
            self._server = None
