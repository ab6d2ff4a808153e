"""A mock API generated from a source declaration (`api2snow.sources.<name>`), so a new source runs in the
demo and the tests without a hand-written server.

Everything the server does is read from the declaration:

- **route**: `request.path` with `request.method`; with OAuth2 client credentials also `auth.token_path`;
- **auth**: `api_key` (the `auth.header` header), `bearer` (`Authorization: Bearer`), `basic`, or
  `oauth2_client_credentials` (tokens from the token endpoint, expiring on the mock clock), checked against
  `Credentials`; anything else is a 401 with the scheme's challenge;
- **watermark**: `request.since_param`, read in `request.since_format` (ISO 8601 or epoch ms), strict `>`;
- **pages**: by `pagination.kind`: an opaque cursor in `cursor_field` (and `has_more_field`), offset/limit
  with `total_field`, numbered pages with `total_pages_field`, an RFC 8288 `Link: <url>; rel="next"` header
  (absent on the last page; its URLs pin the walk to the first page's moment, so records arriving
  meanwhile shift no page), or a single response; the page size parameter (`request.page_size_param`,
  `limit_param` for offsets) must be within 1..`max_page_size` (400 otherwise);
- **payload**: the records at the dotted `records_path`, the paging fields beside them;
- **rate limit**: `rate_limit_per_min` per credential, 429 with Retry-After (the shared `throttle`);
- **records**: one per slot of the shared creation grid (`events_per_hour`, `history_hours` before the
  anchor), a seeded share of them updated once later, each version with its own millisecond, exactly like
  the hand-written data set. Each field's wire value is drawn from its target type and constraints (ids
  unique, numbers inside min/max and the column type, choices respected, the version field the version's
  timestamp) and encoded for its wire type and path; when the field has a `convert`, the encoding is found
  by search (see `_ENCODERS`): the first candidate that the real reader (`read_field`) turns back into the
  drawn value, for every probe, wins; otherwise the first that always gives a valid value (noted in
  `lossy_fields`); otherwise the declaration is refused with `GenerationError`, naming the field.

Faults (errors, latency, malformed pages, invalid records, duplicates across pages) use the shared injector.
Ground truth (`DeclaredDataset.truth`) is the latest version of each id visible at a moment, in served order.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode

from api2snow.sources.declaration import Field, SourceDeclaration, read_field
from api2snow.transform import RecordSchema, to_utc_iso, validate

from .api_a import TokenStore
from .clock import as_utc, parse_iso
from .context import MockContext
from .dataset import (
    _EPOCH,
    _MS,
    _ZONES,
    CATEGORIES,
    EVENT_TYPES,
    _EventKey,
    _Schedule,
    _VersionIndex,
    floor_hour,
    from_ms,
    iso_z,
    to_ms,
)
from .faults import Faults
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
    parse_optional_int,
)

log = logging.getLogger(__name__)

_PROBES = 40  # draws each candidate encoding must survive before it is chosen
_OPTIONAL_ABSENT = 0.1  # share of records without a field that neither the wire nor the target requires
_DAY_MS = 86_400_000
_OPEN_BOUND = 1e12  # a bound this large is the column type's, not a domain: draw near the other bound
_SNAPSHOT_PARAM = "snapshot"  # in Link URLs: every page of one walk is cut from the same moment
_CATEGORY_WEIGHTS = (45, 30, 10, 10, 5)
_EVENT_TYPE_WEIGHTS = (60, 25, 10, 5)
# Free-text target fields whose values the rest of the pipeline knows (DQ accepted values, the camera join).
_VOCABULARY: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "category": (CATEGORIES, _CATEGORY_WEIGHTS),
    "event_type": (EVENT_TYPES, _EVENT_TYPE_WEIGHTS),
}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class GenerationError(ValueError):
    """A declaration this generator cannot serve (custom pagination, a convert it cannot invert, ...)."""


# ---- encodings: a target value -> a wire value ---------------------------------------------------------
@dataclass(frozen=True)
class _Encoder:
    name: str
    wire_types: frozenset[str]  # the declared wire types it produces a value of ("any" takes all)
    encode: Callable[[Any], Any]
    identity: bool = False  # the natural encoding: tried first without a convert, last with one


def _enc(name: str, wire_types: str, encode: Callable[[Any], Any], identity: bool = False) -> _Encoder:
    return _Encoder(name, frozenset(wire_types.split()), encode, identity)


def _percent(value: float) -> int | float:
    scaled = round(value * 100, 6)
    return int(scaled) if scaled == int(scaled) else scaled


# Candidates per target kind. Timestamps are drawn as epoch milliseconds.
_ENCODERS: dict[str, tuple[_Encoder, ...]] = {
    "str": (
        _enc("as is", "str any", lambda v: v, identity=True),
        _enc("upper case", "str any", str.upper),
        _enc("capitalised", "str any", str.capitalize),
    ),
    "float": (
        _enc("as is", "number any", lambda v: v, identity=True),
        _enc("percent", "int number any", _percent),
        _enc("decimal text", "str any", repr),
    ),
    "int": (
        _enc("as is", "int number any", lambda v: v, identity=True),
        _enc("thousandths (seconds of ms)", "number any", lambda v: v / 1000),
        _enc("decimal text", "str any", str),
    ),
    "bool": (
        _enc("as is", "bool any", lambda v: v, identity=True),
        _enc("xsd text", "str any", lambda v: "true" if v else "false"),
        _enc("0/1", "int number any", int),
    ),
    "timestamp": (
        _enc("ISO 8601 Z", "str any", iso_z, identity=True),
        _enc("epoch ms", "int number any", lambda ms: ms, identity=True),
        _enc("epoch s", "number any", lambda ms: ms / 1000),
    ),
    "object": (_enc("as is", "object any", lambda v: v, identity=True),),
}
_DEFAULT_WIRE = {"str": "str", "int": "int", "float": "number", "bool": "bool", "object": "object"}


def _wire_type(spec: Field) -> str:
    return spec.wire_type or _DEFAULT_WIRE.get(spec.kind, "any")


def _json_round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _put(holder: dict[str, Any], path: str, value: Any, what: str = "field") -> None:
    *parents, key = path.split(".")
    for step in parents:
        child = holder.setdefault(step, {})
        if not isinstance(child, dict):
            raise GenerationError(f"{what} {path!r}: {step!r} is both a value and an object on the wire")
        holder = child
    holder.setdefault(key, value)


def _drop(holder: dict[str, Any], path: str) -> None:
    *parents, key = path.split(".")
    for step in parents:
        holder = holder.get(step)  # type: ignore[assignment]
        if not isinstance(holder, dict):
            return
    holder.pop(key, None)


def _span(spec: Field, default_low: float, width: float) -> tuple[float, float]:
    """The range to draw a number from: the declared bounds within the column type's, an open side
    closed at `width` from the other."""
    low, high = spec.spec().bounds
    low_open, high_open = abs(low) >= _OPEN_BOUND, abs(high) >= _OPEN_BOUND
    if low_open and high_open:
        low, high = default_low, default_low + width
    elif high_open:
        high = low + width
    elif low_open:
        low = high - width
    return low, high


@dataclass(frozen=True)
class _Plan:
    """How one declared field is generated: its role, how to draw its target value, how to encode it."""

    spec: Field
    role: str  # "id", "version", "timestamp", "value"
    encoder: _Encoder
    mutable: bool  # drawn anew for the update of a record
    optional: bool  # may be absent from the wire

    @property
    def path(self) -> str:
        assert self.spec.wire is not None
        return self.spec.wire


class _FieldGenerator:
    """Target values of one field, from an RNG, valid against the field's target constraints."""

    def __init__(self, source: str, spec: Field, cameras: int) -> None:
        self.spec = spec
        self.cameras = cameras
        if spec.kind not in ("str", "float", "int", "bool", "object"):
            raise GenerationError(
                f"source {source}: field {spec.name!r}: no generator for kind {spec.kind!r}"
            )
        if spec.kind in ("float", "int"):
            self.low, self.high = _span(spec, 0.0, 1000.0 if spec.kind == "float" else 30_000.0)
            if spec.kind == "int":
                self.low, self.high = math.ceil(self.low), math.floor(self.high)
            if self.low > self.high:
                raise GenerationError(
                    f"source {source}: field {spec.name!r}: no value within {self.low}..{self.high}"
                )

    def draw(self, rng: random.Random) -> Any:
        spec = self.spec
        if spec.kind == "str":
            if spec.choices:
                return rng.choice(sorted(spec.choices))
            if spec.name in _VOCABULARY:
                values, weights = _VOCABULARY[spec.name]
                return rng.choices(values, weights)[0]
            if spec.name == "camera_id":  # the camera directory's ids, so events join their cameras
                return f"cam-{rng.randrange(self.cameras) + 1:03d}"
            return f"{spec.name.removesuffix('_id').replace('_', '-')}-{rng.randrange(1, 1000):03d}"
        if spec.kind == "float":
            return min(max(round(rng.uniform(self.low, self.high), 2), self.low), self.high)
        if spec.kind == "int":
            return rng.randint(int(self.low), int(self.high))
        if spec.kind == "bool":
            return rng.random() < 0.8
        return {"zone": rng.choice(_ZONES)}  # object


