"""HTTP plumbing shared by the mock APIs: request/response values, the app base class, the server thread."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .context import MockContext
from .faults import FaultInjector, Faults

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20


@dataclass
class Request:
    """An incoming request, decoded just enough for the apps."""

    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    headers: Message
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Response:
    """What an app answers; ``records`` and ``fault`` feed the stats."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    records: int = 0
    fault: str | None = None


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def json_response(
    status: int, payload: Any, headers: dict[str, str] | None = None, records: int = 0
) -> Response:
    all_headers = {"Content-Type": "application/json"}
    all_headers.update(headers or {})
    return Response(status, json_bytes(payload), all_headers, records=records)


def error_response(
    status: int, error: str, description: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """A JSON error ``{"error": ..., "error_description": ...}`` (OAuth style, used by every mock API)."""
    payload = {"error": error}
    if description:
        payload["error_description"] = description
    return json_response(status, payload, headers)


def parse_int(
    query: dict[str, str], name: str, default: int, low: int | None = None, high: int | None = None
) -> int:
    """An integer query parameter within ``low..high`` (``default`` when absent); ``ValueError`` names it."""
    value = parse_optional_int(query, name)
    if value is None:
        return default
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be within {low}..{high}")
    return value


def parse_optional_int(query: dict[str, str], name: str) -> int | None:
    """An integer query parameter, ``None`` when absent or empty; ``ValueError`` names it when malformed."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None


class Handler(Protocol):
    def handle(self, request: Request) -> Response: ...


class MockApp:
    """Base of the three mock APIs: fault dice, rate limiting and page finishing shared by all of them."""

    name = ""

    def __init__(self, ctx: MockContext) -> None:
        self.ctx = ctx

    @property
    def faults(self) -> Faults:
        """The live fault switches of this API."""
        return self.ctx.faults[self.name]

    @property
    def injector(self) -> FaultInjector:
        return self.ctx.injectors[self.name]

    def handle(self, request: Request) -> Response:
        """Apply the latency fault, then route."""
        delay = self.injector.latency_s()
        if delay > 0:
            time.sleep(delay)
        return self.route(request)

    def route(self, request: Request) -> Response:
        raise NotImplementedError

    def throttle(self, client: str) -> Response | None:
        """A 429 when ``client`` is over its per-minute limit, else ``None`` (the request is counted)."""
        retry_after = self.ctx.limiters[self.name].hit(client, self.faults.rate_limit_per_min)
        if retry_after is None:
            return None
        return error_response(429, "rate_limited", headers={"Retry-After": str(retry_after)})

    def admit(self, client: str) -> Response | None:
        """The answer that refuses this request before any work (429 over the limit, then an injected
        500/503), or ``None`` to serve it."""
        return self.throttle(client) or self.injected_error()

    def injected_error(self) -> Response | None:
        """A 500/503 when the ``error_rate`` dice say so."""
        status = self.injector.error_status()
        if status is None:
            return None
        if status == 503:
            response = error_response(503, "service_unavailable", headers={"Retry-After": "1"})
        else:
            response = error_response(500, "server_error")
        response.fault = "error"
        return response

    def finish_page(self, response: Response) -> Response:
        """Truncate the body of a good page when the ``malformed_page_rate`` dice say so."""
        if response.status == 200 and self.injector.malformed():
            response.body = response.body[: max(1, len(response.body) // 2)]
            response.records = 0
            response.fault = "malformed"
        return response


def not_found() -> Response:
    return error_response(404, "not_found")


def method_not_allowed(allowed: str) -> Response:
    return error_response(405, "method_not_allowed", headers={"Allow": allowed})


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self._send(error_response(413 if length > 0 else 400, "bad_content_length"))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length > 0 else b""
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        request = Request(self.command, parts.path, query, parts.query, self.headers, body)
        is_admin = parts.path.startswith("/_admin/")
        target: Handler = self.server.admin if is_admin else self.server.app
        try:
            response = target.handle(request)
        except Exception:
            log.exception("%s: unhandled error on %s %s", self.server.app.name, self.command, parts.path)
            response = error_response(500, "internal_error")
        if not is_admin:
            self.server.app.ctx.stats[self.server.app.name].record(
                parts.path, response.status, response.records, response.fault
            )
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # Only method, path and status; credentials travel in headers, which are never logged.
        log.debug("%s %s", self.server.app.name, format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: MockApp, admin: Handler) -> None:
        super().__init__(address, _RequestHandler)
        self.app = app
        self.admin = admin

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A request that broke (a client gone mid-response): logged, not printed on the terminal."""
        log.debug("%s: request from %s failed", self.app.name, client_address, exc_info=True)


class AppServer:
    """One mock API on its own port, served by a daemon thread."""

    def __init__(self, app: MockApp, admin: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._admin = admin
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        """Bind and serve in the background; returns the base URL."""
        if self._server is not None:
            return self.url
        self._server = _Server(self._address, self.app, self._admin)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"mock-{self.app.name}",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """``(user, password)`` of an ``Authorization: Basic ...`` header, or None when it is not one."""
    if authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
