"""Notice an API that pages without progress: pages that serve only records already received.

A cursor that advances over the same data, or an offset the server ignores, looks like paging to the
client and would run until the task times out. The guard remembers the keys (id and version) of the
last records received, in bounded memory, and fails after a few pages in a row bring nothing new.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from .errors import PaginationError
from .paginate import RecordKey

DEFAULT_MAX_STALLED_PAGES = 3
_WINDOW = 20_000


class ProgressGuard:
    """Counts consecutive non-empty pages whose records were all seen recently; raises at the limit."""

    def __init__(self, record_key: RecordKey, max_stalled: int = DEFAULT_MAX_STALLED_PAGES) -> None:
        if max_stalled < 1:
            raise ValueError("max_stalled must be >= 1")
        self.record_key = record_key
        self.max_stalled = max_stalled
        self.stalled = 0
        self._order: deque[Hashable] = deque()
        self._seen: set[Hashable] = set()

    def observe(self, records: list) -> None:
        """Record one page's new records; PaginationError after `max_stalled` pages with nothing new."""
        if not records:
            return
        keys = [self.record_key(r) for r in records]
        if all(key is not None and key in self._seen for key in keys):
            self.stalled += 1
            if self.stalled >= self.max_stalled:
                raise PaginationError(
                    f"{self.stalled} pages in a row served only records already received: the API is not "
                    "advancing (it may ignore the cursor or offset)"
                )
            return
        self.stalled = 0
        for key in keys:
            if key is not None and key not in self._seen:
                self._remember(key)

    def _remember(self, key: Hashable) -> None:
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > _WINDOW:
            self._seen.discard(self._order.popleft())
