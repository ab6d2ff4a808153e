"""Paginators: how to walk from one page request to the next.

Like dlt's rest_client, each paginator works in three steps: `init_request` prepares the first
request, `update_state` reads the answer (payload and records already parsed), and `update_request`
turns the state into the next request. The client owns the HTTP loop, so a paginator holds only the
few values it needs (a cursor, an offset), which keeps memory constant however many pages there are.

Paginators distrust the API: an empty page is not the end while the API's own total, `has_more` flag
or cursor says there is more (`InconsistentPage`, which the client retries and then fails on), a cursor
seen before anywhere in the run is a loop (`PaginationError`), and offset pages re-read a few records
of the previous page to notice when data changed underneath them (see `OffsetPaginator`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests

from .errors import InconsistentPage, PaginationError

RecordKey = Callable[[Any], Hashable | None]


@dataclass
class PageRequest:
    """One request as the paginator sees it; the client adds base URL, auth and timeouts."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: str | bytes | None = None

    def copy(self) -> PageRequest:
        """Shallow copy with own params/headers dicts, so paginating never mutates the caller's request."""
        return PageRequest(self.method, self.path, dict(self.params), dict(self.headers), self.body)


@runtime_checkable
class Paginator(Protocol):
    """The three pagination steps plus `has_next`.

    `update_state` returns the records of the page that are new (None: all of them); it raises
    `InconsistentPage`, before changing any state, when the answer contradicts itself and the same
    request is worth sending again.
    """

    @property
    def has_next(self) -> bool: ...

    def init_request(self, req: PageRequest) -> None: ...

    def update_state(self, response: requests.Response, payload: Any, records: list) -> list | None: ...

    def update_request(self, req: PageRequest) -> None: ...


class BasePaginator:
    """Shared `has_next` bookkeeping; `init_request` re-arms it so a paginator can be reused."""

    def __init__(self) -> None:
        self._has_next = True

    @property
    def has_next(self) -> bool:
        return self._has_next

    @property
    def remaining(self) -> int | None:
        """Records the API says are still to come, where it says so (a total); None when unknown."""
        return None

    def init_request(self, req: PageRequest) -> None:
        self._has_next = True

    def update_state(self, response: requests.Response, payload: Any, records: list) -> list | None:
        self._has_next = False
        return None

    def update_request(self, req: PageRequest) -> None:
        """Nothing to change by default."""


class SinglePage(BasePaginator):
    """The endpoint answers everything in one response."""

    def __repr__(self) -> str:
        return "SinglePage()"


def _field(payload: Any, name: str) -> Any:
    """Top-level field of a JSON object payload, None for anything else."""
    return payload.get(name) if isinstance(payload, dict) else None


def _fingerprint(record: Any) -> int:
    """A record's content, for noticing that a re-read record changed without a new version."""
    return hash(json.dumps(record, sort_keys=True, default=repr))


