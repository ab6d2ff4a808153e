"""Unit tests for api2snow.staging against moto's real S3 HTTP server."""

from __future__ import annotations

import gzip
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import boto3
import pytest
from api2snow.staging import (
    Manifest,
    S3BatchWriter,
    manifest_key,
    part_key,
    partition_prefix,
    reject_key,
)
from botocore.config import Config
from moto.server import ThreadedMotoServer

PARTITION_TIME = datetime(2026, 11, 26, 7, 59, 58, tzinfo=UTC)


@pytest.fixture(scope="module")
def s3():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    try:
        yield client
    finally:
        server.stop()


@pytest.fixture
def bucket(s3):
    name = f"stage-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _keys(s3, bucket, prefix=""):
    resp = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for obj in resp.get("Contents", []))


def _read_jsonl_gz(s3, bucket, key):
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).decode("utf-8").splitlines()]


def _records(n, batch_id="b-1", seed=7):
    rng = random.Random(seed)
    return [
        {
            "event_id": f"a-{i:08d}",
            "source": "api_a",
            "event_type": "detection",
            "camera_id": f"cam-{rng.randrange(1000):03d}",
            "category": rng.choice(["person", "vehicle", "bicycle"]),
            "confidence": round(rng.random(), 4),
            "occurred_at": f"2026-11-26T07:{rng.randrange(60):02d}:00.{rng.randrange(10**6):06d}",
            "updated_at": "2026-11-26T08:00:01.000000",
            "duration_ms": rng.randrange(10_000),
            "attributes": {"zone": rng.choice(["entrance", "exit", "lot"]), "note": "é" * rng.randrange(4)},
            "_batch_id": batch_id,
        }
        for i in range(n)
    ]


# ------------------------------------------------------------------------------------------------- keys


def test_key_layout_for_fixed_partition_time():
    assert partition_prefix("api_a", PARTITION_TIME) == "source=api_a/dt=2026-11-26/hour=07/"
    assert part_key("api_a", "b-1", PARTITION_TIME, 1) == (
        "source=api_a/dt=2026-11-26/hour=07/batch_id=b-1/part-0001.jsonl.gz"
    )
    assert part_key("api_a", "b-1", PARTITION_TIME, 12, key_prefix="raw/") == (
        "raw/source=api_a/dt=2026-11-26/hour=07/batch_id=b-1/part-0012.jsonl.gz"
    )
    assert reject_key("api_b", "b-9", PARTITION_TIME, 3, key_prefix="raw") == (
        "raw/_rejects/source=api_b/dt=2026-11-26/hour=07/batch_id=b-9/rejects-0003.jsonl.gz"
    )
    assert manifest_key("api_c", "b-2") == "_manifests/source=api_c/batch_id=b-2.json"
    assert manifest_key("api_c", "b-2", key_prefix="raw/") == "raw/_manifests/source=api_c/batch_id=b-2.json"


def test_partition_time_converted_to_utc():
    # 00:30 at +02:00 is 22:30 UTC the previous day; naive times are taken as UTC.
    plus_two = datetime(2026, 11, 27, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert partition_prefix("api_a", plus_two) == "source=api_a/dt=2026-11-26/hour=22/"
    assert partition_prefix("api_a", datetime(2026, 1, 2, 3, 4)) == "source=api_a/dt=2026-01-02/hour=03/"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"source": "api/a"},
        {"batch_id": ""},
        {"batch_id": "x=y"},
        {"sse": "none"},
        {"kms_key_id": "key-1"},  # with AES256
        {"max_part_bytes": 0},
    ],
)
def test_constructor_rejects_bad_arguments(kwargs):
    args = {"source": "api_a", "batch_id": "b-1", **kwargs}
    with pytest.raises(ValueError):
        S3BatchWriter(None, "bucket", partition_time=PARTITION_TIME, **args)


# ------------------------------------------------------------------------------------------ round trip


def test_single_part_round_trip_and_manifest(s3, bucket):
    records = _records(25)
    with S3BatchWriter(s3, bucket, "api_a", "b-1", PARTITION_TIME) as writer:
        for r in records:
            writer.write(r)
    manifest = writer.close()  # idempotent after the with-block closed it

    data_key = "source=api_a/dt=2026-11-26/hour=07/batch_id=b-1/part-0001.jsonl.gz"
    m_key = "_manifests/source=api_a/batch_id=b-1.json"
    assert _keys(s3, bucket) == [m_key, data_key]
    assert _read_jsonl_gz(s3, bucket, data_key) == records

    size = s3.head_object(Bucket=bucket, Key=data_key)["ContentLength"]
    expected = Manifest(
        batch_id="b-1",
        source="api_a",
        bucket=bucket,
        parts=[{"key": data_key, "rows": 25, "bytes": size}],
        rejects=[],
        staged_rows=25,
        rejected_rows=0,
    )
    assert manifest == expected
    stored = s3.get_object(Bucket=bucket, Key=m_key)["Body"].read()
    assert json.loads(stored) == {
        "batch_id": "b-1",
        "source": "api_a",
        "bucket": bucket,
        "parts": [{"key": data_key, "rows": 25, "bytes": size}],
        "rejects": [],
        "staged_rows": 25,
        "rejected_rows": 0,
    }
    assert Manifest.from_json(stored) == expected
    assert json.loads(manifest.to_json()) == json.loads(stored)


