"""Client-side sliding-window rate limiter.

The mock and real APIs count requests in a sliding window per client. Staying under that limit on our
side is cheaper than provoking 429s: every 429 costs a round trip plus a Retry-After pause.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """Allow at most `max_requests` sends in any window of `per_seconds`.

    The timestamps of the last `max_requests` sends are kept (O(max_requests) memory). A new send must
    wait until the oldest of them is `per_seconds + margin_s` old: the margin absorbs the delay between
    our send time and the server's receive time, so a server window of the same size never sees max+1.
    """

    def __init__(
        self,
        max_requests: int,
        per_seconds: float = 60.0,
        margin_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1:
            raise ValueError("max_requests must be >= 1")
        if per_seconds <= 0 or margin_s < 0:
            raise ValueError("per_seconds must be > 0 and margin_s >= 0")
        self.max_requests = max_requests
        self.per_seconds = float(per_seconds)
        self.margin_s = float(margin_s)
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque(maxlen=max_requests)
        self._blocked_until = float("-inf")
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateLimiter({self.max_requests}/{self.per_seconds:g}s, margin={self.margin_s:g}s)"

    def acquire(self) -> float:
        """Block until a request may be sent, record it, and return the seconds spent waiting.

        The lock is only held to read and update the window; sleeping happens outside it so other
        threads can compute their own wait, and the window is re-checked after every sleep.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                ready_at = self._ready_at()
                if ready_at <= now:
                    self._sent.append(now)
                    return waited
                pause = ready_at - now
            self._sleep(pause)
            waited += pause

    def recent_sends(self) -> list[float]:
        """Ages (seconds) of the sends that still count against the window, oldest first."""
        with self._lock:
            now = self._clock()
            horizon = self.per_seconds + self.margin_s
            return [now - sent for sent in self._sent if now - sent < horizon]

    def seed(self, ages: list[float]) -> None:
        """Count sends made `ages` seconds ago by an earlier run with the same credentials.

        The server's window does not restart with a new process: a run started seconds after another
        (a task retry, a manual CALL) must see the requests the first one already spent.
        """
        with self._lock:
            now = self._clock()
            for age in sorted((a for a in ages if a >= 0), reverse=True):
                self._sent.append(now - age)

    def defer(self, seconds: float) -> None:
        """Make every caller wait until `seconds` from now (the server told us so via Retry-After)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + max(0.0, seconds))

    def _ready_at(self) -> float:
        """Earliest clock value at which the next send keeps every window at or under the limit."""
        ready_at = self._blocked_until
        if len(self._sent) == self.max_requests:
            ready_at = max(ready_at, self._sent[0] + self.per_seconds + self.margin_s)
        return ready_at