def _reads_back(spec: Field, wire: Any, expected: Any) -> tuple[bool, bool]:
    """(valid, exact): whether the real reader turns `wire` into a valid target value, and into `expected`."""
    record: dict[str, Any] = {}
    _put(record, spec.wire or "", _json_round_trip(wire))
    try:
        value = read_field(record, spec)
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError):
        return False, False
    if validate({spec.name: value}, RecordSchema("probe", (spec.spec(),))) is not None:
        return False, False
    if spec.kind == "timestamp":
        return True, value == to_utc_iso(iso_z(expected))
    if spec.kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return True, math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12)
    return True, value == expected and type(value) is type(expected)


# ---- the data set of one declared source ---------------------------------------------------------------
class DeclaredDataset:
    """Deterministic records of one declared source as a function of time, and their ground truth.

    Record `i` is created at `start + i * interval` (`events_per_hour` a source), and a seeded share
    (`update_rate`) is updated once 5..90 minutes later, at a millisecond no other version of the source
    has (the hand-written data set's schedule). Every value derives from `(seed, source, i)`, so any record
    is rebuilt in O(1); only the sorted version index is kept.
    """

    def __init__(
        self,
        declaration: SourceDeclaration,
        seed: int = 42,
        anchor: datetime | None = None,
        history_hours: float = 24,
        events_per_hour: int = 120,
        update_rate: float = 0.2,
        cameras: int = 24,
        faults: Mapping[str, Faults] | None = None,
    ) -> None:
        if not 0.0 <= update_rate <= 1.0:
            raise ValueError("update_rate must be within 0..1")
        if cameras < 1:
            raise ValueError("cameras must be >= 1")
        self.declaration = declaration
        self.name = declaration.name
        self.seed = seed
        self.anchor = as_utc(anchor) if anchor is not None else floor_hour(datetime.now(UTC))
        self.update_rate = update_rate
        self.faults: Mapping[str, Faults] = faults if faults is not None else {}
        self.start_ms = to_ms(self.anchor) - round(history_hours * 3_600_000)
        self._schedule = _Schedule(self.start_ms, events_per_hour)
        self._index = _VersionIndex()
        self.lossy_fields: dict[str, str] = {}  # field -> the encoding used, which does not read back exactly
        self._id_prefix = declaration.name.removeprefix("api_").replace("_", "-")
        self._generators: dict[str, _FieldGenerator] = {}
        self._plans = self._plan(declaration, cameras)
        self._victim = next(
            (p for p in self._plans if p.spec.required and p.role in ("value", "timestamp")), None
        )

    # ---- planning (once, at construction) ----------------------------------------------------------
    def _plan(self, d: SourceDeclaration, cameras: int) -> tuple[_Plan, ...]:
        plans = []
        for spec in d.fields:
            if spec.wire is None:
                continue  # set by the source's normalize hook: nothing on the wire to generate
            role = (
                "id"
                if spec.wire == d.id_field
                else "version"
                if spec.wire == d.version_field
                else "timestamp"
                if spec.kind == "timestamp"
                else "value"
            )
            if role == "value":
                self._generators[spec.name] = _FieldGenerator(self.name, spec, cameras)
            encoder = self._id_encoder(spec) if role == "id" else self._choose_encoder(spec, role)
            free_text = spec.kind == "str" and not spec.choices and spec.name not in _VOCABULARY
            plans.append(
                _Plan(
                    spec=spec,
                    role=role,
                    encoder=encoder,
                    mutable=role == "value" and not free_text,
                    optional=not spec.required and not spec.wire_must_exist,
                )
            )
        shape: dict[str, Any] = {}  # every wire path at once: one must not be the parent of another
        for path in [p.path for p in plans] + [d.id_field, d.version_field]:
            _put(shape, path, 0)
        return tuple(plans)

    def _id_encoder(self, spec: Field) -> _Encoder:
        """Ids are the record's number on an int wire, `<source>-<number>` on a text one; their converted
        values must be valid and distinct."""
        wire_type = _wire_type(spec)
        if wire_type in ("int", "number"):
            encoder = _enc("record number", wire_type, lambda i: i + 1)
        else:
            prefix = self._id_prefix
            encoder = _enc("prefixed number", wire_type, lambda i: f"{prefix}-{i + 1:08d}")
        seen = set()
        for index in range(_PROBES * 5):
            wire = encoder.encode(index)
            valid, _ = _reads_back(spec, wire, None)
            if not valid:
                raise GenerationError(
                    f"source {self.name}: id field {spec.name!r} (wire {spec.wire!r}, {wire_type}) does not "
                    f"read back as a valid value from {wire!r}"
                )
            record: dict[str, Any] = {}
            _put(record, spec.wire or "", wire)
            seen.add(read_field(record, spec))
        if len(seen) != _PROBES * 5:
            raise GenerationError(f"source {self.name}: id field {spec.name!r}'s convert is not one to one")
        return encoder

    def _choose_encoder(self, spec: Field, role: str) -> _Encoder:
        wire_type = _wire_type(spec)
        kind = "timestamp" if role in ("version", "timestamp") else spec.kind
        if role == "version" and spec.kind == "int":
            kind = "int"  # a numeric version: the version's epoch milliseconds
        candidates = [e for e in _ENCODERS.get(kind, ()) if wire_type == "any" or wire_type in e.wire_types]
        if spec.convert is not None and kind == "str":  # exercise a convert like str.lower: wire text differs
            candidates.sort(key=lambda e: e.identity)
        rng = random.Random(f"probe:{self.name}:{spec.name}")
        if role == "value":
            draws = [self._generators[spec.name].draw(rng) for _ in range(_PROBES)]
        else:  # timestamps, and a numeric version: epoch milliseconds
            draws = [self.start_ms + rng.randrange(_DAY_MS) for _ in range(_PROBES)]
        fallback = None
        for encoder in candidates:
            results = [_reads_back(spec, encoder.encode(v), v) for v in draws]
            if all(exact for _, exact in results):
                return encoder
            if fallback is None and all(valid for valid, _ in results):
                fallback = encoder
        if fallback is not None:
            self.lossy_fields[spec.name] = fallback.name
            log.warning(
                "mock %s: field %s reads back valid but not as drawn (%s encoding)",
                self.name,
                spec.name,
                fallback.name,
            )
            return fallback
        convert = f", convert {getattr(spec.convert, '__name__', repr(spec.convert))}" if spec.convert else ""
        raise GenerationError(
            f"source {self.name}: cannot generate wire values for field {spec.name!r} (wire {spec.wire!r}, "
            f"wire type {wire_type}{convert}): no encoding of a {kind} reads back as a valid value; "
            f"give the source a hand-written mock"
        )

    # ---- records -----------------------------------------------------------------------------------
    def _extended(self, as_of_ms: int) -> _VersionIndex:
        index = self._index
        n = self._schedule.count_until(as_of_ms)
        if index.size < n:
            with index.lock:
                for i in range(index.size, n):
                    index.add(self._key(i))
        return index

    def _key(self, i: int) -> _EventKey:
        rng = random.Random(f"{self.seed}:{self.name}:{i}")
        has_update = rng.random() < self.update_rate
        update_draw = rng.randrange(self._schedule.choices)
        invalid_draw = rng.random()
        update_ms = self._schedule.update_ms(i, update_draw) if has_update else None
        return _EventKey(self._schedule.created_ms(i), update_ms, invalid_draw, "missing_field")

    def invalid_rate(self) -> float:
        faults = self.faults.get(self.name)
        return faults.invalid_record_rate if faults is not None and self._victim is not None else 0.0

    def render(self, index: int, updated_ms: int) -> dict[str, Any]:
        """Record `index` in wire shape, its version of `updated_ms` (broken if it is an invalid record)."""
        key = self._key(index)
        is_update = updated_ms != key.created_ms
        base = random.Random(f"{self.seed}:{self.name}:{index}:base")
        update = random.Random(f"{self.seed}:{self.name}:{index}:update")
        record: dict[str, Any] = {}
        for plan in self._plans:
            if plan.role == "id":
                wire = plan.encoder.encode(index)
            elif plan.role == "version":
                wire = plan.encoder.encode(updated_ms)
            elif plan.role == "timestamp":  # an event time: just before creation, the same in every version
                wire = plan.encoder.encode(key.created_ms - base.randint(0, 5_000))
            else:
                generator = self._generators[plan.spec.name]
                value = generator.draw(base)
                absent = plan.optional and base.random() < _OPTIONAL_ABSENT
                if absent:
                    continue
                if is_update and plan.mutable:
                    value = generator.draw(update)
                wire = plan.encoder.encode(value)
            _put(record, plan.path, wire)
        d = self.declaration
        _put(record, d.id_field, f"{self._id_prefix}-{index + 1:08d}", "id field")  # when no field maps them
        _put(record, d.version_field, iso_z(updated_ms), "version field")
        if self._victim is not None and key.invalid_draw < self.invalid_rate():
            _drop(record, self._victim.path)
        return record

    def wire_id(self, index: int) -> str:
        """The record's id as the wire carries it, as text (the ground truth's key)."""
        record: dict[str, Any] = {}
        plan = next((p for p in self._plans if p.role == "id"), None)
        if plan is None:
            return f"{self._id_prefix}-{index + 1:08d}"
        _put(record, plan.path, plan.encoder.encode(index))
        value: Any = record
        for step in plan.path.split("."):
            value = value[step]
        return str(value)

    # ---- serving and ground truth ------------------------------------------------------------------
    def scan(
        self, as_of: datetime, after_ms: int | None = None, limit: int | None = None
    ) -> list[tuple[int, int, bool]]:
        """`(updated_ms, index, is_update)` of the latest visible versions with `updated_ms > after_ms`,
        oldest first."""
        as_of_ms = to_ms(as_of)
        index = self._extended(as_of_ms)
        with index.lock:
            return index.scan(after_ms if after_ms is not None else -(1 << 62), as_of_ms, limit)

    def visible(self, as_of: datetime, updated_since: datetime | None = None) -> list[dict[str, Any]]:
        """The records served at `as_of` (latest version each), in served order, in wire shape."""
        return [self.render(i, updated) for updated, i, _ in self.scan(as_of, _after_ms(updated_since))]

    def truth(self, as_of: datetime, updated_since: datetime | None = None) -> dict[str, datetime]:
        """`{wire id as text: updated_at}` of every record visible at `as_of`, in served order."""
        return {
            self.wire_id(i): from_ms(updated) for updated, i, _ in self.scan(as_of, _after_ms(updated_since))
        }

    def clean_truth(self, as_of: datetime) -> dict[str, datetime]:
        """`{normalised key: naive UTC updated_at}`: what CLEAN holds once everything visible is loaded
        (invalid records excluded)."""
        d = self.declaration
        key_field = d.key_field
        invalid = set(self.invalid_ids(as_of))
        out: dict[str, datetime] = {}
        for updated, i, _ in self.scan(as_of):
            if self.wire_id(i) in invalid:
                continue
            key = read_field(self.render(i, updated), key_field)
            out[str(key)] = from_ms(updated).replace(tzinfo=None)
        return out

    def invalid_ids(self, as_of: datetime) -> list[str]:
        """Wire ids of the records visible at `as_of` that are served broken (empty when the rate is 0)."""
        rate = self.invalid_rate()
        if rate <= 0.0:
            return []
        index = self._extended(to_ms(as_of))
        with index.lock:
            n = self._schedule.count_until(to_ms(as_of))
            return [self.wire_id(i) for i in range(n) if index.invalid_draws[i] < rate]


