"""Run the three mock APIs together around one shared clock and data set (in-process or in the foreground)."""

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

from .admin import AdminApp
from .api_a import ApiA
from .api_b import ApiB
from .api_c import ApiC
from .clock import MockClock, as_utc, parse_iso
from .context import APIS, Credentials, MockContext
from .dataset import Dataset, floor_hour
from .faults import Faults
from .http_base import AppServer, MockApp


def default_faults() -> dict[str, Faults]:
    """Contract defaults: no faults, rate limits A 100/min, B 60/min, C 60/min."""
    return {api: Faults.for_api(api) for api in APIS}


@dataclass
class MockApiConfig:
    """How to run the mock APIs. ``anchor`` defaults to the current UTC hour (floored); history ends there.

    The clock starts at ``clock_start``, else at an explicit ``anchor``, else at the real current time; with
    ``follow_real_time`` it then ticks with the wall clock. Faults missing from ``faults`` get the defaults.
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


class MockApis:
    """The three mock API servers; ``start()`` returns ``{"api_a": url, "api_b": url, "api_c": url}``."""

    def __init__(self, config: MockApiConfig | None = None) -> None:
        self.config = config or MockApiConfig()
        cfg = self.config
        anchor = as_utc(cfg.anchor) if cfg.anchor is not None else floor_hour(datetime.now(UTC))
        start = cfg.clock_start if cfg.clock_start is not None else cfg.anchor
        self.clock = MockClock(start, follow_real_time=cfg.follow_real_time)
        # Copies, so runtime fault changes never leak back into the caller's config.
        self.faults: dict[str, Faults] = {
            api: replace(cfg.faults[api]) if api in cfg.faults else Faults.for_api(api) for api in APIS
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
        self.context = MockContext.build(self.clock, self.dataset, self.faults, cfg.credentials, cfg.seed)
        apps: dict[str, MockApp] = {
            "api_a": ApiA(self.context),
            "api_b": ApiB(self.context),
            "api_c": ApiC(self.context),
        }
        self._servers = {
            api: AppServer(apps[api], AdminApp(self.context, api), cfg.host, cfg.ports.get(api, 0))
            for api in APIS
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

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-API counters, the same as ``GET /_admin/stats``."""
        return {api: self.context.stats[api].snapshot() for api in APIS}

    def reset(self) -> None:
        """Zero the stats and forget the rate-limit windows."""
        for api in APIS:
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
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="api2snow mock-apis",
        description="Serve the mock camera-event APIs (A: OAuth2+cursor, B: API key+offset, C: SOAP) "
        "until Ctrl-C. "
        "Credentials come from API2SNOW_MOCK_CLIENT_ID/_CLIENT_SECRET/_API_KEY/_SOAP_USER/_SOAP_PASSWORD "
        "(defaults demo-client/demo-secret, demo-key, demo/demo-pass).",
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
    for api, url in urls.items():
        print(f"{api}: {url}", flush=True)
    print(f"admin: {urls['api_a']}/_admin/stats (Ctrl-C to stop)", flush=True)
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
