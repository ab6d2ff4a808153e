"""API A: OAuth2 client credentials (RFC 6749 §4.4) and cursor-paged events (see docs/CONTRACTS.md)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from .clock import MockClock, parse_iso
from .context import MockContext
from .dataset import Dataset, index_of, record_id, to_ms
from .http_base import (
    MockApp,
    Request,
    Response,
    basic_credentials,
    error_response,
    json_bytes,
    json_response,
    method_not_allowed,
    not_found,
    parse_int,
)

SOURCE = "api_a"
SCOPE = "events:read"
TOKEN_PATH = "/oauth/token"
EVENTS_PATH = "/v1/events"
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="api2snow"'}
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenStore:
    """Opaque bearer tokens that expire on the mock clock, so tests can expire them by advancing time."""

    def __init__(self, clock: MockClock) -> None:
        self._clock = clock
        self._tokens: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def issue(self, client_id: str, ttl_s: int) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock.now()
        with self._lock:
            if len(self._tokens) > 1000:
                self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (client_id, now + timedelta(seconds=ttl_s))
        return token

    def client_of(self, token: str) -> str | None:
        """The client id of a valid, unexpired token; ``None`` otherwise."""
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or self._clock.now() >= entry[1]:
            return None
        return entry[0]


def encode_cursor(updated_ms: int, index: int) -> str:
    """Opaque cursor: URL-safe base64 of the last served ``(updated_at, id)``."""
    raw = json.dumps({"u": updated_ms, "id": record_id(SOURCE, index)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """``(updated_ms, index)`` of a cursor; raises ``ValueError`` for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        updated_ms, rid = data["u"], data["id"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise ValueError("invalid cursor") from None
    if not isinstance(updated_ms, int) or not isinstance(rid, str):
        raise ValueError("invalid cursor")
    return updated_ms, index_of(SOURCE, rid)


class ApiA(MockApp):
    """OAuth2-protected, cursor-paged events."""

    name = SOURCE

    def __init__(self, ctx: MockContext) -> None:
        super().__init__(ctx)
        self.tokens = TokenStore(ctx.clock)

    def route(self, request: Request) -> Response:
        if request.path == TOKEN_PATH:
            return self.token(request) if request.method == "POST" else method_not_allowed("POST")
        if request.path == EVENTS_PATH:
            return self.events(request) if request.method == "GET" else method_not_allowed("GET")
        return not_found()

    # ----- token endpoint -----------------------------------------------------------------------------------

    def token(self, request: Request) -> Response:
        """Client credentials grant with client_secret_basic or client_secret_post."""
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return self._token_error(400, "invalid_request", "body must be application/x-www-form-urlencoded")
        try:
            multi = parse_qs(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return self._token_error(400, "invalid_request", "body is not UTF-8")
        if any(len(values) > 1 for values in multi.values()):
            return self._token_error(400, "invalid_request", "repeated parameter")
        form = {k: v[0] for k, v in multi.items()}
        grant = form.get("grant_type")
        if not grant:
            return self._token_error(400, "invalid_request", "grant_type is required")
        authorization = request.header("Authorization") or ""
        used_basic = authorization[:6].lower() == "basic "
        if used_basic and "client_secret" in form:
            return self._token_error(400, "invalid_request", "more than one client authentication method")
        if used_basic:
            basic = basic_credentials(authorization)
            if basic is None or form.get("client_id", basic[0]) not in (basic[0], unquote_plus(basic[0])):
                return self._token_error(401, "invalid_client", headers=_BASIC_CHALLENGE)
            client_id, secret = basic
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not self._client_ok(client_id, secret, form_encoded=used_basic):
            return self._token_error(401, "invalid_client", headers=_BASIC_CHALLENGE if used_basic else None)
        if grant != "client_credentials":
            return self._token_error(400, "unsupported_grant_type")
        requested = set((form.get("scope") or "").split())
        if requested - {SCOPE}:
            return self._token_error(400, "invalid_scope", f"only {SCOPE!r} is available")
        ttl = self.faults.token_ttl_s
        token = self.tokens.issue(client_id, ttl)
        payload = {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": SCOPE}
        return json_response(200, payload, headers=_NO_STORE)

    def _client_ok(self, client_id: str, secret: str, form_encoded: bool = False) -> bool:
        """Constant-time credential check; Basic values may be form-encoded (RFC 6749 §2.3.1) or raw."""
        creds = self.ctx.credentials
        candidates = [(client_id, secret)]
        if form_encoded:
            candidates.append((unquote_plus(client_id), unquote_plus(secret)))
        ok = False
        for cid, sec in candidates:
            id_ok = hmac.compare_digest(cid.encode(), creds.client_id.encode())
            secret_ok = hmac.compare_digest(sec.encode(), creds.client_secret.encode())
            ok = ok or (id_ok and secret_ok)
        return ok

    @staticmethod
    def _token_error(
        status: int, error: str, description: str | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        all_headers = dict(_NO_STORE)
        all_headers.update(headers or {})
        return error_response(status, error, description, all_headers)

    # ----- events -------------------------------------------------------------------------------------------

    def events(self, request: Request) -> Response:
        """A page of events by ``(updated_at, id)``, strictly after ``updated_since`` and the cursor."""
        client = self._bearer_client(request)
        if client is None:
            return error_response(401, "invalid_token", headers=_INVALID_TOKEN)
        refused = self.admit(client)
        if refused is not None:
            return refused
        try:
            limit = parse_int(request.query, "limit", 100, 1, 500)
            since = request.query.get("updated_since")
            after_ms = to_ms(parse_iso(since)) if since else None
            cursor = request.query.get("cursor")
            position = decode_cursor(cursor) if cursor else None
        except ValueError as exc:
            return error_response(400, "invalid_request", str(exc))
        dataset = self.ctx.dataset
        if position is not None:
            after_ms = position[0] if after_ms is None else max(after_ms, position[0])
        rows = dataset.scan(SOURCE, self.ctx.clock.now(), after_ms=after_ms, limit=limit + 1)
        page = rows[:limit]
        data = [dataset.render(SOURCE, index, is_update) for _, index, is_update in page]
        fault = None
        if position is not None and self.injector.duplicate():
            previous = _version_at(dataset, *position)
            if previous is not None:
                data.insert(0, previous)
                fault = "duplicate"
        next_cursor = encode_cursor(page[-1][0], page[-1][1]) if len(rows) > limit else None
        body = json_bytes({"data": data, "next_cursor": next_cursor})
        response = Response(200, body, {"Content-Type": "application/json"}, records=len(data), fault=fault)
        return self.finish_page(response)

    def _bearer_client(self, request: Request) -> str | None:
        authorization = request.header("Authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.tokens.client_of(token.strip())


def _version_at(dataset: Dataset, updated_ms: int, index: int) -> dict[str, Any] | None:
    """The record a cursor points at (the last one of the previous page), if the cursor is genuine."""
    for is_update in (False, True):
        try:
            version = dataset.version(SOURCE, index, is_update)
        except ValueError:
            continue
        if version.updated_ms == updated_ms:
            return dataset.render(SOURCE, index, is_update)
    return None
