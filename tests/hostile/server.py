"""A hostile API server: API A and API B as docs/CONTRACTS.md defines them, plus scripted faults.

One instance serves both APIs on one base URL (A: ``POST /oauth/token``, ``GET /v1/events``; B:
``GET /api/v2/detections``) with the local stack's credentials, from in-memory stores that know the ground
truth (tests/hostile/scenario.py). It never rate-limits unless asked. Typical use::

    server = HostileServer().start()
    server.reset(a=250, b=250)                 # fresh stores in a new time window; no faults, no stats
    server.enable("wrong_types", "short_pages", page_cap=37)
    ...  # run the pipeline against server.url
    assert clean_rows == server.truth("api_a") and not clean_ids & server.poison_ids("api_a")
    server.page_requests("api_a"), server.statuses_by_cursor(), server.token_requests()

Between runs a test changes the data with ``add``, ``commit_late`` (late commits at and just before the
last served time) and ``rewrite_same_version`` (new content, same updated_at), and calls ``new_run`` so
one-shot faults fire again; ``clear_stats`` empties the request log, ``disable`` switches faults off.

Faults (``enable``); each keeps the truth correct:

- data (poison records interleaved with good ones, rejected with a reason, never in CLEAN):
  ``surrogate_text`` (a literal ``\\ud800`` escape in a string), ``huge_number`` (durations beyond 10**38
  and just beyond 10**18 ms), ``wrong_types`` (bool/float/list/str where ids, kinds and numbers belong),
  ``huge_record`` (one record of about 20 MB).
- B offsets: ``empty_page_before_total`` (the first request of each offset past the first page answers
  ``items: []`` with the true total), ``empty_page_always`` (the first offset past the first page stays
  empty), ``mutate_while_paging`` (before the next pages, records already served move to the end with new
  content and new ones are inserted), ``ignore_offset`` (always the first page), ``redirect_other_host``
  (302 to ``recorder``, another host that logs every request's headers and answers 401, for pages
  past the first).
- A cursors: ``cursor_loop`` (c1 -> c2 -> c1), ``same_records_again`` (new cursor, same records),
  ``has_more`` (an empty page with a next cursor), ``revoke_token`` (the issued tokens die after
  ``revoke_after_pages`` pages; a new token works).
- both: ``equal_updated_at_versions`` (once a run, the last record of a page gets new content with the
  same updated_at and is served again on the next page: in place if that page holds it, else first),
  ``echo_secret`` (400 echoing the credential headers received),
  ``echo_secret_token`` (the token endpoint answers 400 echoing the client credentials), ``flaky_503``
  (503 + Retry-After: 1 on the first attempt of every second page), ``throttle_once`` (one 429 +
  Retry-After: 1), ``short_pages`` (the server caps ``limit`` at ``page_cap``).
Every API also answers 400 ``hostile_tripwire`` after ``tripwire`` page requests in one run, so a
client that loops fails instead of hanging.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from api2snow_cli.local.mock_apis.context import Credentials

from .scenario import (
    API_A,
    API_B,
    APIS,
    DATA_FAULTS,
    FAULTS,
    TIMELINE,
    Entry,
    Poison,
    RecordStore,
    from_ms,
)
from .wire import BackgroundServer, RecordingServer, Reply, Request, error_reply, json_reply

TOKEN_PATH = "/oauth/token"
EVENTS_PATH = "/v1/events"
DETECTIONS_PATH = "/api/v2/detections"
SCOPE = "events:read"
TOKEN_TTL_S = 3600
DEFAULT_OPTIONS: dict[str, int] = {
    "tripwire": 60,
    "page_cap": 37,
    "revoke_after_pages": 2,
    "mutate_rounds": 2,
    "mutate_updates": 3,
    "mutate_inserts": 2,
    "echo_status": 400,
}
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="hostile"'}

Position = tuple[int, int]


@dataclass
class RequestLog:
    """One request as the server saw it (``api`` is api_a, api_b, token or other)."""

    api: str
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    status: int
    bearer: str | None = None


@dataclass
class _FaultState:
    """What the serving faults remember between the requests of one run (``new_run`` starts afresh)."""

    pages_served: dict[str, int] = field(default_factory=lambda: dict.fromkeys(APIS, 0))
    page_requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(APIS, 0))
    revoked: bool = False
    empty_served: set[int] = field(default_factory=set)
    empty_always_offset: int | None = None
    mutate_rounds: int = 0
    tie_done: set[str] = field(default_factory=set)
    last_served: dict[str, str] = field(default_factory=dict)
    flaky_seen: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    throttled: set[str] = field(default_factory=set)
    cursors: list[str] = field(default_factory=list)
    first_position: Position | None = None
    repeats: int = 0
    has_more_done: bool = False


def encode_cursor(position: Position, nonce: int = 0) -> str:
    """Opaque cursor of the last served (updated_at ms, id number); ``nonce`` makes a distinct string."""
    raw = json.dumps({"u": position[0], "n": position[1], "r": nonce}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor we issued points at; ``ValueError`` for anything else."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = (data["u"], data["n"])
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise ValueError("invalid cursor") from None
    if not all(type(v) is int for v in position):
        raise ValueError("invalid cursor")
    return position


def _since_us(value: str | None) -> int | None:
    """``updated_since`` in epoch microseconds (naive means UTC); ``ValueError`` when malformed."""
    if value is None or value == "":
        return None
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment.astimezone(UTC).replace(tzinfo=None) - datetime(1970, 1, 1)
    return delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds


def _int_param(
    query: dict[str, str], name: str, default: int | None, low: int, high: int | None
) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = int(raw)  # ValueError names nothing; the caller turns it into a 400
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be within {low}..{high}")
    return value


def _basic(authorization: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class HostileServer:
    """API A and API B from mutable stores with ground truth; faults are switched on per test."""

    def __init__(self, credentials: Credentials | None = None) -> None:
        self.credentials = credentials or Credentials()
        self.recorder = RecordingServer()
        self._http = BackgroundServer(self._answer, "hostile-api")
        self._lock = threading.RLock()
        self.reset()

    # ---- lifecycle

    def start(self) -> HostileServer:
        self._http.start()
        self.recorder.start()
        return self

    def stop(self) -> None:
        self._http.stop()
        self.recorder.stop()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._http.url

    # ---- scenario

    def reset(self, a: int = 0, b: int = 0, seed: int = 0) -> None:
        """Fresh stores (``a``/``b`` good records) in a new time window; faults, tokens and stats cleared."""
        with self._lock:
            self.window = TIMELINE.window()
            self.stores = {api: RecordStore(api, self.window, seed) for api in APIS}
            self.stores[API_A].seed_records(a)
            self.stores[API_B].seed_records(b)
            self.faults: set[str] = set()
            self.options = dict(DEFAULT_OPTIONS)
            self.log: list[RequestLog] = []
            self.tokens: dict[str, bool] = {}  # issued token -> still valid
            self.token_forms: list[dict[str, str]] = []
            self.state = _FaultState()
            self.recorder.clear()

    @property
    def window_start(self) -> datetime:
        """Naive UTC start of this reset's time window: every record of the stores is later."""
        return from_ms(self.window[0])

    @property
    def window_end(self) -> datetime:
        """Naive UTC end of this reset's time window (exclusive): later stores start here or after."""
        return from_ms(self.window[1])

    def clear_stats(self) -> None:
        """Forget the request log (e.g. to count only the requests of the next run)."""
        with self._lock:
            self.log.clear()
            self.recorder.clear()

    def enable(self, *faults: str, **options: int) -> None:
        """Switch faults on (data faults inject their poison records now) and set options."""
        unknown = set(faults) - FAULTS or set(options) - set(DEFAULT_OPTIONS)
        if unknown:
            raise ValueError(f"unknown faults or options: {sorted(unknown)}")
        with self._lock:
            for fault in faults:
                if fault in DATA_FAULTS and fault not in self.faults:
                    for store in self.stores.values():
                        if store.entries:
                            store.inject(fault)
            self.faults |= set(faults)
            self.options.update(options)

    def disable(self, *faults: str) -> None:
        """Switch serving faults off (poison records already injected stay: they are data)."""
        with self._lock:
            self.faults -= set(faults) if faults else set(self.faults)

    def new_run(self) -> None:
        """Forget per-run serving state (counters, one-shot faults), e.g. before a second pipeline run."""
        with self._lock:
            self.state = _FaultState()

    def add(self, api: str, count: int) -> list[Entry]:
        """``count`` new good records, later than everything in the store."""
        with self._lock:
            store = self.stores[api]
            return [store.add_record(store.tick()) for _ in range(count)]

    def commit_late(self, api: str, count: int, seconds_back: float) -> list[Entry]:
        """Records committed late: at the max updated_at served so far and ``seconds_back`` before it."""
        with self._lock:
            return self.stores[api].commit_late(count, seconds_back)

    def rewrite_same_version(self, api: str, key: str | None = None) -> str:
        """Change a record's content keeping its updated_at (default: the latest record); returns its id."""
        with self._lock:
            store = self.stores[api]
            key = key or store.latest_key()
            store.revise(key, bump=False)
            return key

    # ---- ground truth

    def truth(self, api: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return self.stores[api].truth()

    def poison(self, api: str) -> list[Poison]:
        with self._lock:
            return self.stores[api].poison()

    def poison_ids(self, api: str) -> set[str]:
        with self._lock:
            return self.stores[api].poison_ids()

    # ---- stats

    def page_requests(self, api: str) -> list[RequestLog]:
        with self._lock:
            return [r for r in self.log if r.api == api]

    def token_requests(self) -> list[RequestLog]:
        with self._lock:
            return [r for r in self.log if r.api == "token"]

    @property
    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self.tokens)

    def statuses_by_cursor(self) -> dict[str | None, list[int]]:
        """API A: the statuses answered per cursor (None: the first page), in request order."""
        result: dict[str | None, list[int]] = defaultdict(list)
        for r in self.page_requests(API_A):
            result[r.params.get("cursor")].append(r.status)
        return dict(result)

    def statuses_by_offset(self) -> dict[int, list[int]]:
        """API B: the statuses answered per offset, in request order."""
        result: dict[int, list[int]] = defaultdict(list)
        for r in self.page_requests(API_B):
            result[int(r.params.get("offset") or 0)].append(r.status)
        return dict(result)

    # ---- HTTP

    def _answer(self, request: Request) -> Reply:
        routes = {TOKEN_PATH: ("token", "POST"), EVENTS_PATH: (API_A, "GET"), DETECTIONS_PATH: (API_B, "GET")}
        api, method = routes.get(request.path, ("other", None))
        with self._lock:
            if method is None:
                reply = error_reply(404, "not_found")
            elif request.method != method:
                reply = error_reply(405, "method_not_allowed", headers={"Allow": method})
            else:
                handler = {"token": self._token, API_A: self._events, API_B: self._detections}[api]
                reply = handler(request)
            self.log.append(
                RequestLog(
                    api,
                    request.method,
                    request.path,
                    dict(request.query),
                    dict(request.headers),
                    reply.status,
                    _bearer(request),
                )
            )
        return reply

    # ---- API A: token endpoint

    def _token(self, request: Request) -> Reply:
        """Client credentials grant, client_secret_basic or client_secret_post (RFC 6749 §4.4)."""
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return self._token_error(400, "invalid_request", "form body expected")
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        self.token_forms.append(form)
        authorization = request.header("Authorization") or ""
        used_basic = authorization[:6].lower() == "basic "
        if "echo_secret_token" in self.faults:
            return self._echo_token(form, authorization)
        if not form.get("grant_type"):
            return self._token_error(400, "invalid_request", "grant_type is required")
        if used_basic and "client_secret" in form:
            return self._token_error(400, "invalid_request", "more than one client authentication method")
        pair = (
            _basic(authorization)
            if used_basic
            else (form.get("client_id", ""), form.get("client_secret", ""))
        )
        if pair is None or not self._client_ok(*pair, form_encoded=used_basic):
            return self._token_error(401, "invalid_client", headers=_BASIC_CHALLENGE if used_basic else None)
        if form["grant_type"] != "client_credentials":
            return self._token_error(400, "unsupported_grant_type")
        if set((form.get("scope") or "").split()) - {SCOPE}:
            return self._token_error(400, "invalid_scope")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = True
        payload = {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL_S, "scope": SCOPE}
        return json_reply(200, payload, _NO_STORE)

    def _client_ok(self, client_id: str, secret: str, form_encoded: bool) -> bool:
        """Basic credentials may be form-encoded (RFC 6749 §2.3.1) or raw."""
        candidates = [(client_id, secret)]
        if form_encoded:
            candidates.append((unquote_plus(client_id), unquote_plus(secret)))
        creds = self.credentials
        return any(
            hmac.compare_digest(cid.encode(), creds.client_id.encode())
            and hmac.compare_digest(sec.encode(), creds.client_secret.encode())
            for cid, sec in candidates
        )

    @staticmethod
    def _token_error(
        status: int, code: str, description: str | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        return error_reply(status, code, description, {**_NO_STORE, **(headers or {})})

    def _echo_token(self, form: dict[str, str], authorization: str) -> Reply:
        """A token endpoint that quotes the client credentials it received back in its error."""
        basic = _basic(authorization) if authorization else None
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        description = f"client {client_id} with secret {secret} may not use this grant"
        payload = {
            "error": "invalid_request",
            "error_description": description,
            "received": {"form": form, "authorization": authorization},
        }
        return json_reply(400, payload, _NO_STORE)

    # ---- API A: events

    def _events(self, request: Request) -> Reply:
        if (
            "revoke_token" in self.faults
            and not self.state.revoked
            and (self.state.pages_served[API_A] >= self.options["revoke_after_pages"])
        ):
            self.tokens = dict.fromkeys(self.tokens, False)
            self.state.revoked = True
        token = _bearer(request)
        if token is None or not self.tokens.get(token):
            return error_reply(401, "invalid_token", headers=_INVALID_TOKEN)
        gate = self._gate(API_A, request, request.query.get("cursor"))
        if gate is not None:
            return gate
        try:
            limit = _int_param(request.query, "limit", 100, 1, 500)
            since_us = _since_us(request.query.get("updated_since"))
            cursor = request.query.get("cursor")
            position = decode_cursor(cursor) if cursor else None
        except ValueError as exc:
            return error_reply(400, "invalid_request", str(exc))
        return self._event_page(since_us, position, cursor, self._cap(limit))

    def _event_page(
        self, since_us: int | None, position: Position | None, cursor: str | None, limit: int
    ) -> Reply:
        store, state = self.stores[API_A], self.state
        repeat = "same_records_again" in self.faults and position is not None
        if repeat:
            state.repeats += 1
            position = state.first_position or position
        if "has_more" in self.faults and position is not None and not state.has_more_done:
            state.has_more_done = True
            return self._a_body([], encode_cursor(position, nonce=1000))
        rows = [
            e
            for e in store.ordered()
            if (since_us is None or e.sort_ms * 1000 > since_us) and (position is None or e.order > position)
        ]
        page = self._tie(store, rows[:limit]) if position is not None else rows[:limit]
        next_cursor = encode_cursor(rows[limit - 1].order) if len(rows) > limit else None
        if repeat:  # a new cursor every time, always pointing back at the same records
            next_cursor = encode_cursor(position, nonce=state.repeats)
        next_cursor = self._loop_cursor(cursor, next_cursor, page)
        self._served(store, page)
        return self._a_body(page, next_cursor)

    def _loop_cursor(self, cursor: str | None, next_cursor: str | None, page: list[Entry]) -> str | None:
        """``cursor_loop``: after the second cursor comes the first again; ``same_records_again`` setup."""
        state = self.state
        if cursor is None and page and state.first_position is None:
            state.first_position = page[-1].order if next_cursor else None
        if "cursor_loop" not in self.faults:
            return next_cursor
        if next_cursor is not None and next_cursor not in state.cursors:
            state.cursors.append(next_cursor)
        if len(state.cursors) >= 2 and cursor == state.cursors[1]:
            return state.cursors[0]
        return next_cursor

    def _tie(self, store: RecordStore, page: list[Entry]) -> list[Entry]:
        """``equal_updated_at_versions``, once a run: the last record of the previous page gets new content
        with the same updated_at and is served again on this page: where it is, or else first."""
        state = self.state
        if "equal_updated_at_versions" not in self.faults or store.api in state.tie_done:
            return page
        target = store.entries.get(state.last_served.get(store.api, ""))
        if target is None or target.clean is None:
            return page
        state.tie_done.add(store.api)
        revised = store.revise(target.key, bump=False)
        if any(e.key == revised.key for e in page):
            return [revised if e.key == revised.key else e for e in page]
        return [revised, *page]

    def _served(self, store: RecordStore, page: list[Entry]) -> None:
        """Bookkeeping of a 200 page: served records, the page count, the last record served."""
        store.mark_served(page)
        self.state.pages_served[store.api] += 1
        if page:
            self.state.last_served[store.api] = page[-1].key

    @staticmethod
    def _a_body(page: list[Entry], next_cursor: str | None) -> Reply:
        body = (
            '{"data":[' + ",".join(e.body for e in page) + '],"next_cursor":' + json.dumps(next_cursor) + "}"
        )
        return Reply(200, body.encode(), {"Content-Type": "application/json"})

    # ---- API B: detections

    def _detections(self, request: Request) -> Reply:
        key = request.header("X-API-Key") or ""
        if not hmac.compare_digest(key.encode(), self.credentials.api_key.encode()):
            return error_reply(401, "unauthorized")
        gate = self._gate(API_B, request, request.query.get("offset", "0"))
        if gate is not None:
            return gate
        try:
            since = _int_param(request.query, "modified_since", None, -(2**63), None)
            offset = _int_param(request.query, "offset", 0, 0, None)
            limit = _int_param(request.query, "limit", 100, 1, 500)
        except ValueError as exc:
            return error_reply(400, "bad_request", str(exc))
        assert offset is not None and limit is not None
        if "redirect_other_host" in self.faults and offset > 0:
            location = f"{self.recorder.url}{request.path}?{request.raw_query}"
            return Reply(302, b"", {"Location": location})
        if "mutate_while_paging" in self.faults and offset > 0:
            self._mutate(since, offset)
        return self._detection_page(since, offset, self._cap(limit))

    def _detection_page(self, since: int | None, offset: int, limit: int) -> Reply:
        store, state = self.stores[API_B], self.state
        rows = [e for e in store.ordered() if since is None or e.sort_ms > since]
        start = 0 if "ignore_offset" in self.faults else offset
        items = rows[start : start + limit]
        if "empty_page_always" in self.faults and offset > 0:
            state.empty_always_offset = state.empty_always_offset or offset
            if offset == state.empty_always_offset:
                items = []
        if (
            "empty_page_before_total" in self.faults
            and 0 < offset < len(rows)
            and offset not in state.empty_served
        ):
            state.empty_served.add(offset)
            items = []
        if offset > 0 and items:
            items = self._tie(store, items)
        self._served(store, items)
        head = json.dumps({"total": len(rows), "offset": offset, "limit": limit}, separators=(",", ":"))
        body = head[:-1] + ',"items":[' + ",".join(e.body for e in items) + "]}"
        return Reply(200, body.encode(), {"Content-Type": "application/json"})

    def _mutate(self, since: int | None, offset: int) -> None:
        """``mutate_while_paging``: served records move to the end (new content); new ones arrive."""
        if self.state.mutate_rounds >= self.options["mutate_rounds"]:
            return
        self.state.mutate_rounds += 1
        store = self.stores[API_B]
        rows = [e for e in store.ordered() if since is None or e.sort_ms > since]
        served = [e for e in rows[:offset] if e.clean is not None and e.key in store.served_keys]
        for entry in store.rng.sample(served, min(self.options["mutate_updates"], len(served))):
            store.revise(entry.key, bump=True)
        for _ in range(self.options["mutate_inserts"]):
            store.add_record(store.tick())

    # ---- shared gates

    def _cap(self, limit: int | None) -> int:
        limit = limit or 100
        return min(limit, self.options["page_cap"]) if "short_pages" in self.faults else limit

    def _gate(self, api: str, request: Request, page_key: str | None) -> Reply | None:
        """Tripwire, one-off throttling, flaky 503s and credential echoes, before any page is served."""
        state = self.state
        state.page_requests[api] += 1
        if state.page_requests[api] > self.options["tripwire"]:
            return error_reply(400, "hostile_tripwire", f"more than {self.options['tripwire']} page requests")
        if "throttle_once" in self.faults and api not in state.throttled:
            state.throttled.add(api)
            return error_reply(429, "rate_limited", headers={"Retry-After": "1"})
        if "flaky_503" in self.faults:
            seen = state.flaky_seen[api]
            if page_key not in seen:
                seen.append(page_key)
                if len(seen) % 2 == 0:
                    return error_reply(503, "service_unavailable", headers={"Retry-After": "1"})
        if "echo_secret" in self.faults:
            return self._echo(api, request)
        return None

    def _echo(self, api: str, request: Request) -> Reply:
        """An error that quotes the credentials the request carried, in prose and as a header dump."""
        name = "Authorization" if api == API_A else "X-API-Key"
        value = request.header(name) or ""
        credential = value.partition(" ")[2] if api == API_A else value
        description = f"credential {credential} is not allowed here (sent as {name}: {value})"
        payload = {"error": "invalid_request", "error_description": description, "received": {name: value}}
        return json_reply(self.options["echo_status"], payload)


def _bearer(request: Request) -> str | None:
    scheme, _, token = (request.header("Authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
