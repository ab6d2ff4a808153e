"""RateLimiter: exactly max_requests per sliding window, never one more, with a safety margin."""

from __future__ import annotations

import bisect
import random
import threading
import time

import pytest
from api2snow.http.ratelimit import RateLimiter

try:
    from ._http_fixtures import FakeClock
except ImportError:
    from _http_fixtures import FakeClock


def max_in_window(times: list[float], width: float) -> int:
    """Largest number of timestamps inside any half-open window [t, t + width) (sorted input)."""
    return max(bisect.bisect_left(times, t + width) - i for i, t in enumerate(times))


def server_max_in_window(times: list[float], width: float) -> int:
    """Largest count a server-side window (s - width, s] sees, evaluated at every arrival s."""
    return max(i + 1 - bisect.bisect_right(times, s - width) for i, s in enumerate(times))


def test_first_max_requests_go_without_waiting_and_the_next_waits_for_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, per_seconds=60, margin_s=0.25, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(100)]
    assert waits == [0.0] * 100
    assert clock.sleeps == []

    assert limiter.acquire() == pytest.approx(60.25)
    assert clock.now == pytest.approx(1060.25)


def test_250_acquisitions_never_put_101_requests_into_any_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, per_seconds=60, margin_s=0.25, clock=clock, sleep=clock.sleep)
    rng = random.Random(7)
    sent: list[float] = []
    for _ in range(250):
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.3, 1.7])  # bursts and gaps between callers
        limiter.acquire()
        sent.append(clock.now)

    assert max_in_window(sent, 60.0) == 100
    assert max_in_window(sent, 60.25) == 100
    assert all(later - earlier >= 60.25 - 1e-9 for earlier, later in zip(sent, sent[100:], strict=False))
    # Tight to the last request: a send that had to wait went exactly when its window slot freed up.
    assert any(abs(sent[i + 100] - sent[i] - 60.25) < 1e-9 for i in range(150))

    # The server stamps arrivals a little later (up to < margin); its own 60 s window stays at 100.
    arrivals = sorted(t + rng.uniform(0.0, 0.24) for t in sent)
    assert server_max_in_window(arrivals, 60.0) == 100


def test_without_margin_the_window_is_still_exact() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, per_seconds=10, margin_s=0.0, clock=clock, sleep=clock.sleep)
    for _ in range(7):
        limiter.acquire()
    assert clock.sleeps == [10.0, 10.0]  # after 3 at t0: 3 at t0+10, then 1 at t0+20
    assert clock.now == pytest.approx(1020.0)


def test_defer_blocks_everyone_until_the_given_time_and_never_shortens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, per_seconds=60, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.defer(5.0)
    limiter.defer(2.0)  # a shorter Retry-After from another thread must not cut the pause short
    assert limiter.acquire() == pytest.approx(5.0)
    assert limiter.acquire() == 0.0
    limiter.defer(-3.0)
    assert limiter.acquire() == 0.0


def test_defer_and_window_combine() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, per_seconds=10, margin_s=0.5, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.acquire()
    limiter.defer(3.0)
    assert limiter.acquire() == pytest.approx(10.5)  # the window is the longer constraint


def test_threads_share_the_window() -> None:
    accepted: list[float] = []
    last_clock = threading.local()
    lock = threading.Lock()

    def clock() -> float:
        last_clock.value = time.monotonic()
        return last_clock.value

    limiter = RateLimiter(4, per_seconds=0.1, margin_s=0.005, clock=clock)

    def worker() -> None:
        for _ in range(4):
            limiter.acquire()
            with lock:  # the limiter's last clock read in this thread is the acceptance time
                accepted.append(last_clock.value)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    accepted.sort()
    assert len(accepted) == 16
    assert max_in_window(accepted, 0.105) == 4


@pytest.mark.parametrize(
    "kwargs",
    [{"max_requests": 0}, {"max_requests": 1, "per_seconds": 0}, {"max_requests": 1, "margin_s": -1}],
)
def test_rejects_nonsense_configuration(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)


def test_repr_is_informative() -> None:
    assert repr(RateLimiter(100, 60)) == "RateLimiter(100/60s, margin=0.25s)"


def test_seeded_sends_of_an_earlier_run_count_against_the_window():
    clock = {"now": 1000.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] += seconds

    limiter = RateLimiter(5, per_seconds=60.0, margin_s=0.25, clock=lambda: clock["now"], sleep=sleep)
    limiter.seed([10.0, 10.0, 9.0, 8.0, 7.0])  # an earlier process used the whole window 7-10 s ago
    assert limiter.acquire() == pytest.approx(50.25)  # the oldest leaves the window 60.25 s after it was sent
    assert [round(age, 2) for age in limiter.recent_sends()] == [59.25, 58.25, 57.25, 0.0]


def test_recent_sends_reports_only_what_still_counts():
    clock = {"now": 0.0}
    limiter = RateLimiter(3, per_seconds=60.0, margin_s=0.0, clock=lambda: clock["now"], sleep=lambda s: None)
    limiter.acquire()
    clock["now"] = 30.0
    limiter.acquire()
    clock["now"] = 70.0
    assert limiter.recent_sends() == [40.0]
