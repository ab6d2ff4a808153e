"""Unit tests for api2snow.transform and api2snow.jsonl."""

from __future__ import annotations

import json

import pytest
from api2snow import jsonl
from api2snow.transform import (
    BatchDeduper,
    FieldSpec,
    Outcome,
    RecordProcessor,
    RecordSchema,
    Validator,
    to_utc_iso,
    validate,
)

from tests.unit.entity_schemas import CAMERA_SCHEMA, EVENT_SCHEMA
from tests.unit.test_poison_records import GOOD_A, GOOD_B

# ------------------------------------------------------------------------------------------- to_utc_iso


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-26T08:00:01.000Z", "2026-11-26T08:00:01.000000"),
        ("2026-11-26T08:00:01Z", "2026-11-26T08:00:01.000000"),
        ("2026-11-26T09:59:58.123+02:00", "2026-11-26T07:59:58.123000"),
        ("2026-11-26T21:30:00-05:00", "2026-11-27T02:30:00.000000"),
        ("2026-11-26T00:30:00+05:30", "2026-11-25T19:00:00.000000"),
        ("2026-11-26T08:00:01", "2026-11-26T08:00:01.000000"),
        ("2026-11-26 08:00:01", "2026-11-26T08:00:01.000000"),
        ("2026-11-26T08:00:01.5", "2026-11-26T08:00:01.500000"),
        ("2026-11-26T08:00:01.123456Z", "2026-11-26T08:00:01.123456"),
        ("2026-11-26T08:00:01.1234567Z", "2026-11-26T08:00:01.123456"),
        ("2026-11-26T08:00:01.000000", "2026-11-26T08:00:01.000000"),
        (" 2026-11-26T08:00:01Z ", "2026-11-26T08:00:01.000000"),
        (1764150000, "2025-11-26T09:40:00.000000"),
        (1764150000000, "2025-11-26T09:40:00.000000"),
        (1764150000123, "2025-11-26T09:40:00.123000"),
        (1764150000.25, "2025-11-26T09:40:00.250000"),
        (1764150000123.5, "2025-11-26T09:40:00.123500"),
        (0, "1970-01-01T00:00:00.000000"),
        (-1, "1969-12-31T23:59:59.000000"),
        (100_000_000_000, "5138-11-16T09:46:40.000000"),  # exactly 1e11: still seconds
        (100_000_000_001, "1973-03-03T09:46:40.001000"),  # above 1e11: milliseconds
    ],
)
def test_to_utc_iso_table(value, expected):
    assert to_utc_iso(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "not-a-date",
        "",
        "2026-13-01T00:00:00Z",
        "2026-11-26T25:00:00",
        "1764150000",  # numeric strings are not epochs
        True,
        False,
        None,
        float("nan"),
        float("inf"),
        10**30,
        b"2026-11-26T08:00:01Z",
        [2026, 11, 26],
        {"ts": 1},
        "0001-01-01T00:00:00+01:00",  # before datetime.min once converted to UTC
    ],
)
def test_to_utc_iso_rejects(value):
    with pytest.raises(ValueError, match=r"^unparseable timestamp: "):
        to_utc_iso(value)


def test_to_utc_iso_message_names_value():
    with pytest.raises(ValueError) as info:
        to_utc_iso("not-a-date")
    assert str(info.value) == "unparseable timestamp: 'not-a-date'"


def test_to_utc_iso_is_idempotent():
    once = to_utc_iso("2026-11-26T09:59:58.123+02:00")
    assert to_utc_iso(once) == once


# ------------------------------------------------------------------------------------------- validation


def _event(**overrides):
    record = {
        "event_id": "a-00000042",
        "source": "api_a",
        "event_type": "detection",
        "camera_id": "cam-007",
        "category": "person",
        "confidence": 0.87,
        "occurred_at": "2026-11-26T07:59:58.123000",
        "updated_at": "2026-11-26T08:00:01.000000",
        "duration_ms": 1200,
        "attributes": {"zone": "entrance"},
    }
    record.update(overrides)
    return record


