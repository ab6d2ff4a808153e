"""Generic per-record pipeline: normalise -> validate -> dedupe (runs inside the stored procedure).

The per-source field mapping lives in ``sources/`` and is passed to :class:`RecordProcessor` as a function;
this module only knows the shape of the *normalised* record (docs/CONTRACTS.md, "Normalised record").
Standard library only: it runs once per fetched record, so the hot paths avoid regexes and allocations.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from . import jsonl
from .wire import OversizedNumber, short_repr

__all__ = [
    "BatchDeduper",
    "FieldSpec",
    "Outcome",
    "RecordProcessor",
    "RecordSchema",
    "StagedPage",
    "Validator",
    "to_utc_iso",
    "validate",
]

_EPOCH = datetime(1970, 1, 1)
# Epoch values above this magnitude are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973-03-03.
_EPOCH_MS_THRESHOLD = 1e11
_MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999, the last millisecond datetime can hold


def to_utc_iso(value: Any) -> str:
    """Normalise a timestamp to ``YYYY-MM-DDTHH:MM:SS.ffffff`` in UTC without an offset.

    Accepts ISO-8601 strings (``Z``, ``±HH:MM`` or naive, which is taken as UTC; any fractional precision)
    and int/float epoch seconds or milliseconds (``abs(value) > 1e11`` means milliseconds).
    Raises ``ValueError("unparseable timestamp: ...")`` for anything else, including bools and None.
    It runs twice per record, so the common shapes take the cheapest exact route (`datetime.isoformat` of
    an aware datetime costs more than the parse).
    """
    if type(value) is int and _EPOCH_MS_THRESHOLD < value < _MAX_EPOCH_MS:  # the common epoch-ms case, first
        return _format(_EPOCH + timedelta(milliseconds=value))
    if isinstance(value, str):
        return text_to_utc_iso(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            # timedelta does exact integer arithmetic for ints and rounds floats to the microsecond.
            if abs(value) > _EPOCH_MS_THRESHOLD:
                delta = timedelta(milliseconds=value)
            else:
                delta = timedelta(seconds=value)
            return _format(_EPOCH + delta)
        except (OverflowError, ValueError):  # out of datetime's range, NaN, infinity
            raise ValueError(f"unparseable timestamp: {value!r}") from None
    raise ValueError(f"unparseable timestamp: {value!r}")


def text_to_utc_iso(value: str) -> str:
    """`to_utc_iso` of an ISO-8601 string: what a compiled normaliser calls for a field the wire sends as
    a string (it skips the epoch-number tests)."""
    text = value.strip()
    try:
        dt = _fromisoformat(text)  # C; checks every digit and range, handles Z and offsets
    except ValueError:
        raise ValueError(f"unparseable timestamp: {value!r}") from None
    zone = dt.tzinfo
    if zone is None:
        return _canonical(text) or _format(dt)
    if zone is UTC:  # "Z", "+00:00" and "-00:00" parse to UTC itself
        last = text[-1]
        local = text[:-1] if last == "Z" or last == "z" else text[:-6] if text[-6:] in _ZERO_OFFSETS else None
        return (local is not None and _canonical(local)) or _format(dt)
    shifted = _shifted(text, dt)
    if shifted is not None:
        return shifted
    try:
        return _format(dt.astimezone(UTC))
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError(f"unparseable timestamp: {value!r}") from None


_fromisoformat = datetime.fromisoformat
_ZERO_OFFSETS = ("+00:00", "-00:00")


def _format(dt: datetime) -> str:
    """``dt.isoformat(timespec="microseconds")`` without an offset, at a third of its cost."""
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06d" % (  # noqa: UP031 (the fastest of the ways to write it)
        dt.year,
        dt.month,
        dt.day,
        dt.hour,
        dt.minute,
        dt.second,
        dt.microsecond,
    )


# The shortcuts below read the normalised form straight from text that `fromisoformat` has just accepted:
# every digit and range was checked by the parse, so only the separators' places need looking at.


def _canonical(text: str) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS[.f{1,6}]`` (no offset) padded to six fraction digits; None for other shapes."""
    size = len(text)
    if not 19 <= size <= 26 or size == 20:
        return None
    if text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":":
        return None
    if size == 19:
        return text + ".000000"
    if text[19] != ".":
        return None
    return text + "000000"[: 26 - size]


