"""The mock APIs over real HTTP on loopback, driven by real protocol clients (requests-oauthlib, zeep)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import zeep
import zeep.exceptions
import zeep.helpers
from oauthlib.oauth2 import BackendApplicationClient, InvalidClientError
from requests_oauthlib import OAuth2Session
from zeep.transports import Transport

from api2snow_cli.local.mock_apis import Faults, MockApiConfig, MockApis, main
from api2snow_cli.local.mock_apis.dataset import from_ms, to_ms

pytestmark = pytest.mark.integration

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
CLIENT_ID, CLIENT_SECRET, API_KEY = "demo-client", "demo-secret", "demo-key"
SOAP_ACTION = '"urn:api2snow:cameras#ListCameras"'


def make_apis(**overrides: object) -> MockApis:
    """A frozen-clock mock stack anchored at ANCHOR, so ground truth is exact."""
    config = MockApiConfig(anchor=ANCHOR, follow_real_time=False, **overrides)  # type: ignore[arg-type]
    return MockApis(config)


@pytest.fixture
def apis() -> Iterator[MockApis]:
    with make_apis() as stack:
        yield stack


@pytest.fixture(autouse=True)
def _insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    # oauthlib refuses plain http unless told otherwise; the mock servers only speak http on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def oauth_session(stack: MockApis, post: bool = False) -> OAuth2Session:
    session = OAuth2Session(client=BackendApplicationClient(client_id=CLIENT_ID), scope=["events:read"])
    kwargs = {"include_client_id": True} if post else {}
    session.fetch_token(
        stack.urls["api_a"] + "/oauth/token", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **kwargs
    )
    return session


def fetch_all_a(
    session: requests.Session, base: str, limit: int = 500, **params: str
) -> tuple[list[dict], int]:
    """Follow next_cursor to the end; returns the records and the number of pages."""
    records: list[dict] = []
    query: dict[str, object] = {"limit": limit, **params}
    pages = 0
    while True:
        response = session.get(base + "/v1/events", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        records.extend(body["data"])
        pages += 1
        if body["next_cursor"] is None:
            return records, pages
        query = {"limit": limit, "cursor": body["next_cursor"], **params}


def fetch_all_b(base: str, limit: int = 500, **params: object) -> tuple[list[dict], list[int]]:
    """Offset pages to ``total``; returns the items and each page's reported total."""
    items: list[dict] = []
    totals: list[int] = []
    offset = 0
    while True:
        response = requests.get(
            base + "/api/v2/detections",
            params={"offset": offset, "limit": limit, **params},
            headers={"X-API-Key": API_KEY},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["offset"], body["limit"]) == (offset, limit)
        items.extend(body["items"])
        totals.append(body["total"])
        offset += limit
        if offset >= body["total"]:
            return items, totals


def soap_client(stack: MockApis, user: str = "demo", password: str = "demo-pass") -> zeep.Client:
    session = requests.Session()
    session.auth = (user, password)
    return zeep.Client(stack.urls["api_c"] + "/soap/cameras?wsdl", transport=Transport(session=session))


# ----- API A: OAuth2 client credentials ---------------------------------------------------------------------


@pytest.mark.parametrize("post", [False, True], ids=["client_secret_basic", "client_secret_post"])
def test_token_with_both_client_auth_methods(apis: MockApis, post: bool) -> None:
    session = OAuth2Session(client=BackendApplicationClient(client_id=CLIENT_ID), scope=["events:read"])
    sent: list[requests.PreparedRequest] = []
    session.hooks["response"].append(lambda r, *args, **kwargs: sent.append(r.request))
    kwargs = {"include_client_id": True} if post else {}
    token = session.fetch_token(
        apis.urls["api_a"] + "/oauth/token", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **kwargs
    )
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == ["events:read"]
    body = sent[0].body if isinstance(sent[0].body, str) else sent[0].body.decode()
    if post:
        assert "Authorization" not in sent[0].headers
        assert f"client_secret={CLIENT_SECRET}" in body
    else:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        assert sent[0].headers["Authorization"] == f"Basic {expected}"
        assert "client_secret" not in body
    response = session.get(apis.urls["api_a"] + "/v1/events", params={"limit": 3})
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["data"]] == ["a-00000001", "a-00000002", "a-00000003"]


