"""Paginators: the three steps on their own, and full walks through ApiClient.pages on a real server."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest
import requests
from api2snow.http.auth import ApiKeyAuth, Auth
from api2snow.http.client import ApiClient
from api2snow.http.errors import PaginationError
from api2snow.http.paginate import (
    CursorPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    Paginator,
    SinglePage,
)
from api2snow.http.ratelimit import RateLimiter
from api2snow.http.retry import RetryPolicy

try:
    from ._http_fixtures import FakeClock, MockServer, Reply, Seen, json_reply
except ImportError:
    from _http_fixtures import FakeClock, MockServer, Reply, Seen, json_reply

EVENTS = [
    {"id": f"a-{i:08d}", "updated_at": f"2026-11-26T08:{i // 60 % 60:02d}:{i % 60:02d}.000Z"}
    for i in range(250)
]
RESPONSE = requests.Response()


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


def make_client(server: MockServer, auth: Auth | None = None) -> ApiClient:
    clock = FakeClock()
    return ApiClient(
        server.url,
        auth or Auth(),
        RateLimiter(1000, clock=clock, sleep=clock.sleep),
        RetryPolicy(max_attempts=3, rng=random.Random(0)),
        sleep=clock.sleep,
    )


def parse_json(field: str):
    def parse(response: requests.Response) -> tuple[dict, list]:
        payload = response.json()
        return payload, payload[field]

    return parse


def cursor_endpoint(seen: Seen) -> Reply:
    """API A style: opaque cursor = base-10 position, reversed so it looks opaque."""
    start = int(seen.query.get("cursor", "0")[::-1] or 0)
    limit = int(seen.query.get("limit", "100"))
    page = EVENTS[start : start + limit]
    nxt = str(start + limit)[::-1] if start + limit < len(EVENTS) else None
    return json_reply({"data": page, "next_cursor": nxt})


def offset_endpoint(with_total: bool = True, pad_with_duplicate: bool = False):
    """API B style: offset/limit with total; optionally repeats the previous page's last record."""

    def handler(seen: Seen) -> Reply:
        offset, limit = int(seen.query["offset"]), int(seen.query["limit"])
        items = EVENTS[offset : offset + limit]
        if pad_with_duplicate and offset and items:
            items = [EVENTS[offset - 1], *items]
        body = {"offset": offset, "limit": limit, "items": items}
        if with_total:
            body["total"] = len(EVENTS)
        return json_reply(body)

    return handler


def soap_endpoint(total_pages: int | None, page_size: int = 100):
    def handler(seen: Seen) -> Reply:
        page = int(re.search(rb"<page>(\d+)</page>", seen.body).group(1))
        rows = EVENTS[(page - 1) * page_size : page * page_size]
        body = {"page": page, "camera": rows}
        if total_pages is not None:
            body["totalPages"] = total_pages
        return json_reply(body)

    return handler


def ids(pages: list[list[dict]]) -> list[str]:
    return [record["id"] for page in pages for record in page]


def test_paginators_satisfy_the_protocol() -> None:
    for paginator in (CursorPaginator(), OffsetPaginator(), PageNumberPaginator(), SinglePage()):
        assert isinstance(paginator, Paginator)
        assert paginator.has_next


def test_cursor_steps() -> None:
    paginator = CursorPaginator()
    req = PageRequest("GET", "/v1/events", params={"limit": 2})
    paginator.init_request(req)
    assert req.params == {"limit": 2}
    paginator.update_state(RESPONSE, {"data": [1, 2], "next_cursor": "abc"}, [1, 2])
    paginator.update_request(req)
    assert paginator.has_next and req.params == {"limit": 2, "cursor": "abc"}
    paginator.update_state(RESPONSE, {"data": [3], "next_cursor": None}, [3])
    assert not paginator.has_next


def test_cursor_that_does_not_advance_is_an_error() -> None:
    paginator = CursorPaginator()
    paginator.init_request(PageRequest("GET", "/", params={"cursor": "same"}))
    with pytest.raises(PaginationError, match="already used in this run"):
        paginator.update_state(RESPONSE, {"next_cursor": "same"}, [1])


def test_offset_steps_stop_at_total_and_on_empty_pages() -> None:
    paginator = OffsetPaginator(limit=100)
    req = PageRequest("GET", "/api/v2/detections", params={"modified_since": 5})
    paginator.init_request(req)
    assert req.params == {"modified_since": 5, "offset": 0, "limit": 100}
    paginator.update_state(RESPONSE, {"total": 150}, list(range(100)))
    paginator.update_request(req)
    assert paginator.has_next and req.params["offset"] == 100
    paginator.update_state(RESPONSE, {"total": 150}, list(range(50)))
    assert not paginator.has_next

    no_total = OffsetPaginator(limit=10, total_field=None)
    no_total.init_request(PageRequest("GET", "/"))
    no_total.update_state(RESPONSE, {}, list(range(10)))
    assert no_total.has_next
    no_total.update_state(RESPONSE, {}, [])
    assert not no_total.has_next


def test_page_number_steps() -> None:
    paginator = PageNumberPaginator("page", lambda payload: payload["totalPages"])
    req = PageRequest("GET", "/")
    paginator.init_request(req)
    assert req.params == {"page": 1}
    paginator.update_state(RESPONSE, {"totalPages": "2"}, [1])
    paginator.update_request(req)
    assert paginator.has_next and req.params == {"page": 2}
    paginator.update_state(RESPONSE, {"totalPages": 2}, [1])
    assert not paginator.has_next