def _shifted(text: str, parsed: datetime) -> str | None:
    """A time with a ``±HH:MM`` offset moved to UTC in the text (the date moves a day when the time crosses
    midnight); None for other offset shapes and at the ends of datetime's range (the datetime route then
    decides). `parsed` is the text as `fromisoformat` read it. Clock text goes through tables: `int` and
    format specs cost more than the rest of the shift."""
    if len(text) < 25 or text[-6] not in "+-":
        return None
    offset = _MINUTE_OF_DAY.get(text[-5:])  # below 24 hours: fromisoformat refuses more
    local = _canonical(text[:-6])
    if offset is None or local is None:
        return None
    minute = _MINUTE_OF_DAY[local[11:16]] + (offset if text[-6] == "-" else -offset)
    day = local[:10]
    try:
        if minute < 0:
            minute += _MINUTES_PER_DAY
            day = (parsed.date() - _ONE_DAY).isoformat()
        elif minute >= _MINUTES_PER_DAY:
            minute -= _MINUTES_PER_DAY
            day = (parsed.date() + _ONE_DAY).isoformat()
    except OverflowError:  # before 0001-01-01 or after 9999-12-31 in UTC
        return None
    return day + "T" + _CLOCK[minute] + local[16:]


_MINUTES_PER_DAY = 24 * 60
_ONE_DAY = timedelta(days=1)
_CLOCK = [f"{minute // 60:02d}:{minute % 60:02d}" for minute in range(_MINUTES_PER_DAY)]  # "HH:MM"
_MINUTE_OF_DAY = {clock: minute for minute, clock in enumerate(_CLOCK)}


# --------------------------------------------------------------------------------------------- validation

FieldKind = Literal["str", "float", "int", "bool", "timestamp", "object"]

_DEFAULT_SQL_TYPES = {
    "str": "STRING",
    "float": "FLOAT",
    "int": "NUMBER(38,0)",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP_NTZ",
    "object": "VARIANT",
}
FLOAT_MAX = sys.float_info.max  # Snowflake's FLOAT is an IEEE double
NUMBER_MAX_DIGITS = 38  # Snowflake's NUMBER holds at most 38 digits
_NUMBER_TYPE = re.compile(r"NUMBER(?:\((\d+)(?:,\s*(\d+))?\))?")