def test_object_metadata_and_encryption(s3, bucket):
    with S3BatchWriter(s3, bucket, "api_a", "b-1", PARTITION_TIME, key_prefix="raw/") as writer:
        writer.write(_records(1)[0])
        writer.reject({"id": 1}, "bad")
    keys = _keys(s3, bucket)
    assert keys == [
        "raw/_manifests/source=api_a/batch_id=b-1.json",
        "raw/_rejects/source=api_a/dt=2026-11-26/hour=07/batch_id=b-1/rejects-0001.jsonl.gz",
        "raw/source=api_a/dt=2026-11-26/hour=07/batch_id=b-1/part-0001.jsonl.gz",
    ]
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentType"] == "application/json"
        if key.endswith(".gz"):
            assert head["ContentEncoding"] == "gzip"


def test_rollover_produces_parts_with_exact_row_counts(s3, bucket):
    max_part_bytes = 2_000
    records = _records(300)
    with S3BatchWriter(s3, bucket, "api_a", "b-roll", PARTITION_TIME, max_part_bytes=max_part_bytes) as w:
        for r in records:
            w.write(r)
        assert w.staged_rows == 300
    manifest = w.manifest

    prefix = partition_prefix("api_a", PARTITION_TIME) + "batch_id=b-roll/"
    keys = _keys(s3, bucket, prefix)
    n = len(manifest.parts)
    assert n >= 5
    assert keys == [f"{prefix}part-{i:04d}.jsonl.gz" for i in range(1, n + 1)]
    assert [p["key"] for p in manifest.parts] == keys

    round_trip = []
    for part in manifest.parts:
        rows = _read_jsonl_gz(s3, bucket, part["key"])
        head = s3.head_object(Bucket=bucket, Key=part["key"])
        assert part["rows"] == len(rows) > 0
        assert part["bytes"] == head["ContentLength"]
        assert head["ServerSideEncryption"] == "AES256"
        round_trip.extend(rows)
    assert sum(p["rows"] for p in manifest.parts) == manifest.staged_rows == 300
    assert round_trip == records  # nothing lost, duplicated or reordered across parts

    # Every full part reached the limit, without overshooting by more than one flush interval + a record.
    for part in manifest.parts[:-1]:
        assert max_part_bytes <= part["bytes"] <= max_part_bytes + 600
    assert manifest.parts[-1]["bytes"] <= max_part_bytes + 600


def test_large_part_limit_keeps_one_part(s3, bucket):
    with S3BatchWriter(s3, bucket, "api_a", "b-big", PARTITION_TIME) as w:
        for r in _records(2_000):
            w.write(r)
    assert len(w.manifest.parts) == 1
    assert w.manifest.parts[0]["rows"] == 2_000


def test_rejects_with_reasons(s3, bucket):
    raws = [{"id": "a-1", "confidence": 1.7}, {"id": "a-2"}, "not an object", {"bytes": b"\x00"}]
    reasons = ["confidence out of range: 1.7", "missing required field camera_id", "not a dict", "odd"]
    with S3BatchWriter(s3, bucket, "api_b", "b-rej", PARTITION_TIME) as w:
        w.write(_records(1, batch_id="b-rej")[0])
        for raw, reason in zip(raws, reasons, strict=True):
            w.reject(raw, reason)
    key = "_rejects/source=api_b/dt=2026-11-26/hour=07/batch_id=b-rej/rejects-0001.jsonl.gz"
    assert _read_jsonl_gz(s3, bucket, key) == [
        {
            "reason": "confidence out of range: 1.7",
            "record": {"id": "a-1", "confidence": 1.7},
            "_batch_id": "b-rej",
        },
        {"reason": "missing required field camera_id", "record": {"id": "a-2"}, "_batch_id": "b-rej"},
        {"reason": "not a dict", "record": "not an object", "_batch_id": "b-rej"},
        {"reason": "odd", "record": {"bytes": "b'\\x00'"}, "_batch_id": "b-rej"},  # unserialisable -> repr
    ]
    size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    assert w.manifest.rejects == [{"key": key, "rows": 4, "bytes": size}]
    assert (w.manifest.staged_rows, w.manifest.rejected_rows) == (1, 4)