def test_token_endpoint_errors(apis: MockApis) -> None:
    url = apis.urls["api_a"] + "/oauth/token"
    session = OAuth2Session(client=BackendApplicationClient(client_id=CLIENT_ID))
    with pytest.raises(InvalidClientError):
        session.fetch_token(url, client_id=CLIENT_ID, client_secret="wrong")
    with pytest.raises(InvalidClientError):
        session.fetch_token(url, client_id=CLIENT_ID, client_secret="wrong", include_client_id=True)

    basic_bad = requests.post(
        url, data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, "x"), timeout=5
    )
    assert basic_bad.status_code == 401
    assert basic_bad.json() == {"error": "invalid_client"}
    assert basic_bad.headers["WWW-Authenticate"].startswith("Basic")
    post_bad = requests.post(
        url, data={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}, timeout=5
    )
    assert post_bad.status_code == 401
    assert "WWW-Authenticate" not in post_bad.headers
    other_grant = requests.post(
        url, data={"grant_type": "password"}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=5
    )
    assert (other_grant.status_code, other_grant.json()) == (400, {"error": "unsupported_grant_type"})
    missing = requests.post(url, data={"scope": "events:read"}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=5)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    both = requests.post(
        url,
        data={"grant_type": "client_credentials", "client_secret": CLIENT_SECRET},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=5,
    )
    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")
    good = requests.post(
        url, data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=5
    )
    assert good.headers["Cache-Control"] == "no-store"
    assert set(good.json()) == {"access_token", "token_type", "expires_in", "scope"}


def test_missing_unknown_and_expired_tokens_are_invalid_token(apis: MockApis) -> None:
    events = apis.urls["api_a"] + "/v1/events"
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = requests.get(events, headers=headers, timeout=5)
        assert response.status_code == 401
        assert response.json() == {"error": "invalid_token"}
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'

    apis.set_faults("api_a", token_ttl_s=120)
    session = oauth_session(apis)
    assert session.token["expires_in"] == 120
    assert session.get(events).status_code == 200
    apis.clock.advance(119)
    assert session.get(events).status_code == 200
    apis.clock.advance(1)
    expired = session.get(events)
    assert expired.status_code == 401
    assert expired.json() == {"error": "invalid_token"}
    assert expired.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert apis.stats()["api_a"]["unauthorized_401"] == 3


# ----- API A: cursor pagination -----------------------------------------------------------------------------


