"""Generic per-record pipeline: normalise -> validate -> dedupe (runs inside the stored procedure).

The per-source field mapping lives in ``sources/`` and is passed to :class:`RecordProcessor` as a function;
this module only knows the shape of the *normalised* record (docs/CONTRACTS.md, "Normalised record").
Standard library only: it runs once per fetched record, so the hot paths avoid regexes and allocations.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = [
    "CAMERA_SCHEMA",
    "EVENT_SCHEMA",
    "BatchDeduper",
    "FieldSpec",
    "Outcome",
    "RecordProcessor",
    "RecordSchema",
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
    """
    if type(value) is int and _EPOCH_MS_THRESHOLD < value < _MAX_EPOCH_MS:  # the common epoch-ms case, first
        return (_EPOCH + timedelta(milliseconds=value)).isoformat(timespec="microseconds")
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())  # C fast path; handles Z and offsets on 3.11+
        except ValueError:
            raise ValueError(f"unparseable timestamp: {value!r}") from None
        if dt.tzinfo is not None:
            try:
                dt = dt.astimezone(UTC).replace(tzinfo=None)
            except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
                raise ValueError(f"unparseable timestamp: {value!r}") from None
        return dt.isoformat(timespec="microseconds")
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            # timedelta does exact integer arithmetic for ints and rounds floats to the microsecond.
            if abs(value) > _EPOCH_MS_THRESHOLD:
                delta = timedelta(milliseconds=value)
            else:
                delta = timedelta(seconds=value)
            return (_EPOCH + delta).isoformat(timespec="microseconds")
        except (OverflowError, ValueError):  # out of datetime's range, NaN, infinity
            raise ValueError(f"unparseable timestamp: {value!r}") from None
    raise ValueError(f"unparseable timestamp: {value!r}")


# --------------------------------------------------------------------------------------------- validation

