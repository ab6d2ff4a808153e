"""The mock API generated from a source declaration: API D, and small declarations of every pagination kind
walked by the project's own HTTP client and paginators."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from api2snow.http.auth import ApiKeyAuth, Auth, BearerTokenAuth, HttpBasicAuth, OAuth2ClientCredentials
from api2snow.http.client import ApiClient
from api2snow.http.errors import PaginationError
from api2snow.http.paginate import LinkHeaderPaginator, PageRequest
from api2snow.http.ratelimit import RateLimiter
from api2snow.http.retry import RetryPolicy
from api2snow.settings import Settings
from api2snow.sources import SOURCES
from api2snow.sources.declaration import (
    AuthSpec,
    DeclaredSource,
    PaginationSpec,
    RequestSpec,
    SourceDeclaration,
    format_since,
    wire_value,
)
from api2snow.sources.entities import EVENT_FIELDS, mapped
from api2snow.transform import validate

from api2snow_cli.local.mock_apis import Credentials, Faults, MockApiConfig, MockApis
from api2snow_cli.local.mock_apis.context import APIS
from api2snow_cli.local.mock_apis.declared import DeclaredDataset, GenerationError

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = Settings("TEST_DB", {})
SINCE = ANCHOR - timedelta(minutes=50)
API_D = SOURCES["api_d"]
D = API_D.declaration  # type: ignore[attr-defined]
D_PATH = D.request.path
BEARER = {"Authorization": "Bearer demo-token"}


def declare(name: str, auth: AuthSpec, request: RequestSpec, pagination: PaginationSpec, **rest: Any):
    values: dict[str, Any] = {
        "title": name,
        "entity": "events",
        "records_path": "data",
        "id_field": "id",
        "version_field": "updated_at",
        "fields": mapped(
            EVENT_FIELDS,
            event_id={"wire": "id", "wire_type": "str"},
            event_type={"wire": "type"},
            camera_id={"wire": "camera_id"},
            category={"wire": "category"},
            confidence={"wire": "confidence"},
            occurred_at={"wire": "occurred_at", "wire_type": "str"},
            updated_at={"wire": "updated_at", "wire_type": "str"},
            duration_ms={"wire": "duration_ms"},
            attributes={"wire": "attributes"},
        ),
        "rate_limit_per_min": 1000,
        "page_size": 25,
        "max_page_size": 50,
        "host_example": "https://t.example.com",
    }
    values.update(rest)
    return SourceDeclaration(name=name, auth=auth, request=request, pagination=pagination, **values)


# Cursor pages behind OAuth2, epoch-ms watermark, B-like converts (int id, percent, seconds) to invert.
T_CURSOR = declare(
    "t_cursor",
    AuthSpec("oauth2_client_credentials", secret="t_client", scope="read", token_path="/auth/token"),
    RequestSpec("/cursor", since_param="since", since_format="epoch_ms", page_size_param="limit"),
    PaginationSpec("cursor", cursor_param="after", cursor_field="next", has_more_field="more"),
    id_field="n",
    version_field="mod",
    fields=mapped(
        EVENT_FIELDS,
        event_id={"wire": "n", "wire_type": "int", "convert": lambda v: f"c-{v}"},
        event_type={"wire": "t", "convert": str.lower},
        camera_id={"wire": "cam"},
        category={"wire": "cat", "convert": str.lower},
        confidence={"wire": "pct", "wire_type": "int", "convert": lambda v: v / 100},
        occurred_at={"wire": "at", "wire_type": "int"},
        updated_at={"wire": "mod", "wire_type": "int"},
        duration_ms={"wire": "secs", "wire_type": "number", "convert": lambda v: int(round(v * 1000))},
        attributes={"wire": None},
    ),
)
T_OFFSET = declare(
    "t_offset",
    AuthSpec("api_key", secret="t_key", header="X-Token"),
    RequestSpec("/offset", since_param="changed_since"),
    PaginationSpec("offset", offset_param="skip", limit_param="take", total_field="count"),
    records_path="page.items",
)
T_PAGES = declare(
    "t_pages",
    AuthSpec("basic", secret="t_login"),
    RequestSpec("/pages", method="POST", since_param="since", page_size_param="size"),
    PaginationSpec("page_number", page_param="p", total_pages_field="meta.pages"),
    records_path="results",
)
T_LIST = declare(  # the payload is the list itself; Link headers carry the paging
    "t_list",
    AuthSpec("none"),
    RequestSpec("/list", since_param="since", page_size_param="per_page"),
    PaginationSpec("link_header"),
    records_path=None,
)
T_SINGLE = declare(
    "t_single", AuthSpec("none"), RequestSpec("/all", since_param="since"), PaginationSpec("single")
)
TEST_DECLARATIONS = (T_CURSOR, T_OFFSET, T_PAGES, T_LIST, T_SINGLE)


def source_of(declaration: SourceDeclaration) -> DeclaredSource:
    if declaration.name in SOURCES:
        return SOURCES[declaration.name]  # type: ignore[return-value]
    return type(f"Test_{declaration.name}", (DeclaredSource,), {"declaration": declaration})()


def config(**overrides: Any) -> MockApiConfig:
    values: dict[str, Any] = {
        "anchor": ANCHOR,
        "follow_real_time": False,
        "history_hours": 2,
        "events_per_hour_a": 10,
        "events_per_hour_b": 10,
        "events_per_hour_generated": 60,
    }
    values.update(overrides)
    return MockApiConfig(**values)


@contextmanager
def serving(*declarations: SourceDeclaration, **overrides: Any) -> Iterator[MockApis]:
    with MockApis(config(declarations=declarations or None, **overrides)) as apis:
        yield apis


@pytest.fixture(scope="module")
def apis() -> Iterator[MockApis]:
    # Many requests to D in one module: its own limit (120 a minute) is tested on a fresh server.
    with serving(D, *TEST_DECLARATIONS, faults={"api_d": Faults(rate_limit_per_min=10_000)}) as running:
        yield running


def auth_for(declaration: SourceDeclaration, url: str) -> Auth:
    spec, creds = declaration.auth, Credentials()
    if spec.kind == "oauth2_client_credentials":
        return OAuth2ClientCredentials(
            f"{url}{spec.token_path}", creds.client_id, creds.client_secret, spec.scope, "client_secret_post"
        )
    if spec.kind == "api_key":
        return ApiKeyAuth(spec.header, creds.api_key)
    if spec.kind == "bearer":
        return BearerTokenAuth(lambda force_refresh=False: creds.bearer_token)
    if spec.kind == "basic":
        return HttpBasicAuth(creds.soap_user, creds.soap_password)
    return Auth()


def walk(
    apis: MockApis, declaration: SourceDeclaration, since: datetime | None = None
) -> tuple[list, ApiClient]:
    """Every record the project's client reads from the mock, page after page, as ingest reads them."""
    source = source_of(declaration)
    url = apis.urls[declaration.name]
    client = ApiClient(
        url,
        auth_for(declaration, url),
        RateLimiter(10_000),
        RetryPolicy(max_attempts=2, rng=random.Random(0)),
    )
    request = source.first_request(None if since is None else since.replace(tzinfo=None))
    records = [
        r for page in client.pages(request, source.paginator(SETTINGS), source.parse_page) for r in page
    ]
    return records, client