def test_cursor_paging_returns_exactly_ground_truth(apis: MockApis) -> None:
    session = oauth_session(apis)
    records, pages = fetch_all_a(session, apis.urls["api_a"], limit=500)
    truth = apis.dataset.truth("api_a", apis.clock.now())
    ids = [r["id"] for r in records]
    assert len(truth) == 24 * 120 + 1
    assert ids == list(truth)
    assert len(set(ids)) == len(ids)
    assert pages == -(-len(truth) // 500)
    assert records == apis.dataset.visible("api_a", apis.clock.now())
    updated = [datetime.fromisoformat(r["updated_at"]) for r in records]
    assert updated == sorted(updated) and len(set(updated)) == len(updated)
    assert apis.stats()["api_a"]["records_served"] == len(truth)


def test_updated_since_is_strict_and_accepts_offsets(apis: MockApis) -> None:
    session = oauth_session(apis)
    truth = apis.dataset.truth("api_a", apis.clock.now())
    pivot_id, pivot = list(truth.items())[1000]
    expected = [rid for rid, ts in truth.items() if ts > pivot]
    with_z, _ = fetch_all_a(
        session, apis.urls["api_a"], updated_since=pivot.isoformat().replace("+00:00", "Z")
    )
    assert [r["id"] for r in with_z] == expected
    assert pivot_id not in {r["id"] for r in with_z}
    shifted = pivot.astimezone(datetime.fromisoformat("2026-01-01T00:00:00-05:00").tzinfo).isoformat()
    with_offset, _ = fetch_all_a(session, apis.urls["api_a"], updated_since=shifted)
    assert [r["id"] for r in with_offset] == expected
    bad = session.get(apis.urls["api_a"] + "/v1/events", params={"updated_since": "yesterday"})
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_request")
    assert session.get(apis.urls["api_a"] + "/v1/events", params={"limit": 501}).status_code == 400
    assert session.get(apis.urls["api_a"] + "/v1/events", params={"cursor": "garbage!"}).status_code == 400


def test_clock_advance_brings_new_and_updated_records(apis: MockApis) -> None:
    session = oauth_session(apis)
    first, _ = fetch_all_a(session, apis.urls["api_a"])
    state = {r["id"]: r for r in first}
    watermark = max(r["updated_at"] for r in first)

    apis.clock.advance(2 * 3600)
    session = oauth_session(apis)  # the first token expired with the clock (TTL 1 h)
    delta, _ = fetch_all_a(session, apis.urls["api_a"], updated_since=watermark)
    now = apis.clock.now()
    assert [r["id"] for r in delta] == list(
        apis.dataset.truth("api_a", now, datetime.fromisoformat(watermark))
    )
    new_ids = [r["id"] for r in delta if r["id"] not in state]
    changed = [r for r in delta if r["id"] in state]
    assert len(new_ids) == 2 * 120  # one event every 30 s
    assert changed, "events created before the watermark get updated within 90 minutes"
    for record in changed:
        assert record["updated_at"] > state[record["id"]]["updated_at"]
    state.update({r["id"]: r for r in delta})
    assert {rid: r["updated_at"] for rid, r in state.items()} == {
        rid: ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for rid, ts in apis.dataset.truth("api_a", now).items()
    }
    assert sorted(state.values(), key=lambda r: (r["updated_at"], r["id"])) == apis.dataset.visible(
        "api_a", now
    )


# ----- API B: API key and offset pagination -----------------------------------------------------------------


def test_api_b_key_check(apis: MockApis) -> None:
    url = apis.urls["api_b"] + "/api/v2/detections"
    for headers in ({}, {"X-API-Key": "wrong"}):
        response = requests.get(url, headers=headers, timeout=5)
        assert (response.status_code, response.json()) == (401, {"error": "unauthorized"})
    assert requests.get(url, headers={"X-API-Key": API_KEY}, timeout=5).status_code == 200
    bad = requests.get(url, params={"limit": 0}, headers={"X-API-Key": API_KEY}, timeout=5)
    assert bad.status_code == 400


def test_api_b_offset_paging_matches_ground_truth(apis: MockApis) -> None:
    items, totals = fetch_all_b(apis.urls["api_b"], limit=400)
    truth = apis.dataset.truth("api_b", apis.clock.now())
    assert totals == [len(truth)] * len(totals)
    assert [str(item["eventId"]) for item in items] == list(truth)
    assert items == apis.dataset.visible("api_b", apis.clock.now())
    first = items[0]
    assert isinstance(first["eventId"], int) and first["label"][0].isupper() and first["eventKind"].isupper()
    assert all(0 <= item["score"] <= 100 and isinstance(item["score"], int) for item in items)


def test_api_b_modified_since_is_strict_epoch_ms(apis: MockApis) -> None:
    truth = apis.dataset.truth("api_b", apis.clock.now())
    pivot_id, pivot = list(truth.items())[2000]
    pivot_ms = to_ms(pivot)
    items, totals = fetch_all_b(apis.urls["api_b"], modified_since=pivot_ms)
    expected = [rid for rid, ts in truth.items() if to_ms(ts) > pivot_ms]
    assert totals[0] == len(expected) == len(truth) - 2001
    assert [str(i["eventId"]) for i in items] == expected
    items_before, _ = fetch_all_b(apis.urls["api_b"], modified_since=pivot_ms - 1)
    assert str(items_before[0]["eventId"]) == pivot_id
    assert from_ms(items_before[0]["modifiedMs"]) == pivot


def test_api_b_sees_clock_advance(apis: MockApis) -> None:
    items, _ = fetch_all_b(apis.urls["api_b"])
    watermark = max(i["modifiedMs"] for i in items)
    apis.clock.advance(3600)
    delta, totals = fetch_all_b(apis.urls["api_b"], modified_since=watermark)
    expected = apis.dataset.truth("api_b", apis.clock.now(), from_ms(watermark))
    assert [str(i["eventId"]) for i in delta] == list(expected)
    assert totals[0] == len(expected) > 120


# ----- rate limits ------------------------------------------------------------------------------------------


def small_limits() -> dict[str, Faults]:
    return {api: Faults(rate_limit_per_min=5) for api in ("api_a", "api_b", "api_c")}


def test_rate_limit_api_a_after_exactly_n_requests() -> None:
    with make_apis(faults=small_limits()) as stack:
        session = oauth_session(stack)
        oauth_session(stack)  # token requests are not counted
        statuses = [session.get(stack.urls["api_a"] + "/v1/events", params={"limit": 1}) for _ in range(7)]
        assert [r.status_code for r in statuses] == [200] * 5 + [429, 429]
        assert statuses[5].headers["Retry-After"] == "60"
        assert statuses[5].json() == {"error": "rate_limited"}
        assert stack.stats()["api_a"]["throttled_429"] == 2


def test_rate_limit_api_b_and_c() -> None:
    with make_apis(faults=small_limits()) as stack:
        url = stack.urls["api_b"] + "/api/v2/detections"
        codes = [requests.get(url, headers={"X-API-Key": API_KEY}, timeout=5).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        client = soap_client(stack)
        for _ in range(5):
            client.service.ListCameras(page=1, pageSize=5)
        with pytest.raises(zeep.exceptions.TransportError) as excinfo:
            client.service.ListCameras(page=1, pageSize=5)
        assert excinfo.value.status_code == 429
        stack.reset()
        assert requests.get(url, headers={"X-API-Key": API_KEY}, timeout=5).status_code == 200


# ----- API C: SOAP ------------------------------------------------------------------------------------------


def test_soap_list_cameras_with_zeep(apis: MockApis) -> None:
    client = soap_client(apis)
    directory = apis.dataset.cameras(apis.clock.now())
    collected = []
    page = 1
    while True:
        result = client.service.ListCameras(page=page, pageSize=10)
        assert (result.totalPages, result.page) == (3, page)
        collected.extend(zeep.helpers.serialize_object(result.camera, dict))
        if page >= result.totalPages:
            break
        page += 1
    assert len(collected) == 24
    assert collected == directory
    assert [c["cameraId"] for c in collected] == [f"cam-{i:03d}" for i in range(1, 25)]


def test_soap_directory_changes_over_time(apis: MockApis) -> None:
    client = soap_client(apis)
    before = zeep.helpers.serialize_object(client.service.ListCameras(page=1, pageSize=500).camera, dict)
    apis.clock.advance(48 * 3600)
    after = zeep.helpers.serialize_object(client.service.ListCameras(page=1, pageSize=500).camera, dict)
    assert after == apis.dataset.cameras(apis.clock.now())
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert changed
    for b, a in changed:
        assert a["active"] is not b["active"] and a["updatedAt"] > b["updatedAt"]


def test_soap_auth_and_faults(apis: MockApis) -> None:
    with pytest.raises(zeep.exceptions.TransportError) as excinfo:
        soap_client(apis, password="wrong").service.ListCameras(page=1, pageSize=10)
    assert excinfo.value.status_code == 401
    client = soap_client(apis)
    with pytest.raises(zeep.exceptions.Fault) as fault:
        client.service.ListCameras(page=1, pageSize=501)
    assert "pageSize" in fault.value.message
    endpoint = apis.urls["api_c"] + "/soap/cameras"
    envelope = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:c="urn:api2snow:cameras"><soapenv:Body><c:ListCameras><c:page>2</c:page>'
        "<c:pageSize>20</c:pageSize></c:ListCameras></soapenv:Body></soapenv:Envelope>"
    )
    ok = requests.post(
        endpoint,
        data=envelope,
        auth=("demo", "demo-pass"),
        timeout=5,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION},
    )
    assert ok.status_code == 200 and ok.text.count("<tns:camera>") == 4
    wrong_action = requests.post(
        endpoint,
        data=envelope,
        auth=("demo", "demo-pass"),
        timeout=5,
        headers={"Content-Type": "text/xml", "SOAPAction": '"urn:other"'},
    )
    assert wrong_action.status_code == 500
    assert "<faultcode>soap:Client</faultcode>" in wrong_action.text
    apis.set_faults("api_c", error_rate=1.0)
    with pytest.raises(zeep.exceptions.Fault) as server_fault:
        client.service.ListCameras(page=1, pageSize=10)
    assert server_fault.value.code == "soap:Server"


