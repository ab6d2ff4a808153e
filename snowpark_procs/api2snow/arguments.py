"""Checks of procedure arguments, made before settings are read or any state is touched.

Snowflake hands a handler SQL NULL as None and checks only an argument's type, not its range, so a
`CALL WAIT_FOR_LOAD(NULL)` or `REFRESH_PIPE('nope')` would otherwise fail somewhere inside the work (or,
worse, not fail). Each handler states its rules in one line with these helpers; a bad argument fails the
call with a one-line message naming the argument, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral
from typing import Any


class ArgumentError(ValueError):
    """A procedure argument is NULL, of the wrong type or outside what the procedure accepts."""


def _shown(value: Any) -> str:
    return "NULL" if value is None else repr(value)


def int_in_range(name: str, value: Any, low: int, high: int) -> int:
    """`value` as an int when it is an integer from `low` to `high` (NULL and booleans are refused)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or not low <= value <= high:
        raise ArgumentError(f"argument {name} must be an integer from {low} to {high}, got {_shown(value)}")
    return int(value)


def one_of(name: str, value: Any, allowed: Iterable[str]) -> str:
    """`value` when it is one of `allowed` (compared exactly: names are case-sensitive here)."""
    choices = sorted(allowed)
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(f"argument {name} must be one of {', '.join(choices)}, got {_shown(value)}")
    return value