def wire_ids(declaration: SourceDeclaration, records: list) -> list[str]:
    return [str(wire_value(r, declaration.id_field)) for r in records]


# ---- every pagination kind, read by the real paginators ------------------------------------------------
@pytest.mark.parametrize(
    "declaration", [D, *TEST_DECLARATIONS], ids=lambda d: f"{d.name}-{d.pagination.kind}"
)
@pytest.mark.parametrize("since", [None, SINCE], ids=["full", "since"])
def test_every_record_is_served_exactly_once_across_pages(
    apis: MockApis, declaration: SourceDeclaration, since: datetime | None
) -> None:
    records, client = walk(apis, declaration, since)
    truth = apis.truth(declaration.name, apis.clock.now(), since)
    assert wire_ids(declaration, records) == list(truth)  # each once, in (updated_at, id) order
    source = source_of(declaration)
    for raw in records:
        assert validate(source.normalize(raw), source.schema) is None, raw
    if since is not None:
        assert 0 < len(truth) < len(apis.truth(declaration.name, apis.clock.now()))
        assert min(truth.values()) > SINCE
    elif declaration.pagination.kind != "single":
        assert client.stats["pages"] >= 2 and len(truth) > declaration.page_size


def test_generated_values_respect_the_target_constraints(apis: MockApis) -> None:
    now = apis.clock.now()
    normalised = [API_D.normalize(r) for r in apis.declared["api_d"].visible(now)]
    ids = [r["event_id"] for r in normalised]
    assert len(ids) == len(set(ids)) == 121  # 2 hours at 60 an hour, both ends included
    assert {r["category"] for r in normalised} <= {"person", "vehicle", "bicycle", "animal", "package"}
    assert all(0.0 <= r["confidence"] <= 1.0 and r["duration_ms"] >= 0 for r in normalised)
    assert all(r["occurred_at"] <= r["updated_at"] for r in normalised)
    assert all(r["camera_id"].startswith("cam-") for r in normalised)
    assert any(r["attributes"] is None for r in normalised)  # optional: sometimes absent
    # Wire shapes as declared: ISO 8601 with Z, epoch milliseconds, percent and seconds read back exactly.
    raw_d = apis.declared["api_d"].visible(now)[0]
    assert raw_d["last_modified"].endswith("Z") and raw_d["kind"].isupper()
    raw_c = apis.declared["t_cursor"].visible(now)[0]
    assert isinstance(raw_c["mod"], int) and isinstance(raw_c["pct"], int) and isinstance(raw_c["n"], int)


