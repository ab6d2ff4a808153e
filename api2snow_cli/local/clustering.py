"""Snowflake's automatic clustering, locally.

Snowflake keeps a table declared with CLUSTER BY in key order with a background service: after a large MERGE
(a backfill, a rebuild) has written its rows in the join's order, the service rewrites the table so that its
micro-partitions cover narrow key ranges again, and pruning on the key works. fakesnow drops CLUSTER BY from
CREATE TABLE and rejects ALTER TABLE ... CLUSTER BY, so the local stack records the keys from the statements
of sql/ and, between graph runs, rewrites a declared table in key order once its rows have drifted out of it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_CLUSTER_BY = re.compile(
    r"^\s*(CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS|ALTER\s+TABLE)\s+([\w.]+)\b.*?\bCLUSTER\s+BY\s*\(([^)]*)\)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
# The clustering depth (how many of the table's storage segments cover a key value, on average, as
# SYSTEM$CLUSTERING_DEPTH reports it for micro-partitions) above which a table is rewritten: a table grown
# hour by hour stays near 1; one filled by a single large MERGE has every segment covering most keys.
MAX_DEPTH = 3.0


def clustering_key(statement: str) -> tuple[str, list[str], bool] | None:
    """(table, key columns, whether the statement is only the ALTER that declares them), or None."""
    match = _CLUSTER_BY.match(statement)
    if match is None:
        return None
    kind, table, columns = match.groups()
    return table.upper(), [c.strip().upper() for c in columns.split(",")], kind.upper().startswith("ALTER")


class AutomaticClustering:
    """The declared clustering keys, and the local stand-in for Snowflake's reclustering service."""

    def __init__(self, connection: Callable[[], Any]) -> None:
        self._connection = connection  # the warehouse's DuckDB connection (local stand-in only)
        self.keys: dict[str, list[str]] = {}

    def declare(self, table: str, columns: list[str]) -> None:
        self.keys[table] = columns

    def depth(self, table: str) -> float:
        """The table's clustering depth on its first key column: for each storage segment, how many segments'
        min/max ranges overlap its own, averaged (about 1 for a table in key order; 0 for an empty one)."""
        column = self.keys[table][0]
        rows = (
            self._connection()
            .cursor()
            .execute("SELECT stats FROM pragma_storage_info(?) WHERE upper(column_name) = ?", [table, column])
            .fetchall()
        )
        ranges = [(s["min"], s["max"]) for (s,) in rows if isinstance(s, dict) and "min" in s and "max" in s]
        if not ranges:
            return 0.0
        # a segment counts itself, and each other whose range overlaps its own by more than a boundary value
        overlaps = sum(
            1 + sum(1 for k, (lo, hi) in enumerate(ranges) if k != n and lo < high and low < hi)
            for n, (low, high) in enumerate(ranges)
        )
        return overlaps / len(ranges)

    def maintain(self) -> list[str]:
        """Rewrite in key order each declared table deeper than MAX_DEPTH; the tables rewritten."""
        rewritten = []
        for table in self.keys:
            if self.depth(table) > MAX_DEPTH:
                self._rewrite(table)
                rewritten.append(table)
        return rewritten

    def _rewrite(self, table: str) -> None:
        """The rows in key order, in one transaction (the table keeps its columns and constraints)."""
        key = ", ".join(self.keys[table])
        cursor = self._connection().cursor()
        cursor.execute("BEGIN TRANSACTION")
        try:
            cursor.execute(f"CREATE TEMP TABLE _api2snow_recluster AS SELECT * FROM {table} ORDER BY {key}")
            cursor.execute(f"DELETE FROM {table}")
            cursor.execute(f"INSERT INTO {table} SELECT * FROM _api2snow_recluster")
            cursor.execute("DROP TABLE _api2snow_recluster")
            cursor.execute("COMMIT")
        except Exception:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute(f"CHECKPOINT {table.split('.')[0]}")  # drops the old segments from storage
        log.info("reclustered %s by (%s), as Snowflake's automatic clustering would", table, key)
