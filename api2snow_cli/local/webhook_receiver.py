"""A webhook receiver on loopback: the local stack's alerts arrive here, as at Slack's incoming webhooks.

The local notification integrations (local/platform.py) post here what Snowflake would post: the webhook
integration's body template with the message in it, to its URL with the secret in it, and, for the email
integration, the mail as JSON to /email (the local outbox). Like Slack, the webhook answers 404 to a path
without the right secret and 400 to a body that is not JSON, so a send the real service would refuse fails
here too. Every accepted request is kept, in order, for `api2snow up`, the demo and the tests.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBHOOK_PATH = "/services/"  # Slack's incoming webhooks: https://hooks.slack.com/services/<secret>
EMAIL_PATH = "/email"
MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True)
class ReceivedAlert:
    """One accepted request: a webhook post (its JSON body) or a mail from the email integration."""

    kind: str  # "webhook" | "email"
    payload: dict[str, Any]
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def text(self) -> str:
        """What a person reads: Slack's/Teams' `text`, PagerDuty's summary, or the mail's subject."""
        if self.kind == "email":
            return str(self.payload.get("subject", ""))
        inner = self.payload.get("payload")
        summary = inner.get("summary") if isinstance(inner, dict) else None
        return str(self.payload.get("text") or summary or json.dumps(self.payload))


class WebhookReceiver:
    """A stdlib HTTP server in a thread; start() picks a free port on 127.0.0.1 unless given one."""

    def __init__(self, port: int = 0, secret: str | None = None) -> None:
        self.secret = secret or f"TLOCAL/BLOCAL/{secrets.token_hex(12)}"  # the shape of a Slack webhook's
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._received: list[ReceivedAlert] = []
        self._lock = threading.Lock()

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                status, answer = receiver._handle(self.path, self._body())
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self) -> None:  # noqa: N802
                body = json.dumps(receiver.as_json()).encode() if self.path == "/alerts" else b"[]"
                self.send_response(200 if self.path == "/alerts" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(min(length, MAX_BODY_BYTES))

            def log_message(self, format: str, *args: Any) -> None:  # the path holds the secret: no log
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---- addresses ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The receiver's base URL (GET {url}/alerts lists what it received)."""
        assert self._server is not None, "receiver not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def webhook_url_template(self) -> str:
        """The webhook integration's WEBHOOK_URL here: Slack's shape, with the secret as a placeholder."""
        return f"{self.url}{WEBHOOK_PATH}SNOWFLAKE_WEBHOOK_SECRET"

    @property
    def email_url(self) -> str:
        return f"{self.url}{EMAIL_PATH}"

    # ---- what arrived ------------------------------------------------------------------------------
    def received(self, kind: str | None = None) -> list[ReceivedAlert]:
        with self._lock:
            return [alert for alert in self._received if kind is None or alert.kind == kind]

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"kind": a.kind, "received_at": a.received_at.isoformat(), "payload": a.payload}
            for a in self.received()
        ]

    def _handle(self, path: str, body: bytes) -> tuple[int, bytes]:
        if path == EMAIL_PATH:
            kind = "email"
        elif path == f"{WEBHOOK_PATH}{self.secret}":
            kind = "webhook"
        else:
            return 404, b"no_service"  # Slack's answer to a webhook URL it does not know
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 400, b"invalid_payload"
        if not isinstance(payload, dict):
            return 400, b"invalid_payload"
        with self._lock:
            self._received.append(ReceivedAlert(kind, payload))
        return 200, b"ok"


def alert_lines(alerts: list[ReceivedAlert], url: str) -> list[str]:
    """What `api2snow up` and the demo print about alerts: where they go, and one line per alert received."""
    head = f"alerts: {len(alerts)} received at the local webhook receiver {url}"
    head += "" if alerts else " (a passing run sends none)"
    return [head, *(f"  {a.kind} at {a.received_at:%H:%M:%S} UTC: {a.text}" for a in alerts)]