def test_records_change_with_the_clock_and_updates_move_the_version_forward() -> None:
    with serving(T_OFFSET, update_rate=0.5) as apis:
        data = apis.declared["t_offset"]
        before = data.truth(ANCHOR)
        later = ANCHOR + timedelta(hours=2)
        after = data.truth(later)
        assert set(before) < set(after)  # new records
        updated = [i for i in before if after[i] > before[i]]
        assert updated  # and later versions of earlier ones, at a later updated_at
        old = {r["id"]: r for r in data.visible(ANCHOR)}
        new = {r["id"]: r for r in data.visible(later)}
        assert all(new[i]["updated_at"] > old[i]["updated_at"] for i in updated)
        assert all(new[i]["camera_id"] == old[i]["camera_id"] for i in updated)  # ids, free text stay
        again = DeclaredDataset(T_OFFSET, anchor=ANCHOR, history_hours=2, events_per_hour=60, update_rate=0.5)
        assert again.visible(later) == data.visible(later)  # deterministic from the seed


# ---- API D -------------------------------------------------------------------------------------------
def test_api_d_pages_parse_and_normalise_into_valid_records(apis: MockApis) -> None:
    url = apis.urls["api_d"] + D_PATH
    first = API_D.first_request(SINCE.replace(tzinfo=None))
    assert first.params == {"page": 1, "per_page": 100, "updated_after": "2025-12-31T23:10:00Z"}
    response = requests.get(url, params={"page": 1, "per_page": 10}, headers=BEARER, timeout=5)
    payload, records = API_D.parse_page(response)
    assert len(records) == 10 and payload["result"]["detections"] is records
    for raw in records:
        assert isinstance(raw["detection"]["label"], str) and "camera" in raw["device"]
        record = API_D.normalize(raw)
        assert validate(record, API_D.schema) is None
        assert record["source"] == "api_d" and record["category"] == raw["detection"]["label"].lower()


def test_api_d_link_header_is_absolute_and_absent_on_the_last_page(apis: MockApis) -> None:
    url = apis.urls["api_d"] + D_PATH
    response = requests.get(url, params={"page": 1, "per_page": 100}, headers=BEARER, timeout=5)
    next_url = response.links["next"]["url"]
    assert next_url.startswith(apis.urls["api_d"] + D_PATH + "?") and "page=2" in next_url
    assert "per_page=100" in next_url
    last = requests.get(response.links["last"]["url"], headers=BEARER, timeout=5)
    assert last.status_code == 200 and "next" not in last.links and "prev" in last.links
    assert len(API_D.parse_page(last)[1]) == 121 - 100


