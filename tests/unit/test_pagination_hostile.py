"""Paging against APIs that misbehave: nothing skipped, nothing ended early, no endless loops."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import requests
from api2snow.http.auth import Auth
from api2snow.http.client import ApiClient
from api2snow.http.errors import InconsistentPage, PaginationError
from api2snow.http.paginate import CursorPaginator, OffsetPaginator, PageRequest
from api2snow.http.progress import ProgressGuard
from api2snow.http.ratelimit import RateLimiter
from api2snow.http.retry import RetryPolicy

try:
    from ._http_fixtures import FakeClock, MockServer, Seen, json_reply
except ImportError:
    from _http_fixtures import FakeClock, MockServer, Seen, json_reply

RESPONSE = requests.Response()


def key(record: dict) -> tuple:
    return record["id"], record["v"]


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


def make_client(server: MockServer, attempts: int = 3) -> tuple[ApiClient, FakeClock]:
    clock = FakeClock()
    client = ApiClient(
        server.url,
        Auth(),
        RateLimiter(1000, clock=clock, sleep=clock.sleep),
        RetryPolicy(max_attempts=attempts, rng=random.Random(0)),
        sleep=clock.sleep,
    )
    return client, clock


def parse(field: str):
    def parse_page(response: requests.Response) -> tuple[dict, list]:
        payload = response.json()
        return payload, payload[field]

    return parse_page


def walk(client: ApiClient, paginator, field: str, guard: ProgressGuard | None = None) -> list[dict]:
    req = PageRequest("GET", "/items")
    return [r for page in client.pages(req, paginator, parse(field), guard) for r in page]


class ChangingTable:
    """An offset API ordered by version: between requests, served records are updated (moved to the end)."""

    def __init__(self, n: int, updates_per_request: int, inserts_per_request: int = 0) -> None:
        self.rows = [{"id": f"r{i:04d}", "v": i} for i in range(n)]
        self.version = n
        self.updates = updates_per_request
        self.inserts = inserts_per_request
        self.rng = random.Random(7)
        self.requests = 0

    def latest(self) -> dict[str, int]:
        return {row["id"]: row["v"] for row in self.rows}

    def __call__(self, seen: Seen) -> object:
        offset, limit = int(seen.query["offset"]), int(seen.query["limit"])
        if self.requests:  # the data moves between two page requests, among records already served
            for _ in range(self.updates):
                index = self.rng.randrange(0, max(1, min(offset, len(self.rows))))
                row = self.rows.pop(index)
                self.version += 1
                self.rows.append({"id": row["id"], "v": self.version})
            for _ in range(self.inserts):
                self.version += 1
                self.rows.append({"id": f"n{self.version:04d}", "v": self.version})
        self.requests += 1
        return json_reply({"total": len(self.rows), "items": self.rows[offset : offset + limit]})


@pytest.mark.parametrize(("updates", "inserts"), [(1, 0), (3, 2), (4, 1)])
def test_offset_pages_skip_nothing_while_records_move_under_them(server, updates, inserts):
    table = ChangingTable(1000, updates, inserts)
    server.route("GET", "/items", table)
    client, _ = make_client(server)
    paginator = OffsetPaginator(limit=50, overlap=5, record_key=key)
    received = walk(client, paginator, "items")
    latest: dict[str, int] = {}
    for record in received:
        latest[record["id"]] = max(latest.get(record["id"], -1), record["v"])
    assert latest == table.latest()  # every record, each at its latest version


def test_plain_offset_paging_does_skip_records_when_data_moves(server):
    """The failure the overlap exists for, shown on the same server."""
    table = ChangingTable(1000, 3)
    server.route("GET", "/items", table)
    client, _ = make_client(server)
    received = {r["id"] for r in walk(client, OffsetPaginator(limit=50), "items")}
    assert received != set(table.latest())


def test_offset_pages_step_back_when_the_data_moved_further_than_the_overlap(server):
    table = ChangingTable(400, 12)
    server.route("GET", "/items", table)
    client, _ = make_client(server)
    received = walk(client, OffsetPaginator(limit=50, overlap=3, record_key=key), "items")
    assert {r["id"] for r in received} == set(table.latest())


def test_an_empty_page_before_the_total_is_retried_then_fails_loudly(server):
    answers = iter([{"total": 150, "items": [{"id": f"r{i}", "v": i} for i in range(100)]}])

    def handler(seen: Seen):
        return json_reply(next(answers, {"total": 150, "items": []}))

    server.route("GET", "/items", handler)
    client, clock = make_client(server, attempts=3)
    with pytest.raises(
        PaginationError, match=r"empty page at offset 100 although the API declares 150 records"
    ):
        walk(client, OffsetPaginator(limit=100), "items")
    assert len(server.seen) == 1 + 3 and client.stats["inconsistent_pages"] == 2 and len(clock.sleeps) == 2


def test_a_transient_empty_page_is_fetched_again_and_nothing_is_lost(server):
    rows = [{"id": f"r{i}", "v": i} for i in range(150)]
    served_empty: list[int] = []

    def handler(seen: Seen):
        offset = int(seen.query["offset"])
        if offset and not served_empty:
            served_empty.append(offset)
            return json_reply({"total": 150, "items": []})
        return json_reply({"total": 150, "items": rows[offset : offset + 100]})

    server.route("GET", "/items", handler)
    client, _ = make_client(server)
    assert [r["id"] for r in walk(client, OffsetPaginator(limit=100), "items")] == [r["id"] for r in rows]


def test_an_api_that_ignores_the_offset_fails_at_the_second_page(server):
    rows = [{"id": f"r{i}", "v": i} for i in range(100)]
    server.route("GET", "/items", lambda seen: json_reply({"total": 1000, "items": rows}))
    client, _ = make_client(server)
    with pytest.raises(PaginationError, match="ignores 'offset'"):
        walk(client, OffsetPaginator(limit=100, overlap=5, record_key=key), "items")
    assert len(server.seen) == 2


def test_a_cursor_loop_longer_than_one_step_fails_at_once(server):
    loop = {"": "A", "A": "B", "B": "A"}

    def handler(seen: Seen):
        cursor = seen.query.get("cursor", "")
        return json_reply(
            {"data": [{"id": f"{cursor}-{len(server.seen)}", "v": 1}], "next_cursor": loop[cursor]}
        )

    server.route("GET", "/items", handler)
    client, _ = make_client(server)
    with pytest.raises(PaginationError, match="already used in this run"):
        walk(client, CursorPaginator(), "data")
    assert len(server.seen) == 3


def test_a_cursor_that_advances_over_the_same_records_fails_within_a_few_pages(server):
    rows = [{"id": f"r{i}", "v": i} for i in range(10)]
    server.route(
        "GET", "/items", lambda seen: json_reply({"data": rows, "next_cursor": f"c{len(server.seen)}"})
    )
    client, _ = make_client(server)
    with pytest.raises(PaginationError, match="3 pages in a row served only records already received"):
        walk(client, CursorPaginator(), "data", ProgressGuard(key, max_stalled=3))
    assert len(server.seen) == 4


def test_an_empty_cursor_page_with_a_next_cursor_is_not_the_end(server):
    pages = {"": ([], "c1"), "c1": ([{"id": "r1", "v": 1}], None)}

    def handler(seen: Seen):
        data, nxt = pages[seen.query.get("cursor", "")]
        return json_reply({"data": data, "next_cursor": nxt})

    server.route("GET", "/items", handler)
    client, _ = make_client(server)
    assert [r["id"] for r in walk(client, CursorPaginator(), "data")] == ["r1"]


def test_has_more_without_a_cursor_is_inconsistent_and_has_more_false_ends():
    paginator = CursorPaginator(has_more_field="has_more")
    paginator.init_request(PageRequest("GET", "/"))
    with pytest.raises(InconsistentPage, match="has_more"):
        paginator.update_state(RESPONSE, {"has_more": True, "next_cursor": None}, [])
    paginator.update_state(RESPONSE, {"has_more": False, "next_cursor": "x"}, [1])
    assert not paginator.has_next


def test_overlap_needs_a_record_key():
    with pytest.raises(ValueError, match="record_key"):
        OffsetPaginator(limit=10, overlap=2)


def test_a_re_read_record_whose_content_changed_is_passed_on_again(server):
    rows = [{"id": f"r{i}", "v": i, "c": "old"} for i in range(150)]

    def handler(seen: Seen):
        offset = int(seen.query["offset"])
        if offset:  # between the pages, the last record of page 1 changes without a new version
            rows[99] = {**rows[99], "c": "new"}
        return json_reply({"total": 150, "items": rows[offset : offset + 100]})

    server.route("GET", "/items", handler)
    client, _ = make_client(server)
    received = walk(client, OffsetPaginator(limit=100, overlap=5, record_key=key), "items")
    assert [r["id"] for r in received] == [f"r{i}" for i in range(100)] + ["r99"] + [
        f"r{i}" for i in range(100, 150)
    ]
    assert received[100]["c"] == "new"  # served last, passed on last