def _after_ms(since: datetime | None) -> int | None:
    return None if since is None else (as_utc(since) - _EPOCH) // _MS


# ---- the server ----------------------------------------------------------------------------------------
def check_servable(d: SourceDeclaration) -> None:
    """Refuse, naming the source, a declaration whose protocol the generated mock cannot serve."""
    p = d.pagination
    if p.kind == "custom":
        raise GenerationError(f"source {d.name}: custom pagination needs a hand-written mock")
    if d.records_path is None and (
        p.kind in ("cursor", "offset") or (p.kind == "page_number" and p.total_pages_field)
    ):
        raise GenerationError(f"source {d.name}: {p.kind} paging fields need a records_path beside them")
    if d.auth.kind not in ("api_key", "bearer", "basic", "oauth2_client_credentials", "none"):
        raise GenerationError(f"source {d.name}: auth kind {d.auth.kind!r} is not generated")
    if d.max_page_size < 1 or not 1 <= d.page_size <= d.max_page_size:
        raise GenerationError(f"source {d.name}: page_size must be within 1..max_page_size")


@dataclass
class _Page:
    rows: list[tuple[int, int, bool]]
    meta: dict[str, Any] = field(default_factory=dict)  # dotted path -> value, beside the records
    headers: dict[str, str] = field(default_factory=dict)
    previous: tuple[int, int] | None = None  # (updated_ms, index) of the record before this page


