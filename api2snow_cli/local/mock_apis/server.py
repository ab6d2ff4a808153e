"""Run the mock APIs together around one shared clock and data set (in-process or in the foreground).

API A, B and C are written by hand; every other source in `api2snow.sources.SOURCES` is served by a mock
generated from its declaration (declared.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from api2snow.sources import SOURCES
from api2snow.sources.declaration import SourceDeclaration

from .admin import AdminApp
from .api_a import ApiA
from .api_b import ApiB
from .api_c import ApiC
from .clock import MockClock, as_utc, parse_iso
from .context import APIS, GENERATED, HAND_WRITTEN, Credentials, MockContext
from .dataset import Dataset, floor_hour
from .declared import DeclaredDataset, DeclaredMockApi, GenerationError
from .faults import DEFAULT_RATE_LIMITS, Faults
from .http_base import AppServer, MockApp


def generated_declarations() -> tuple[SourceDeclaration, ...]:
    """The declarations of the sources without a hand-written mock, by name."""
    return tuple(SOURCES[name].declaration for name in GENERATED)  # type: ignore[attr-defined]


def faults_for(api: str, declaration: SourceDeclaration | None = None) -> Faults:
    """No faults, and the API's own rate limit: the contract's (A 100/min, B 60/min, C 60/min) or the
    declaration's."""
    if api in DEFAULT_RATE_LIMITS:
        return Faults.for_api(api)
    if declaration is None:
        declaration = SOURCES[api].declaration  # type: ignore[attr-defined]
    return Faults(rate_limit_per_min=declaration.rate_limit_per_min)


def default_faults() -> dict[str, Faults]:
    """Contract defaults of every API: no faults, each its rate limit."""
    return {api: faults_for(api) for api in APIS}


@dataclass
class MockApiConfig:
    """How to run the mock APIs. ``anchor`` defaults to the current UTC hour (floored); history ends there.

    The clock starts at ``clock_start``, else at an explicit ``anchor``, else at the real current time; with
    ``follow_real_time`` it then ticks with the wall clock. Faults missing from ``faults`` get the defaults.
    ``declarations`` are the sources given a generated mock (None: every source without a hand-written one);
    each creates ``events_per_hour_generated`` records an hour.
    """

    seed: int = 42
    anchor: datetime | None = None
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: {api: 0 for api in APIS})
    credentials: Credentials = field(default_factory=Credentials)
    faults: dict[str, Faults] = field(default_factory=default_faults)
    history_hours: float = 24
    events_per_hour_a: int = 120
    events_per_hour_b: int = 120
    cameras: int = 24
    update_rate: float = 0.2
    clock_start: datetime | None = None
    follow_real_time: bool = True
    declarations: tuple[SourceDeclaration, ...] | None = None
    events_per_hour_generated: int = 120