def sql_type_bounds(sql_type: str) -> tuple[float, float]:
    """The inclusive range of whole numbers a column of `sql_type` holds exactly (±inf: not numeric).

    ``NUMBER(p, 0)`` holds up to ``10**p - 1``; ``NUMBER`` alone is ``NUMBER(38, 0)``. ``FLOAT`` holds any
    finite double. Scales other than 0 are not used by this project's integer fields.
    """
    text = sql_type.upper().replace(" ", "")
    if text in ("FLOAT", "DOUBLE", "REAL"):
        return -FLOAT_MAX, FLOAT_MAX
    match = _NUMBER_TYPE.fullmatch(text)
    if match is None:
        return -math.inf, math.inf
    precision = int(match.group(1) or NUMBER_MAX_DIGITS)
    scale = int(match.group(2) or 0)
    if scale != 0 or not 1 <= precision <= NUMBER_MAX_DIGITS:
        raise ValueError(f"unsupported numeric column type {sql_type!r}: use NUMBER(p, 0) or FLOAT")
    limit = 10**precision - 1
    return -limit, limit


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a normalised record.

    ``required`` fields must be present and not None; optional fields may be missing or None but must have
    the right type otherwise. ``str`` values must be non-empty; ``float`` accepts ints (not bools) and must
    be finite; ``int`` rejects floats and bools; ``timestamp`` must already be in the normalised
    ``YYYY-MM-DDTHH:MM:SS.ffffff`` form; ``object`` is a dict of JSON values. ``min_value``/``max_value``
    are inclusive bounds for numbers; ``choices`` restricts a ``str`` to a fixed set.

    ``sql_type`` is the type of the column the field lands in (sql/03_clean.sql casts and declares it; a
    unit test checks the two agree). A value the column cannot hold exactly is rejected here, at ingest,
    instead of failing the CLEAN MERGE on every later run.
    """

    name: str
    kind: FieldKind
    required: bool = True
    min_value: float | None = None
    max_value: float | None = None
    choices: frozenset[str] | None = None
    sql_type: str = ""

    @property
    def column_type(self) -> str:
        """The SQL type of the field's column: ``sql_type``, or the kind's default."""
        return self.sql_type or _DEFAULT_SQL_TYPES.get(self.kind, "")

    @property
    def bounds(self) -> tuple[float, float]:
        """Inclusive numeric bounds: the declared ones within what the column type holds."""
        type_lo, type_hi = sql_type_bounds(self.column_type)
        lo = type_lo if self.min_value is None else max(type_lo, self.min_value)
        hi = type_hi if self.max_value is None else min(type_hi, self.max_value)
        return lo, hi


@dataclass(frozen=True, slots=True)
class RecordSchema:
    """The fields of one normalised record type (checked in declaration order)."""

    name: str
    fields: tuple[FieldSpec, ...]

    def validate(self, record: Mapping[str, Any]) -> str | None:
        return validate(record, self)


_NORMALISED_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}")


def _is_normalised_timestamp(value: str) -> bool:
    """Already in to_utc_iso's output form, checked without re-normalising (it runs per record)."""
    if not _NORMALISED_TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_field(spec: FieldSpec, value: Any) -> str | None:
    name, kind = spec.name, spec.kind
    if kind == "str":
        if not isinstance(value, str):
            return f"{name}: expected str, got {_type_name(value)}"
        if not value:
            return f"{name}: empty string"
        if spec.choices is not None and value not in spec.choices:
            return f"{name}: unexpected value {short_repr(value)}"
        return None
    if kind == "timestamp":
        if not isinstance(value, str):
            return f"{name}: expected timestamp string, got {_type_name(value)}"
        if _is_normalised_timestamp(value):  # the per-record fast path; the slow one only explains failures
            return None
        try:
            normalised = to_utc_iso(value)
        except ValueError as exc:
            return f"{name}: {exc}"
        if normalised != value:
            return f"{name}: not a normalised UTC timestamp: {short_repr(value)}"
        return None
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name}: expected float, got {_type_name(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name} out of range: {value}"
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name}: expected int, got {_type_name(value)}"
    elif kind == "bool":
        if not isinstance(value, bool):
            return f"{name}: expected bool, got {_type_name(value)}"
        return None
    elif kind == "object":
        if not isinstance(value, dict):
            return f"{name}: expected object, got {_type_name(value)}"
        return _json_value_problem(value, name, 0)
    else:  # a schema bug, not a data problem: fail loudly
        raise ValueError(f"unknown field kind {kind!r} for {name}")
    lo, hi = spec.bounds
    if not lo <= value <= hi:
        allowed = f"[{short_repr(lo)}, {short_repr(hi)}] ({spec.column_type})"
        return f"{name} out of range: {short_repr(value)}, allowed {allowed}"
    return None


_MAX_JSON_DEPTH = 64
_VARIANT_INT_LIMIT = 10**NUMBER_MAX_DIGITS - 1


