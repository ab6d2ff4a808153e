"""Bound a lookup of many keys by a few key ranges, so the warehouse prunes the table it looks them up in.

A MERGE of an hour's records into CLEAN only ever matches CLEAN rows whose key is one of the records' keys.
Every such row lies in one of the ranges below, so `key BETWEEN lo AND hi OR ...` added to the MERGE's ON
clause changes nothing about what it matches: it is exact by construction. What it buys is pruning: both
Snowflake (micro-partition min/max) and DuckDB (row-group and vector zone maps) skip storage whose key
range misses every range. That pays off when keys grow with time (sequential ids, ULIDs, UUIDv7, snowflake
ids): new records then fall in a few narrow ranges at the table's end. With random keys (UUIDv4) the ranges
cover the key space and the lookup reads the key column in full, as it would without them.

The ranges split the sorted keys where neighbours share the shortest prefix: `b-999999` and `b-1000000`
share only `b-`, so a run of ids that changes length is split there, not lumped into one range spanning
every id between them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

MAX_RANGES = 64
# Past this many keys the ranges are not worth the round trip: the lookup is then large next to any table
# an hourly run meets, and the keys are not read into the procedure's memory.
MAX_KEYS = 200_000


def key_ranges(keys: Iterable[str], max_ranges: int = MAX_RANGES) -> list[tuple[str, str]]:
    """At most `max_ranges` inclusive (low, high) ranges covering every key, in key order.

    The splits fall between the neighbours that share the shortest common prefix; among equals, where the
    first differing characters are furthest apart.
    """
    ordered = sorted(set(keys))
    if not ordered:
        return []
    gaps = sorted(
        range(len(ordered) - 1),
        key=lambda i: (_shared_prefix(ordered[i], ordered[i + 1]), -_step(ordered[i], ordered[i + 1]), i),
    )
    cuts = sorted(gaps[: max(0, max_ranges - 1)])
    ranges, start = [], 0
    for cut in cuts:
        ranges.append((ordered[start], ordered[cut]))
        start = cut + 1
    ranges.append((ordered[start], ordered[-1]))
    return ranges


def range_predicate(column: str, ranges: list[tuple[str, str]]) -> str:
    """`(column BETWEEN 'lo' AND 'hi' OR ...)`; TRUE (no bound) when there are no ranges, or when a bound
    cannot be written as a literal both Snowflake and the local warehouse read the same way.

    The bounds are literals, not bound parameters: the statement is a MERGE, which the local warehouse runs
    as several statements, each repeating the ON clause. Keys are API data, so a key that is not plainly
    quotable (see `literal`) drops the bound rather than risk a different reading.
    """
    literals = [(literal(low), literal(high)) for low, high in ranges]
    if not literals or any(low is None or high is None for low, high in literals):
        return "TRUE"
    return "(" + " OR ".join(f"{column} BETWEEN {low} AND {high}" for low, high in literals) + ")"


def literal(value: str) -> str | None:
    """`value` as a SQL string literal read identically by Snowflake and DuckDB, or None.

    Snowflake treats a backslash in '...' as an escape and DuckDB does not, so a value with a backslash or a
    quote is dollar-quoted ($$...$$, no escapes in either); one containing `$` as well is not written.
    """
    if "'" not in value and "\\" not in value:
        return f"'{value}'"
    if "$" not in value:
        return f"$${value}$$"
    return None


def _shared_prefix(left: str, right: str) -> int:
    return len(os.path.commonprefix([left, right]))


def _step(left: str, right: str) -> int:
    """How far apart the first differing characters are (the longer string's extra character counts)."""
    at = _shared_prefix(left, right)
    first = ord(left[at]) if at < len(left) else 0
    second = ord(right[at]) if at < len(right) else 0
    return abs(second - first)
