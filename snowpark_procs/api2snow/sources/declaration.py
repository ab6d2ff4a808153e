"""A source declared in one place: what varies between APIs, as data, plus small typed override hooks.

A declaration names the auth kind and its secret, the request (path, parameters, how the watermark is
sent), the pagination kind, where the records are in a response, the id and version fields, each target
field with its wire path, type and constraints, the rate limit, the largest page the API allows, and
whether the source is incremental. `DeclaredSource` turns it into the `Source` hooks the ingest runs;
what a declaration cannot say (a SOAP envelope, an unusual mapping) is a method override on a subclass,
in the Singer SDK's spirit. The deploy tooling derives every Snowflake object of a source (tables, pipe,
views, tasks, grants, network rule, secret, integration, procedure) from the same declaration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, partial
from itertools import repeat
from typing import Any, ClassVar, Literal, get_args

import requests

from .. import wire
from ..declaration_error import DeclarationError
from ..http.auth import ApiKeyAuth, Auth, BearerTokenAuth, HttpBasicAuth, OAuth2ClientCredentials
from ..http.paginate import (
    CursorPaginator,
    LinkHeaderPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    Paginator,
    SinglePage,
)
from ..platform import Platform
from ..settings import ConfigError, Settings
from ..transform import FieldKind, FieldSpec, RecordSchema, sql_type_bounds, to_utc_iso
from ..wire import json_body
from .base import Source
from .fast_normalize import compile_fast_normalize

AuthKind = Literal["oauth2_client_credentials", "api_key", "bearer", "basic", "none"]
PaginationKind = Literal["cursor", "offset", "page_number", "link_header", "single", "custom"]
SinceFormat = Literal["iso_z", "epoch_ms"]
WireType = Literal["str", "int", "number", "bool", "object", "any"]
ENTITIES = ("events", "cameras")  # the record models CLEAN and ANALYTICS know; each has its staging view
_EPOCH = datetime(1970, 1, 1)  # watermarks are naive UTC


@dataclass(frozen=True)
class AuthSpec:
    """How requests authenticate, and the secret (its key in the procedure's SECRETS clause) they read.

    - oauth2_client_credentials: an OAUTH2 secret Snowflake refreshes (or, with `<name>_auth` =
      client_credentials, a PASSWORD secret holding the client id and secret, exchanged at `token_path`);
    - api_key: a GENERIC_STRING secret sent in `header`;
    - bearer: a GENERIC_STRING secret sent as `Authorization: Bearer`;
    - basic: a PASSWORD secret sent as HTTP Basic.
    """

    kind: AuthKind
    secret: str = ""
    header: str = "X-API-Key"
    token_path: str = "/oauth/token"
    scope: str = ""

    @property
    def secret_type(self) -> str:
        """The Snowflake SECRET TYPE this auth reads."""
        return {
            "oauth2_client_credentials": "OAUTH2",
            "api_key": "GENERIC_STRING",
            "bearer": "GENERIC_STRING",
            "basic": "PASSWORD",
        }.get(self.kind, "")


@dataclass(frozen=True)
class RequestSpec:
    """The first page's request; the watermark goes in `since_param` (formatted by `since_format`) and
    the page size in `page_size_param` when the API takes one there."""

    path: str
    method: str = "GET"
    params: Mapping[str, Any] = field(default_factory=dict)
    since_param: str | None = None
    since_format: SinceFormat = "iso_z"
    page_size_param: str | None = None


@dataclass(frozen=True)
class PaginationSpec:
    """How to walk the pages. Fields that a kind does not use are ignored.

    - cursor: `cursor_param` <- the payload's `cursor_field` (`has_more_field` optional);
    - offset: `offset_param`/`limit_param` with the payload's `total_field`, overlapping pages;
    - page_number: `page_param` with the payload's `total_pages_field` (optional);
    - link_header: the `Link: <...>; rel="next"` URL, until there is none;
    - single: one response holds everything; custom: the source overrides `paginator()`.
    """

    kind: PaginationKind
    cursor_param: str = "cursor"
    cursor_field: str = "next_cursor"
    has_more_field: str | None = None
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_field: str = "total"
    page_param: str = "page"
    total_pages_field: str | None = None


@dataclass(frozen=True)
class Field:
    """One target field: its CLEAN type and constraints, and where it comes from on the wire.

    `wire` is a dotted path into the raw record (None: the `normalize` hook sets it); `wire_type` is the
    JSON type the API's contract gives it (read strictly: no coercion); `convert` maps the wire value to
    the target value (a timestamp field converts ISO text or epoch numbers to naive UTC by itself).
    """

    name: str
    kind: FieldKind
    wire: str | None = None
    wire_type: WireType | None = None
    required: bool = True
    min_value: float | None = None
    max_value: float | None = None
    choices: frozenset[str] | None = None
    sql_type: str = ""
    convert: Callable[[Any], Any] | None = None
    wire_required: bool | None = None  # whether the wire must carry it; default: `required`

    @property
    def wire_must_exist(self) -> bool:
        return self.required if self.wire_required is None else self.wire_required

    @cached_property
    def wire_steps(self) -> tuple[tuple[str, ...], str]:
        """The wire path as (parent objects, key), split once: `read_field` runs for every record."""
        *parents, key = (self.wire or "").split(".")
        return tuple(parents), key

    @cached_property
    def wire_reader(self) -> Callable[[Mapping[str, Any], str], Any]:
        """wire.py's strict reader for the field's wire type."""
        return _REQUIRED_READERS[self.wire_type or _DEFAULT_WIRE.get(self.kind, "any")]

    def spec(self) -> FieldSpec:
        return FieldSpec(
            self.name, self.kind, self.required, self.min_value, self.max_value, self.choices, self.sql_type
        )


@dataclass(frozen=True)
class SourceDeclaration:
    """Everything that varies between two APIs, in one value (see the module docstring)."""

    name: str
    title: str
    entity: str
    auth: AuthSpec
    request: RequestSpec
    pagination: PaginationSpec
    records_path: str | None
    id_field: str  # the wire record's id and version fields (paging and dedupe read them)
    version_field: str
    fields: tuple[Field, ...]
    rate_limit_per_min: int
    page_size: int
    max_page_size: int
    incremental: bool = True
    tag_source: bool = True  # records carry a `source` field naming this source (the event model does)
    raw_table: str = ""  # names default from the source and its entity; A, B and C keep their own
    clean_table: str = ""
    host_example: str = ""  # the base URL snowflake.yml's env starts with

    # ---- derived names: the one place they are spelled --------------------------------------------
    @property
    def upper(self) -> str:
        return self.name.upper()

    @property
    def raw(self) -> str:
        return self.raw_table or f"RAW.{self.upper}_{self.entity.upper()}"

    @property
    def pipe(self) -> str:
        return f"{self.raw}_PIPE"

    @property
    def clean(self) -> str:
        return self.clean_table or f"CLEAN.CLN_{self.upper}_{self.entity.upper()}"

    @property
    def staging_view(self) -> str:
        return f"CLEAN.STG_{self.entity.upper()}"

    @property
    def key_field(self) -> Field:
        return self.fields[0]

    @property
    def base_url_setting(self) -> str:
        return f"{self.name}_base_url"

    def schema(self) -> RecordSchema:
        """The validation schema: the key field, the `source` field (this source's name only, when records
        carry it), then the other declared fields."""
        specs = [f.spec() for f in self.fields]
        if not self.tag_source:
            return RecordSchema(self.entity, tuple(specs))
        source = FieldSpec("source", "str", choices=frozenset({self.name}))
        return RecordSchema(self.entity, (specs[0], source, *specs[1:]))


# ---- reading the wire --------------------------------------------------------------------------------
def wire_value(raw: Any, path: str) -> Any:
    """The value at a dotted path; None when a step is absent or not an object."""
    value: Any = raw
    for step in path.split("."):
        if type(value) is not dict and not isinstance(value, Mapping):  # dict first: it runs per record
            return None
        value = value.get(step)
    return value


_REQUIRED_READERS: dict[str, Callable[[Mapping[str, Any], str], Any]] = {
    "str": wire.require_str,
    "int": wire.require_int,
    "number": wire.require_number,
    "object": wire.require_object,
    "bool": wire.require_bool,
    "any": wire.require_any,
}
_DEFAULT_WIRE = {"str": "str", "int": "int", "float": "number", "bool": "bool", "object": "object"}


def read_field(raw: Mapping[str, Any], spec: Field) -> Any:
    """One target value from a raw record, read strictly by its wire type (wire.py's readers and messages),
    then converted. A value the wire may omit is None when absent or null, and validation judges it."""
    assert spec.wire is not None
    parents, key = spec.wire_steps
    holder: Any = raw
    for step in parents:
        holder = (
            wire.require_object(holder, step) if spec.wire_must_exist else wire.optional_object(holder, step)
        )
        if holder is None:
            return None
    if not spec.wire_must_exist and wire.optional_any(holder, key) is None:
        return None
    value = spec.wire_reader(holder, key)
    if spec.convert is not None:
        return spec.convert(value)
    return to_utc_iso(value) if spec.kind == "timestamp" else value


def records_at(payload: Any, path: str | None, title: str) -> list[Any]:
    """The record list at a dotted path of the payload (None: the payload is the list)."""
    records = payload if path is None else wire_value(payload, path) if isinstance(payload, dict) else None
    if not isinstance(records, list):
        raise ValueError(f"{title} page has no {path!r} list" if path else f"{title} page is not a list")
    return records


# ---- the hooks, from a declaration -------------------------------------------------------------------
class DeclaredSource(Source):
    """A `Source` whose hooks come from `declaration`; subclasses override what it cannot say."""

    declaration: ClassVar[SourceDeclaration]
    field_readers: ClassVar[tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        d = vars(cls).get("declaration")  # only a class that declares: its subclasses keep their overrides
        if d is None:
            return
        cls.name, cls.raw_table, cls.pipe, cls.clean_table = d.name, d.raw, d.pipe, d.clean
        cls.staging_view, cls.schema = d.staging_view, d.schema()
        cls.id_field, cls.clean_key = d.key_field.name, d.key_field.name.upper()
        cls.rate_limit_per_min, cls.page_size, cls.incremental = (
            d.rate_limit_per_min,
            d.page_size,
            d.incremental,
        )
        cls.wire_id, cls.wire_version = d.id_field, d.version_field
        cls.field_readers = field_readers(d)

    def auth(self, platform: Platform, settings: Settings, http: requests.Session) -> Auth:
        spec = self.declaration.auth
        if spec.kind == "api_key":
            return ApiKeyAuth(spec.header, platform.secret_string(spec.secret))
        if spec.kind == "bearer":
            token = platform.secret_string(spec.secret)
            return BearerTokenAuth(lambda force_refresh=False: token)
        if spec.kind == "basic":
            return HttpBasicAuth(*platform.username_password(spec.secret))
        if spec.kind == "oauth2_client_credentials":
            return self._oauth2(platform, settings, http, spec)
        return Auth()

    def _oauth2(self, platform: Platform, settings: Settings, http: requests.Session, spec: AuthSpec) -> Auth:
        """A token Snowflake obtains (OAUTH2 secret, default) or client credentials used here (PASSWORD)."""
        mode = settings.get(f"{self.name}_auth")
        if mode == "snowflake_oauth":
            bearer = BearerTokenAuth(partial(platform.oauth_access_token, spec.secret))
            bearer.token()  # in the handler's thread, before page prefetch starts its own
            return bearer
        if mode != "client_credentials":
            raise ConfigError(f"{self.name}_auth must be client_credentials or snowflake_oauth, got {mode!r}")
        client_id, client_secret = platform.username_password(spec.secret)
        return OAuth2ClientCredentials(
            token_url=f"{self.base_url(settings).rstrip('/')}{spec.token_path}",
            client_id=client_id,
            client_secret=client_secret,
            scope=settings.get(f"{self.name}_scope"),
            method=settings.get(f"{self.name}_client_auth"),
            http=http,
        )

    def first_request(self, since: datetime | None, page_size: int | None = None) -> PageRequest:
        spec = self.declaration.request
        params: dict[str, Any] = dict(spec.params)
        if spec.page_size_param:
            params[spec.page_size_param] = page_size or self.page_size
        if since is not None and spec.since_param:
            params[spec.since_param] = format_since(since, spec.since_format)
        return PageRequest(spec.method, spec.path, params=params)

    def paginator(self, settings: Settings) -> Paginator:
        spec = self.declaration.pagination
        if spec.kind == "cursor":
            return CursorPaginator(spec.cursor_param, spec.cursor_field, spec.has_more_field)
        if spec.kind == "offset":
            page_size = self.page_size_for(settings)
            return OffsetPaginator(
                offset_param=spec.offset_param,
                limit_param=spec.limit_param,
                limit=page_size,
                total_field=spec.total_field,
                overlap=min(settings.get_int("pagination_overlap_records"), page_size - 1),
                record_key=self.record_key,
            )
        if spec.kind == "page_number":
            field_name = spec.total_pages_field
            return PageNumberPaginator(
                spec.page_param, (lambda payload: wire_value(payload, field_name)) if field_name else None
            )
        if spec.kind == "link_header":
            return LinkHeaderPaginator()
        if spec.kind == "single":
            return SinglePage()
        raise DeclarationError(f"source {self.name}: pagination kind 'custom' needs a paginator() override")

    def parse_page(self, response: requests.Response) -> tuple[Any, list[dict[str, Any]]]:
        payload = json_body(response.content)
        return payload, records_at(payload, self.declaration.records_path, self.declaration.title)

    def record_key(self, raw: Any) -> Hashable | None:
        if not isinstance(raw, dict):
            return None
        id_field, version_field = self.declaration.id_field, self.declaration.version_field
        if "." in id_field or "." in version_field:
            record_id, version = wire_value(raw, id_field), wire_value(raw, version_field)
        else:  # the common case, once per record and page guard: no path walk
            record_id, version = raw.get(id_field), raw.get(version_field)
        if not isinstance(record_id, _ID_TYPES) or not (
            version is None or isinstance(version, _VERSION_TYPES)
        ):
            return None
        return record_id, version

    def key_hashes(self, records: list) -> set[int | None]:
        """`Source.key_hashes` in a few passes in C when every record is an object whose id and version have
        exactly the types `record_key` takes as they are; any other page goes record by record. (Per record,
        the guard cost about a tenth of an extract's time.)"""
        id_field, version_field = self.declaration.id_field, self.declaration.version_field
        if type(self).record_key is not DeclaredSource.record_key or "." in id_field + version_field:
            return super().key_hashes(records)
        if set(map(type, records)) == _DICT_ONLY:
            ids = list(map(dict.get, records, repeat(id_field)))
            versions = list(map(dict.get, records, repeat(version_field)))
            if set(map(type, ids)) <= _ID_EXACT_TYPES and set(map(type, versions)) <= _VERSION_EXACT_TYPES:
                return set(map(hash, zip(ids, versions, strict=True)))
        return super().key_hashes(records)

    def normalize(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Each declared field read from its wire path; the `source` column is this source's name."""
        if not isinstance(raw, Mapping):
            raise TypeError(f"record: expected object, got {type(raw).__name__}")
        return {name: read(raw) for name, read in self.field_readers}

    def fast_normalizer(self) -> Callable[[Any], dict[str, Any] | None] | None:
        """`normalize` + `validate` in one pass for the common record (sources/fast_normalize.py), or None
        when a subclass overrides `normalize` or the schema: the declaration then no longer describes them."""
        cls = type(self)
        if cls.normalize is not DeclaredSource.normalize or cls.schema != self.declaration.schema():
            return None
        compiled = _FAST.get(cls)
        if compiled is None:
            compiled = _FAST[cls] = compile_fast_normalize(self.declaration)
        return compiled


_ID_TYPES = (str, int)
_VERSION_TYPES = (str, int, float)
# The types `record_key` keeps as they are, exactly (bool is an int to isinstance, so it is left out).
_DICT_ONLY = {dict}
_ID_EXACT_TYPES = {str, int}
_VERSION_EXACT_TYPES = {str, int, float, type(None)}
_FAST: dict[type, Callable[[Any], dict[str, Any] | None]] = {}  # compiled once per class


def field_readers(d: SourceDeclaration) -> tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...]:
    """One reader per record field, in the schema's order, made once per source: `normalize` runs for every
    record, so a top-level field the wire must carry is read without `read_field`'s general walk."""
    readers: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = []
    for number, spec in enumerate(d.fields):
        if number == 1 and d.tag_source:  # where the schema has it
            readers.append(("source", lambda raw, name=d.name: name))
        readers.append((spec.name, _field_reader(spec)))
    return tuple(readers)


def _field_reader(spec: Field) -> Callable[[Mapping[str, Any]], Any]:
    if spec.wire is None:  # set by an overriding `normalize`
        return lambda raw: None
    parents, key = spec.wire_steps
    if parents or not spec.wire_must_exist:
        return partial(read_field, spec=spec)
    read = spec.wire_reader
    then = spec.convert or (to_utc_iso if spec.kind == "timestamp" else None)
    if then is None:
        return lambda raw: read(raw, key)
    return lambda raw: then(read(raw, key))


def format_since(since: datetime, how: SinceFormat) -> Any:
    """The watermark as the API wants it in the request: ISO 8601 with Z, or epoch milliseconds."""
    if how == "epoch_ms":
        return (since - _EPOCH) // timedelta(milliseconds=1)
    return since.isoformat() + "Z"


# ---- checking a declaration before anything uses it ---------------------------------------------------
def check_declaration(decl: SourceDeclaration) -> None:
    """Refuse a declaration that cannot work, with one error naming its file and the field.

    Runs when the sources are discovered, so a bad declaration fails before any procedure runs or any
    Snowflake object is derived from it: names that every derived object and template variable spells,
    kinds the hooks know, target fields that match the entity's (the CLEAN tables and views are shared by
    its sources) and column types that CLEAN holds exactly, sizes and the example host.
    """
    from .entities import ENTITY_FIELDS  # here: entities.py builds its fields from this module

    def fail(where: str, problem: str) -> DeclarationError:
        return DeclarationError(f"sources/{decl.name}.py: field {where!r}: {problem}")

    identifier = re.compile(r"[a-z][a-z0-9_]*")
    if not isinstance(decl.name, str) or not identifier.fullmatch(decl.name):
        raise fail("name", f"{decl.name!r} is not a lower-case identifier (it names Snowflake objects)")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 .,()/&+_-]*", decl.title):
        raise fail(
            "title", f"{decl.title!r}: letters, digits, spaces and .,()/&+_- only (SQL comments quote it)"
        )
    if decl.entity not in ENTITIES:
        raise fail("entity", f"{decl.entity!r} is not one of {', '.join(ENTITIES)}")

    auth = decl.auth
    if auth.kind not in get_args(AuthKind):
        raise fail("auth.kind", f"{auth.kind!r} is not one of {', '.join(get_args(AuthKind))}")
    if auth.kind != "none" and not identifier.fullmatch(auth.secret):
        raise fail("auth.secret", f"{auth.secret!r} is not a lower-case identifier (the SECRETS key)")
    if auth.kind == "oauth2_client_credentials":
        if not re.fullmatch(r"[A-Za-z0-9:._/-]+( [A-Za-z0-9:._/-]+)*", auth.scope):
            raise fail("auth.scope", f"{auth.scope!r} is not an OAuth2 scope (the source needs one)")
        if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", auth.token_path):
            raise fail("auth.token_path", f"{auth.token_path!r} is not a URL path")
    if auth.kind == "api_key" and not re.fullmatch(r"[A-Za-z0-9-]+", auth.header):
        raise fail("auth.header", f"{auth.header!r} is not an HTTP header name")

    request = decl.request
    if request.method not in ("GET", "POST"):
        raise fail("request.method", f"{request.method!r} is not GET or POST")
    if request.since_format not in get_args(SinceFormat):
        raise fail("request.since_format", f"{request.since_format!r} is not one of iso_z, epoch_ms")
    if decl.pagination.kind not in get_args(PaginationKind):
        raise fail(
            "pagination.kind",
            f"{decl.pagination.kind!r} is not one of {', '.join(get_args(PaginationKind))}",
        )
    if not decl.id_field or not decl.version_field:
        raise fail("id_field" if not decl.id_field else "version_field", "empty")

    if not decl.fields:
        raise fail("fields", "no target fields")
    seen: set[str] = set()
    for spec in decl.fields:
        where = f"fields.{spec.name}"
        if not isinstance(spec.name, str) or not identifier.fullmatch(spec.name) or spec.name == "source":
            raise fail("fields", f"{spec.name!r} is not a lower-case identifier other than 'source'")
        if spec.name in seen:
            raise fail(where, "declared twice")
        seen.add(spec.name)
        if spec.kind not in get_args(FieldKind):
            raise fail(f"{where}.kind", f"{spec.kind!r} is not one of {', '.join(get_args(FieldKind))}")
        if spec.wire_type is not None and spec.wire_type not in get_args(WireType):
            raise fail(
                f"{where}.wire_type", f"{spec.wire_type!r} is not one of {', '.join(get_args(WireType))}"
            )
        problem = _column_type_problem(spec)
        if problem:
            raise fail(f"{where}.sql_type", problem)
        if (spec.min_value is not None or spec.max_value is not None) and spec.kind not in ("int", "float"):
            raise fail(f"{where}.min_value", f"bounds on a {spec.kind} field")
        if spec.min_value is not None and spec.max_value is not None and spec.min_value > spec.max_value:
            raise fail(f"{where}.min_value", f"{spec.min_value} is above max_value {spec.max_value}")
        if spec.choices is not None and spec.kind != "str":
            raise fail(f"{where}.choices", f"choices on a {spec.kind} field")
    key = decl.fields[0]
    if not key.required or key.kind not in ("str", "int"):
        raise fail(f"fields.{key.name}", "the first field is the record's key: a required str or int")
    entity_fields = ENTITY_FIELDS.get(decl.entity)
    if entity_fields is not None and [f.spec() for f in decl.fields] != [f.spec() for f in entity_fields]:
        pairs = zip(decl.fields, entity_fields, strict=False)
        wrong = next((mine.name for mine, theirs in pairs if mine.spec() != theirs.spec()), None)
        raise fail(
            f"fields.{wrong}" if wrong else "fields",
            f"differs from the {decl.entity} entity's fields ({', '.join(f.name for f in entity_fields)}, "
            "in this order, with their kinds, types and bounds): the sources of an entity share one CLEAN "
            "shape; map the entity's fields with entities.mapped()",
        )

    for where, value in (
        ("rate_limit_per_min", decl.rate_limit_per_min),
        ("page_size", decl.page_size),
        ("max_page_size", decl.max_page_size),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise fail(where, f"{value!r} is not a whole number of at least 1")
    if decl.page_size > decl.max_page_size:
        raise fail("page_size", f"{decl.page_size} is above max_page_size {decl.max_page_size}")
    table = re.compile(r"[A-Z][A-Z0-9_]*")
    for where, value, schema in (
        ("raw_table", decl.raw_table, "RAW"),
        ("clean_table", decl.clean_table, "CLEAN"),
    ):
        if value and not (value.startswith(f"{schema}.") and table.fullmatch(value[len(schema) + 1 :])):
            raise fail(where, f"{value!r} is not {schema}.<UPPER_CASE_NAME>")
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?/?", decl.host_example):
        raise fail(
            "host_example", f"{decl.host_example!r} is not an http(s) base URL (snowflake.yml's default)"
        )


def _column_type_problem(spec: Field) -> str:
    """Why the CLEAN table cannot hold `spec`'s values exactly in its column type ('' when it can)."""
    column = FieldSpec(spec.name, spec.kind, sql_type=spec.sql_type).column_type.upper().replace(" ", "")
    allowed = {
        "str": ("STRING", "VARCHAR", "TEXT"),  # unbounded: validation checks no length
        "float": ("FLOAT", "DOUBLE", "REAL"),
        "bool": ("BOOLEAN",),
        "timestamp": ("TIMESTAMP_NTZ",),  # naive UTC, end to end
        "object": ("VARIANT",),
    }
    if spec.kind == "int":  # whole numbers, bounded by the precision
        try:
            exact = column.startswith("NUMBER") and math.isfinite(sql_type_bounds(column)[1])
        except ValueError:  # a scale, or a precision beyond 38
            exact = False
        if not exact:
            return f"{spec.sql_type!r} cannot hold an int field exactly: use NUMBER(p, 0), p from 1 to 38"
        return ""
    if spec.kind in allowed and column not in allowed[spec.kind]:
        return f"{spec.sql_type!r} cannot hold a {spec.kind} field exactly: use {allowed[spec.kind][0]}"
    return ""