FieldKind = Literal["str", "float", "int", "bool", "timestamp", "object"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a normalised record.

    ``required`` fields must be present and not None; optional fields may be missing or None but must have
    the right type otherwise. ``str`` values must be non-empty; ``float`` accepts ints (not bools) and must
    be finite; ``int`` rejects floats and bools; ``timestamp`` must already be in the normalised
    ``YYYY-MM-DDTHH:MM:SS.ffffff`` form; ``object`` is a dict. ``min_value``/``max_value`` are inclusive
    bounds for numbers; ``choices`` restricts a ``str`` to a fixed set.
    """

    name: str
    kind: FieldKind
    required: bool = True
    min_value: float | None = None
    max_value: float | None = None
    choices: frozenset[str] | None = None


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
            return f"{name}: expected str, got {type(value).__name__}"
        if not value:
            return f"{name}: empty string"
        if spec.choices is not None and value not in spec.choices:
            return f"{name}: unexpected value {value!r}"
        return None
    if kind == "timestamp":
        if not isinstance(value, str):
            return f"{name}: expected timestamp string, got {type(value).__name__}"
        if _is_normalised_timestamp(value):  # the per-record fast path; the slow one only explains failures
            return None
        try:
            normalised = to_utc_iso(value)
        except ValueError as exc:
            return f"{name}: {exc}"
        if normalised != value:
            return f"{name}: not a normalised UTC timestamp: {value!r}"
        return None
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name}: expected float, got {type(value).__name__}"
        if not math.isfinite(value):
            return f"{name} out of range: {value}"
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name}: expected int, got {type(value).__name__}"
    elif kind == "bool":
        if not isinstance(value, bool):
            return f"{name}: expected bool, got {type(value).__name__}"
        return None
    elif kind == "object":
        if not isinstance(value, dict):
            return f"{name}: expected object, got {type(value).__name__}"
        return None
    else:  # a schema bug, not a data problem: fail loudly
        raise ValueError(f"unknown field kind {kind!r} for {name}")
    if (spec.min_value is not None and value < spec.min_value) or (
        spec.max_value is not None and value > spec.max_value
    ):
        return f"{name} out of range: {value}"
    return None


def _fast_check(spec: FieldSpec) -> Callable[[Any], bool]:
    """A cheap test that accepts the common valid value of one field; anything else goes to _check_field."""
    lo = -math.inf if spec.min_value is None else spec.min_value
    hi = math.inf if spec.max_value is None else spec.max_value
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
    return lambda v: type(v) is dict if spec.kind == "object" else False


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


# The normalised shapes fixed in docs/CONTRACTS.md (``_batch_id`` is added after validation).
EVENT_SCHEMA = RecordSchema(
    "event",
    (
        FieldSpec("event_id", "str"),
        FieldSpec("source", "str", choices=frozenset({"api_a", "api_b"})),
        FieldSpec("event_type", "str"),
        FieldSpec("camera_id", "str"),
        FieldSpec("category", "str"),
        FieldSpec("confidence", "float", min_value=0.0, max_value=1.0),
        FieldSpec("occurred_at", "timestamp"),
        FieldSpec("updated_at", "timestamp"),
        FieldSpec("duration_ms", "int", min_value=0),
        FieldSpec("attributes", "object", required=False),
    ),
)

CAMERA_SCHEMA = RecordSchema(
    "camera",
    (
        FieldSpec("camera_id", "str"),
        FieldSpec("site_id", "str"),
        FieldSpec("site_name", "str", required=False),
        FieldSpec("city", "str", required=False),
        FieldSpec("country", "str", required=False),
        FieldSpec("timezone", "str", required=False),
        FieldSpec("latitude", "float", min_value=-90.0, max_value=90.0),
        FieldSpec("longitude", "float", min_value=-180.0, max_value=180.0),
        FieldSpec("installed_at", "timestamp", required=False),
        FieldSpec("active", "bool"),
        FieldSpec("updated_at", "timestamp"),
    ),
)


# ------------------------------------------------------------------------------------------------ dedupe


class BatchDeduper:
    """Drops repeats of a record id within one batch, keeping newer versions, in bounded memory.

    The downstream MERGE keeps the latest version per id, so a strictly newer ``updated_at`` is staged again
    while a repeat with the same or an older ``updated_at`` is dropped. ``updated_at`` must be in the
    normalised fixed-width form (see :func:`to_utc_iso`), where string order equals time order.

    Memory: the last ``window`` distinct ids (about 170 bytes each), not every id of the batch, so memory
    stays constant however large the extract. Repeats come from pages that overlap (a record of one page
    served again on the next), so they are never far apart; a repeat further back than ``window`` ids is
    staged rather than dropped, which loses nothing: the MERGE keeps one row per id.
    """

    __slots__ = ("_latest", "window")

    def __init__(self, window: int = 20_000) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._latest: OrderedDict[str, str] = OrderedDict()

    def offer(self, record_id: str, updated_at: str) -> bool:
        """True to keep the record (not seen recently, or strictly newer), False for a duplicate."""
        latest = self._latest
        seen = latest.get(record_id)
        if seen is not None and seen >= updated_at:
            return False
        latest[record_id] = updated_at
        if seen is not None:
            latest.move_to_end(record_id)
        elif len(latest) > self.window:
            latest.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._latest)


# --------------------------------------------------------------------------------------------- processor

OutcomeKind = Literal["staged", "rejected", "duplicate"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of one raw record: ``record`` is the normalised record for staged (with ``_batch_id``) and
    duplicate outcomes; ``reason`` is set for rejections."""

    kind: OutcomeKind
    record: dict[str, Any] | None = None
    reason: str | None = None


class RecordProcessor:
    """normalise -> validate -> dedupe for one batch, with counters.

    ``normalize`` maps one raw API record to the normalised shape; the KeyError, ValueError, TypeError or
    AttributeError it raises (missing fields, bad values, nulls where a value was expected) reject that
    record instead of failing the batch. Invariant: ``fetched == staged + rejected + duplicates``.
    """

    def __init__(
        self,
        normalize: Callable[[dict[str, Any]], dict[str, Any]],
        schema: RecordSchema,
        id_field: str,
        updated_field: str,
        batch_id: str,
    ) -> None:
        self.normalize = normalize
        self.schema = schema
        self.id_field = id_field
        self.updated_field = updated_field
        self.batch_id = batch_id
        self.deduper = BatchDeduper()
        self.fetched = 0
        self.staged = 0
        self.rejected = 0
        self.duplicates = 0

    def process(self, raw: dict[str, Any]) -> Outcome:
        kind, value = self._classify(raw)
        if kind == "rejected":
            return Outcome(kind, reason=value)
        return Outcome(kind, record=value)

    def process_page(self, raws: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[Any, str]]]:
        """One page at once: (records to stage, [(raw, reason)] to reject); duplicates are only counted."""
        staged: list[dict[str, Any]] = []
        rejected: list[tuple[Any, str]] = []
        classify = self._classify
        for raw in raws:
            kind, value = classify(raw)
            if kind == "staged":
                staged.append(value)
            elif kind == "rejected":
                rejected.append((raw, value))
        return staged, rejected

    def _classify(self, raw: dict[str, Any]) -> tuple[OutcomeKind, Any]:
        """(kind, normalised record or reject reason); a plain tuple, as this runs once per record."""
        self.fetched += 1
        try:
            record = self.normalize(raw)
        except KeyError as exc:
            return self._reject(f"normalize: missing field {exc.args[0] if exc.args else ''!r}")
        except (ValueError, TypeError, AttributeError) as exc:
            return self._reject(f"normalize: {exc}")
        reason = validate(record, self.schema)
        if reason is not None:
            return self._reject(reason)
        record_id = record.get(self.id_field)
        updated_at = record.get(self.updated_field)
        if not isinstance(record_id, str) or not isinstance(updated_at, str):
            # The schema should already guarantee these; guard against a schema/field-name mismatch.
            return self._reject(f"missing id or update time ({self.id_field}, {self.updated_field})")
        if not self.deduper.offer(record_id, updated_at):
            self.duplicates += 1
            return "duplicate", record
        record["_batch_id"] = self.batch_id
        self.staged += 1
        return "staged", record

    def _reject(self, reason: str) -> tuple[OutcomeKind, str]:
        self.rejected += 1
        return "rejected", reason

    @property
    def counts(self) -> dict[str, int]:
        return {
            "fetched": self.fetched,
            "staged": self.staged,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
        }