def test_wsdl_is_document_literal_and_points_at_the_server(apis: MockApis) -> None:
    response = requests.get(apis.urls["api_c"] + "/soap/cameras?wsdl", timeout=5)
    assert response.status_code == 200
    client = zeep.Client(apis.urls["api_c"] + "/soap/cameras?wsdl")
    binding = client.service._binding
    operation = binding.get("ListCameras")
    assert operation.soapaction == "urn:api2snow:cameras#ListCameras"
    assert operation.style == "document"
    assert client.service._binding_options["address"] == apis.urls["api_c"] + "/soap/cameras"


# ----- faults -----------------------------------------------------------------------------------------------


def test_duplicate_fault_repeats_previous_page_last_record(apis: MockApis) -> None:
    apis.set_faults("api_a", duplicate_rate=1.0)
    apis.set_faults("api_b", duplicate_rate=1.0)
    apis.set_faults("api_c", duplicate_rate=1.0)
    records, pages = fetch_all_a(oauth_session(apis), apis.urls["api_a"], limit=500)
    truth = apis.dataset.truth("api_a", apis.clock.now())
    assert len(records) == len(truth) + pages - 1
    assert list(dict.fromkeys(r["id"] for r in records)) == list(truth)
    assert records[500] == records[499]

    items, totals = fetch_all_b(apis.urls["api_b"], limit=500)
    truth_b = apis.dataset.truth("api_b", apis.clock.now())
    assert len(totals) == 6 and len(items) == len(truth_b) + 5
    assert items[500] == items[499] and items[1001] == items[1000]
    assert list(dict.fromkeys(str(i["eventId"]) for i in items)) == list(truth_b)

    client = soap_client(apis)
    page2 = zeep.helpers.serialize_object(client.service.ListCameras(page=2, pageSize=10).camera, dict)
    assert [c["cameraId"] for c in page2] == ["cam-010"] + [f"cam-{i:03d}" for i in range(11, 21)]
    assert apis.stats()["api_a"]["faults"] == {"duplicate": pages - 1}