def _json_value_problem(value: Any, path: str, depth: int) -> str | None:
    """Why a nested JSON value cannot be stored faithfully in a VARIANT, or None.

    A VARIANT number is a NUMBER(38) or a double: longer integers would be silently rounded, and NaN or
    infinity (which Python's JSON parser accepts) are not JSON at all. Strings are checked when encoded.
    """
    if depth > _MAX_JSON_DEPTH:
        return f"{path}: nested deeper than {_MAX_JSON_DEPTH} levels"
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            problem = _json_value_problem(item, f"{path}.{key}", depth + 1)
            if problem is not None:
                return problem
    elif kind is list:
        for index, item in enumerate(value):
            problem = _json_value_problem(item, f"{path}[{index}]", depth + 1)
            if problem is not None:
                return problem
    elif kind is int:
        if not -_VARIANT_INT_LIMIT <= value <= _VARIANT_INT_LIMIT:
            return (
                f"{path} out of range for VARIANT (at most {NUMBER_MAX_DIGITS} digits): {short_repr(value)}"
            )
    elif kind is float:
        if not math.isfinite(value):
            return f"{path} out of range: {value}"
    elif isinstance(value, OversizedNumber):
        return f"{path} out of range for VARIANT: {value!r}"
    return None


def _json_value_ok(value: Any) -> bool:
    """The fast path of _json_value_problem for the common flat object of strings and small numbers."""
    for item in value.values():
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int and -_VARIANT_INT_LIMIT <= item <= _VARIANT_INT_LIMIT:
            continue
        if kind is float and math.isfinite(item):
            continue
        return False
    return True


def _fast_check(spec: FieldSpec) -> Callable[[Any], bool]:
    """A cheap test that accepts the common valid value of one field; anything else goes to _check_field."""
    lo, hi = spec.bounds
    if spec.kind == "str":
        choices = spec.choices
        return lambda v: type(v) is str and v != "" and (choices is None or v in choices)
    if spec.kind == "timestamp":
        return lambda v: type(v) is str and _is_normalised_timestamp(v)
    if spec.kind == "float":
        return lambda v: (type(v) is float or type(v) is int) and lo <= v <= hi and v == v
    if spec.kind == "int":
        return lambda v: type(v) is int and lo <= v <= hi
    if spec.kind == "bool":
        return lambda v: type(v) is bool
    return lambda v: type(v) is dict and _json_value_ok(v) if spec.kind == "object" else False


_CompiledSchema = tuple[tuple[FieldSpec, Callable[[Any], bool]], ...]
_COMPILED: dict[int, tuple[RecordSchema, _CompiledSchema]] = {}


def _compiled(schema: RecordSchema) -> _CompiledSchema:
    """The schema's fast checks, built once per schema object (keyed by identity: hashing it costs more)."""
    entry = _COMPILED.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _COMPILED[id(schema)] = (schema, tuple((spec, _fast_check(spec)) for spec in schema.fields))
    return entry[1]


def validate(record: Mapping[str, Any], schema: RecordSchema) -> str | None:
    """Return the first reason ``record`` violates ``schema``, or None when it is valid.

    Reasons look like ``"missing required field camera_id"``, ``"confidence out of range: 1.7"`` or
    ``"occurred_at: unparseable timestamp: 'not-a-date'"``. Unknown extra fields are allowed.
    """
    if not isinstance(record, Mapping):
        return f"record: expected object, got {type(record).__name__}"
    for spec, accepts in _compiled(schema):
        value = record.get(spec.name)
        if value is None:
            if spec.required:
                return f"missing required field {spec.name}"
            continue
        if accepts(value):  # per record and per field: the common case must stay cheap
            continue
        reason = _check_field(spec, value)
        if reason is not None:
            return reason
    return None


class Validator:
    """Callable wrapper around :func:`validate` for one schema."""

    __slots__ = ("schema",)

    def __init__(self, schema: RecordSchema) -> None:
        self.schema = schema

    def __call__(self, record: Mapping[str, Any]) -> str | None:
        return validate(record, self.schema)


def _type_name(value: Any) -> str:
    return "oversized number" if isinstance(value, OversizedNumber) else type(value).__name__


# ------------------------------------------------------------------------------------------------ dedupe


