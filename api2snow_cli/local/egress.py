"""Local egress control: during a procedure call, only the hosts its network rules allow are reachable.

In Snowflake a procedure reaches the network only through its EXTERNAL_ACCESS_INTEGRATIONS, each allowing
the HOST_PORT network rules it lists. The local stack reads the same statements (external_access/, rendered
like deploy renders them) and refuses any other connection a procedure opens, so a test catches a base URL
pointed at a host the rules do not cover, as Snowflake would.

How: urllib3's `HTTPConnection.connect` and `HTTPSConnection.connect` (what requests and botocore use) are
wrapped once; inside a procedure call (`current_call()`, a ContextVar that page-prefetch threads inherit)
the destination must match the call's `Allowance`. Outside a call nothing is checked. The local warehouse's
own Snowpark/connector traffic goes through snowflake-connector's vendored copy of urllib3, a separate
module, and is never checked. Work that Snowflake does itself on a call's behalf (the OAUTH2 token exchange,
pipe loading) runs under `platform_side()` and is not the procedure's egress.

Rule semantics (Snowflake's): a VALUE_LIST entry is `host` or `host:port`; without a port it means 443;
`*.example.com` matches exactly one more label (`a.example.com`, not `a.b.example.com` or `example.com`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3.connection

from ..project import Procedure
from .procedures import current_call
from .secrets import parse_properties

DEFAULT_PORT = 443
_STATEMENT = re.compile(
    r"^(?:CREATE\s+(?:OR\s+REPLACE\s+)?|ALTER\s+)(?P<kind>NETWORK\s+RULE|EXTERNAL\s+ACCESS\s+INTEGRATION)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w.$]+)\s+(?:SET\s+)?(?P<body>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_RULE_LIST = re.compile(r"ALLOWED_NETWORK_RULES\s*=\s*\((?P<names>[^)]*)\)", re.IGNORECASE)


class EgressDenied(RuntimeError):
    """A procedure opened a connection that its network rules do not allow (not retryable, not OSError)."""


class EgressConfigError(ValueError):
    """snowflake.yml names an external access integration that external_access/ does not create."""


@dataclass(frozen=True)
class HostPort:
    """One HOST_PORT network-rule entry."""

    host: str
    port: int

    @classmethod
    def parse(cls, entry: str) -> HostPort:
        host, sep, port = entry.strip().rpartition(":")
        if not sep or not port.isdigit():
            host, port = entry.strip(), str(DEFAULT_PORT)
        return cls(host.lower(), int(port))

    def matches(self, host: str, port: int) -> bool:
        if port != self.port:
            return False
        host = host.lower().rstrip(".")
        if self.host.startswith("*."):
            label, _, rest = host.partition(".")
            return bool(label) and rest == self.host[2:]
        return host == self.host

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Allowance:
    """Where one procedure may connect: the entries of the network rules of its integrations."""

    procedure: str
    rules: tuple[HostPort, ...]

    def allows(self, host: str, port: int) -> bool:
        return any(rule.matches(host, port) for rule in self.rules)

    def check(self, host: str, port: int) -> None:
        if self.allows(host, port):
            return
        allowed = ", ".join(dict.fromkeys(str(rule) for rule in self.rules)) or "no host"
        raise EgressDenied(
            f"egress to {host}:{port} is not allowed: procedure {self.procedure} may reach only {allowed} "
            "(its network rules in external_access/)"
        )


def _declarations(statements: Iterable[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(network rule -> VALUE_LIST, integration -> ALLOWED_NETWORK_RULES); a later ALTER ... SET wins."""
    rules: dict[str, list[str]] = {}
    integrations: dict[str, list[str]] = {}
    for statement in statements:
        match = _STATEMENT.match(statement.strip())
        if match is None:
            continue
        name, body = match.group("name").upper(), match.group("body")
        if match.group("kind").upper().startswith("NETWORK"):
            values = parse_properties(body).get("VALUE_LIST")
            if isinstance(values, list):
                rules[name] = values
        elif listed := _RULE_LIST.search(body):
            integrations[name] = [n.strip().strip('"').upper() for n in listed.group("names").split(",")]
    return rules, integrations


def _stand_in(entry: str, stand_ins: Mapping[str, str]) -> str:
    """The local endpoint an entry stands for (e.g. AWS's S3 hosts -> moto), or the entry itself."""
    host = entry.rpartition(":")[0] if ":" in entry else entry
    for suffix, local in stand_ins.items():
        if host.lower().endswith(suffix):
            return local
    return entry


def allowances(
    statements: Iterable[str], procedures: Mapping[str, Procedure], stand_ins: Mapping[str, str] | None = None
) -> dict[str, Allowance]:
    """Each procedure's allowance, from rendered external_access/ statements and its declared integrations.

    `stand_ins` maps a host suffix to the local host:port that replaces it (the stack maps AWS's hosts).
    """
    rules, integrations = _declarations(statements)
    found: dict[str, Allowance] = {}
    for name, proc in procedures.items():
        entries: list[HostPort] = []
        for integration in proc.external_access_integrations:
            rule_names = integrations.get(integration.upper())
            if rule_names is None:
                raise EgressConfigError(
                    f"{proc.name}: external access integration {integration} is not in external_access/"
                )
            for rule in rule_names:
                entries += [HostPort.parse(_stand_in(v, stand_ins or {})) for v in rules.get(rule, [])]
        found[name] = Allowance(proc.name, tuple(entries))
    return found


# ---- enforcement -----------------------------------------------------------------------------------------
_platform_side: contextvars.ContextVar[bool] = contextvars.ContextVar("api2snow_platform_side", default=False)


@contextlib.contextmanager
def platform_side() -> Iterator[None]:
    """Connections opened here are Snowflake's own work for the call, not the procedure's egress."""
    token = _platform_side.set(True)
    try:
        yield
    finally:
        _platform_side.reset(token)


def check_connection(host: str, port: int) -> None:
    """Raise EgressDenied when the current procedure call may not open a connection to host:port."""
    call = current_call()
    allowance = getattr(call, "egress", None)
    if allowance is not None and not _platform_side.get():
        allowance.check(host, port)


def _guarded(connect: Callable[[Any], None]) -> Callable[[Any], None]:
    @functools.wraps(connect)
    def guarded_connect(self: Any) -> None:
        check_connection(self.host, self.port)
        connect(self)

    guarded_connect.api2snow_egress = True  # type: ignore[attr-defined]
    return guarded_connect


def install() -> None:
    """Wrap urllib3's connect methods once per process (idempotent); checks apply only inside calls."""
    for cls in (urllib3.connection.HTTPConnection, urllib3.connection.HTTPSConnection):
        connect = cls.__dict__["connect"]
        if not getattr(connect, "api2snow_egress", False):
            cls.connect = _guarded(connect)  # type: ignore[method-assign]