def test_invalid_records_are_deterministic_and_in_ground_truth(apis: MockApis) -> None:
    apis.set_faults("api_a", invalid_record_rate=0.05)
    apis.set_faults("api_b", invalid_record_rate=0.05)
    records, _ = fetch_all_a(oauth_session(apis), apis.urls["api_a"])
    broken_a = [r["id"] for r in records if "camera_id" not in r or r["occurred_at"] == "not-a-date"]
    expected_a = apis.dataset.invalid_ids("api_a", apis.clock.now())
    assert sorted(broken_a) == expected_a
    assert 0.03 * len(records) < len(broken_a) < 0.07 * len(records)
    assert {"missing", "bad"} == {
        "missing" if "camera_id" not in r else "bad" for r in records if r["id"] in set(broken_a)
    }
    items, _ = fetch_all_b(apis.urls["api_b"])
    broken_b = [str(i["eventId"]) for i in items if "cameraRef" not in i or i["timestampMs"] == "not-a-date"]
    assert sorted(broken_b, key=int) == apis.dataset.invalid_ids("api_b", apis.clock.now())
    with make_apis(faults={"api_a": Faults(rate_limit_per_min=100, invalid_record_rate=0.05)}) as again:
        assert again.dataset.invalid_ids("api_a", again.clock.now()) == expected_a
    with make_apis(seed=7, faults={"api_a": Faults(invalid_record_rate=0.05)}) as other_seed:
        assert other_seed.dataset.invalid_ids("api_a", other_seed.clock.now()) != expected_a


def test_malformed_pages_are_truncated_json_and_seeded(apis: MockApis) -> None:
    apis.set_faults("api_b", malformed_page_rate=1.0)
    url = apis.urls["api_b"] + "/api/v2/detections"
    response = requests.get(url, params={"limit": 50}, headers={"X-API-Key": API_KEY}, timeout=5)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content) > 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert apis.stats()["api_b"]["faults"] == {"malformed": 1}
    assert apis.stats()["api_b"]["records_served"] == 0

    def pattern(stack: MockApis) -> list[bool]:
        stack.set_faults("api_b", malformed_page_rate=0.5)
        out = []
        for _ in range(12):
            r = requests.get(
                stack.urls["api_b"] + "/api/v2/detections", headers={"X-API-Key": API_KEY}, timeout=5
            )
            try:
                r.json()
                out.append(True)
            except ValueError:
                out.append(False)
        return out

    with make_apis() as first, make_apis() as second:
        seen = pattern(first)
        assert seen == pattern(second)
        assert True in seen and False in seen


