"""The local stack is as durable as what it stands in for: an acknowledged S3 write survives a SIGKILL,
and a pipe load commits a file's rows and its load-history row together."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from api2snow_cli.local import s3 as local_s3
from api2snow_cli.local.pipes import LocalPipeLoader
from api2snow_cli.local.s3 import LocalS3
from api2snow_cli.local.warehouse import LocalWarehouse

pytestmark = pytest.mark.integration

BUCKET = "durability-landing"
DATABASE = "DURABLE"
PIPE_NAME = f"{DATABASE}.RAW.EVENTS_PIPE"
PART_KEY = "source=api_a/dt=2026-11-30/hour=10/batch_id=5b2e/part-0001.jsonl.gz"
ROOT = Path(__file__).resolve().parents[2]
SETUP_SQL = (
    f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.RAW",
    f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.OPS",
    f"CREATE STAGE IF NOT EXISTS {DATABASE}.RAW.LANDING URL = 's3://{BUCKET}/'",
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.RAW.EVENTS "
    "(PAYLOAD VARIANT, FILE_NAME STRING, FILE_ROW_NUMBER NUMBER, LOADED_AT TIMESTAMP_NTZ)",
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.OPS.SIBLING_WRITES (N NUMBER)",
)
PIPE_SQL = f"""CREATE PIPE IF NOT EXISTS {PIPE_NAME} AS
COPY INTO {DATABASE}.RAW.EVENTS (PAYLOAD, FILE_NAME, FILE_ROW_NUMBER, LOADED_AT)
FROM (SELECT $1, metadata$filename, metadata$file_row_number, metadata$start_scan_time
      FROM @{DATABASE}.RAW.LANDING/source=api_a/)
PATTERN = '.*part-[0-9]+[.]jsonl[.]gz'"""


def _client(s3: LocalS3) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        config=Config(retries={"max_attempts": 1}),
    )


def _part(rows: int, tag: str = "") -> bytes:
    """The same bytes on every call: gzip's header holds a time, fixed here (else the second ticks over)."""
    lines = b"".join(json.dumps({"id": f"{tag}{n}"}).encode() + b"\n" for n in range(rows))
    return gzip.compress(lines, mtime=0)


def _child(function: str, home: Path) -> subprocess.CompletedProcess:
    """Run one of this module's `_die_*` functions in a process of its own (it SIGKILLs itself)."""
    code = f"from tests.integration.test_local_durability import {function}; {function}({str(home)!r})"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


# ---- S3 --------------------------------------------------------------------------------------------


def _die_after_puts(home: str) -> None:
    s3 = LocalS3().start()
    s3.restore(BUCKET, Path(home) / "s3")
    client = _client(s3)
    client.put_object(
        Bucket=BUCKET,
        Key=PART_KEY,
        Body=_part(3),
        ContentType="application/json",
        ContentEncoding="gzip",
        ServerSideEncryption="AES256",
        Metadata={"batch": "5b2e"},
    )
    for key in ("deleted-one", "deleted-in-batch"):
        client.put_object(Bucket=BUCKET, Key=key, Body=b"short-lived")
    client.delete_object(Bucket=BUCKET, Key="deleted-one")
    client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "deleted-in-batch"}]})
    _kill_self()  # no stop(), no save: only what is on disk already survives


@pytest.fixture
def restarted(tmp_path: Path) -> Iterator[LocalS3]:
    """A LocalS3 started on the home after a child process PUT, DELETEd and was SIGKILLed."""
    child = _child("_die_after_puts", tmp_path)
    assert child.returncode == -signal.SIGKILL, child.stderr
    s3 = LocalS3().start()
    try:
        s3.restore(BUCKET, tmp_path / "s3")
        yield s3
    finally:
        s3.stop()


def test_an_object_put_survives_a_sigkill_with_its_bytes_and_headers(restarted: LocalS3) -> None:
    client = _client(restarted)
    assert client.get_object(Bucket=BUCKET, Key=PART_KEY)["Body"].read() == _part(3)
    head = client.head_object(Bucket=BUCKET, Key=PART_KEY)
    assert head["ContentType"] == "application/json"
    assert head["ContentEncoding"] == "gzip"
    assert head["ServerSideEncryption"] == "AES256"
    assert head["Metadata"] == {"batch": "5b2e"}


