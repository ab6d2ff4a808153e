"""A record that cannot be represented faithfully downstream is rejected alone, with a specific reason."""

from __future__ import annotations

import gzip
import json
from datetime import datetime

import boto3
import pytest
from api2snow.sources import get_source
from api2snow.staging import MAX_REJECT_LINE_BYTES, S3BatchWriter
from api2snow.transform import BatchDeduper, RecordProcessor, sql_type_bounds
from api2snow.wire import OversizedNumber, json_body, require_int, require_number, require_str
from moto import mock_aws

from tests.unit.entity_schemas import EVENT_SCHEMA

GOOD_A = {
    "id": "a-1",
    "type": "DETECTION",
    "camera_id": "cam-007",
    "category": "Person",
    "confidence": 0.87,
    "occurred_at": "2026-11-26T09:59:58.123+02:00",
    "updated_at": "2026-11-26T08:00:01.000Z",
    "duration_ms": 1200,
    "attributes": {"zone": "entrance"},
}
GOOD_B = {
    "eventId": 1,
    "eventKind": "MOTION",
    "cameraRef": "cam-001",
    "label": "Animal",
    "score": 50,
    "timestampMs": 1764150000000,
    "modifiedMs": 1764150000001,
    "durationSec": 0.5,
}


def _processor(source_name: str, max_record_bytes: int = 8 * 1024 * 1024) -> RecordProcessor:
    source = get_source(source_name)
    return RecordProcessor(
        source.normalize, EVENT_SCHEMA, "event_id", "updated_at", "batch-1", max_record_bytes=max_record_bytes
    )


def _page(source_name: str, raws: list) -> tuple[list[dict], list[tuple]]:
    page = _processor(source_name).process_page(raws)
    return [json.loads(line) for line in page.lines], page.rejected


# ------------------------------------------------------------------------------------------- wire


def test_json_body_keeps_bad_text_and_huge_numbers_inside_their_record():
    body = (
        b'\xef\xbb\xbf{"items": [{"a": "\\ud800"}, {"a": "caf\xe9"}, {"n": ' + b"9" * 5000 + b'}, {"ok": 1}]}'
    )
    items = json_body(body)["items"]
    assert items[0]["a"] == "\ud800"  # an unpaired surrogate, rejected later when encoded
    assert items[1]["a"] == "caf\udce9"  # a byte that is not UTF-8, kept as a lone surrogate
    assert isinstance(items[2]["n"], OversizedNumber) and len(items[2]["n"]) == 5000
    assert items[3] == {"ok": 1}


_BODIES = [
    b'{"items": [{"id": "a-1", "n": 1, "x": 0.1, "e": 1e5, "z": -0.0, "m": -0, "t": true, "u": null}]}',
    b'{"n": 9223372036854775807, "m": -9223372036854775808, "u": 18446744073709551615}',  # 64 bits: exact
    b'{"n": 18446744073709551616}',  # 65 bits: orjson would give a float
    b'{"n": -9223372036854775809}',
    b'{"n": 123456789012345678901234567890.5}',
    b'{"id": "x1234567890123456789", "n": 1}',  # the long run of digits is text: still the same values
    b'{"a": 1, "a": 2}',
    b'{"a": "\\u00e9\\ud83d\\ude00"}',
    b'{"a": "\\ud800"}',
    b'{"a": "caf\xe9"}',
    b'\xef\xbb\xbf{"a": 1}',
    b"[NaN, Infinity, -Infinity, 1e400]",
    b" [1, [2, [3, {}]]] ",
]


@pytest.mark.parametrize("body", _BODIES)
def test_json_body_gives_the_same_values_with_orjson_as_with_the_standard_library(monkeypatch, body):
    from api2snow import wire

    if wire._orjson is None:
        pytest.skip("orjson is not installed here")
    fast = json_body(body)
    monkeypatch.setattr(wire, "_orjson", None)
    slow = json_body(body)
    assert repr(fast) == repr(slow)  # repr: 1 and 1.0, and NaN, compare as themselves
    assert [type(v) for v in _leaves(fast)] == [type(v) for v in _leaves(slow)]


def _leaves(value):
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def test_json_body_still_fails_on_a_truncated_page():
    with pytest.raises(ValueError):
        json_body(b'{"items": [{"a": 1}')


@pytest.mark.parametrize(
    ("reader", "value", "message"),
    [
        (require_str, 123, "f: expected string, got integer"),
        (require_str, ["x"], "f: expected string, got array"),
        (require_int, 4.5, "f: expected integer, got number"),
        (require_int, True, "f: expected integer, got boolean"),
        (require_int, "42", "f: expected integer, got string"),
        (require_number, "87", "f: expected number, got string"),
        (require_number, False, "f: expected number, got boolean"),
        (require_number, OversizedNumber("9" * 5000), "f: expected number, got number with 5000 digits"),
    ],
)
def test_readers_refuse_other_json_types(reader, value, message):
    with pytest.raises(TypeError) as caught:
        reader({"f": value}, "f")
    assert str(caught.value) == message


def test_non_finite_numbers_are_out_of_range():
    with pytest.raises(ValueError, match="f: number out of range: inf"):
        require_number({"f": float("inf")}, "f")


# -------------------------------------------------------------------------------------- validation