def test_error_rate_and_latency(apis: MockApis) -> None:
    apis.set_faults("api_b", error_rate=1.0)
    url = apis.urls["api_b"] + "/api/v2/detections"
    codes = [requests.get(url, headers={"X-API-Key": API_KEY}, timeout=5).status_code for _ in range(8)]
    assert set(codes) == {500, 503}
    apis.set_faults("api_b", error_rate=0.0, latency_ms=150)
    started = time.monotonic()
    assert requests.get(url, headers={"X-API-Key": API_KEY}, timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.15
    assert apis.stats()["api_b"]["faults"] == {"error": 8}


# ----- admin endpoints --------------------------------------------------------------------------------------


def test_admin_clock_faults_truth_and_stats(apis: MockApis) -> None:
    a, b = apis.urls["api_a"], apis.urls["api_b"]
    moved = requests.post(b + "/_admin/clock", json={"advance_s": 3600}, timeout=5).json()
    assert datetime.fromisoformat(moved["now"]) == ANCHOR + timedelta(hours=1) == apis.clock.now()
    requests.post(a + "/_admin/clock", json={"now": "2026-01-01T00:30:00+00:00"}, timeout=5)
    assert apis.clock.now() == ANCHOR + timedelta(minutes=30)
    assert requests.post(a + "/_admin/clock", json={"advance_s": "soon"}, timeout=5).status_code == 400

    faults = requests.post(b + "/_admin/faults", json={"error_rate": 0.25}, timeout=5).json()
    assert faults["api_b"]["error_rate"] == 0.25 and apis.faults["api_b"].error_rate == 0.25
    requests.post(b + "/_admin/faults", json={"api_a": {"token_ttl_s": 60}}, timeout=5)
    assert apis.faults["api_a"].token_ttl_s == 60
    assert requests.post(b + "/_admin/faults", json={"error_rate": 2}, timeout=5).status_code == 400
    assert requests.post(b + "/_admin/faults", json={"nonsense": 1}, timeout=5).status_code == 400

    truth = requests.get(a + "/_admin/truth", params={"source": "api_a"}, timeout=5).json()
    expected = apis.dataset.truth("api_a", apis.clock.now())
    assert truth["count"] == len(expected) == 24 * 120 + 60 + 1
    assert truth["ids"] == list(expected)
    as_of = requests.get(
        a + "/_admin/truth", params={"source": "api_c", "as_of": "2026-01-01T00:00:00Z"}, timeout=5
    ).json()
    assert as_of["count"] == 24 and as_of["invalid_ids"] == []

    apis.set_faults("api_b", error_rate=0.0)
    requests.get(b + "/api/v2/detections", params={"limit": 7}, headers={"X-API-Key": API_KEY}, timeout=5)
    requests.get(b + "/api/v2/detections", timeout=5)
    requests.get(b + "/nowhere", timeout=5)
    stats = requests.get(a + "/_admin/stats", timeout=5).json()
    assert stats == apis.stats()
    assert stats["api_b"]["requests"] == 3
    assert stats["api_b"]["records_served"] == 7
    assert stats["api_b"]["unauthorized_401"] == 1
    assert stats["api_b"]["status"] == {"200": 1, "401": 1, "404": 1}
    assert stats["api_b"]["paths"]["/api/v2/detections"] == {
        "requests": 2,
        "records": 7,
        "status": {"200": 1, "401": 1},
    }
    assert stats["api_a"]["requests"] == 0


def test_main_serves_until_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    ports = []
    for _ in range(3):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    stop = threading.Event()
    result: list[int] = []
    argv = [
        "--seed",
        "7",
        "--port-a",
        str(ports[0]),
        "--port-b",
        str(ports[1]),
        "--port-c",
        str(ports[2]),
        "--history-hours",
        "2",
        "--frozen-clock",
        "--anchor",
        "2026-01-01T00:00:00Z",
    ]
    thread = threading.Thread(target=lambda: result.append(main(argv, stop_event=stop)))
    thread.start()
    try:
        url = f"http://127.0.0.1:{ports[1]}"
        response = None
        for _ in range(100):
            try:
                response = requests.get(
                    url + "/_admin/truth", params={"source": "api_b", "ids": "0"}, timeout=1
                )
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert response is not None and response.json()["count"] == 2 * 120 + 1
    finally:
        stop.set()
        thread.join(timeout=10)
    assert result == [0]
    out = capsys.readouterr().out
    assert f"api_a: http://127.0.0.1:{ports[0]}" in out and f"api_c: http://127.0.0.1:{ports[2]}" in out
