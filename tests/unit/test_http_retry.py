"""RetryPolicy: full-jitter exponential backoff, Retry-After precedence, bounded attempts."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from api2snow.http.retry import RetryPolicy, parse_retry_after

NOW = 1_764_150_000.0  # fixed wall clock for HTTP-date tests


class CeilingRng(random.Random):
    """Returns the upper bound of every uniform() call, and remembers the bounds it was asked for."""

    def __init__(self) -> None:
        super().__init__(0)
        self.bounds: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.bounds.append((a, b))
        return b


def http_date(offset_s: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset_s, UTC), usegmt=True)


def test_full_jitter_ceiling_doubles_and_caps() -> None:
    rng = CeilingRng()
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=30.0, rng=rng)
    delays = [policy.delay(attempt) for attempt in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert all(low == 0.0 for low, _ in rng.bounds)


def test_jittered_delays_stay_within_bounds_and_vary() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0, rng=random.Random(3))
    delays = [policy.delay(4) for _ in range(200)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) > 150
    assert min(delays) < 1.0 and max(delays) > 7.0


def test_seeded_rng_makes_delays_reproducible() -> None:
    first = RetryPolicy(rng=random.Random(42))
    second = RetryPolicy(rng=random.Random(42))
    assert [first.delay(a) for a in range(1, 6)] == [second.delay(a) for a in range(1, 6)]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 2 ", 2.0),
        ("0", 0.0),
        ("90", 90.0),  # above max_delay_s: the server's word still counts
        ("600", 120.0),  # but a scheduled run never stalls longer than 120 s
        ("-3", 0.0),
        ("1.5", 1.5),
    ],
)
def test_retry_after_seconds_win_over_backoff(header: str, expected: float) -> None:
    rng = CeilingRng()
    policy = RetryPolicy(max_delay_s=30.0, rng=rng)
    assert policy.delay(1, header) == pytest.approx(expected)
    assert rng.bounds == []


def test_retry_after_http_date() -> None:
    policy = RetryPolicy(rng=CeilingRng(), wall_clock=lambda: NOW)
    assert policy.delay(1, http_date(30)) == pytest.approx(30.0)
    assert policy.delay(1, http_date(-30)) == 0.0
    assert policy.delay(1, http_date(3600)) == 120.0


@pytest.mark.parametrize("header", [None, "", "soon", "Thu, 99 Foo 2026", "nan"])
def test_unusable_retry_after_falls_back_to_backoff(header: str | None) -> None:
    rng = CeilingRng()
    policy = RetryPolicy(base_delay_s=0.5, rng=rng)
    assert policy.delay(3, header) == 2.0
    assert rng.bounds == [(0.0, 2.0)]


def test_parse_retry_after_helper() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after(http_date(10), now=lambda: NOW) == pytest.approx(10.0)


def test_retryable_statuses_and_attempt_bound() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [
        code
        for code in (200, 400, 401, 403, 404, 429, 500, 501, 502, 503, 504)
        if policy.should_retry_status(code)
    ] == [429, 500, 502, 503, 504]
    assert [policy.can_retry(a) for a in (1, 2, 3)] == [True, True, False]
    custom = RetryPolicy(retry_statuses=frozenset({418}))
    assert custom.should_retry_status(418) and not custom.should_retry_status(503)


def test_rejects_nonsense_configuration() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_s=-1)
