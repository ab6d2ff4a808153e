"""Retry policy: which failures are worth another attempt, and how long to wait before it."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import requests

DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_CAP_S = 120.0

# Transport failures where the request may not have reached the server or the body was cut off.
RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None if unusable.

    The result is clamped to [0, 120]: a past date means "now", and a far future one must not stall
    a scheduled procedure for hours.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - now()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(RETRY_AFTER_CAP_S, max(0.0, seconds))


class RetryPolicy:
    """Bounded attempts with full-jitter exponential backoff.

    Full jitter (uniform between 0 and the exponential ceiling) spreads retries of parallel workers,
    which fixed or equal-jitter backoff would send in lockstep against an already struggling server.
    """

    def __init__(
        self,
        max_attempts: int = 5,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if base_delay_s < 0 or max_delay_s < 0:
            raise ValueError("delays must be >= 0")
        self.max_attempts = max_attempts
        self.base_delay_s = float(base_delay_s)
        self.max_delay_s = float(max_delay_s)
        self.retry_statuses = frozenset(retry_statuses)
        self._rng = rng if rng is not None else random.Random()
        self._wall_clock = wall_clock

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(max_attempts={self.max_attempts}, base_delay_s={self.base_delay_s:g}, "
            f"max_delay_s={self.max_delay_s:g})"
        )

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        A usable Retry-After wins over the computed backoff, even above max_delay_s (up to 120 s):
        retrying earlier than the server asked only earns another 429.
        """
        server_wait = parse_retry_after(retry_after, self._wall_clock)
        if server_wait is not None:
            return server_wait
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** min(max(0, attempt - 1), 62))
        return self._rng.uniform(0.0, ceiling)

    def should_retry_status(self, code: int) -> bool:
        """True for statuses that signal a transient server or throttling condition."""
        return code in self.retry_statuses

    def can_retry(self, attempt: int) -> bool:
        """True while failed attempt number `attempt` still leaves room for another one."""
        return attempt < self.max_attempts
