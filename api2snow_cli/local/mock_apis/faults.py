"""Fault switches, their seeded dice, and the server-side sliding-window rate limiter."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

DEFAULT_RATE_LIMITS = {"api_a": 100, "api_b": 60, "api_c": 60}

_RATES = ("error_rate", "malformed_page_rate", "invalid_record_rate", "duplicate_rate")


@dataclass
class Faults:
    """Fault switches of one mock API (all off by default); mutated in place so every holder sees changes.

    ``rate_limit_per_min <= 0`` disables rate limiting. ``token_ttl_s`` only matters for API A.
    """

    error_rate: float = 0.0
    latency_ms: int = 0
    malformed_page_rate: float = 0.0
    invalid_record_rate: float = 0.0
    duplicate_rate: float = 0.0
    token_ttl_s: int = 3600
    rate_limit_per_min: int = 60

    def __post_init__(self) -> None:
        self._validate(asdict(self))

    @classmethod
    def for_api(cls, api: str, **overrides: Any) -> Faults:
        """Defaults of ``api`` (its contract rate limit), with ``overrides`` applied."""
        values: dict[str, Any] = {"rate_limit_per_min": DEFAULT_RATE_LIMITS[api]}
        values.update(overrides)
        return cls(**values)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes`` atomically after validating all of them (unknown names are an error)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        merged = asdict(self)
        merged.update(changes)
        self._validate(merged)
        for name, value in changes.items():
            setattr(self, name, float(value) if name in _RATES else int(value))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def _validate(values: Mapping[str, Any]) -> None:
        for name in _RATES:
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number within 0..1, got {value!r}")
        for name in ("latency_ms", "token_ttl_s", "rate_limit_per_min"):
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if values["latency_ms"] < 0:
            raise ValueError("latency_ms must be >= 0")
        if values["token_ttl_s"] < 1:
            raise ValueError("token_ttl_s must be >= 1")


class FaultInjector:
    """Seeded dice for one API's faults, so a sequence of requests fails the same way on every run.

    A disabled fault (rate 0) never consumes randomness, so enabling one fault does not reshuffle the others.
    """

    def __init__(self, faults: Faults, seed: int | str) -> None:
        self.faults = faults
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def _roll(self, rate: float) -> bool:
        if rate <= 0.0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def error_status(self, choices: tuple[int, ...] = (500, 503)) -> int | None:
        """A status to fail this request with, or ``None``."""
        if not self._roll(self.faults.error_rate):
            return None
        with self._lock:
            return self._rng.choice(choices)

    def malformed(self) -> bool:
        """Whether to truncate this (otherwise good) page."""
        return self._roll(self.faults.malformed_page_rate)

    def duplicate(self) -> bool:
        """Whether to repeat the previous page's last record at the start of this page."""
        return self._roll(self.faults.duplicate_rate)

    def latency_s(self) -> float:
        return self.faults.latency_ms / 1000.0


class SlidingWindowLimiter:
    """Per-client sliding window: at most ``limit`` requests in any ``window_s`` seconds (real time).

    Memory is O(limit) per client: only the last ``limit`` accepted timestamps matter.
    """

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, client: str, limit: int) -> int | None:
        """Count a request by ``client``; ``None`` if allowed, else ``Retry-After`` seconds (ceil, >= 1)."""
        if limit <= 0:
            return None
        with self._lock:
            now = self._clock()
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            while len(hits) > limit:
                hits.popleft()
            if len(hits) >= limit:
                wait = hits[-limit] + self.window_s - now
                return max(1, math.ceil(wait))
            hits.append(now)
            return None

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