def _as_int(value: Any) -> int | None:
    """A count from a payload (int, integral float or digit string); None when absent or malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class CursorPaginator(BasePaginator):
    """Opaque cursor returned in the payload (API A: `next_cursor`, null on the last page).

    A cursor passed in the initial request params is kept, so a run can resume from a saved cursor. Every
    cursor of the run is remembered (as a hash): one seen before means the API is going round in a loop,
    however long (A -> B -> A), and fails at once. An empty page with a next cursor is not the end; with
    `has_more_field`, a page that says there is more but gives no cursor is an error, not the end.
    """

    def __init__(
        self,
        cursor_param: str = "cursor",
        cursor_field: str = "next_cursor",
        has_more_field: str | None = None,
    ) -> None:
        super().__init__()
        self.cursor_param = cursor_param
        self.cursor_field = cursor_field
        self.has_more_field = has_more_field
        self.cursor: str | None = None
        self._seen: set[int] = set()

    def __repr__(self) -> str:
        return f"CursorPaginator(cursor_param={self.cursor_param!r}, cursor_field={self.cursor_field!r})"

    def init_request(self, req: PageRequest) -> None:
        super().init_request(req)
        self.cursor = req.params.get(self.cursor_param)
        self._seen = {hash(self.cursor)} if self.cursor is not None else set()

    def update_state(self, response: requests.Response, payload: Any, records: list) -> list | None:
        cursor = _field(payload, self.cursor_field)
        has_more = _field(payload, self.has_more_field) if self.has_more_field else None
        if cursor in (None, ""):
            if has_more is True:
                raise InconsistentPage(f"page says {self.has_more_field!r} but has no {self.cursor_field!r}")
            self._has_next = False
            return None
        if has_more is False:
            self._has_next = False
            return None
        cursor = str(cursor)
        if hash(cursor) in self._seen:
            raise PaginationError(
                f"cursor in {self.cursor_field!r} was already used in this run: the API is paging in a loop "
                f"(after {len(self._seen)} cursors)"
            )
        self._seen.add(hash(cursor))
        self.cursor = cursor
        return None

    def update_request(self, req: PageRequest) -> None:
        req.params[self.cursor_param] = self.cursor


class OffsetPaginator(BasePaginator):
    """Offset/limit pages with a total count (API B). Stops at `total`, or on an empty page without one.

    Records inserted, updated or deleted while a run pages through shift the offsets of the records
    behind them; an update that moves a record to the end of the order shifts everything after its old
    place one step back, and plain offset paging then skips a record at the next page boundary. So each
    page after the first starts `overlap` records early and finds the last records of the previous page
    in it (by `record_key`): the records after the last one found are new, wherever they now are, and a
    re-read record whose content changed since it was served is passed on again (served last wins). When
    none is found within the overlap, the data moved further than that: the paginator steps one page
    back to find them (up to `max_realign_steps` pages), and doubles its overlap (up to half a page) so
    that the churn it has just seen fits in it from then on. Beyond those limits it fails loudly rather
    than skip records.

    An empty page before the declared total is a contradiction (`InconsistentPage`), retried, then an
    error: a run never ends short of what the API said it has. The offset advances by at most `limit`
    records a page: a page padded with repeated records must not push it past records not yet seen.
    """

    def __init__(
        self,
        offset_param: str = "offset",
        limit_param: str = "limit",
        limit: int = 100,
        total_field: str | None = "total",
        offset: int = 0,
        *,
        overlap: int = 0,
        record_key: RecordKey | None = None,
        max_realign_steps: int = 3,
    ) -> None:
        super().__init__()
        if limit < 1 or offset < 0:
            raise ValueError("limit must be >= 1 and offset >= 0")
        if overlap < 0 or (overlap and record_key is None) or overlap >= limit:
            raise ValueError("overlap must be >= 0 and below limit, and needs a record_key")
        self.offset_param = offset_param
        self.limit_param = limit_param
        self.limit = limit
        self.total_field = total_field
        self.start_offset = offset
        self.overlap = overlap
        self.record_key = record_key
        self.max_realign_steps = max_realign_steps
        self.offset = offset  # position of the next record not yet received
        self.total: int | None = None
        self._overlap_now = overlap  # grows when the data moves further than the overlap between pages
        self._anchors: dict[Hashable, int] = {}  # key -> content fingerprint of the last records
        self._requested = offset
        self._realign_steps = 0
        self._realigns = self._pages = 0
        self._first_key: Hashable | None = None

    def __repr__(self) -> str:
        return f"OffsetPaginator(offset={self.offset}, limit={self.limit}, total={self.total})"

    @property
    def remaining(self) -> int | None:
        return None if self.total is None else max(0, self.total - self.offset)

    def init_request(self, req: PageRequest) -> None:
        super().init_request(req)
        self.offset, self.total, self._realign_steps, self._first_key = self.start_offset, None, 0, None
        self._overlap_now = self.overlap
        self._anchors = {}
        self._realigns = self._pages = 0
        self.update_request(req)

    def update_state(self, response: requests.Response, payload: Any, records: list) -> list | None:
        total = _as_int(_field(payload, self.total_field)) if self.total_field is not None else None
        if not records:
            if total is not None and self.offset < total:
                raise InconsistentPage(
                    f"empty page at offset {self._requested} although the API declares {total} records"
                )
            self.total, self._has_next = total, False
            return []
        self._check_offset_honoured(records)
        self._pages += 1
        fresh = self._fresh(records)
        if fresh is None:  # the previous page's last records are not where they should be: step back
            return self._step_back(total, records)
        self._realign_steps = 0
        self.total = total
        self.offset = self._requested + min(len(records), self.limit)
        self._remember(records)
        self._has_next = total is None or self.offset < total
        return fresh

    def update_request(self, req: PageRequest) -> None:
        back = len(self._anchors) if self.overlap else 0
        self._requested = max(0, self.offset - back - self._realign_steps * self.limit)
        req.params[self.offset_param] = self._requested
        req.params[self.limit_param] = self.limit

    def _check_offset_honoured(self, records: list) -> None:
        """A later page that starts with the very first record means the API ignores the offset."""
        if self.record_key is None:
            return
        first = self.record_key(records[0])
        if self._first_key is None and self._requested == 0:
            self._first_key = first
        elif first is not None and first == self._first_key and self._requested > 0:
            raise PaginationError(
                f"the page at offset {self._requested} starts with the first record again: the API ignores "
                f"{self.offset_param!r}"
            )

    def _remember(self, records: list) -> None:
        if self.overlap:
            tail = records[-self._overlap_now :]
            self._anchors = {self.record_key(r): _fingerprint(r) for r in tail}  # type: ignore[misc]

    def _fresh(self, records: list) -> list | None:
        """The records after the last anchor found; all of them when there is nothing to align with."""
        anchors = {a: f for a, f in self._anchors.items() if a is not None}
        if not anchors:
            return records
        key = self.record_key
        window = len(records) if self._realign_steps else min(len(self._anchors), len(records))
        head = [key(r) for r in records[:window]]  # type: ignore[misc]  # only the overlap, on a normal page
        found = [i for i, k in enumerate(head) if k in anchors]
        if found:
            changed = [records[i] for i in found if _fingerprint(records[i]) != anchors[head[i]]]
            return changed + records[found[-1] + 1 :]
        if any(key(r) in anchors for r in records[window:]):  # type: ignore[misc]
            return records  # shifted forward (records inserted before): repeats are dropped downstream
        if self._requested == 0:
            return records  # nothing earlier to look at: the anchors were updated or deleted
        return None

    def _step_back(self, total: int | None, records: list) -> list:
        self._realign_steps += 1
        self._realigns += 1
        self._overlap_now = min(max(1, self.limit // 2), 2 * self._overlap_now)
        if self._realign_steps > self.max_realign_steps or self._realigns > 5 + self._pages // 4:
            raise PaginationError(
                f"offset pages lost their place at offset {self.offset}: the data kept moving further than "
                f"{self._overlap_now} records between page requests; the next run reads it again"
            )
        self.total, self._has_next = total, True
        return records  # kept: they are real records, and repeats among them are dropped downstream


class PageNumberPaginator(BasePaginator):
    """Numbered pages starting at 1 (API C's SOAP `ListCameras(page, pageSize)`).

    SOAP carries the page number in the XML body, so `body_factory(page)` can rebuild the body for each
    page; without it the page goes into the query parameter `page_param`. Stops once the page number
    reaches the total page count (read by `total_pages_getter` from the payload) or on an empty page.
    """

    def __init__(
        self,
        page_param: str | None = "page",
        total_pages_getter: Callable[[Any], int | None] | None = None,
        *,
        start_page: int = 1,
        body_factory: Callable[[int], str | bytes] | None = None,
    ) -> None:
        super().__init__()
        if start_page < 1:
            raise ValueError("start_page must be >= 1")
        self.page_param = page_param
        self.total_pages_getter = total_pages_getter
        self.start_page = start_page
        self.body_factory = body_factory
        self.page = start_page
        self.total_pages: int | None = None

    def __repr__(self) -> str:
        return f"PageNumberPaginator(page={self.page}, total_pages={self.total_pages})"

    def init_request(self, req: PageRequest) -> None:
        super().init_request(req)
        self.page, self.total_pages = self.start_page, None
        self.update_request(req)

    def update_state(self, response: requests.Response, payload: Any, records: list) -> list | None:
        total_pages = (
            _as_int(self.total_pages_getter(payload)) if self.total_pages_getter is not None else None
        )
        if not records and total_pages is not None and self.page < total_pages:
            raise InconsistentPage(f"empty page {self.page} although the API declares {total_pages} pages")
        self.total_pages = total_pages
        if not records or (total_pages is not None and self.page >= total_pages):
            self._has_next = False
            return None
        self.page += 1
        return None

    def update_request(self, req: PageRequest) -> None:
        if self.page_param is not None:
            req.params[self.page_param] = self.page
        if self.body_factory is not None:
            req.body = self.body_factory(self.page)


class LinkHeaderPaginator(BasePaginator):
    """The next page's URL in the response's `Link: <url>; rel="next"` header (RFC 8288), as GitHub-style
    APIs give it; no such link is the end. The URL replaces the request's path and query; the client still
    sends it only to the base URL's origin. A next URL seen before in the run is a loop."""

    def __init__(self) -> None:
        super().__init__()
        self.next_url: str | None = None
        self._seen: set[str] = set()

    def __repr__(self) -> str:
        return f"LinkHeaderPaginator(next_url={self.next_url!r})"

    def init_request(self, req: PageRequest) -> None:
        super().init_request(req)
        self.next_url, self._seen = None, set()

    def update_state(self, response: requests.Response, payload: Any, records: list) -> list | None:
        url = response.links.get("next", {}).get("url")
        if not url:
            self._has_next = False
            return None
        if url in self._seen:
            raise PaginationError(
                f"Link rel=next {url!r} was already followed in this run: the API pages in a loop"
            )
        self._seen.add(url)
        self.next_url = url
        return None

    def update_request(self, req: PageRequest) -> None:
        if self.next_url is None:
            return
        parts = urlsplit(self.next_url)
        req.path = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        req.params = dict(parse_qsl(parts.query, keep_blank_values=True))
