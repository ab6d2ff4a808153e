"""Simulated "now" shared by the mock APIs, so tests and demos can move time without sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def as_utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime; naive values are taken to be UTC already."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def parse_iso(value: str) -> datetime:
    """ISO-8601 with ``Z``, an offset, or naive (taken as UTC) to an aware UTC datetime."""
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None


class MockClock:
    """A thread-safe UTC clock that can follow real time and be advanced or set.

    ``follow_real_time=True`` (the default) makes ``now()`` tick with the wall clock from ``start``, which is
    what a long-running local stack wants; tests pass ``False`` to freeze time so ground truth is exact.
    """

    def __init__(
        self,
        start: datetime | None = None,
        *,
        follow_real_time: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._follow = follow_real_time
        self._start = as_utc(start) if start is not None else datetime.now(UTC)
        self._t0 = monotonic()
        self._offset = timedelta(0)

    @property
    def follows_real_time(self) -> bool:
        """Whether ``now()`` advances with the wall clock."""
        return self._follow

    def now(self) -> datetime:
        """The simulated current time (aware, UTC)."""
        with self._lock:
            elapsed = self._monotonic() - self._t0 if self._follow else 0.0
            return self._start + self._offset + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward (or back, if negative) and return the new now."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()

    def set(self, dt: datetime) -> None:
        """Jump to ``dt``; when following real time, the clock keeps ticking from there."""
        with self._lock:
            self._start = as_utc(dt)
            self._t0 = self._monotonic()
            self._offset = timedelta(0)
