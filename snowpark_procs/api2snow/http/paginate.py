"""Paginators: how to walk from one page request to the next.

Like dlt's rest_client, each paginator works in three steps: `init_request` prepares the first
request, `update_state` reads the answer (payload and records already parsed), and `update_request`
turns the state into the next request. The client owns the HTTP loop, so a paginator holds only the
few values it needs (a cursor, an offset), which keeps memory constant however many pages there are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import requests

from .errors import PaginationError


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
    """The three pagination steps plus `has_next`."""

    @property
    def has_next(self) -> bool: ...

    def init_request(self, req: PageRequest) -> None: ...

    def update_state(self, response: requests.Response, payload: Any, records: list) -> None: ...

    def update_request(self, req: PageRequest) -> None: ...


class BasePaginator:
    """Shared `has_next` bookkeeping; `init_request` re-arms it so a paginator can be reused."""

    def __init__(self) -> None:
        self._has_next = True

    @property
    def has_next(self) -> bool:
        return self._has_next

    def init_request(self, req: PageRequest) -> None:
        self._has_next = True

    def update_state(self, response: requests.Response, payload: Any, records: list) -> None:
        self._has_next = False

    def update_request(self, req: PageRequest) -> None:
        """Nothing to change by default."""


class SinglePage(BasePaginator):
    """The endpoint answers everything in one response."""

    def __repr__(self) -> str:
        return "SinglePage()"


def _field(payload: Any, name: str) -> Any:
    """Top-level field of a JSON object payload, None for anything else."""
    return payload.get(name) if isinstance(payload, dict) else None


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

    A cursor passed in the initial request params is kept, so a run can resume from a saved cursor.
    """

    def __init__(self, cursor_param: str = "cursor", cursor_field: str = "next_cursor") -> None:
        super().__init__()
        self.cursor_param = cursor_param
        self.cursor_field = cursor_field
        self.cursor: str | None = None

    def __repr__(self) -> str:
        return f"CursorPaginator(cursor_param={self.cursor_param!r}, cursor_field={self.cursor_field!r})"

    def init_request(self, req: PageRequest) -> None:
        super().init_request(req)
        self.cursor = req.params.get(self.cursor_param)

    def update_state(self, response: requests.Response, payload: Any, records: list) -> None:
        cursor = _field(payload, self.cursor_field)
        if cursor in (None, ""):
            self._has_next = False
            return
        if cursor == self.cursor:
            # The same cursor again would request the same page forever.
            raise PaginationError(f"cursor in {self.cursor_field!r} did not advance")
        self.cursor = str(cursor)

    def update_request(self, req: PageRequest) -> None:
        req.params[self.cursor_param] = self.cursor


class OffsetPaginator(BasePaginator):
    """Offset/limit pages with a total count (API B). Stops at `total` or on an empty page.

    The offset advances by the records received, but never by more than `limit`: a short page from a
    server that caps the limit must not skip records, and a page padded with repeated records (the
    duplicate fault) must not push the offset past records not yet seen.
    """

    def __init__(
        self,
        offset_param: str = "offset",
        limit_param: str = "limit",
        limit: int = 100,
        total_field: str | None = "total",
        offset: int = 0,
    ) -> None:
        super().__init__()
        if limit < 1 or offset < 0:
            raise ValueError("limit must be >= 1 and offset >= 0")
        self.offset_param = offset_param
        self.limit_param = limit_param
        self.limit = limit
        self.total_field = total_field
        self.start_offset = offset
        self.offset = offset
        self.total: int | None = None

    def __repr__(self) -> str:
        return f"OffsetPaginator(offset={self.offset}, limit={self.limit}, total={self.total})"

    def init_request(self, req: PageRequest) -> None:
        super().init_request(req)
        self.offset, self.total = self.start_offset, None
        self.update_request(req)

    def update_state(self, response: requests.Response, payload: Any, records: list) -> None:
        if self.total_field is not None:
            self.total = _as_int(_field(payload, self.total_field))
        self.offset += min(len(records), self.limit)
        self._has_next = bool(records) and (self.total is None or self.offset < self.total)

    def update_request(self, req: PageRequest) -> None:
        req.params[self.offset_param] = self.offset
        req.params[self.limit_param] = self.limit


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

    def update_state(self, response: requests.Response, payload: Any, records: list) -> None:
        if self.total_pages_getter is not None:
            self.total_pages = _as_int(self.total_pages_getter(payload))
        if not records or (self.total_pages is not None and self.page >= self.total_pages):
            self._has_next = False
            return
        self.page += 1

    def update_request(self, req: PageRequest) -> None:
        if self.page_param is not None:
            req.params[self.page_param] = self.page
        if self.body_factory is not None:
            req.body = self.body_factory(self.page)