def test_sql_type_bounds():
    assert sql_type_bounds("NUMBER(18,0)") == (-(10**18 - 1), 10**18 - 1)
    assert sql_type_bounds("NUMBER") == (-(10**38 - 1), 10**38 - 1)
    assert sql_type_bounds("FLOAT")[1] == 1.7976931348623157e308
    with pytest.raises(ValueError, match="unsupported numeric column type"):
        sql_type_bounds("NUMBER(10,2)")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"id": 123}, "normalize: id: expected string, got integer"),
        ({"id": True}, "normalize: id: expected string, got boolean"),
        ({"type": ["x"]}, "normalize: type: expected string, got array"),
        ({"duration_ms": 12.5}, "normalize: duration_ms: expected integer, got number"),
        ({"duration_ms": True}, "normalize: duration_ms: expected integer, got boolean"),
        ({"duration_ms": "1200"}, "normalize: duration_ms: expected integer, got string"),
        ({"confidence": "0.5"}, "normalize: confidence: expected number, got string"),
        (
            {"duration_ms": 10**18},
            "duration_ms out of range: 1000000000000000000, allowed [0, 999999999999999999] (NUMBER(18,0))",
        ),
        ({"duration_ms": 10**40}, "duration_ms out of range: <integer with about 41 digits>"),
        ({"attributes": {"n": 10**39}}, "attributes.n out of range for VARIANT (at most 38 digits)"),
        ({"attributes": {"x": [1, float("nan")]}}, "attributes.x[1] out of range: nan"),
        ({"attributes": {"n": OversizedNumber("1" * 5000)}}, "attributes.n out of range for VARIANT"),
        ({"camera_id": "cam-\ud800"}, "camera_id: text is not valid Unicode (unpaired surrogate)"),
        ({"attributes": {"zone": "\udce9"}}, "attributes: text is not valid Unicode (unpaired surrogate)"),
    ],
)
def test_api_a_poison_is_rejected_and_its_neighbours_staged(overrides, reason):
    staged, rejected = _page("api_a", [GOOD_A, {**GOOD_A, "id": "a-2", **overrides}, {**GOOD_A, "id": "a-3"}])
    assert [r["event_id"] for r in staged] == ["a-1", "a-3"]
    assert len(rejected) == 1 and rejected[0][1].startswith(reason)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"eventId": 4.5}, "normalize: eventId: expected integer, got number"),
        ({"eventId": "42"}, "normalize: eventId: expected integer, got string"),
        ({"eventKind": ["DETECTION"]}, "normalize: eventKind: expected string, got array"),
        ({"durationSec": True}, "normalize: durationSec: expected number, got boolean"),
        ({"score": "87"}, "normalize: score: expected number, got string"),
        ({"durationSec": 1e300}, "duration_ms out of range"),
        ({"durationSec": float("inf")}, "normalize: durationSec: number out of range: inf"),
        ({"durationSec": 10**39}, "duration_ms out of range"),
        ({"label": "\ud800"}, "category: text is not valid Unicode"),
    ],
)
def test_api_b_poison_is_rejected_and_its_neighbours_staged(overrides, reason):
    second = {**GOOD_B, "eventId": 2, **overrides}
    staged, rejected = _page("api_b", [GOOD_B, second, {**GOOD_B, "eventId": 3}])
    assert [r["event_id"] for r in staged] == ["b-1", "b-3"]
    assert len(rejected) == 1 and rejected[0][1].startswith(reason)


def test_a_record_above_the_size_limit_is_rejected():
    processor = _processor("api_a", max_record_bytes=10_000)
    big = {**GOOD_A, "id": "a-2", "attributes": {"blob": "x" * 20_000}}
    page = processor.process_page([GOOD_A, big])
    assert len(page.lines) == 1
    assert page.rejected[0][1].startswith("record too large: 202")
    assert "above max_record_bytes = 10000" in page.rejected[0][1]
    assert processor.counts == {"fetched": 2, "staged": 1, "rejected": 1, "duplicates": 0}


# ------------------------------------------------------------------------------------ served last


def test_equal_updated_at_with_new_content_is_staged_again_identical_is_a_duplicate():
    processor = _processor("api_a")
    changed = {**GOOD_A, "category": "Vehicle"}
    page = processor.process_page([GOOD_A, dict(GOOD_A), changed, dict(changed), GOOD_A])
    categories = [json.loads(line)["category"] for line in page.lines]
    assert categories == ["person", "vehicle", "person"]  # the last served version is staged last
    assert processor.counts == {"fetched": 5, "staged": 3, "rejected": 0, "duplicates": 2}


def test_deduper_drops_older_versions():
    deduper = BatchDeduper()
    assert deduper.offer("a", "2026-01-02", 1)
    assert not deduper.offer("a", "2026-01-01", 2)
    assert not deduper.offer("a", "2026-01-02", 1)
    assert deduper.offer("a", "2026-01-02", 3)


# ---------------------------------------------------------------------------------------- rejects


@mock_aws
def test_rejects_of_unencodable_and_huge_records_are_loadable_lines():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="rejects-bucket")
    writer = S3BatchWriter(s3, "rejects-bucket", "api_a", "batch-1", datetime(2026, 11, 30, 10))
    with writer:
        writer.reject({"id": "a-1", "camera_id": "cam-\ud800", "n": float("nan")}, "camera_id: bad text")
        writer.reject({"id": "a-2", "blob": "x" * (MAX_REJECT_LINE_BYTES + 10)}, "record too large")
    manifest = writer.manifest
    body = s3.get_object(Bucket="rejects-bucket", Key=manifest.rejects[0]["key"])["Body"].read()
    lines = [json.loads(line) for line in gzip.decompress(body).decode("utf-8").splitlines()]
    assert lines[0]["record"]["camera_id"] == "cam-\\ud800" and lines[0]["record"]["n"] == "nan"
    assert lines[1]["record"] is None and lines[1]["record_bytes"] > MAX_REJECT_LINE_BYTES
    assert lines[1]["record_excerpt"].startswith('{"reason":"record too large"')
    assert all(line["_batch_id"] == "batch-1" for line in lines)
