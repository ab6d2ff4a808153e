"""Notice an API that pages without progress: pages that serve only records already received.

A cursor that advances over the same data, or an offset the server ignores, looks like paging to the
client and would run until the task times out. The guard remembers the keys (id and version) of the
last records received, in bounded memory, and fails after a few pages in a row bring nothing new.

It remembers the keys' hashes, not the keys: it holds up to 40,000 of them and runs for every page, and set
operations on ints cost a fraction of those on (id, version) tuples, whose hash Python does not cache. Two
keys with the same 64-bit hash would make a new record look seen; for a page to count as stalled every one of
its records would have to, on `max_stalled` pages in a row.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from .errors import PaginationError
from .paginate import RecordKey

DEFAULT_MAX_STALLED_PAGES = 3
_WINDOW = 20_000


def key_hashes(keys: Iterable[Hashable | None]) -> set[int | None]:
    """The hashes of record keys, None kept for a record without a key."""
    return {None if key is None else hash(key) for key in keys}


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
        page_key_hashes: Callable[[list], set[int | None]] | None = None,
    ) -> None:
        """`page_key_hashes`, when given, is a faster way to `key_hashes(map(record_key, records))` (the
        source's `key_hashes`)."""
        if max_stalled < 1:
            raise ValueError("max_stalled must be >= 1")
        self.page_key_hashes = page_key_hashes or (lambda records: key_hashes(map(record_key, records)))
        self.max_stalled = max_stalled
        self.stalled = 0
        self._current: set[int | None] = set()
        self._previous: set[int | None] = set()

    def observe(self, records: list) -> None:
        """Record one page's new records; PaginationError after `max_stalled` pages with nothing new."""
        if not records:
            return
        keys = self.page_key_hashes(records)
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