def test_rejects_roll_over_too(s3, bucket):
    with S3BatchWriter(s3, bucket, "api_a", "b-rr", PARTITION_TIME, max_part_bytes=1_000) as w:
        for i, raw in enumerate(_records(100)):
            w.reject(raw, f"reason {i}")
    assert len(w.manifest.rejects) > 1
    assert w.manifest.parts == []
    rows = [row for r in w.manifest.rejects for row in _read_jsonl_gz(s3, bucket, r["key"])]
    assert [row["reason"] for row in rows] == [f"reason {i}" for i in range(100)]
    assert w.manifest.rejects[1]["key"].endswith("/batch_id=b-rr/rejects-0002.jsonl.gz")


def test_empty_batch_writes_only_manifest(s3, bucket):
    with S3BatchWriter(s3, bucket, "api_a", "b-empty", PARTITION_TIME) as w:
        pass
    assert _keys(s3, bucket) == ["_manifests/source=api_a/batch_id=b-empty.json"]
    stored = json.loads(s3.get_object(Bucket=bucket, Key=_keys(s3, bucket)[0])["Body"].read())
    assert stored == {
        "batch_id": "b-empty",
        "source": "api_a",
        "bucket": bucket,
        "parts": [],
        "rejects": [],
        "staged_rows": 0,
        "rejected_rows": 0,
    }
    assert w.manifest.staged_rows == 0


def test_exception_in_with_block_leaves_no_manifest(s3, bucket):
    with (
        pytest.raises(RuntimeError, match="source API failed"),
        S3BatchWriter(s3, bucket, "api_a", "b-fail", PARTITION_TIME, max_part_bytes=2_000) as w,
    ):
        for r in _records(200):
            w.write(r)
        raise RuntimeError("source API failed")
    keys = _keys(s3, bucket)
    assert not any(k.startswith("_manifests/") for k in keys)
    # Full parts uploaded before the failure stay; the buffered tail is dropped.
    assert len(keys) == len(w.manifest.parts) >= 1
    with pytest.raises(RuntimeError):
        w.write(_records(1)[0])
    with pytest.raises(RuntimeError, match="aborted"):
        w.close()
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_write_after_close_fails(s3, bucket):
    w = S3BatchWriter(s3, bucket, "api_a", "b-c", PARTITION_TIME)
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.write({"x": 1})
    with pytest.raises(RuntimeError, match="closed"):
        w.reject({"x": 1}, "r")


def test_failed_upload_means_no_manifest():
    class FailingS3:
        def __init__(self):
            self.calls = []

        def put_object(self, **kwargs):
            self.calls.append(kwargs["Key"])
            raise OSError("network down")

    fake = FailingS3()
    w = S3BatchWriter(fake, "bkt", "api_a", "b-x", PARTITION_TIME)
    w.write({"a": 1})
    with pytest.raises(OSError):
        w.close()
    with pytest.raises(RuntimeError, match="aborted"):
        w.close()
    assert fake.calls == ["source=api_a/dt=2026-11-26/hour=07/batch_id=b-x/part-0001.jsonl.gz"]


def test_kms_parameters_passed():
    class RecordingS3:
        def __init__(self):
            self.calls = []

        def put_object(self, **kwargs):
            body = kwargs.pop("Body")
            kwargs["_len"] = len(body.read() if hasattr(body, "read") else body)
            self.calls.append(kwargs)

    fake = RecordingS3()
    with S3BatchWriter(fake, "bkt", "api_a", "b-k", PARTITION_TIME, sse="aws:kms", kms_key_id="alias/k") as w:
        w.write({"a": 1})
    assert [c["Key"] for c in fake.calls] == [
        "source=api_a/dt=2026-11-26/hour=07/batch_id=b-k/part-0001.jsonl.gz",
        "_manifests/source=api_a/batch_id=b-k.json",
    ]
    for call in fake.calls:
        assert call["ServerSideEncryption"] == "aws:kms"
        assert call["SSEKMSKeyId"] == "alias/k"
        assert call["Bucket"] == "bkt"
        assert call["ContentType"] == "application/json"
    assert fake.calls[0]["ContentEncoding"] == "gzip"
    assert "ContentEncoding" not in fake.calls[1]


def test_parts_are_deterministic(s3, bucket):
    """mtime=0 in the gzip header: the same rows give byte-identical objects (stable ETags)."""
    etags = []
    for batch in ("b-d1", "b-d2"):
        with S3BatchWriter(s3, bucket, "api_a", batch, PARTITION_TIME) as w:
            for r in _records(50):
                w.write(r)
        etags.append(s3.head_object(Bucket=bucket, Key=w.manifest.parts[0]["key"])["ETag"])
    assert etags[0] == etags[1]


# ------------------------------------------------------------------------------------------- multipart

CHUNK = 5 * 1024 * 1024  # S3's (and moto's) smallest multipart part


