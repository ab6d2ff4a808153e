"""Minimal threaded HTTP plumbing for the hostile servers: one function answers every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_REQUEST_BODY = 1 << 20


@dataclass
class Request:
    """An incoming request: headers as a plain dict (first value per name) and the first query values."""

    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Reply(status, body, {"Content-Type": "application/json", **(headers or {})})


def error_reply(
    status: int, code: str, description: str | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """An OAuth-style JSON error, as the mock APIs answer."""
    payload = {"error": code} | ({"error_description": description} if description else {})
    return json_reply(status, payload, headers)


Answer = Callable[[Request], Reply]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BODY:
            self._send(error_reply(413, "too_large"))
            return
        body = self.rfile.read(length) if length > 0 else b""
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k: v for k, v in self.headers.items()}
        request = Request(self.command, parts.path, query, parts.query, headers, body)
        try:
            reply = self.server.answer(request)
        except Exception as exc:  # a bug in the hostile server must show up as such in the test
            reply = error_reply(500, "hostile_server_bug", f"{type(exc).__name__}: {exc}")
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet in tests
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: Answer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer


class BackgroundServer:
    """``answer`` served on 127.0.0.1 at a free port by a daemon thread."""

    def __init__(self, answer: Answer, name: str) -> None:
        self._answer = answer
        self._name = name
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self._name} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        if self._server is None:
            self._server = _Server(self._answer)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=self._name,
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
        self._server = self._thread = None


class RecordingServer(BackgroundServer):
    """'Another host' a redirect points at: records every request's headers and refuses it (401)."""

    def __init__(self) -> None:
        super().__init__(self._record, "hostile-recorder")
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def _record(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
        return error_reply(401, "unauthorized")

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