def test_paginators_can_be_reused() -> None:
    paginator = OffsetPaginator(limit=5)
    paginator.init_request(PageRequest("GET", "/"))
    paginator.update_state(RESPONSE, {"total": 3}, [1, 2, 3])
    assert not paginator.has_next
    req = PageRequest("GET", "/")
    paginator.init_request(req)
    assert paginator.has_next and req.params["offset"] == 0 and paginator.total is None


def test_cursor_walk_over_http(server: MockServer) -> None:
    server.route("GET", "/v1/events", cursor_endpoint)
    client = make_client(server)
    req = PageRequest("GET", "/v1/events", params={"updated_since": "2026-01-01T00:00:00Z", "limit": 100})
    pages = list(client.pages(req, CursorPaginator(), parse_json("data")))

    assert [len(p) for p in pages] == [100, 100, 50]
    assert ids(pages) == [e["id"] for e in EVENTS]
    calls = server.calls("/v1/events")
    assert len(calls) == 3 and client.stats["pages"] == 3 and client.stats["requests"] == 3
    assert all(call.query["updated_since"] == "2026-01-01T00:00:00Z" for call in calls)
    assert "cursor" not in calls[0].query and calls[1].query["cursor"] == "001"
    assert req.params == {"updated_since": "2026-01-01T00:00:00Z", "limit": 100}  # caller's request untouched


def test_cursor_walk_resumes_from_a_saved_cursor(server: MockServer) -> None:
    server.route("GET", "/v1/events", cursor_endpoint)
    req = PageRequest("GET", "/v1/events", params={"cursor": "002", "limit": 100})
    pages = list(make_client(server).pages(req, CursorPaginator(), parse_json("data")))
    assert ids(pages) == [e["id"] for e in EVENTS[200:]]


def test_offset_walk_stops_at_total_without_an_extra_request(server: MockServer) -> None:
    server.route("GET", "/api/v2/detections", offset_endpoint())
    client = make_client(server, ApiKeyAuth("X-API-Key", "KEY"))
    pages = list(
        client.pages(PageRequest("GET", "/api/v2/detections"), OffsetPaginator(), parse_json("items"))
    )
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [c.query["offset"] for c in server.calls("/api/v2/detections")] == ["0", "100", "200"]


def test_offset_walk_without_total_stops_on_the_empty_page(server: MockServer) -> None:
    server.route("GET", "/api/v2/detections", offset_endpoint(with_total=False))
    client = make_client(server)
    paginator = OffsetPaginator(limit=100, total_field=None)
    pages = list(client.pages(PageRequest("GET", "/api/v2/detections"), paginator, parse_json("items")))
    assert [len(p) for p in pages] == [100, 100, 50]  # the empty final page is not yielded
    assert len(server.calls("/api/v2/detections")) == 4
    assert client.stats["pages"] == 4


def test_offset_walk_with_repeated_records_skips_nothing(server: MockServer) -> None:
    server.route("GET", "/api/v2/detections", offset_endpoint(pad_with_duplicate=True))
    pages = list(
        make_client(server).pages(
            PageRequest("GET", "/api/v2/detections"), OffsetPaginator(limit=100), parse_json("items")
        )
    )
    seen = ids(pages)
    assert len(seen) == 252 and set(seen) == {e["id"] for e in EVENTS}


def test_page_number_walk_with_a_soap_body(server: MockServer) -> None:
    server.route("POST", "/soap/cameras", soap_endpoint(total_pages=3))
    client = make_client(server)
    paginator = PageNumberPaginator(
        None,
        lambda payload: payload["totalPages"],
        body_factory=lambda page: f"<ListCameras><page>{page}</page><pageSize>100</pageSize></ListCameras>",
    )
    req = PageRequest("POST", "/soap/cameras", headers={"SOAPAction": '"urn:api2snow:cameras#ListCameras"'})
    pages = list(client.pages(req, paginator, parse_json("camera")))
    assert ids(pages) == [e["id"] for e in EVENTS]
    calls = server.calls("/soap/cameras")
    assert len(calls) == 3 and all(c.query == {} for c in calls)
    assert calls[2].headers["soapaction"] == '"urn:api2snow:cameras#ListCameras"'


def test_page_number_walk_stops_on_an_empty_page_without_a_total(server: MockServer) -> None:
    server.route("POST", "/soap/cameras", soap_endpoint(total_pages=None, page_size=120))
    paginator = PageNumberPaginator(
        None, lambda payload: payload.get("totalPages"), body_factory=lambda page: f"<page>{page}</page>"
    )
    pages = list(
        make_client(server).pages(PageRequest("POST", "/soap/cameras"), paginator, parse_json("camera"))
    )
    assert [len(p) for p in pages] == [120, 120, 10]
    assert len(server.calls("/soap/cameras")) == 4


def test_single_page(server: MockServer) -> None:
    server.route("GET", "/v1/sites", lambda seen: json_reply({"data": EVENTS[:3], "next_cursor": "ignored"}))
    pages = list(make_client(server).pages(PageRequest("GET", "/v1/sites"), SinglePage(), parse_json("data")))
    assert [len(p) for p in pages] == [3]
    assert len(server.calls("/v1/sites")) == 1
