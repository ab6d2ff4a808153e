"""Notice an API that pages without progress: pages that serve only records already received.

A cursor that advances over the same data, or an offset the server ignores, looks like paging to the
client and would run until the task times out. The guard remembers the keys (id and version) of the
last records received, in bounded memory, and fails after a few pages in a row bring nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from .errors import PaginationError
from .paginate import RecordKey

DEFAULT_MAX_STALLED_PAGES = 3
_WINDOW = 20_000


class ProgressGuard:
    """Counts consecutive non-empty pages whose records were all seen recently; raises at the limit.

    "Recently": at least the last `_WINDOW` distinct keys, kept as two generations of sets (the current
    one, and the one before it once the current one filled up), so each page costs a few set operations in
    C rather than a Python step per record.
    """

    def __init__(
        self,
        record_key: RecordKey,
        max_stalled: int = DEFAULT_MAX_STALLED_PAGES,
        page_keys: Callable[[list], set[Hashable | None]] | None = None,
    ) -> None:
        """`page_keys`, when given, is a faster way to `{record_key(r) for r in records}` (the source's)."""
        if max_stalled < 1:
            raise ValueError("max_stalled must be >= 1")
        self.record_key = record_key
        self.page_keys = page_keys or (lambda records: set(map(record_key, records)))
        self.max_stalled = max_stalled
        self.stalled = 0
        self._current: set[Hashable] = set()
        self._previous: set[Hashable] = set()

    def observe(self, records: list) -> None:
        """Record one page's new records; PaginationError after `max_stalled` pages with nothing new."""
        if not records:
            return
        keys = self.page_keys(records)
        fresh = keys - self._current
        fresh -= self._previous
        fresh.discard(None)  # a record without a key is never "seen", and never remembered
        if not fresh and None not in keys:
            self.stalled += 1
            if self.stalled >= self.max_stalled:
                raise PaginationError(
                    f"{self.stalled} pages in a row served only records already received: the API is not "
                    "advancing (it may ignore the cursor or offset)"
                )
            return
        self.stalled = 0
        self._current |= fresh
        if len(self._current) >= _WINDOW:
            self._previous, self._current = self._current, set()
