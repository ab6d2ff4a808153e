"""State shared by the three mock servers: one clock, one data set, faults, limiters, stats, credentials."""

from __future__ import annotations

from dataclasses import dataclass, field

from .clock import MockClock
from .dataset import Dataset
from .faults import FaultInjector, Faults, SlidingWindowLimiter
from .stats import Stats

APIS = ("api_a", "api_b", "api_c")


@dataclass
class Credentials:
    """What the mock APIs accept. Secrets are kept out of ``repr`` so they never reach logs."""

    client_id: str = "demo-client"
    client_secret: str = field(default="demo-secret", repr=False)
    api_key: str = field(default="demo-key", repr=False)
    soap_user: str = "demo"
    soap_password: str = field(default="demo-pass", repr=False)


@dataclass
class MockContext:
    """Everything a mock API handler needs; one instance is shared by all servers of a :class:`MockApis`."""

    clock: MockClock
    dataset: Dataset
    faults: dict[str, Faults]
    credentials: Credentials
    injectors: dict[str, FaultInjector]
    limiters: dict[str, SlidingWindowLimiter]
    stats: dict[str, Stats]

    @classmethod
    def build(
        cls,
        clock: MockClock,
        dataset: Dataset,
        faults: dict[str, Faults],
        credentials: Credentials,
        seed: int,
    ) -> MockContext:
        """Wire per-API injectors (seeded from ``seed``), limiters and stats around shared state."""
        return cls(
            clock=clock,
            dataset=dataset,
            faults=faults,
            credentials=credentials,
            injectors={api: FaultInjector(faults[api], f"{seed}:faults:{api}") for api in APIS},
            limiters={api: SlidingWindowLimiter() for api in APIS},
            stats={api: Stats() for api in APIS},
        )