def test_link_walk_keeps_one_snapshot_while_the_clock_moves() -> None:
    with serving(D) as apis:
        url = apis.urls["api_d"] + D_PATH
        first = requests.get(url, params={"page": 1, "per_page": 50}, headers=BEARER, timeout=5)
        apis.clock.advance(3600)  # new records and updates arrive between two pages
        rest = []
        link = first.links.get("next", {}).get("url")
        while link:
            page = requests.get(link, headers=BEARER, timeout=5)
            rest += API_D.parse_page(page)[1]
            link = page.links.get("next", {}).get("url")
        served = wire_ids(D, API_D.parse_page(first)[1] + rest)
        assert served == list(apis.truth("api_d", ANCHOR))


def test_api_d_is_served_by_default_with_its_declared_rate_limit() -> None:
    assert "api_d" in APIS
    with MockApis(config()) as apis:
        assert set(apis.urls) == {"api_a", "api_b", "api_c", *SOURCES} and apis.urls["api_d"]
        assert apis.faults["api_d"].rate_limit_per_min == D.rate_limit_per_min == 120
        now = apis.clock.now()
        assert apis.truth("api_a", now) == apis.dataset.truth("api_a", now)
        admin = requests.get(f"{apis.urls['api_a']}/_admin/truth", params={"source": "api_d"}, timeout=5)
        assert admin.json()["ids"] == list(apis.truth("api_d", now))
        assert set(requests.get(f"{apis.urls['api_d']}/_admin/stats", timeout=5).json()) == set(apis.apis)


# ---- auth, page size, rate limit -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("declaration", "headers"),
    [
        (D, {}),
        (D, {"Authorization": "Bearer wrong"}),
        (D, {"Authorization": "Basic ZGVtbzpkZW1vLXBhc3M="}),
        (T_OFFSET, {"X-Token": "wrong"}),
        (T_OFFSET, {"X-API-Key": "demo-key"}),  # the right key in the wrong header
        (T_PAGES, {"Authorization": "Basic ZGVtbzp3cm9uZw=="}),  # demo:wrong
        (T_CURSOR, {"Authorization": "Bearer never-issued"}),
    ],
)
def test_bad_credentials_are_refused_with_401(
    apis: MockApis, declaration: SourceDeclaration, headers: dict[str, str]
) -> None:
    url = apis.urls[declaration.name] + declaration.request.path
    response = requests.request(declaration.request.method, url, headers=headers, timeout=5)
    assert response.status_code == 401
    if declaration.auth.kind in ("bearer", "oauth2_client_credentials"):
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_oauth2_token_endpoint_and_expiry() -> None:
    with serving(T_CURSOR) as apis:
        base = apis.urls["t_cursor"]
        token_url = base + T_CURSOR.auth.token_path
        wrong = requests.post(token_url, data={"grant_type": "client_credentials"}, auth=("demo-client", "x"))
        assert wrong.status_code == 401
        scope = requests.post(
            token_url,
            data={"grant_type": "client_credentials", "scope": "write"},
            auth=("demo-client", "demo-secret"),
        )
        assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
        token = requests.post(
            token_url,
            data={"grant_type": "client_credentials", "scope": "read"},
            auth=("demo-client", "demo-secret"),
        ).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert requests.get(base + "/cursor", headers=headers, timeout=5).status_code == 200
        apis.clock.advance(token["expires_in"])
        assert requests.get(base + "/cursor", headers=headers, timeout=5).status_code == 401


def test_page_size_above_the_declared_maximum_is_refused(apis: MockApis) -> None:
    url = apis.urls["api_d"] + D_PATH
    assert requests.get(url, params={"per_page": 100}, headers=BEARER, timeout=5).status_code == 200
    too_big = requests.get(url, params={"per_page": D.max_page_size + 1}, headers=BEARER, timeout=5)
    assert too_big.status_code == 400 and "per_page" in too_big.json()["error_description"]
    offset = requests.get(
        apis.urls["t_offset"] + "/offset", params={"take": 51}, headers={"X-Token": "demo-key"}, timeout=5
    )
    assert offset.status_code == 400