def _drop(record, key):
    record = dict(record)
    del record[key]
    return record


def test_valid_event_passes():
    assert validate(_event(), EVENT_SCHEMA) is None
    assert validate(_event(attributes=None), EVENT_SCHEMA) is None
    assert validate(_drop(_event(), "attributes"), EVENT_SCHEMA) is None
    assert validate(_event(confidence=1), EVENT_SCHEMA) is None  # int is a valid float
    assert validate(_event(confidence=0.0, duration_ms=0), EVENT_SCHEMA) is None
    assert validate(_event(extra="ignored"), EVENT_SCHEMA) is None


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (_drop(_event(), "camera_id"), "missing required field camera_id"),
        (_event(camera_id=None), "missing required field camera_id"),
        (_event(camera_id=""), "camera_id: empty string"),
        (_event(camera_id=7), "camera_id: expected str, got int"),
        (_event(source="api_z"), "source: unexpected value 'api_z'"),
        (_event(confidence=1.7), "confidence out of range: 1.7, allowed [0.0, 1.0] (FLOAT)"),
        (_event(confidence=-0.1), "confidence out of range: -0.1, allowed [0.0, 1.0] (FLOAT)"),
        (_event(confidence=float("nan")), "confidence out of range: nan"),
        (_event(confidence="0.5"), "confidence: expected float, got str"),
        (_event(confidence=True), "confidence: expected float, got bool"),
        (
            _event(duration_ms=-5),
            "duration_ms out of range: -5, allowed [0, 999999999999999999] (NUMBER(18,0))",
        ),
        (_event(duration_ms=1.5), "duration_ms: expected int, got float"),
        (_event(duration_ms=True), "duration_ms: expected int, got bool"),
        (_event(occurred_at="not-a-date"), "occurred_at: unparseable timestamp: 'not-a-date'"),
        (
            _event(occurred_at="2026-11-26T09:59:58+02:00"),
            "occurred_at: not a normalised UTC timestamp: '2026-11-26T09:59:58+02:00'",
        ),
        (_event(updated_at=1764150000), "updated_at: expected timestamp string, got int"),
        (_event(attributes=["zone"]), "attributes: expected object, got list"),
    ],
)
def test_validation_reasons(record, reason):
    assert validate(record, EVENT_SCHEMA) == reason


def test_first_failure_in_declaration_order():
    record = _event(camera_id="", confidence=5.0)
    assert validate(record, EVENT_SCHEMA) == "camera_id: empty string"


def test_validate_non_mapping():
    assert validate(["x"], EVENT_SCHEMA) == "record: expected object, got list"


def test_validator_and_schema_method_agree():
    bad = _event(confidence=1.7)
    assert Validator(EVENT_SCHEMA)(bad) == "confidence out of range: 1.7, allowed [0.0, 1.0] (FLOAT)"
    assert EVENT_SCHEMA.validate(bad) == "confidence out of range: 1.7, allowed [0.0, 1.0] (FLOAT)"
    assert Validator(EVENT_SCHEMA)(_event()) is None


def test_camera_schema():
    camera = {
        "camera_id": "cam-007",
        "site_id": "site-1",
        "site_name": "Depot",
        "city": "Zurich",
        "country": "CH",
        "timezone": "Europe/Zurich",
        "latitude": 47.37,
        "longitude": 8.54,
        "installed_at": "2024-01-02T03:04:05.000000",
        "active": True,
        "updated_at": "2026-11-26T08:00:01.000000",
    }
    assert validate(camera, CAMERA_SCHEMA) is None
    assert (
        validate({**camera, "latitude": 91.0}, CAMERA_SCHEMA)
        == "latitude out of range: 91.0, allowed [-90.0, 90.0] (FLOAT)"
    )
    assert validate({**camera, "active": "yes"}, CAMERA_SCHEMA) == "active: expected bool, got str"
    assert validate({**camera, "city": None}, CAMERA_SCHEMA) is None