def test_a_deleted_object_stays_deleted(restarted: LocalS3) -> None:
    keys = [o["Key"] for o in _client(restarted).list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [PART_KEY]


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[LocalS3]:
    s3 = LocalS3().start()
    try:
        s3.restore(BUCKET, tmp_path)
        yield s3
    finally:
        s3.stop()


def _reopened(s3: LocalS3, folder: Path) -> Any:
    """What a fresh start on `folder` sees (restore drops moto's memory of the bucket and reads the disk)."""
    s3.restore(BUCKET, folder)
    return _client(s3)


def test_copy_and_multipart_completion_are_on_disk(kept: LocalS3, tmp_path: Path) -> None:
    client = _client(kept)
    client.put_object(Bucket=BUCKET, Key="src", Body=b"copied", ContentType="text/plain")
    client.copy_object(Bucket=BUCKET, Key="dst/copy", CopySource={"Bucket": BUCKET, "Key": "src"})
    upload = client.create_multipart_upload(Bucket=BUCKET, Key="big", ContentType="application/json")
    parts = [
        client.upload_part(Bucket=BUCKET, Key="big", UploadId=upload["UploadId"], PartNumber=n, Body=body)
        for n, body in ((1, b"a" * 5 * 1024 * 1024), (2, b"b"))
    ]
    client.complete_multipart_upload(
        Bucket=BUCKET,
        Key="big",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": p["ETag"]} for n, p in enumerate(parts, 1)]},
    )
    etag = client.head_object(Bucket=BUCKET, Key="big")["ETag"]

    client = _reopened(kept, tmp_path)
    assert client.get_object(Bucket=BUCKET, Key="dst/copy")["Body"].read() == b"copied"
    assert client.head_object(Bucket=BUCKET, Key="dst/copy")["ContentType"] == "text/plain"
    big = client.get_object(Bucket=BUCKET, Key="big")
    assert (big["ContentLength"], big["ETag"], big["ContentType"]) == (
        5 * 1024 * 1024 + 1,
        etag,
        "application/json",
    )


@pytest.mark.parametrize("key", ["../escaped", "a/../../escaped", "/leading", "a//b", "folder/"])
def test_a_key_that_could_escape_the_folder_is_refused(kept: LocalS3, tmp_path: Path, key: str) -> None:
    with pytest.raises(ClientError) as refused:
        _client(kept).put_object(Bucket=BUCKET, Key=key, Body=b"x")
    assert refused.value.response["Error"]["Code"] == "InvalidArgument"
    assert not (tmp_path / "escaped").exists()
    assert not [p for p in (tmp_path / BUCKET).rglob("*") if p.is_file()]


def test_a_failed_disk_write_fails_the_put_and_keeps_the_previous_object(
    kept: LocalS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(kept)
    client.put_object(Bucket=BUCKET, Key="k", Body=b"v1")

    def disk_full(path: Path, *chunks: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local_s3, "write_atomically", disk_full)
    with pytest.raises(ClientError):
        client.put_object(Bucket=BUCKET, Key="k", Body=b"v2")
    with pytest.raises(ClientError):
        client.put_object(Bucket=BUCKET, Key="new", Body=b"never acknowledged")
    assert client.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"v1"
    assert "Contents" not in client.list_objects_v2(Bucket=BUCKET, Prefix="new")


def test_a_bucket_not_kept_stays_in_memory_only(kept: LocalS3, tmp_path: Path) -> None:
    client = _client(kept)
    client.create_bucket(Bucket="durability-scratch")
    client.put_object(Bucket="durability-scratch", Key="k", Body=b"x")
    assert not (tmp_path / "durability-scratch").exists()


# ---- pipes -----------------------------------------------------------------------------------------


class Local:
    """A warehouse, a kept S3 bucket with one part file, and a pipe loader over both, on one home."""

    def __init__(self, home: Path) -> None:
        self.warehouse = LocalWarehouse(home / "warehouse", DATABASE).start()
        self.s3 = LocalS3().start()
        self.s3.restore(BUCKET, home / "s3")
        for statement in SETUP_SQL:
            self.warehouse.sql(statement)
        self.loader = self.new_loader()

    def new_loader(self) -> LocalPipeLoader:
        loader = LocalPipeLoader(
            self.warehouse.session, self.s3.client(), DATABASE, self.warehouse.connection_parameters()
        )
        loader.ensure_history_table()
        loader.register(PIPE_SQL)
        return loader

    def put(self, key: str, body: bytes) -> None:
        self.s3.client().put_object(Bucket=BUCKET, Key=key, Body=body)

    def rows_of(self, key: str) -> int:
        return self.warehouse.sql(f"SELECT COUNT(*) FROM {DATABASE}.RAW.EVENTS WHERE file_name = ?", [key])[
            0
        ][0]

    def history_of(self, key: str) -> list[tuple]:
        rows = self.warehouse.sql(
            f"SELECT status, row_count FROM {DATABASE}.OPS.LOCAL_PIPE_LOAD_HISTORY WHERE file_name = ?", [key]
        )
        return [tuple(r) for r in rows]

    def stop(self) -> None:
        self.loader.close()
        self.warehouse.stop()
        self.s3.stop()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    started = Local(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def _fail_history_writes(monkeypatch: pytest.MonkeyPatch, before: Any = None) -> None:
    """Make the `Loaded` history row fail to be written, after the file's rows went into RAW."""
    original = LocalPipeLoader._record

    def record(self: LocalPipeLoader, pipe: Any, file_name: str, rows: int, status: str, error: Any) -> None:
        if status == "Loaded":
            if before is not None:
                before()
            raise RuntimeError("history write failed")
        original(self, pipe, file_name, rows, status, error)

    monkeypatch.setattr(LocalPipeLoader, "_record", record)


def test_a_failed_history_write_leaves_no_rows_and_a_retry_loads_once(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.put(PART_KEY, _part(5))
    with monkeypatch.context() as patch:
        _fail_history_writes(patch)
        with pytest.raises(RuntimeError, match="history write failed"):
            local.loader.refresh(PIPE_NAME)
    assert local.rows_of(PART_KEY) == 0
    assert local.history_of(PART_KEY) == []  # not marked failed: the file is not at fault

    assert local.loader.refresh(PIPE_NAME)["rows_loaded"] == 5
    assert local.loader.refresh(PIPE_NAME)["files_loaded"] == 0
    assert local.rows_of(PART_KEY) == 5
    assert local.history_of(PART_KEY) == [("Loaded", 5)]


def test_a_rolled_back_load_keeps_what_the_shared_session_wrote_meanwhile(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    def sibling_task_writes() -> None:  # a parallel task of the graph, on the stack's one Session
        thread = threading.Thread(
            target=lambda: local.warehouse.sql(f"INSERT INTO {DATABASE}.OPS.SIBLING_WRITES VALUES (1)")
        )
        thread.start()
        thread.join()

    local.put(PART_KEY, _part(2))
    _fail_history_writes(monkeypatch, before=sibling_task_writes)
    with pytest.raises(RuntimeError):
        local.loader.refresh(PIPE_NAME)
    assert local.rows_of(PART_KEY) == 0
    assert local.warehouse.sql(f"SELECT COUNT(*) FROM {DATABASE}.OPS.SIBLING_WRITES")[0][0] == 1


def test_a_file_that_does_not_load_is_recorded_failed_and_not_retried(local: Local) -> None:
    local.put(PART_KEY, gzip.compress(b'{"id": 1}\n{not json\n'))
    assert local.loader.refresh(PIPE_NAME)["files_failed"] == [PART_KEY]
    assert local.loader.refresh(PIPE_NAME)["files_failed"] == []
    assert local.rows_of(PART_KEY) == 0
    [(status, rows)] = local.history_of(PART_KEY)
    assert (status, rows) == ("Load failed", 0)
    assert "invalid JSON" in local.loader.load_errors(f"{DATABASE}.RAW.EVENTS", [PART_KEY])[PART_KEY]


def test_rows_in_raw_without_a_history_row_are_not_loaded_again(local: Local) -> None:
    older = PART_KEY.replace("part-0001", "part-0002")
    local.put(PART_KEY, _part(3))
    local.put(older, _part(4))
    local.warehouse.sql(  # what an older loader left when killed between its two statements
        f"INSERT INTO {DATABASE}.RAW.EVENTS (payload, file_name, file_row_number) "
        "SELECT PARSE_JSON('{\"id\": 1}'), ?, 1 UNION ALL SELECT PARSE_JSON('{\"id\": 2}'), ?, 2",
        [older, older],
    )
    result = local.new_loader().refresh(PIPE_NAME)
    assert (result["files_loaded"], result["rows_loaded"]) == (1, 3)
    assert local.rows_of(older) == 2
    assert local.history_of(older) == [("Loaded", 2)]
    assert local.rows_of(PART_KEY) == 3


def _die_between_rows_and_history(home: str) -> None:
    local = Local(Path(home))
    local.put(PART_KEY, _part(4))
    original = LocalPipeLoader._record

    def record(self: LocalPipeLoader, pipe: Any, file_name: str, rows: int, status: str, error: Any) -> None:
        if status == "Loaded":
            _kill_self()  # the file's rows are in RAW, inside the uncommitted transaction
        original(self, pipe, file_name, rows, status, error)

    LocalPipeLoader._record = record  # type: ignore[method-assign]
    local.loader.refresh(PIPE_NAME)


def test_a_kill_between_rows_and_history_leaves_neither_and_the_next_refresh_loads_once(
    tmp_path: Path,
) -> None:
    child = _child("_die_between_rows_and_history", tmp_path)
    assert child.returncode == -signal.SIGKILL, child.stderr
    local = Local(tmp_path)
    try:
        assert local.rows_of(PART_KEY) == 0
        assert local.history_of(PART_KEY) == []
        assert local.loader.refresh(PIPE_NAME)["rows_loaded"] == 4  # the part survived the kill too
        assert local.loader.refresh(PIPE_NAME)["files_loaded"] == 0
        assert local.rows_of(PART_KEY) == 4
    finally:
        local.stop()