class MockApis:
    """The mock API servers; ``start()`` returns ``{"api_a": url, "api_b": url, "api_c": url, ...}``, one
    URL per API (``self.apis``: the hand-written ones, then one per declaration with a generated mock)."""

    def __init__(self, config: MockApiConfig | None = None) -> None:
        self.config = config or MockApiConfig()
        cfg = self.config
        anchor = as_utc(cfg.anchor) if cfg.anchor is not None else floor_hour(datetime.now(UTC))
        start = cfg.clock_start if cfg.clock_start is not None else cfg.anchor
        self.clock = MockClock(start, follow_real_time=cfg.follow_real_time)
        declarations = generated_declarations() if cfg.declarations is None else cfg.declarations
        for declaration in declarations:
            if declaration.name in HAND_WRITTEN:
                raise GenerationError(f"{declaration.name} has a hand-written mock")
        by_name = {d.name: d for d in declarations}
        self.apis: tuple[str, ...] = HAND_WRITTEN + tuple(by_name)
        # Copies, so runtime fault changes never leak back into the caller's config.
        self.faults: dict[str, Faults] = {
            api: replace(cfg.faults[api]) if api in cfg.faults else faults_for(api, by_name.get(api))
            for api in self.apis
        }
        self.dataset = Dataset(
            seed=cfg.seed,
            anchor=anchor,
            history_hours=cfg.history_hours,
            events_per_hour_a=cfg.events_per_hour_a,
            events_per_hour_b=cfg.events_per_hour_b,
            cameras=cfg.cameras,
            update_rate=cfg.update_rate,
            faults=self.faults,
        )
        declared = {
            name: DeclaredDataset(
                declaration,
                seed=cfg.seed,
                anchor=anchor,
                history_hours=cfg.history_hours,
                events_per_hour=cfg.events_per_hour_generated,
                update_rate=cfg.update_rate,
                cameras=cfg.cameras,
                faults=self.faults,
            )
            for name, declaration in by_name.items()
        }
        self.context = MockContext.build(
            self.clock, self.dataset, self.faults, cfg.credentials, cfg.seed, declared
        )
        apps: dict[str, MockApp] = {
            "api_a": ApiA(self.context),
            "api_b": ApiB(self.context),
            "api_c": ApiC(self.context),
        }
        for name, declaration in by_name.items():
            apps[name] = DeclaredMockApi(self.context, declaration)
        self._servers = {
            api: AppServer(apps[api], AdminApp(self.context, api), cfg.host, cfg.ports.get(api, 0))
            for api in self.apis
        }
        self.urls: dict[str, str] = {}

    def start(self) -> dict[str, str]:
        """Start all servers (idempotent); on a bind failure the ones already started are stopped again."""
        try:
            self.urls = {api: server.start() for api, server in self._servers.items()}
        except BaseException:
            self.stop()
            raise
        return dict(self.urls)

    def stop(self) -> None:
        """Stop all servers (concurrently: each shutdown waits for its poll interval)."""
        threads = [threading.Thread(target=server.stop) for server in self._servers.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.urls = {}

    @property
    def declared(self) -> dict[str, DeclaredDataset]:
        """The data sets of the generated mocks, by source name."""
        return self.context.declared

    def truth(
        self, source: str, as_of: datetime, updated_since: datetime | None = None
    ) -> dict[str, datetime]:
        """``{record id: updated_at}`` of every record of ``source`` visible at ``as_of``, in served order,
        for a hand-written mock (``dataset.truth``) or a generated one (``declared[source].truth``)."""
        if source not in self.apis:
            raise ValueError(f"unknown mock API {source!r}; expected one of {', '.join(self.apis)}")
        return self.context.truth(source, as_of, updated_since)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-API counters, the same as ``GET /_admin/stats``."""
        return {api: self.context.stats[api].snapshot() for api in self.apis}

    def reset(self) -> None:
        """Zero the stats and forget the rate-limit windows."""
        for api in self.apis:
            self.context.stats[api].reset()
            self.context.limiters[api].reset()

    def set_faults(self, api: str, **changes: Any) -> None:
        """Validated runtime change of one API's faults (same as ``POST /_admin/faults``)."""
        self.faults[api].update(changes)

    def __enter__(self) -> MockApis:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _credentials_from_env() -> Credentials:
    """Credentials overridable by environment (never on the command line, where ``ps`` would show them)."""
    defaults = Credentials()
    return Credentials(
        client_id=os.environ.get("API2SNOW_MOCK_CLIENT_ID", defaults.client_id),
        client_secret=os.environ.get("API2SNOW_MOCK_CLIENT_SECRET", defaults.client_secret),
        api_key=os.environ.get("API2SNOW_MOCK_API_KEY", defaults.api_key),
        soap_user=os.environ.get("API2SNOW_MOCK_SOAP_USER", defaults.soap_user),
        soap_password=os.environ.get("API2SNOW_MOCK_SOAP_PASSWORD", defaults.soap_password),
        bearer_token=os.environ.get("API2SNOW_MOCK_BEARER_TOKEN", defaults.bearer_token),
    )


_AUTH_HINTS = {
    "oauth2_client_credentials": lambda d, c: (
        f"OAuth2 client credentials {c.client_id} / {c.client_secret} at POST {d.auth.token_path}"
    ),
    "api_key": lambda d, c: f"header {d.auth.header}: {c.api_key}",
    "bearer": lambda d, c: f"header Authorization: Bearer {c.bearer_token}",
    "basic": lambda d, c: f"HTTP Basic {c.soap_user} / {c.soap_password}",
}


def _shown(credentials: Credentials) -> Credentials:
    """The demo defaults as they are; a value set through the environment only by its variable's name."""
    defaults = Credentials()
    values = {
        name: value if value == getattr(defaults, name) else "$API2SNOW_MOCK_" + name.upper()
        for name, value in vars(credentials).items()
    }
    return Credentials(**values)


def endpoint_lines(urls: dict[str, str], credentials: Credentials) -> list[str]:
    """Each mock API's data endpoint and the (mock, demo) credentials it accepts, then how to inject faults:
    what someone pointing curl or a client at the mock APIs needs. A credential set through the environment
    is shown by its variable's name, never its value."""
    credentials = _shown(credentials)
    lines = []
    for api, url in urls.items():
        declaration = getattr(SOURCES.get(api), "declaration", None)
        if declaration is None:
            lines.append(f"{api}: {url}")
            continue
        auth = _AUTH_HINTS.get(declaration.auth.kind, lambda d, c: d.auth.kind)(declaration, credentials)
        lines.append(f"{api}: {url}{declaration.request.path} ({auth})")
    first = next(iter(urls.values()), "http://HOST:PORT")
    lines.append(
        f'faults: curl -X POST {first}/_admin/faults -d \'{{"api_b": {{"error_rate": 0.2}}}}\' '
        "(GET it to see them; settings: error_rate, latency_ms, malformed_page_rate, invalid_record_rate, "
        f"duplicate_rate, token_ttl_s, rate_limit_per_min); counters: GET {first}/_admin/stats"
    )
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="api2snow mock-apis",
        description="Serve the mock camera-event APIs (A: OAuth2+cursor, B: API key+offset, C: SOAP, and "
        "one generated from the declaration of every other source) until Ctrl-C. Credentials come from "
        "API2SNOW_MOCK_CLIENT_ID/_CLIENT_SECRET/_API_KEY/_SOAP_USER/_SOAP_PASSWORD/_BEARER_TOKEN "
        "(defaults demo-client/demo-secret, demo-key, demo/demo-pass, demo-token).",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-a", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-b", type=int, default=0)
    parser.add_argument("--port-c", type=int, default=0)
    parser.add_argument("--history-hours", type=float, default=24.0)
    parser.add_argument("--events-per-hour-a", type=int, default=120)
    parser.add_argument("--events-per-hour-b", type=int, default=120)
    parser.add_argument(
        "--events-per-hour-generated", type=int, default=120, help="of each source with a generated mock"
    )
    parser.add_argument(
        "--anchor",
        type=parse_iso,
        default=None,
        help="end of the generated history (ISO-8601); default: current UTC hour",
    )
    parser.add_argument(
        "--frozen-clock",
        action="store_true",
        help="do not follow real time; move the clock with POST /_admin/clock only",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> MockApiConfig:
    return MockApiConfig(
        seed=args.seed,
        anchor=args.anchor,
        host=args.host,
        ports={"api_a": args.port_a, "api_b": args.port_b, "api_c": args.port_c},
        credentials=_credentials_from_env(),
        history_hours=args.history_hours,
        events_per_hour_a=args.events_per_hour_a,
        events_per_hour_b=args.events_per_hour_b,
        events_per_hour_generated=args.events_per_hour_generated,
        follow_real_time=not args.frozen_clock,
    )


def main(argv: Sequence[str] | None = None, stop_event: threading.Event | None = None) -> int:
    """Run the mock APIs in the foreground, printing their URLs, until Ctrl-C/SIGTERM (or ``stop_event``)."""
    args = build_parser().parse_args(argv)
    stop = stop_event or threading.Event()
    apis = MockApis(config_from_args(args))
    try:
        urls = apis.start()
    except OSError as exc:
        print(f"cannot start the mock APIs: {exc}", file=sys.stderr)
        return 1
    for line in endpoint_lines(urls, apis.config.credentials):
        print(line, flush=True)
    print("Ctrl-C to stop", flush=True)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        apis.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0