def test_rate_limit_answers_429_with_retry_after() -> None:
    limited = declare(
        "t_limited", AuthSpec("bearer", secret="t_token"), RequestSpec("/x"), PaginationSpec("single")
    )
    with serving(limited) as apis:
        assert apis.faults["t_limited"].rate_limit_per_min == 1000
        apis.set_faults("t_limited", rate_limit_per_min=3)
        url = apis.urls["t_limited"] + "/x"
        statuses = [requests.get(url, headers=BEARER, timeout=5).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        retry = requests.get(url, headers=BEARER, timeout=5)
        assert retry.status_code == 429 and int(retry.headers["Retry-After"]) >= 1
        assert apis.stats()["t_limited"]["throttled_429"] == 2


def test_since_is_strict_and_read_in_the_declared_format(apis: MockApis) -> None:
    now = apis.clock.now()
    truth = apis.truth("t_cursor", now)
    pivot = list(truth.values())[30]
    since_ms = format_since(pivot.replace(tzinfo=None), "epoch_ms")
    url = apis.urls["t_cursor"] + "/cursor"
    token = auth_for(T_CURSOR, apis.urls["t_cursor"])
    headers: dict[str, str] = {}
    token.apply(headers, {})
    page = requests.get(url, params={"since": since_ms, "limit": 50}, headers=headers, timeout=5).json()
    assert [str(r["n"]) for r in page["data"]] == list(truth)[31:81]
    bad = requests.get(url, params={"since": "yesterday"}, headers=headers, timeout=5)
    assert bad.status_code == 400


# ---- faults --------------------------------------------------------------------------------------------
def test_invalid_records_and_duplicates_follow_the_faults() -> None:
    with serving(D, seed=7) as apis:
        apis.set_faults("api_d", invalid_record_rate=0.2, duplicate_rate=1.0)
        now = apis.clock.now()
        invalid = set(apis.declared["api_d"].invalid_ids(now))
        assert invalid
        records, _ = walk(apis, D)
        reasons = {r["uid"]: validate_or_reason(r) for r in records}
        assert {uid for uid, reason in reasons.items() if reason} == invalid
        assert apis.stats()["api_d"]["faults"]["duplicate"] >= 1  # the client's dedupe drops the repeats
        assert set(apis.declared["api_d"].clean_truth(now)) == set(apis.truth("api_d", now)) - invalid


def validate_or_reason(raw: dict) -> str | None:
    try:
        return validate(API_D.normalize(raw), API_D.schema)
    except (KeyError, TypeError, ValueError) as exc:
        return str(exc)


# ---- what the generator refuses ------------------------------------------------------------------------
def test_declarations_it_cannot_generate_are_refused_by_name() -> None:
    custom = declare("t_custom", AuthSpec("none"), RequestSpec("/c"), PaginationSpec("custom"))
    with pytest.raises(GenerationError, match="t_custom: custom pagination"):
        MockApis(config(declarations=(custom,)))
    opaque = declare(
        "t_opaque",
        AuthSpec("none"),
        RequestSpec("/o"),
        PaginationSpec("single"),
        fields=mapped(
            EVENT_FIELDS,
            **{f.name: {"wire": f.name} for f in EVENT_FIELDS if f.name != "category"},
            category={"wire": "category", "wire_type": "int", "convert": lambda v: ["person", "vehicle"][v]},
        ),
    )
    with pytest.raises(GenerationError, match="t_opaque: cannot generate wire values for field 'category'"):
        DeclaredDataset(opaque, anchor=ANCHOR)


# ---- LinkHeaderPaginator on its own --------------------------------------------------------------------
def _with_link(link: str | None) -> requests.Response:
    response = requests.Response()
    if link is not None:
        response.headers["Link"] = link
    return response


def test_link_header_paginator_follows_next_and_stops_without_it() -> None:
    paginator = LinkHeaderPaginator()
    request = PageRequest("GET", "/v3/detections", params={"page": 1, "per_page": 100})
    paginator.init_request(request)
    nxt = "http://h:1/v3/detections?page=2&per_page=100"
    paginator.update_state(
        _with_link(f'<{nxt}>; rel="next", <http://h:1/v3/detections?page=9>; rel="last"'), None, []
    )
    paginator.update_request(request)
    assert paginator.has_next and request.path == "http://h:1/v3/detections"
    assert request.params == {"page": "2", "per_page": "100"}
    with pytest.raises(PaginationError, match="already followed"):
        paginator.update_state(_with_link(f'<{nxt}>; rel="next"'), None, [])
    paginator.update_state(_with_link('<http://h:1/x?page=1>; rel="first"'), None, [])
    assert not paginator.has_next