class BatchDeduper:
    """Drops repeats of a record id within one batch, in bounded memory; the version served last wins.

    A strictly newer ``updated_at`` is staged again. A repeat with the same ``updated_at`` is staged again
    only when its content differs (`fingerprint`): versions with equal ``updated_at`` resolve to the one
    served last, here as in the CLEAN MERGE, which orders equal versions by when they were served. An
    identical repeat, or an older version, is a duplicate. ``updated_at`` must be in the normalised
    fixed-width form (see :func:`to_utc_iso`), where string order equals time order.

    Memory: at least the last ``window`` distinct ids and at most twice that (about 200 bytes each), not
    every id of the batch, so memory stays constant however large the extract. The ids are kept in two
    generations of plain dicts (the current one and, once it fills up, the one before it), which costs a
    record two dict lookups rather than an ordered dict's bookkeeping. Repeats come from pages that overlap
    (a record of one page served again on the next), so they are never far apart; a repeat further back is
    staged rather than dropped, which loses nothing: the MERGE keeps one row per id.
    """

    __slots__ = ("_current", "_previous", "window")

    def __init__(self, window: int = 20_000) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._current: dict[str, tuple[str, int]] = {}
        self._previous: dict[str, tuple[str, int]] = {}

    def offer(self, record_id: str, updated_at: str, fingerprint: int = 0) -> bool:
        """True to keep the record (not seen recently, newer, or same time with new content)."""
        current = self._current
        seen = current.get(record_id) or self._previous.get(record_id)
        if seen is not None and (seen[0] > updated_at or (seen[0] == updated_at and seen[1] == fingerprint)):
            return False
        current[record_id] = (updated_at, fingerprint)
        if len(current) >= self.window:
            self._previous, self._current = current, {}
        return True

    def __len__(self) -> int:
        """Distinct ids remembered (an id in both generations counts once)."""
        return len(self._current.keys() | self._previous.keys())


# --------------------------------------------------------------------------------------------- processor

