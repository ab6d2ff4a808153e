"""Unit tests of the mock APIs' parts: clock, data set, faults, rate limiter, cursors, SOAP parsing, stats."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from api2snow.sources import SOURCES

from api2snow_cli.local.mock_apis import (
    Credentials,
    Dataset,
    Faults,
    MockApiConfig,
    MockApis,
    MockClock,
    soap,
)
from api2snow_cli.local.mock_apis.api_a import decode_cursor, encode_cursor
from api2snow_cli.local.mock_apis.clock import parse_iso
from api2snow_cli.local.mock_apis.dataset import from_ms, index_of, iso_offset, record_id, to_ms
from api2snow_cli.local.mock_apis.faults import FaultInjector, SlidingWindowLimiter
from api2snow_cli.local.mock_apis.stats import Stats

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# ----- clock ------------------------------------------------------------------------------------------------


def test_frozen_clock_advances_and_sets() -> None:
    clock = MockClock(ANCHOR, follow_real_time=False)
    assert clock.now() == ANCHOR
    assert clock.advance(90) == ANCHOR + timedelta(seconds=90)
    clock.set(datetime(2026, 2, 1, 12))  # naive means UTC
    assert clock.now() == datetime(2026, 2, 1, 12, tzinfo=UTC)


def test_clock_follows_real_time_plus_offset() -> None:
    tick = FakeMonotonic()
    clock = MockClock(ANCHOR, monotonic=tick)
    tick.t += 2.5
    assert clock.now() == ANCHOR + timedelta(seconds=2.5)
    clock.advance(3600)
    tick.t += 1
    assert clock.now() == ANCHOR + timedelta(seconds=3603.5)
    clock.set(ANCHOR)
    tick.t += 4
    assert clock.now() == ANCHOR + timedelta(seconds=4)


def test_default_clock_starts_at_real_now() -> None:
    before = datetime.now(UTC)
    now = MockClock().now()
    assert before <= now <= datetime.now(UTC)


def test_parse_iso_variants() -> None:
    expected = datetime(2026, 1, 1, 8, tzinfo=UTC)
    for text in (
        "2026-01-01T08:00:00Z",
        "2026-01-01T10:00:00+02:00",
        "2026-01-01T03:00:00-05:00",
        "2026-01-01T08:00:00",
    ):
        assert parse_iso(text) == expected
    with pytest.raises(ValueError, match="not an ISO-8601"):
        parse_iso("not-a-date")


# ----- data set ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(seed=42, anchor=ANCHOR)


def test_event_counts_follow_the_creation_grid(dataset: Dataset) -> None:
    assert dataset.start == ANCHOR - timedelta(hours=24)
    assert dataset.interval_ms("api_a") == 30_000
    assert dataset.visible("api_a", dataset.start - timedelta(milliseconds=1)) == []
    assert [r["id"] for r in dataset.visible("api_a", dataset.start)] == ["a-00000001"]
    assert len(dataset.truth("api_a", ANCHOR)) == 24 * 120 + 1
    assert len(dataset.truth("api_b", ANCHOR + timedelta(minutes=10))) == 24 * 120 + 20 + 1
    assert len(Dataset(seed=42, anchor=ANCHOR, events_per_hour_b=600).truth("api_b", ANCHOR)) == 24 * 600 + 1


def test_generation_is_deterministic_per_seed(dataset: Dataset) -> None:
    same = Dataset(seed=42, anchor=ANCHOR)
    other = Dataset(seed=43, anchor=ANCHOR)
    assert same.visible("api_a", ANCHOR) == dataset.visible("api_a", ANCHOR)
    assert same.visible("api_b", ANCHOR) == dataset.visible("api_b", ANCHOR)
    assert same.cameras(ANCHOR) == dataset.cameras(ANCHOR)
    assert other.visible("api_a", ANCHOR) != dataset.visible("api_a", ANCHOR)
    # Rendering one event does not depend on what was generated before (O(1) per event).
    fresh = Dataset(seed=42, anchor=ANCHOR)
    assert fresh.render("api_a", 1234, False) == dataset.render("api_a", 1234, False)


def test_updated_at_is_distinct_and_ordered_with_updates_in_window() -> None:
    for eph in (120, 3000):
        ds = Dataset(seed=5, anchor=ANCHOR, history_hours=6, events_per_hour_a=eph, update_rate=0.5)
        as_of = ANCHOR + timedelta(hours=3)
        rows = ds.scan("api_a", as_of)
        times = [t for t, _, _ in rows]
        assert times == sorted(times) and len(set(times)) == len(times)
        all_versions = [row[0] for row in ds._indexes["api_a"].rows]
        assert len(set(all_versions)) == len(all_versions)
        for _, index, is_update in rows:
            if is_update:
                created = ds.version("api_a", index, False).updated_ms
                delay = ds.version("api_a", index, True).updated_ms - created
                assert 5 * 60_000 <= delay <= 90 * 60_000 + ds.interval_ms("api_a")


def test_update_share_and_changed_fields(dataset: Dataset) -> None:
    rows = dataset.scan("api_a", ANCHOR)
    updated = [index for _, index, is_update in rows if is_update]
    share = len(updated) / len(rows)
    assert 0.17 < share < 0.23
    changes = Counter()
    for index in updated:
        before, after = dataset.version("api_a", index, False), dataset.version("api_a", index, True)
        assert (before.camera, before.occurred_ms, before.event_type) == (
            after.camera,
            after.occurred_ms,
            after.event_type,
        )
        assert after.duration_ms > before.duration_ms
        changes["category"] += before.category != after.category
        changes["confidence"] += before.confidence != after.confidence
    assert changes["category"] > 0 and changes["confidence"] > 0


def test_an_update_replaces_the_record_when_its_time_comes(dataset: Dataset) -> None:
    index = next(
        i
        for i in range(100)
        if dataset.version("api_a", i, False).updated_ms < to_ms(ANCHOR) and _has_update(dataset, i)
    )
    rid = record_id("api_a", index)
    original, update = dataset.version("api_a", index, False), dataset.version("api_a", index, True)
    before = dataset.truth("api_a", from_ms(update.updated_ms - 1))
    after = dataset.truth("api_a", from_ms(update.updated_ms))
    assert before[rid] == from_ms(original.updated_ms)
    assert after[rid] == from_ms(update.updated_ms)
    assert list(after)[-1] == rid
    assert len(after) == len(before)  # updates land between creations: same records, newer version
    since = dataset.visible("api_a", from_ms(update.updated_ms), updated_since=from_ms(update.updated_ms - 1))
    assert [r["id"] for r in since] == [rid]
    assert since[0]["category"] == update.category and since[0]["confidence"] == update.confidence


def _has_update(ds: Dataset, index: int) -> bool:
    try:
        ds.version("api_a", index, True)
    except ValueError:
        return False
    return True


def test_updated_since_is_strict_at_sub_millisecond_precision(dataset: Dataset) -> None:
    truth = dataset.truth("api_a", ANCHOR)
    pivot = list(truth.values())[10]
    assert list(dataset.truth("api_a", ANCHOR, pivot).values())[0] > pivot
    assert list(dataset.truth("api_a", ANCHOR, pivot - timedelta(microseconds=1)).values())[0] == pivot
    assert list(dataset.truth("api_a", ANCHOR, pivot + timedelta(microseconds=999)).values())[0] > pivot


def test_api_a_wire_shape(dataset: Dataset) -> None:
    records = dataset.visible("api_a", ANCHOR)
    first = records[0]
    assert set(first) == {
        "id",
        "type",
        "camera_id",
        "category",
        "confidence",
        "occurred_at",
        "updated_at",
        "duration_ms",
        "attributes",
    }
    offsets = {r["occurred_at"][-6:] if r["occurred_at"][-1] != "Z" else "Z" for r in records}
    assert {"Z", "+02:00", "-05:00", "+05:30"} <= offsets
    for r in records:
        assert r["updated_at"].endswith("Z") and len(r["updated_at"]) == 24
        occurred, updated = parse_iso(r["occurred_at"]), parse_iso(r["updated_at"])
        assert occurred <= updated
        assert r["type"] in {"detection", "motion", "line_crossing", "tamper"}
        assert r["category"] in {"person", "vehicle", "bicycle", "animal", "package"}
        assert 0.3 <= r["confidence"] <= 0.99
    categories = Counter(r["category"] for r in records)
    assert categories.most_common(1)[0][0] == "person"
    assert iso_offset(to_ms(datetime(2026, 1, 1, 8, tzinfo=UTC)), 120) == "2026-01-01T10:00:00.000+02:00"


def test_api_b_wire_shape(dataset: Dataset) -> None:
    items = dataset.visible("api_b", ANCHOR)
    assert sorted(i["eventId"] for i in items) == list(range(1, 24 * 120 + 2))
    for item in items:
        assert item["eventKind"] in {"DETECTION", "MOTION", "LINE_CROSSING", "TAMPER"}
        assert item["label"] in {"Person", "Vehicle", "Bicycle", "Animal", "Package"}
        assert isinstance(item["score"], int) and 30 <= item["score"] <= 99
        assert item["timestampMs"] <= item["modifiedMs"]
        assert item["cameraRef"].startswith("cam-")
    modified = [i["modifiedMs"] for i in items]
    assert modified == sorted(modified)


def test_invalid_ids_follow_the_live_rate() -> None:
    faults = {
        "api_a": Faults.for_api("api_a"),
        "api_b": Faults.for_api("api_b"),
        "api_c": Faults.for_api("api_c"),
    }
    ds = Dataset(seed=42, anchor=ANCHOR, faults=faults)
    assert ds.invalid_ids("api_a", ANCHOR) == []
    faults["api_a"].update({"invalid_record_rate": 0.1})
    faults["api_c"].update({"invalid_record_rate": 0.5})
    invalid = ds.invalid_ids("api_a", ANCHOR)
    broken = [
        r["id"]
        for r in ds.visible("api_a", ANCHOR)
        if "camera_id" not in r or r["occurred_at"] == "not-a-date"
    ]
    assert sorted(broken) == invalid
    assert 0.08 < len(invalid) / (24 * 120 + 1) < 0.12
    faults["api_a"].update({"invalid_record_rate": 0.2})
    assert set(invalid) < set(ds.invalid_ids("api_a", ANCHOR))
    bad_cameras = ds.invalid_ids("api_c", ANCHOR)
    assert bad_cameras == [
        c["cameraId"] for c in ds.cameras(ANCHOR) if c["latitude"] == Decimal("999.000000")
    ]
    assert 0 < len(bad_cameras) < 24


def test_camera_directory(dataset: Dataset) -> None:
    cameras = dataset.cameras(ANCHOR)
    assert [c["cameraId"] for c in cameras] == [f"cam-{i:03d}" for i in range(1, 25)]
    assert {c["siteId"] for c in cameras} == {f"site-0{i}" for i in range(1, 7)}
    assert any(c["siteName"] == "São Paulo Yard" for c in cameras)
    for camera in cameras:
        assert camera["installedAt"] < camera["updatedAt"] <= ANCHOR
        assert isinstance(camera["latitude"], Decimal) and isinstance(camera["active"], bool)
    later = dataset.cameras(ANCHOR + timedelta(hours=48))
    changed = [c["cameraId"] for c, d in zip(cameras, later, strict=True) if c != d]
    assert changed
    assert dataset.truth("api_c", ANCHOR + timedelta(hours=48), ANCHOR) == {
        c["cameraId"]: c["updatedAt"] for c in later if c["cameraId"] in changed
    }


def test_record_ids_round_trip() -> None:
    for source, index in itertools.product(("api_a", "api_b", "api_c"), (0, 41, 999)):
        assert index_of(source, record_id(source, index)) == index
    assert record_id("api_a", 41) == "a-00000042" and record_id("api_b", 41) == "42"
    for source, bad in (("api_a", "b-1"), ("api_b", "x"), ("api_a", "a-00000000")):
        with pytest.raises(ValueError):
            index_of(source, bad)


def test_dataset_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Dataset(anchor=ANCHOR, update_rate=1.5)
    with pytest.raises(ValueError):
        Dataset(anchor=ANCHOR, events_per_hour_a=2_000_000)
    with pytest.raises(ValueError, match="unknown event source"):
        Dataset(anchor=ANCHOR).scan("api_x", ANCHOR)


# ----- faults, injector, limiter ----------------------------------------------------------------------------


def test_faults_defaults_and_validation() -> None:
    assert Faults.for_api("api_a") == Faults(rate_limit_per_min=100)
    assert Faults.for_api("api_b").rate_limit_per_min == 60
    faults = Faults.for_api("api_c")
    assert (faults.error_rate, faults.latency_ms, faults.token_ttl_s) == (0.0, 0, 3600)
    faults.update({"error_rate": 0.5, "latency_ms": 20})
    assert (faults.error_rate, faults.latency_ms) == (0.5, 20)
    for bad in (
        {"error_rate": 1.5},
        {"latency_ms": -1},
        {"token_ttl_s": 0},
        {"bogus": 1},
        {"duplicate_rate": "high"},
        {"rate_limit_per_min": 2.5},
    ):
        with pytest.raises(ValueError):
            faults.update(bad)
    assert (faults.error_rate, faults.latency_ms) == (0.5, 20)
    with pytest.raises(ValueError):
        Faults(malformed_page_rate=-0.1)


def test_fault_injector_is_seeded_and_disabled_faults_draw_nothing() -> None:
    def sequence(seed: str, faults: Faults) -> list[object]:
        injector = FaultInjector(faults, seed)
        return [(injector.error_status(), injector.malformed(), injector.duplicate()) for _ in range(50)]

    faults = Faults(error_rate=0.3, malformed_page_rate=0.3, duplicate_rate=0.3)
    assert sequence("s", faults) == sequence("s", faults)
    assert sequence("s", faults) != sequence("t", faults)
    only_errors = sequence("s", Faults(error_rate=0.3))
    assert all(m is False and d is False for _, m, d in only_errors)
    assert {e for e, _, _ in only_errors} == {None, 500, 503}
    assert sequence("s", Faults()) == [(None, False, False)] * 50


def test_sliding_window_limiter() -> None:
    tick = FakeMonotonic()
    limiter = SlidingWindowLimiter(window_s=60, clock=tick)
    hits = []
    for _ in range(3):
        hits.append(limiter.hit("a", 3))
        tick.t += 10
    assert hits == [None, None, None]  # at 0, 10, 20 s
    assert limiter.hit("a", 3) == 30  # at 30 s: the hit at 0 s frees its slot at 60 s
    assert limiter.hit("b", 3) is None  # per client
    tick.t += 30  # 60 s: the first hit leaves the window
    assert limiter.hit("a", 3) is None
    assert limiter.hit("a", 3) == 10
    tick.t += 9.9
    assert limiter.hit("a", 3) == 1  # ceil(0.1)
    assert all(limiter.hit("c", 0) is None for _ in range(100))
    limiter.reset()
    assert limiter.hit("a", 1) is None


# ----- protocol helpers -------------------------------------------------------------------------------------


def test_cursor_round_trip_and_rejection() -> None:
    cursor = encode_cursor(1767139200000, 41)
    assert "=" not in cursor
    assert decode_cursor(cursor) == (1767139200000, 41)
    for bad in ("", "!!!", "e30", encode_cursor(1, 0)[:-3]):
        with pytest.raises(ValueError):
            decode_cursor(bad)


def _envelope(inner: str, ns: str = soap.SOAP_ENV) -> bytes:
    return (
        f'<e:Envelope xmlns:e="{ns}" xmlns:c="urn:api2snow:cameras"><e:Body>{inner}</e:Body></e:Envelope>'
    ).encode()


def test_soap_request_parsing() -> None:
    good = _envelope("<c:ListCameras><c:page>3</c:page><c:pageSize>25</c:pageSize></c:ListCameras>")
    assert soap.parse_list_cameras(good, '"urn:api2snow:cameras#ListCameras"') == (3, 25)
    cases = [
        (good, None, "Client"),
        (good, "urn:api2snow:cameras#Other", "Client"),
        (
            _envelope(
                "<c:ListCameras><c:page>1</c:page><c:pageSize>1</c:pageSize></c:ListCameras>", soap.SOAP12_ENV
            ),
            soap.SOAP_ACTION,
            "VersionMismatch",
        ),
        (
            _envelope("<c:ListCameras><c:page>0</c:page><c:pageSize>1</c:pageSize></c:ListCameras>"),
            soap.SOAP_ACTION,
            "Client",
        ),
        (
            _envelope("<c:ListCameras><c:page>x</c:page><c:pageSize>1</c:pageSize></c:ListCameras>"),
            soap.SOAP_ACTION,
            "Client",
        ),
        (_envelope("<c:Other/>"), soap.SOAP_ACTION, "Client"),
        (b"<not xml", soap.SOAP_ACTION, "Client"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', soap.SOAP_ACTION, "Client"),
    ]
    for body, action, code in cases:
        with pytest.raises(soap.SoapFault) as excinfo:
            soap.parse_list_cameras(body, action)
        assert excinfo.value.code == code


def test_soap_response_and_fault_serialisation() -> None:
    camera = {
        "cameraId": "cam-001",
        "siteId": "site-01",
        "siteName": "A & B <x>",
        "city": "São Paulo",
        "country": "BR",
        "timezone": "America/Sao_Paulo",
        "latitude": Decimal("-23.550520"),
        "longitude": Decimal("-46.633308"),
        "installedAt": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "active": False,
        "updatedAt": datetime(2025, 1, 3, tzinfo=UTC),
    }
    body = soap.list_cameras_response(1, 1, [camera]).decode()
    assert "<tns:siteName>A &amp; B &lt;x&gt;</tns:siteName>" in body
    assert "<tns:latitude>-23.550520</tns:latitude>" in body
    assert "<tns:installedAt>2025-01-02T03:04:05.000Z</tns:installedAt>" in body
    assert "<tns:active>false</tns:active>" in body
    fault = soap.fault_envelope("Server", "boom & bust").decode()
    assert "<faultcode>soap:Server</faultcode><faultstring>boom &amp; bust</faultstring>" in fault
    assert 'location="http://h:1/soap/cameras"' in soap.wsdl("http://h:1/soap/cameras").decode()


def test_stats_snapshot() -> None:
    stats = Stats()
    stats.record("/v1/events", 200, records=100)
    stats.record("/v1/events", 429)
    stats.record("/oauth/token", 401)
    stats.record("/v1/events", 200, records=0, fault="malformed")
    snap = stats.snapshot()
    assert snap["requests"] == 4 and snap["records_served"] == 100
    assert (snap["throttled_429"], snap["unauthorized_401"]) == (1, 1)
    assert snap["status"] == {"200": 2, "401": 1, "429": 1}
    assert snap["faults"] == {"malformed": 1}
    assert snap["paths"]["/v1/events"] == {"requests": 3, "records": 100, "status": {"200": 2, "429": 1}}
    stats.reset()
    assert stats.snapshot()["requests"] == 0


# ----- config and server object -----------------------------------------------------------------------------


def test_secrets_stay_out_of_repr() -> None:
    text = repr(
        MockApiConfig(credentials=Credentials(client_secret="s3cr3t", api_key="k3y", soap_password="pw"))
    )
    assert "s3cr3t" not in text and "k3y" not in text and "pw'" not in text


def test_mock_apis_defaults_and_fault_copies() -> None:
    config = MockApiConfig(faults={"api_b": Faults(error_rate=0.1)})
    apis = MockApis(config)
    now = datetime.now(UTC)
    anchor = apis.dataset.anchor
    assert (anchor.minute, anchor.second, anchor.microsecond) == (0, 0, 0)
    assert timedelta(0) <= now - anchor < timedelta(hours=1)
    assert abs((apis.clock.now() - now).total_seconds()) < 5
    assert apis.faults["api_a"].rate_limit_per_min == 100 and apis.faults["api_b"].error_rate == 0.1
    apis.set_faults("api_b", error_rate=0.9)
    assert config.faults["api_b"].error_rate == 0.1
    explicit = MockApis(MockApiConfig(anchor=ANCHOR))
    assert explicit.clock.now() >= ANCHOR and explicit.clock.now() - ANCHOR < timedelta(seconds=5)
    with MockApis(MockApiConfig(anchor=ANCHOR)) as running:
        # A, B and C by hand, and a mock generated from the declaration of every other source.
        assert set(running.urls) == {"api_a", "api_b", "api_c", *SOURCES}
        assert all(url.startswith("http://127.0.0.1:") for url in running.urls.values())
    assert running.urls == {}