class DeclaredMockApi(MockApp):
    """The mock API of one declaration; its data is `ctx.declared[declaration.name]`."""

    def __init__(self, ctx: MockContext, declaration: SourceDeclaration) -> None:
        check_servable(declaration)
        super().__init__(ctx)
        self.name = declaration.name
        self.declaration = declaration
        self.data: DeclaredDataset = ctx.declared[declaration.name]
        self.tokens = TokenStore(ctx.clock)

    def route(self, request: Request) -> Response:
        d = self.declaration
        if d.auth.kind == "oauth2_client_credentials" and request.path == d.auth.token_path:
            return self.token(request) if request.method == "POST" else method_not_allowed("POST")
        if request.path == d.request.path:
            method = d.request.method.upper()
            return self.records(request) if request.method == method else method_not_allowed(method)
        return not_found()

    # ---- auth --------------------------------------------------------------------------------------
    def _client(self, request: Request) -> str | None:
        """Who is asking (the rate limit's key), or None when the declared credentials are not there."""
        spec, creds = self.declaration.auth, self.ctx.credentials
        if spec.kind == "none":
            return "anonymous"
        if spec.kind == "api_key":
            key = request.header(spec.header) or ""
            return f"key:{key}" if _equal(key, creds.api_key) else None
        if spec.kind == "basic":
            basic = basic_credentials(request.header("Authorization") or "")
            if basic is None:
                return None
            ok = _equal(basic[0], creds.soap_user) & _equal(basic[1], creds.soap_password)
            return f"user:{basic[0]}" if ok else None
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if spec.kind == "bearer":
            return "bearer" if _equal(token, creds.bearer_token) else None
        return self.tokens.client_of(token)

    def _unauthorized(self) -> Response:
        kind = self.declaration.auth.kind
        if kind == "basic":
            return error_response(401, "unauthorized", headers={"WWW-Authenticate": 'Basic realm="api2snow"'})
        if kind in ("bearer", "oauth2_client_credentials"):
            return error_response(401, "invalid_token", headers=_INVALID_TOKEN)
        return error_response(401, "unauthorized")

    def token(self, request: Request) -> Response:
        """OAuth2 client credentials grant (client_secret_basic or client_secret_post), scope as declared."""
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _token_error(400, "invalid_request", "body must be application/x-www-form-urlencoded")
        try:
            fields = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
            form = {k: v[0] for k, v in fields.items()}
        except UnicodeDecodeError:
            return _token_error(400, "invalid_request", "body is not UTF-8")
        basic = basic_credentials(request.header("Authorization") or "")
        if basic is not None:
            client_id, secret = unquote_plus(basic[0]), unquote_plus(basic[1])
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        creds = self.ctx.credentials
        if not (_equal(client_id, creds.client_id) & _equal(secret, creds.client_secret)):
            return _token_error(401, "invalid_client")
        if form.get("grant_type") != "client_credentials":
            return _token_error(400, "unsupported_grant_type")
        allowed = set(self.declaration.auth.scope.split())
        if set((form.get("scope") or "").split()) - allowed:
            return _token_error(400, "invalid_scope", f"only {' '.join(sorted(allowed))!r} is available")
        ttl = self.faults.token_ttl_s
        payload = {
            "access_token": self.tokens.issue(client_id, ttl),
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": self.declaration.auth.scope,
        }
        return json_response(200, payload, headers=_NO_STORE)

    # ---- records -----------------------------------------------------------------------------------
    def records(self, request: Request) -> Response:
        client = self._client(request)
        if client is None:
            return self._unauthorized()
        refused = self.admit(client)
        if refused is not None:
            return refused
        try:
            page = self._page(request)
        except ValueError as exc:
            return error_response(400, "invalid_request", str(exc))
        data = self.data
        records = [data.render(index, updated) for updated, index, _ in page.rows]
        fault = None
        if page.previous is not None and self.injector.duplicate():
            records.insert(0, data.render(page.previous[1], page.previous[0]))
            fault = "duplicate"
        payload: Any
        if self.declaration.records_path is None:
            payload = records
        else:
            payload = {}
            _put(payload, self.declaration.records_path, records)
            for path, value in page.meta.items():
                _put(payload, path, value)
        headers = {"Content-Type": "application/json", **page.headers}
        response = Response(200, json_bytes(payload), headers, records=len(records), fault=fault)
        return self.finish_page(response)

    def _page(self, request: Request) -> _Page:
        d, q = self.declaration, request.query
        after_ms = self._since(q)
        kind = d.pagination.kind
        if kind == "cursor":
            return self._cursor_page(q, after_ms)
        if kind == "offset":
            return self._offset_page(q, after_ms)
        if kind in ("page_number", "link_header"):
            return self._numbered_page(request, after_ms)
        return _Page(self.data.scan(self.ctx.clock.now(), after_ms))  # single

    def _since(self, q: dict[str, str]) -> int | None:
        spec = self.declaration.request
        if not spec.since_param or not q.get(spec.since_param):
            return None
        if spec.since_format == "epoch_ms":
            return parse_optional_int(q, spec.since_param)
        return to_ms(parse_iso(q[spec.since_param]))

    def _size(self, q: dict[str, str], param: str | None) -> int:
        d = self.declaration
        if param is None:
            return d.page_size
        return parse_int(q, param, d.page_size, 1, d.max_page_size)

    def _cursor_page(self, q: dict[str, str], after_ms: int | None) -> _Page:
        p = self.declaration.pagination
        size = self._size(q, self.declaration.request.page_size_param)
        cursor = q.get(p.cursor_param)
        position = self._decode_cursor(cursor) if cursor else None
        if position is not None:
            after_ms = position if after_ms is None else max(after_ms, position)
        rows = self.data.scan(self.ctx.clock.now(), after_ms, size + 1)
        page = rows[:size]
        more = len(rows) > size
        meta: dict[str, Any] = {p.cursor_field: self._encode_cursor(page[-1][0]) if more else None}
        if p.has_more_field:
            meta[p.has_more_field] = more
        previous = None
        if position is not None:
            before = self.data.scan(self.ctx.clock.now(), position - 1, 1)
            if before and before[0][0] == position:
                previous = (before[0][0], before[0][1])
        return _Page(page, meta, previous=previous)

    def _offset_page(self, q: dict[str, str], after_ms: int | None) -> _Page:
        p = self.declaration.pagination
        offset = parse_int(q, p.offset_param, 0, 0, None)
        size = self._size(q, p.limit_param)
        rows = self.data.scan(self.ctx.clock.now(), after_ms)
        previous = rows[offset - 1][:2] if 0 < offset <= len(rows) else None
        return _Page(rows[offset : offset + size], {p.total_field: len(rows)}, previous=previous)

    def _numbered_page(self, request: Request, after_ms: int | None) -> _Page:
        d, q = self.declaration, request.query
        p = d.pagination
        number = parse_int(q, p.page_param, 1, 1, None)
        size = self._size(q, d.request.page_size_param)
        now_ms = to_ms(self.ctx.clock.now())
        link = p.kind == "link_header"
        as_of_ms = now_ms
        if link and q.get(_SNAPSHOT_PARAM):
            as_of_ms = parse_int(q, _SNAPSHOT_PARAM, now_ms)
            if as_of_ms > now_ms:
                raise ValueError(f"{_SNAPSHOT_PARAM} is in the future")
        rows = self.data.scan(from_ms(as_of_ms), after_ms)
        pages = math.ceil(len(rows) / size)
        start = (number - 1) * size
        previous = rows[start - 1][:2] if 0 < start <= len(rows) else None
        page = _Page(rows[start : start + size], previous=previous)
        if p.kind == "page_number" and p.total_pages_field:
            page.meta[p.total_pages_field] = pages
        if link:
            page.headers = self._links(request, number, pages, as_of_ms)
        return page

    def _links(self, request: Request, number: int, pages: int, as_of_ms: int) -> dict[str, str]:
        """RFC 8288 links to the next and last pages (none past the last) and the first and previous;
        each URL is absolute, on the origin the request came to, and pins the walk's snapshot."""
        if pages <= 1 and number <= 1:
            return {}
        host = request.header("Host") or "127.0.0.1"
        base = {**request.query, _SNAPSHOT_PARAM: str(as_of_ms)}
        param = self.declaration.pagination.page_param

        def url(page: int) -> str:
            return f"http://{host}{request.path}?{urlencode({**base, param: str(page)})}"

        links = []
        if number < pages:
            links += [f'<{url(number + 1)}>; rel="next"', f'<{url(pages)}>; rel="last"']
        if number > 1:
            links += [f'<{url(1)}>; rel="first"', f'<{url(min(number - 1, max(pages, 1)))}>; rel="prev"']
        return {"Link": ", ".join(links)} if links else {}

    def _encode_cursor(self, updated_ms: int) -> str:
        raw = json.dumps({"s": self.name, "u": updated_ms}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _decode_cursor(self, cursor: str) -> int:
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            source, updated_ms = data["s"], data["u"]
        except (binascii.Error, ValueError, TypeError, KeyError):
            raise ValueError("invalid cursor") from None
        if source != self.name or type(updated_ms) is not int:
            raise ValueError("invalid cursor")
        return updated_ms


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _token_error(status: int, error: str, description: str | None = None) -> Response:
    headers = dict(_NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="api2snow"'
    return error_response(status, error, description, headers)
