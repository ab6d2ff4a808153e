"""Compact JSON serialisation for JSON-lines staging files.

orjson is used when the procedure's environment has it (the ingest procedures get it from the PyPI artifact
repository: snowflake.yml, mixin pypi_packages; several times faster per record); otherwise the
standard library produces equivalent output. Both paths emit compact UTF-8 JSON (no ASCII escaping) and
turn non-finite floats into ``null`` so that every staged line is valid JSON for ``COPY``/Snowpipe.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

try:  # optional fast path; the procedure must work without it
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = ["dumps", "dumps_line_strict", "dumps_lines", "dumps_safe", "dumps_strict"]

# One encoder for the common case: json.dumps with non-default options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _not_json(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# The C encoder _ENCODER.encode builds anew on every call, made once: per record that halves the cost of the
# standard library path. No circular-reference markers: a staged record is parsed JSON, validated to at most
# 64 levels, so it cannot contain itself. Same options as _ENCODER (compact, UTF-8 text, no NaN).
_C_ENCODE = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    if json.encoder.c_make_encoder is not None  # type: ignore[attr-defined]
    else None
)
_APPEND_NEWLINE = getattr(_orjson, "OPT_APPEND_NEWLINE", 0)


def dumps(obj: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Serialise ``obj`` to compact UTF-8 JSON bytes (no trailing newline).

    ``default`` is called for objects neither encoder knows (as in ``json.dumps``). Values orjson refuses
    (integers beyond 64 bits, non-string dict keys) fall back to the standard library instead of failing.
    """
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, default=default)
        except TypeError:  # orjson.JSONEncodeError subclasses TypeError
            pass
    return _stdlib_dumps(obj, default)


def dumps_strict(obj: Any) -> bytes:
    """Compact UTF-8 JSON of a staged record, refusing what the warehouse could not store as sent.

    Raises UnicodeEncodeError for text that is not valid Unicode (unpaired surrogates) instead of replacing
    it: the caller rejects that one record with a reason. NaN and infinity raise ValueError on the standard
    library path (orjson would write null); validation rejects them before a record is encoded.
    """
    if _orjson is not None:
        try:
            return _orjson.dumps(obj)
        except TypeError:  # surrogates, integers beyond 64 bits: the standard library decides below
            pass
    return _ENCODER.encode(obj).encode("utf-8")


def dumps_line_strict(obj: Any) -> bytes:
    """``dumps_strict(obj) + b"\\n"``, as cheaply as each encoder allows: it runs once per staged record."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, option=_APPEND_NEWLINE)
        except TypeError:  # surrogates, integers beyond 64 bits: the standard library decides below
            pass
    if _C_ENCODE is not None:
        return ("".join(_C_ENCODE(obj, 0)) + "\n").encode("utf-8")
    return _ENCODER.encode(obj).encode("utf-8") + b"\n"


def dumps_safe(obj: Any) -> bytes:
    """JSON that never fails, for reject files: unencodable text is escaped, non-finite numbers quoted.

    A reject must be written whatever its content (that is why it is a reject), and its line must load.
    """
    try:
        return dumps_strict(obj)
    except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
        return _stdlib_dumps(_printable(obj), default=repr)


def _printable(obj: Any, depth: int = 0) -> Any:
    """Copy of ``obj`` whose strings encode as UTF-8 and whose numbers are JSON numbers or strings."""
    if depth > 64:
        return repr(obj)[:200]
    if isinstance(obj, str):
        return obj.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {_printable(str(k), depth + 1): _printable(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_printable(v, depth + 1) for v in obj]
    return obj


def dumps_lines(objs: list[Any]) -> bytes:
    """Newline-terminated JSON lines of ``objs`` in one call (the per-object function overhead adds up)."""
    if _orjson is not None:
        try:
            return b"\n".join(map(_orjson.dumps, objs)) + b"\n"
        except TypeError:
            pass
    else:
        try:
            return ("\n".join(map(_ENCODER.encode, objs)) + "\n").encode("utf-8")
        except ValueError:  # NaN/Infinity somewhere: the careful per-object path below handles it
            pass
    return b"".join(dumps(obj) + b"\n" for obj in objs)


def _stdlib_dumps(obj: Any, default: Callable[[Any], Any] | None) -> bytes:
    try:
        if default is None:
            return _ENCODER.encode(obj).encode("utf-8")
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=default)
    except ValueError as exc:
        if "Out of range float" not in str(exc):  # e.g. circular reference: a real error
            raise
        # NaN/Infinity are not JSON; mirror orjson (null) rather than emit a line COPY would reject.
        text = json.dumps(
            _finite(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=default
        )
    return text.encode("utf-8")


def _finite(obj: Any) -> Any:
    """Copy of ``obj`` with non-finite floats replaced by None (only used on the rare slow path)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
