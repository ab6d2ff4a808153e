"""State shared by the mock servers: one clock, one data set, faults, limiters, stats, credentials."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from api2snow.sources import SOURCES

from .clock import MockClock
from .dataset import Dataset
from .faults import FaultInjector, Faults, SlidingWindowLimiter
from .stats import Stats

if TYPE_CHECKING:
    from .declared import DeclaredDataset

HAND_WRITTEN = ("api_a", "api_b", "api_c")  # mocks written by hand (api_a.py, api_b.py, api_c.py)
# Every other declared source is served by a mock generated from its declaration (declared.py).
GENERATED = tuple(sorted(name for name in SOURCES if name not in HAND_WRITTEN))
APIS = HAND_WRITTEN + GENERATED


@dataclass
class Credentials:
    """What the mock APIs accept. Secrets are kept out of ``repr`` so they never reach logs.

    Generated mocks use the same values by auth kind: OAuth2 ``client_id``/``client_secret``, ``api_key``,
    ``bearer_token``, and ``soap_user``/``soap_password`` for HTTP Basic.
    """

    client_id: str = "demo-client"
    client_secret: str = field(default="demo-secret", repr=False)
    api_key: str = field(default="demo-key", repr=False)
    soap_user: str = "demo"
    soap_password: str = field(default="demo-pass", repr=False)
    bearer_token: str = field(default="demo-token", repr=False)


# A source's auth kind -> the Credentials fields its secret template variables take, in order.
AUTH_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "oauth2_client_credentials": ("client_id", "client_secret"),
    "api_key": ("api_key",),
    "bearer": ("bearer_token",),
    "basic": ("soap_user", "soap_password"),
    "none": (),
}


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
    declared: dict[str, DeclaredDataset] = field(default_factory=dict)  # the generated mocks' data
    apis: tuple[str, ...] = APIS  # the APIs served

    @classmethod
    def build(
        cls,
        clock: MockClock,
        dataset: Dataset,
        faults: dict[str, Faults],
        credentials: Credentials,
        seed: int,
        declared: dict[str, DeclaredDataset] | None = None,
    ) -> MockContext:
        """Wire per-API injectors (seeded from ``seed``), limiters and stats around shared state."""
        declared = declared or {}
        apis = HAND_WRITTEN + tuple(declared)
        return cls(
            clock=clock,
            dataset=dataset,
            faults=faults,
            credentials=credentials,
            injectors={api: FaultInjector(faults[api], f"{seed}:faults:{api}") for api in apis},
            limiters={api: SlidingWindowLimiter() for api in apis},
            stats={api: Stats() for api in apis},
            declared=declared,
            apis=apis,
        )

    def truth(
        self, source: str, as_of: datetime, updated_since: datetime | None = None
    ) -> dict[str, datetime]:
        """``{record id: updated_at}`` visible at ``as_of``, for a hand-written or a generated mock."""
        if source in self.declared:
            return self.declared[source].truth(as_of, updated_since)
        return self.dataset.truth(source, as_of, updated_since)

    def invalid_ids(self, source: str, as_of: datetime) -> list[str]:
        if source in self.declared:
            return self.declared[source].invalid_ids(as_of)
        return self.dataset.invalid_ids(source, as_of)