OutcomeKind = Literal["staged", "rejected", "duplicate"]
DEFAULT_MAX_RECORD_BYTES = 8 * 1024 * 1024  # half the 16 MB VARIANT limit of older Snowflake releases


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of one raw record: ``record`` is the normalised record for staged (with ``_batch_id``) and
    duplicate outcomes; ``reason`` is set for rejections; ``line`` is the staged JSON line."""

    kind: OutcomeKind
    record: dict[str, Any] | None = None
    reason: str | None = None
    line: bytes | None = None


@dataclass(slots=True)
class StagedPage:
    """What one page adds to a batch: JSON lines to stage, rejects with reasons, the newest update time."""

    lines: list[bytes]
    rejected: list[tuple[Any, str]]
    max_updated: str | None


FastNormalize = Callable[[Any], "dict[str, Any] | None"]


class RecordProcessor:
    """normalise -> validate -> encode -> dedupe for one batch, with counters.

    ``normalize`` maps one raw API record to the normalised shape; the KeyError, ValueError, TypeError,
    OverflowError or AttributeError it raises (missing fields, wrong JSON types, bad values) reject that
    record instead of failing the batch. Encoding is part of the check: a record whose text is not valid
    Unicode (an unpaired surrogate) or whose JSON line exceeds ``max_record_bytes`` is rejected, so a line
    that Snowpipe would refuse (taking its whole file with it) is never staged.
    Invariant: ``fetched == staged + rejected + duplicates``.

    ``fast_normalize`` (optional, a source's `DeclaredSource.fast_normalizer`) is normalise and validate in
    one pass for the common record: it returns what ``normalize`` would, for a record ``validate`` accepts,
    and None for anything else, which then takes the general path above and is judged, and explained, by it.
    So it changes what a record costs, never what happens to it.
    """

    def __init__(
        self,
        normalize: Callable[[dict[str, Any]], dict[str, Any]],
        schema: RecordSchema,
        id_field: str,
        updated_field: str,
        batch_id: str,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        fast_normalize: FastNormalize | None = None,
    ) -> None:
        if max_record_bytes < 1:
            raise ValueError("max_record_bytes must be >= 1")
        self.normalize = normalize
        self.fast_normalize = fast_normalize
        self.schema = schema
        self.id_field = id_field
        self.updated_field = updated_field
        self.batch_id = batch_id
        self.max_record_bytes = max_record_bytes
        self.deduper = BatchDeduper()
        self.fetched = 0
        self.staged = 0
        self.rejected = 0
        self.duplicates = 0

    def process(self, raw: dict[str, Any]) -> Outcome:
        self.fetched += 1
        kind, value, line = self._admit(self._checked(raw))
        if kind == "rejected":
            return Outcome(kind, reason=value)
        return Outcome(kind, record=value, line=line)

    def process_page(self, raws: list[dict[str, Any]]) -> StagedPage:
        """One page at once: the lines to stage, the rejects, and the newest staged ``updated_at``."""
        lines: list[bytes] = []
        rejected: list[tuple[Any, str]] = []
        max_updated: str | None = None
        updated_field = self.updated_field
        fast, checked, admit = self.fast_normalize, self._checked, self._admit
        self.fetched += len(raws)
        for raw in raws:
            record = fast(raw) if fast is not None else None
            kind, value, line = admit(checked(raw) if record is None else record)
            if kind == "staged":
                lines.append(line)
                updated = value[updated_field]
                if max_updated is None or updated > max_updated:
                    max_updated = updated
            elif kind == "rejected":
                rejected.append((raw, value))
        return StagedPage(lines, rejected, max_updated)

    def _checked(self, raw: Any) -> dict[str, Any] | str:
        """The general path: the normalised record when it is valid, else the reason (a str) it is not."""
        try:
            record = self.normalize(raw)
        except KeyError as exc:
            return f"normalize: missing field {exc.args[0] if exc.args else ''!r}"
        except (ValueError, TypeError, OverflowError, AttributeError) as exc:
            return f"normalize: {exc}"
        reason = validate(record, self.schema)
        return record if reason is None else reason

    def _admit(self, record: dict[str, Any] | str) -> tuple[OutcomeKind, Any, bytes | None]:
        """(kind, normalised record or reject reason, staged line) of a checked record; plain tuples, as this
        runs per record."""
        if type(record) is str:
            return self._reject(record)
        record_id = record.get(self.id_field)
        updated_at = record.get(self.updated_field)
        if not isinstance(record_id, str) or not isinstance(updated_at, str):
            # The schema should already guarantee these; guard against a schema/field-name mismatch.
            return self._reject(f"missing id or update time ({self.id_field}, {self.updated_field})")
        record["_batch_id"] = self.batch_id
        try:
            line = jsonl.dumps_line_strict(record)
        except UnicodeEncodeError:
            return self._reject(
                f"{_unencodable_field(record)}: text is not valid Unicode (unpaired surrogate)"
            )
        except ValueError as exc:
            return self._reject(f"cannot encode record as JSON: {exc}")
        if len(line) > self.max_record_bytes:
            return self._reject(
                f"record too large: {len(line)} bytes, above max_record_bytes = {self.max_record_bytes}"
            )
        if not self.deduper.offer(record_id, updated_at, hash(line)):
            self.duplicates += 1
            del record["_batch_id"]  # not staged in this batch
            return "duplicate", record, None
        self.staged += 1
        return "staged", record, line

    def _reject(self, reason: str) -> tuple[OutcomeKind, str, None]:
        self.rejected += 1
        return "rejected", reason, None

    @property
    def counts(self) -> dict[str, int]:
        return {
            "fetched": self.fetched,
            "staged": self.staged,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
        }


def _unencodable_field(record: Mapping[str, Any]) -> str:
    """The first field whose value does not encode as UTF-8 (for the reject reason)."""
    for name, value in record.items():
        try:
            jsonl.dumps_strict(value)
        except (UnicodeEncodeError, ValueError):
            return name
    return "record"
