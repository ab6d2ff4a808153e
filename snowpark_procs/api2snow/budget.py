"""How much one ingest run may fetch before it stages what it has and leaves the rest to the next run.

A backlog (the first run against an API with years of history, or a long outage) can take longer to fetch
at the API's rate limit than a task may run. A run that stops at its budget, at a page boundary, stages a
complete batch; once it is loaded the watermark moves to the newest record it holds, and the next run reads
on from there. That is safe only for sources read in watermark order (incremental ones): every record older
than the newest one fetched has been fetched, and the overlap re-read covers ties at the boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


class RunBudget:
    """A time budget and an optional page cap for one extract; `spend_page` says when to stop."""

    def __init__(
        self, seconds: float, max_pages: int = 0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if seconds <= 0 or max_pages < 0:
            raise ValueError("a run budget needs seconds > 0 and max_pages >= 0 (0: no cap)")
        self.seconds = seconds
        self.max_pages = max_pages
        self.pages = 0
        self.stopped_by: str | None = None
        self._clock = clock
        self._started = clock()

    def limit(self, pages: Iterator[T]) -> Iterator[T]:
        """`pages` until the budget is spent; the page after the last one is never even requested."""
        for page in pages:
            yield page
            self.stopped_by = self.spend_page()
            if self.stopped_by is not None:
                return

    def spend_page(self) -> str | None:
        """Count one fetched page; the reason to stop now, or None to go on."""
        self.pages += 1
        if self.max_pages and self.pages >= self.max_pages:
            return f"page cap of {self.max_pages} pages"
        if self._clock() - self._started >= self.seconds:
            return f"time budget of {self.seconds:g} s"
        return None
