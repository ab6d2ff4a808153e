"""Reading API records as their contract types them: strict JSON body decoding and typed field readers.

No silent coercion: a field gets the JSON type its contract names, or the record is rejected with a reason
naming the field. `int("42")`, `str(["x"])` or `int(True)` would stage a value the API never sent, so the
readers refuse them. A field's value is never what fails a page: one bad record must not stop its
neighbours, so body decoding keeps undecodable bytes and oversized numbers inside the record that holds
them, where the per-record checks reject it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

try:  # the ingest procedures get it from Snowflake's PyPI artifact repository (jsonl.py); optional
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = [
    "OversizedNumber",
    "json_body",
    "optional_object",
    "optional_str",
    "require_int",
    "require_number",
    "require_str",
    "short_repr",
]

_BOM = "\ufeff"
# Every digit as "9", every other byte as a space: a run of 19 "9"s is a number orjson might not keep exact.
_DIGITS_ONLY = bytes(57 if 48 <= byte <= 57 else 32 for byte in range(256))
_LONG_DIGIT_RUN = b"9" * 19
_INT_DIGITS_LIMIT = 4000  # below Python's int/str conversion limit (4300 digits)


class OversizedNumber(str):
    """A JSON number too long for Python to convert (its literal text); every reader rejects it."""

    def __repr__(self) -> str:
        return f"<number with {len(self)} digits>"


def _bounded_int(text: str) -> int | OversizedNumber:
    return OversizedNumber(text) if len(text) > _INT_DIGITS_LIMIT else int(text)


def json_body(content: bytes) -> Any:
    """Decode a JSON response body so that one bad value cannot make the whole page unreadable.

    Bytes that are not UTF-8 become lone surrogates inside the strings that hold them (the record is then
    rejected as unencodable text), and integers too long for Python stay as `OversizedNumber` (rejected as
    out of range). Structural damage (truncated JSON) still raises ValueError: the page is re-fetched.

    orjson, where the procedure has it, decodes a body several times faster and to the same values, with one
    exception: an integer beyond 64 bits comes back as a float, silently. So a body with a run of 19 or more
    digits anywhere (found by one `translate` and one substring search, both in C) goes to the standard
    library, as does any body orjson refuses.
    """
    if _orjson is not None and _LONG_DIGIT_RUN not in content.translate(_DIGITS_ONLY):
        try:
            return _orjson.loads(content)
        except _orjson.JSONDecodeError:  # bytes not UTF-8, a BOM, NaN, 1e400...: the standard library decides
            pass
    text = content.decode("utf-8", "surrogateescape")
    if text.startswith(_BOM):
        text = text[1:]
    try:
        return json.loads(text)
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise
    return json.loads(text, parse_int=_bounded_int)


def short_repr(value: Any, limit: int = 60) -> str:
    """A reject reason's view of a value: short, and safe for huge integers (str() of one can raise)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > 128:
        return f"<integer with about {int(abs(value).bit_length() * math.log10(2)) + 1} digits>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    if isinstance(value, OversizedNumber):
        return f"number with {len(value)} digits"
    return {
        bool: "boolean",
        str: "string",
        int: "integer",
        float: "number",
        dict: "object",
        list: "array",
    }.get(type(value), type(value).__name__)


def _field(raw: Mapping[str, Any], key: str) -> Any:
    """raw[key]; KeyError (a missing field) is reported by the processor. Runs per field of every record."""
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise TypeError(f"record: expected object, got {_type_name(raw)}")
    return raw[key]


def _get(raw: Mapping[str, Any], key: str) -> Any:
    """raw.get(key) for an optional field."""
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise TypeError(f"record: expected object, got {_type_name(raw)}")
    return raw.get(key)


def require_str(raw: Mapping[str, Any], key: str) -> str:
    """A JSON string (not a number, boolean, array or object)."""
    value = _field(raw, key)
    if type(value) is not str:
        raise TypeError(f"{key}: expected string, got {_type_name(value)}")
    return value


def optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    """A JSON string, or None when the field is absent or null."""
    value = _get(raw, key)
    if value is None or type(value) is str:
        return value
    raise TypeError(f"{key}: expected string, got {_type_name(value)}")


def require_int(raw: Mapping[str, Any], key: str) -> int:
    """A JSON integer: `4.5`, `true` and `"42"` are not integers."""
    value = _field(raw, key)
    if type(value) is not int:
        raise TypeError(f"{key}: expected integer, got {_type_name(value)}")
    return value


def require_number(raw: Mapping[str, Any], key: str) -> int | float:
    """A finite JSON number (integer or decimal), not a boolean or a numeric string."""
    value = _field(raw, key)
    if type(value) is not int and type(value) is not float:
        raise TypeError(f"{key}: expected number, got {_type_name(value)}")
    if type(value) is float and not math.isfinite(value):
        raise ValueError(f"{key}: number out of range: {value}")
    return value


def optional_object(raw: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """A JSON object, or None when the field is absent or null."""
    value = _get(raw, key)
    if value is not None and type(value) is not dict:
        raise TypeError(f"{key}: expected object, got {_type_name(value)}")
    return value


def require_object(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A JSON object."""
    value = _field(raw, key)
    if type(value) is not dict:
        raise TypeError(f"{key}: expected object, got {_type_name(value)}")
    return value


def require_bool(raw: Mapping[str, Any], key: str) -> bool:
    """A JSON boolean (not 0/1 or "true")."""
    value = _field(raw, key)
    if type(value) is not bool:
        raise TypeError(f"{key}: expected boolean, got {_type_name(value)}")
    return value


def require_any(raw: Mapping[str, Any], key: str) -> Any:
    """Any JSON value, present (the field's converter decides what it accepts)."""
    return _field(raw, key)


def optional_any(raw: Mapping[str, Any], key: str) -> Any:
    """Any JSON value, or None when the field is absent or null."""
    return _get(raw, key)