def test_custom_schema_and_unknown_kind():
    schema = RecordSchema("t", (FieldSpec("n", "int", min_value=1, max_value=3),))
    assert validate({"n": 3}, schema) is None
    assert validate({"n": 4}, schema) == "n out of range: 4, allowed [1, 3] (NUMBER(38,0))"
    broken = RecordSchema("t", (FieldSpec("n", "decimal"),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown field kind"):
        validate({"n": 1}, broken)


# --------------------------------------------------------------------------------------------- deduper


def test_deduper_same_version_twice_dropped():
    d = BatchDeduper()
    assert d.offer("a-1", "2026-11-26T08:00:01.000000") is True
    assert d.offer("a-1", "2026-11-26T08:00:01.000000") is False


def test_deduper_older_dropped_newer_kept():
    d = BatchDeduper()
    assert d.offer("a-1", "2026-11-26T08:00:01.000000") is True
    assert d.offer("a-1", "2026-11-26T07:59:59.999999") is False
    assert d.offer("a-1", "2026-11-26T08:00:01.000001") is True
    assert d.offer("a-1", "2026-11-26T08:00:01.000000") is False  # older than the newest seen
    assert d.offer("a-2", "2026-11-26T07:00:00.000000") is True  # other ids are independent
    assert len(d) == 2


# ------------------------------------------------------------------------------------------- processor


def _normalize_a(raw):
    """A small API A style mapping, as sources/ would provide."""
    return {
        "event_id": raw["id"],
        "source": "api_a",
        "event_type": raw["type"].lower(),
        "camera_id": raw["camera_id"],
        "category": raw["category"].lower(),
        "confidence": float(raw["confidence"]),
        "occurred_at": to_utc_iso(raw["occurred_at"]),
        "updated_at": to_utc_iso(raw["updated_at"]),
        "duration_ms": int(raw["duration_ms"]),
        "attributes": raw.get("attributes"),
    }


def _raw(id_, updated="2026-11-26T08:00:01.000Z", **overrides):
    raw = {
        "id": id_,
        "type": "detection",
        "camera_id": "cam-007",
        "category": "Person",
        "confidence": 0.87,
        "occurred_at": "2026-11-26T09:59:58.123+02:00",
        "updated_at": updated,
        "duration_ms": 1200,
        "attributes": {"zone": "entrance"},
    }
    raw.update(overrides)
    return raw


def _processor():
    return RecordProcessor(_normalize_a, EVENT_SCHEMA, "event_id", "updated_at", "batch-1")


def test_processor_staged_record_shape():
    outcome = _processor().process(_raw("a-1"))
    assert outcome.line is not None and json.loads(outcome.line) == outcome.record
    assert outcome == Outcome(
        "staged",
        line=outcome.line,
        record={
            "event_id": "a-1",
            "source": "api_a",
            "event_type": "detection",
            "camera_id": "cam-007",
            "category": "person",
            "confidence": 0.87,
            "occurred_at": "2026-11-26T07:59:58.123000",
            "updated_at": "2026-11-26T08:00:01.000000",
            "duration_ms": 1200,
            "attributes": {"zone": "entrance"},
            "_batch_id": "batch-1",
        },
    )


def test_processor_rejection_reasons():
    p = _processor()
    missing = _raw("a-1")
    del missing["camera_id"]
    assert p.process(missing) == Outcome("rejected", reason="normalize: missing field 'camera_id'")
    bad_ts = p.process(_raw("a-2", occurred_at="not-a-date"))
    assert bad_ts == Outcome("rejected", reason="normalize: unparseable timestamp: 'not-a-date'")
    assert p.process(_raw("a-3", confidence="high")).reason == (
        "normalize: could not convert string to float: 'high'"
    )
    assert p.process(_raw("a-4", category=None)).reason == (
        "normalize: 'NoneType' object has no attribute 'lower'"
    )
    assert p.process(_raw("a-5", duration_ms=None)).reason.startswith("normalize: int() argument")
    assert p.process(_raw("a-6", confidence=1.7)) == Outcome(
        "rejected", reason="confidence out of range: 1.7, allowed [0.0, 1.0] (FLOAT)"
    )
    assert p.process(_raw("a-7", duration_ms=-1)) == Outcome(
        "rejected", reason="duration_ms out of range: -1, allowed [0, 999999999999999999] (NUMBER(18,0))"
    )
    assert p.counts == {"fetched": 7, "staged": 0, "rejected": 7, "duplicates": 0}


def test_processor_other_exceptions_propagate():
    def broken(raw):
        raise RuntimeError("bug in the mapping")

    p = RecordProcessor(broken, EVENT_SCHEMA, "event_id", "updated_at", "b")
    with pytest.raises(RuntimeError):
        p.process({})


def test_processor_invariant_over_mixed_input():
    raws = [
        _raw("a-1"),
        _raw("a-2"),
        _raw("a-1"),  # same version: duplicate
        _raw("a-1", updated="2026-11-26T08:00:00.999Z"),  # older: duplicate
        _raw("a-1", updated="2026-11-26T08:00:02.000Z"),  # newer: staged again
        _raw("a-3", confidence=1.7),  # invalid
        {"id": "a-4"},  # missing fields
        _raw("a-5", updated="yesterday"),  # bad timestamp
        _raw("a-2", updated="2026-11-26T10:00:01.000+02:00"),  # same instant as a-2, other offset: duplicate
        _raw("a-6", attributes=None),
    ]
    p = _processor()
    kinds = [p.process(r).kind for r in raws]
    assert kinds == [
        "staged",
        "staged",
        "duplicate",
        "duplicate",
        "staged",
        "rejected",
        "rejected",
        "rejected",
        "duplicate",
        "staged",
    ]
    assert p.counts == {"fetched": 10, "staged": 4, "rejected": 3, "duplicates": 3}
    assert p.fetched == p.staged + p.rejected + p.duplicates


def test_processor_duplicate_has_no_batch_id():
    p = _processor()
    p.process(_raw("a-1"))
    dup = p.process(_raw("a-1"))
    assert dup.kind == "duplicate"
    assert "_batch_id" not in dup.record


# ----------------------------------------------------------------------------------------------- jsonl


SAMPLE = {"id": "a-1", "name": "Zürich ☃", "n": 3, "x": 0.5, "ok": True, "none": None, "list": [1, "b"]}
SAMPLE_BYTES = '{"id":"a-1","name":"Zürich ☃","n":3,"x":0.5,"ok":true,"none":null,"list":[1,"b"]}'.encode()


def test_jsonl_default_path():
    out = jsonl.dumps(SAMPLE)
    assert isinstance(out, bytes)
    assert out == SAMPLE_BYTES


def test_jsonl_stdlib_fallback(monkeypatch):
    monkeypatch.setattr(jsonl, "_orjson", None)
    out = jsonl.dumps(SAMPLE)
    assert out == SAMPLE_BYTES
    assert json.loads(out) == SAMPLE


@pytest.mark.parametrize("force_stdlib", [False, True])
def test_jsonl_edge_values_both_paths(monkeypatch, force_stdlib):
    if force_stdlib:
        monkeypatch.setattr(jsonl, "_orjson", None)
    assert jsonl.dumps({"v": float("nan"), "w": [float("inf")]}) == b'{"v":null,"w":[null]}'
    assert jsonl.dumps({"big": 2**70}) == b'{"big":1180591620717411303424}'
    assert jsonl.dumps({1: "a"}) == b'{"1":"a"}'
    assert jsonl.dumps({"b": b"x"}, default=repr) == b'{"b":"b\'x\'"}'
    with pytest.raises(TypeError):
        jsonl.dumps({"b": object()})


def test_jsonl_circular_reference_raises(monkeypatch):
    monkeypatch.setattr(jsonl, "_orjson", None)
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        jsonl.dumps(loop)


# ----------------------------------------------------------------------- the compiled path of a source

_GOOD_RAW = {
    "api_a": {**GOOD_A, "attributes": {"zone": "entrance", "n": 3}},  # a nested number to vary too
    "api_b": GOOD_B,
    "api_c": {
        "cameraId": "cam-001",
        "siteId": "site-1",
        "siteName": "Depot",
        "city": "",
        "country": "NL",
        "timezone": "Europe/Amsterdam",
        "latitude": "52.37",
        "longitude": "4.89",
        "installedAt": "2020-01-01T00:00:00Z",
        "active": "true",
        "updatedAt": "2026-11-26T08:00:01Z",
    },
    "api_d": {
        "uid": "d-00000001",
        "kind": "DETECTION",
        "device": {"camera": "cam-001"},
        "detection": {"label": "Person", "score": 0.5, "duration_ms": 100},
        "observed_at": "2026-11-26T08:00:00Z",
        "last_modified": "2026-11-26T08:00:01Z",
        "context": {"zone": "lot"},
    },
}
_HOSTILE_VALUES = [
    None, "", " ", "x", "PERSON", "\ud800", "caf\udce9", True, False, 0, -1, 1, 1.5, -0.0, 100, 101, 10**18,
    10**19, 10**40, float("nan"), float("inf"), 1.7976931348623157e308, "2026-11-26T08:00:01Z",
    "2026-11-26T08:00:01.000000", "2026-13-01T00:00:00Z", "0001-01-01T00:00:00+01:00", 1764150000000,
    253_402_300_800_000, [], ["x"], {}, {"a": {"b": [1, {"c": 10**39}]}}, {"n": float("nan")},
]  # fmt: skip


def _variants(raw, depth=0):
    """The record itself, then each field removed or replaced by each hostile value, nested fields too."""
    yield raw
    for key, value in raw.items():
        yield {k: v for k, v in raw.items() if k != key}
        for hostile in _HOSTILE_VALUES:
            yield {**raw, key: hostile}
        if isinstance(value, dict) and depth == 0:
            for inner in _variants(value, 1):
                yield {**raw, key: inner}


@pytest.mark.parametrize("name", sorted(_GOOD_RAW))
def test_the_compiled_path_accepts_only_what_the_general_path_accepts_and_gives_the_same_record(name):
    from api2snow.sources import get_source
    from api2snow.wire import OversizedNumber

    source = get_source(name)
    fast = source.fast_normalizer()
    assert fast is not None
    raws = [
        *_variants(_GOOD_RAW[name]),
        None,
        [],
        "x",
        7,
        {**_GOOD_RAW[name], "extra": OversizedNumber("9" * 5000)},
    ]
    accepted = 0
    for raw in raws:
        record = fast(raw)
        if record is None:
            continue
        accepted += 1
        expected = source.normalize(raw)
        assert list(record.items()) == list(expected.items()), raw  # same values, same column order
        assert validate(record, source.schema) is None, raw
    assert accepted >= 20, f"the compiled path took only {accepted} of {len(raws)} records"

    def run(fast_normalize):
        p = RecordProcessor(
            source.normalize,
            source.schema,
            source.id_field,
            source.updated_field,
            "b",
            fast_normalize=fast_normalize,
        )
        page = p.process_page(raws)
        return page.lines, [(json.dumps(r, default=repr), reason) for r, reason in page.rejected], p.counts

    general, compiled = run(None), run(fast)
    assert compiled == general  # the same lines, the same rejects with the same reasons, the same counts
    assert general[2]["rejected"] > 100 and general[2]["staged"] >= 2


@pytest.mark.parametrize("name", sorted(_GOOD_RAW))
def test_a_pages_key_hashes_in_one_pass_are_those_of_its_record_keys(name):
    """The progress guard's `key_hashes` (a few passes in C) against `record_key` record by record, on pages
    of good records, of each hostile variant alone, and of both mixed."""
    from api2snow.http.progress import key_hashes
    from api2snow.sources import get_source

    source = get_source(name)
    variants = list(_variants(_GOOD_RAW[name]))
    raw = _GOOD_RAW[name]
    good = [{**raw, key: _another(raw[key], n)} for n in range(5) for key in raw]
    pages = [good, *([variant] for variant in variants), *([*good, variant] for variant in variants)]
    pages += [[None, *good], [[], "x", 7], []]
    for page in pages:
        assert source.key_hashes(page) == key_hashes(map(source.record_key, page)), page
    assert len(source.key_hashes(good)) > 1
    assert None in source.key_hashes([None, *good])  # a record without a key stays keyless


def _another(value, n):
    """The n-th other value of a good field's type."""
    return value + n if type(value) is int else f"{value}{n}" if type(value) is str else value


def test_a_source_overriding_normalize_gets_no_compiled_path():
    from api2snow.sources import get_source

    base = type(get_source("api_a"))
    custom = type("Custom", (base,), {"normalize": lambda self, raw: base.normalize(self, raw)})()
    assert custom.fast_normalizer() is None
    assert type("Same", (base,), {})().fast_normalizer() is not None


def test_to_utc_iso_shortcuts_give_what_the_datetime_round_trip_gives():
    """The text shortcuts (already-canonical UTC or naive text, `%` formatting) against the plain route:
    parse, convert to UTC, `isoformat`, over every shape `fromisoformat` takes and some it refuses."""
    import random
    from datetime import UTC, datetime, timedelta

    def reference(text):
        parsed = datetime.fromisoformat(text.strip())
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed.isoformat(timespec="microseconds")

    rng = random.Random(12)
    shapes = ["seconds", "milliseconds", "microseconds", "auto", "minutes", "hours"]
    zones = ["", "Z", "z", "+00:00", "-00:00", "+05:30", "-05:00", "+0000", "+00", "+00:00:00", "+14:00"]
    zones += ["-12:45", "+05:45", "+23:59", "-23:59", "+01:00:30", "-09:30"]
    fractions = ["", "", ".5", ".12", ".1234", ",123", ".1234567"]
    checked = 0
    for _ in range(6_000):
        moment = datetime(1, 1, 1) + timedelta(microseconds=rng.randrange(315_000_000_000_000_000))
        text = moment.isoformat(timespec=rng.choice(shapes))
        text = text[:10] + rng.choice("T t") + text[11:]
        if len(text) == 19:
            text += rng.choice(fractions)
        text = rng.choice(["", " "]) + text + rng.choice(zones) + rng.choice(["", " "])
        try:
            expected = reference(text)
        except (ValueError, OverflowError):
            with pytest.raises(ValueError, match="unparseable timestamp"):
                to_utc_iso(text)
            continue
        assert to_utc_iso(text) == expected, text
        checked += 1
    assert checked > 4_000
    for text in ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"]:  # beyond datetime's range
        with pytest.raises(ValueError, match="unparseable timestamp"):
            to_utc_iso(text)
    for text in [
        "20261126T080001Z",
        "2026-W48-4T08:00:01Z",
        "20261126T080001.5",
        "2026-11-26T08",
        "2026-11-26",
        "2026-12-31T23:30:00.5-01:00",  # into the next year
        "2028-03-01T00:15:00+00:30",  # back to a leap day
        "0001-01-02T00:00:00+23:59",  # back to the first day datetime holds
    ]:
        assert to_utc_iso(text) == reference(text)