class _Recording:
    """The real moto client, recording which S3 operations the writer sent (and the body sizes)."""

    def __init__(self, client, fail_on=None):
        self._client = client
        self.calls = []
        self._fail_on = fail_on

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(**kwargs):
            body = kwargs.get("Body")
            self.calls.append((name, len(body) if isinstance(body, bytes | bytearray) else None))
            if name == self._fail_on:
                raise OSError(f"{name} failed")
            return method(**kwargs)

        return call


def _incompressible(n, seed=3):
    """Records whose text gzip cannot shrink much, so a few thousand fill several upload chunks."""
    rng = random.Random(seed)
    return [
        {"event_id": f"a-{i:08d}", "blob": rng.randbytes(1500).hex(), "_batch_id": "b-m"} for i in range(n)
    ]


def test_a_large_part_streams_as_a_multipart_upload_in_bounded_chunks(s3, bucket):
    rec = _Recording(s3)
    records = _incompressible(9_000)  # ~27 MB of lines, ~14 MB compressed: three chunks
    with S3BatchWriter(rec, bucket, "api_a", "b-m", PARTITION_TIME, upload_chunk_bytes=CHUNK) as w:
        for start in range(0, len(records), 500):  # page by page, as ingest feeds it
            w.write_many(records[start : start + 500])
    ops = [name for name, _ in rec.calls]
    assert ops[0] == "create_multipart_upload" and "complete_multipart_upload" in ops
    part_sizes = [size for name, size in rec.calls if name == "upload_part"]
    assert len(part_sizes) >= 3
    assert all(CHUNK <= size <= CHUNK + 2 * 1024 * 1024 for size in part_sizes[:-1])  # a chunk + one page
    assert [name for name in ops if name == "put_object"] == ["put_object"]  # the manifest only
    (part,) = w.manifest.parts
    head = s3.head_object(Bucket=bucket, Key=part["key"])
    assert (head["ServerSideEncryption"], head["ContentEncoding"]) == ("AES256", "gzip")
    assert part["bytes"] == head["ContentLength"] == sum(part_sizes)
    assert part["rows"] == 9_000
    assert _read_jsonl_gz(s3, bucket, part["key"]) == records
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_part_smaller_than_a_chunk_is_one_put(s3, bucket):
    rec = _Recording(s3)
    with S3BatchWriter(rec, bucket, "api_a", "b-small", PARTITION_TIME, upload_chunk_bytes=CHUNK) as w:
        w.write_many(_records(50))
    assert [name for name, _ in rec.calls] == ["put_object", "put_object"]  # the part, the manifest


@pytest.mark.parametrize("failing", ["upload_part", "complete_multipart_upload"])
def test_a_failed_multipart_step_aborts_the_upload_and_writes_no_manifest(s3, bucket, failing):
    rec = _Recording(s3, fail_on=failing)
    w = S3BatchWriter(rec, bucket, "api_a", "b-mf", PARTITION_TIME, upload_chunk_bytes=CHUNK)
    records = _incompressible(9_000)
    with pytest.raises(OSError, match=f"{failing} failed"), w:
        for start in range(0, len(records), 500):
            w.write_many(records[start : start + 500])
    assert "abort_multipart_upload" in [name for name, _ in rec.calls]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert _keys(s3, bucket) == []  # no part, no manifest
    with pytest.raises(RuntimeError, match="aborted"):
        w.close()


def test_an_exception_mid_part_aborts_its_open_upload(s3, bucket):
    records = _incompressible(4_000)  # more than one chunk, less than a part
    with (
        pytest.raises(RuntimeError, match="API went away"),
        S3BatchWriter(s3, bucket, "api_a", "b-mx", PARTITION_TIME, upload_chunk_bytes=CHUNK) as w,
    ):
        w.write_many(records)
        raise RuntimeError("API went away")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert _keys(s3, bucket) == []


def test_removing_a_batch_aborts_an_upload_a_killed_run_left_open(s3, bucket):
    from api2snow.staging import delete_batch_objects

    key = part_key("api_a", "b-k", PARTITION_TIME, 1)
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ServerSideEncryption="AES256")
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 100)
    other = s3.create_multipart_upload(Bucket=bucket, Key=part_key("api_a", "b-other", PARTITION_TIME, 1))
    delete_batch_objects(s3, bucket, "api_a", "b-k", partition_prefix("api_a", PARTITION_TIME))
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [other["UploadId"]]  # another batch's upload is not touched


def test_an_upload_chunk_below_s3s_minimum_is_refused():
    with pytest.raises(ValueError, match="upload_chunk_bytes must be at least 5242880"):
        S3BatchWriter(object(), "bkt", "api_a", "b-1", PARTITION_TIME, upload_chunk_bytes=1024 * 1024)
