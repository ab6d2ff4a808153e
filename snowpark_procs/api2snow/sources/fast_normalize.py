"""A declared source's normalise + validate, compiled into one function for the common record.

`DeclaredSource.normalize` reads each field through a reader (a strict wire-type check, then a convert), and
`transform.validate` then checks each target value against its CLEAN type. That is about a dozen Python
calls per field and record, and most of an ingest's time. From the declaration alone we know every field's
wire path, wire type, convert, kind and bounds, so one straight-line function can do both in a single pass:
a few inline tests per field, one dict built at the end.

It only ever *accepts*: it returns exactly the dict `normalize` returns, and only for a record that
`validate` accepts; for anything else (a missing field, a wrong type, a value out of range, a convert that
raises) it returns None and the record takes the general path, which rejects it with the same reason as
ever. So it decides nothing: strictness and reasons stay those of `wire.py` and `transform.py`, and
`tests/unit/test_transform.py` checks the two paths agree on every hostile record the tests know.

Two checks it can leave out because they hold by construction: a timestamp field without a convert is the
output of `to_utc_iso`, which is always in the normalised form that validation would re-check, and the
`source` field is the source's own name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..transform import _is_normalised_timestamp, _json_value_ok, text_to_utc_iso, to_utc_iso

if TYPE_CHECKING:
    from .declaration import Field, SourceDeclaration

__all__ = ["compile_fast_normalize"]

FastNormalize = Callable[[Any], "dict[str, Any] | None"]

# The wire types' tests, as `wire.py`'s readers apply them (a value failing one is left to the general path).
_WIRE_REFUSES = {
    "str": "type({v}) is not str",
    "int": "type({v}) is not int",
    "number": "not (type({v}) is int or (type({v}) is float and isfinite({v})))",
    "object": "type({v}) is not dict",
    "bool": "type({v}) is not bool",
    "any": "{v} is None",  # a null the general path hands to the convert, which decides
}
_DEFAULT_WIRE = {"str": "str", "int": "int", "float": "number", "bool": "bool", "object": "object"}
# The field kind whose type check a wire type's test already makes (number: an int or a finite float).
_WIRE_GIVES = {"str": "str", "int": "int", "number": "float", "bool": "bool", "object": "object"}


def compile_fast_normalize(d: SourceDeclaration) -> FastNormalize:
    """The declaration's one-pass normalise + validate, for a source whose `normalize` is the declared one
    (a field without a wire path is then always None, as `field_readers` makes it)."""
    env: dict[str, Any] = {
        "isfinite": math.isfinite,
        "to_utc_iso": to_utc_iso,
        "text_to_utc_iso": text_to_utc_iso,
        "is_normalised_timestamp": _is_normalised_timestamp,
        "json_value_ok": _json_value_ok,
        "SOURCE": d.name,
    }
    body: list[str] = []
    items: list[str] = []
    for number, field in enumerate(d.fields):
        if number == 1 and d.tag_source:  # where `field_readers` puts it
            items.append("'source': SOURCE")
        body.extend(_field_lines(field, f"v{number}", number, env))
        items.append(f"{field.name!r}: v{number}")
    source = "\n".join(
        [
            "def fast_normalize(raw):",
            "    if type(raw) is not dict:",
            "        return None",
            "    get = raw.get",
            "    try:",
            *(f"        {line}" for line in body),
            "    except Exception:  # the general path raises or rejects it, as ever",
            "        return None",
            f"    return {{{', '.join(items)}}}",
        ]
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<fast_normalize of sources/{d.name}.py>", "exec"), env, namespace)  # noqa: S102
    function: FastNormalize = namespace["fast_normalize"]
    function.__doc__ = source  # what was compiled, for anyone debugging it
    return function


def _field_lines(field: Field, v: str, number: int, env: dict[str, Any]) -> list[str]:
    """Statements that leave the field's normalised, validated value in `v`, or return None."""
    if field.wire is None:  # nothing on the wire: None, which validation accepts only when optional
        return [f"{v} = None"] if not field.required else ["return None"]
    must = field.wire_must_exist
    parents, key = field.wire_steps
    lines: list[str] = []
    if parents:
        lines.append("h = raw")
        for step in parents:  # require_object when the wire must carry it, optional_object otherwise
            if must:
                lines += [f"h = h.get({step!r})", "if type(h) is not dict:", "    return None"]
            else:
                lines += [
                    f"h = h.get({step!r}) if h is not None else None",
                    "if h is not None and type(h) is not dict:",
                    "    return None",
                ]
        lines.append(
            f"{v} = h.get({key!r}) if h is not None else None" if not must else f"{v} = h.get({key!r})"
        )
    else:
        lines.append(f"{v} = get({key!r})")
    wire_type = field.wire_type or _DEFAULT_WIRE.get(field.kind, "any")
    read = [f"if {_WIRE_REFUSES[wire_type].format(v=v)}:", "    return None"]  # None fails each of them
    if field.convert is not None:
        env[f"convert{number}"] = field.convert
        read.append(f"{v} = convert{number}({v})")
    elif field.kind == "timestamp":  # a str, or it raises
        read.append(f"{v} = {'text_to_utc_iso' if wire_type == 'str' else 'to_utc_iso'}({v})")
    if must:
        lines += read
    else:  # absent or null on the wire: None, without the convert
        lines += [f"if {v} is not None:", *(f"    {line}" for line in read)]
    typed = field.convert is None and _WIRE_GIVES.get(wire_type) == field.kind  # the wire test typed it
    check = _check(field, v, number, env, typed)
    may_be_none = not must or field.convert is not None
    if field.required and may_be_none:
        lines += [f"if {v} is None{' or ' + check if check else ''}:", "    return None"]
    elif check and may_be_none:
        lines += [f"if {v} is not None and ({check}):", "    return None"]
    elif check:
        lines += [f"if {check}:", "    return None"]
    return lines


def _check(field: Field, v: str, number: int, env: dict[str, Any], typed: bool) -> str:
    """The condition under which validation might refuse the (non-None) value ('' when it never does);
    `typed`: the wire test has already made sure the value has the kind's type."""
    kind = field.kind
    if kind == "str":
        if field.choices is None:
            return f"not {v}" if typed else f"type({v}) is not str or not {v}"
        env[f"choices{number}"] = field.choices
        return (
            f"{v} not in choices{number}" if typed else f"type({v}) is not str or {v} not in choices{number}"
        )
    if kind == "timestamp":
        if field.convert is None:
            return ""  # to_utc_iso's output: normalised by construction
        return f"type({v}) is not str or not is_normalised_timestamp({v})"
    low, high = field.spec().bounds
    env[f"low{number}"], env[f"high{number}"] = low, high
    in_bounds = f"low{number} <= {v} <= high{number}"  # NaN fails both comparisons
    if kind == "float":
        return (
            f"not ({in_bounds})"
            if typed
            else f"not ((type({v}) is float or type({v}) is int) and {in_bounds})"
        )
    if kind == "int":
        return f"not ({in_bounds})" if typed else f"type({v}) is not int or not ({in_bounds})"
    if kind == "bool":
        return "" if typed else f"type({v}) is not bool"
    if kind == "object":
        return f"not json_value_ok({v})" if typed else f"type({v}) is not dict or not json_value_ok({v})"
    raise ValueError(f"unknown field kind {kind!r} for {field.name}")  # check_declaration refuses it first
