"""The local warehouse runs a MERGE as Snowflake does: only target rows a source row can match are read.

(Its tables are attached with small row groups, which model Snowflake's per-load micro-partitions; the
pruning checked below is at that granularity.)

Snowflake's MERGE has no WHEN NOT MATCHED BY SOURCE, so a target row without a source match is never acted
on, and a predicate on the target in the ON clause prunes the target. fakesnow's MERGE is rewritten by
`local/warehouse.py` to read the target through a RIGHT JOIN: same result, and the bound reaches the scan.
"""

from __future__ import annotations

import importlib
import json

import pytest
import sqlglot

from api2snow_cli.local.warehouse import ROW_GROUP_SIZE, LocalWarehouse, _shared_instances

ROWS = 300_000


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    started = LocalWarehouse(tmp_path_factory.mktemp("merge-wh"), "MERGE_DB").start()
    started.sql("CREATE SCHEMA IF NOT EXISTS MERGE_DB.T")
    try:
        yield started
    finally:
        started.stop()


def _duck(warehouse: LocalWarehouse):
    return _shared_instances[str(warehouse.db_path)].duck_conn


def _reset(warehouse: LocalWarehouse) -> None:
    warehouse.sql(
        "CREATE OR REPLACE TABLE MERGE_DB.T.TARGET AS SELECT 'k-' || LPAD(seq4()::STRING, 8, '0') AS id, "
        f"0 AS v FROM TABLE(GENERATOR(ROWCOUNT => {ROWS}))"
    )


MERGE = (
    "MERGE INTO MERGE_DB.T.TARGET AS tgt USING (SELECT 'k-00299998' AS id, 1 AS v UNION ALL "
    "SELECT 'k-00299999', 1 UNION ALL SELECT 'k-00300000', 1) AS src "
    "ON tgt.id = src.id{bound} "
    "WHEN MATCHED THEN UPDATE SET tgt.v = src.v WHEN NOT MATCHED THEN INSERT (id, v) VALUES (src.id, src.v)"
)
BOUND = " AND tgt.id BETWEEN 'k-00299998' AND 'k-00300000'"


def test_a_bounded_merge_changes_what_an_unbounded_one_does(warehouse):
    outcomes = []
    for bound in ("", BOUND):
        _reset(warehouse)
        counts = warehouse.sql(MERGE.format(bound=bound))[0].as_dict()
        rows = warehouse.sql(
            "SELECT COUNT(*) AS n, SUM(v) AS s, COUNT(DISTINCT id) AS d FROM MERGE_DB.T.TARGET"
        )
        outcomes.append((counts, rows[0].as_dict()))
    assert outcomes[0] == outcomes[1]
    counts, table = outcomes[0]
    assert list(counts.values()) == [1, 2]  # inserted, updated: unmatched target rows are left alone
    assert table == {"N": ROWS + 1, "S": 3, "D": ROWS + 1}


def test_the_candidates_read_the_target_through_a_right_join_that_the_bound_prunes(warehouse, tmp_path):
    merge = importlib.import_module("fakesnow.transforms.merge")
    candidates = merge.merge(sqlglot.parse_one(MERGE.format(bound=BOUND), read="snowflake"))[0]
    text = candidates.sql(dialect="duckdb")
    assert "RIGHT OUTER JOIN" in text and "FULL" not in text
    assert "BETWEEN 'k-00299998' AND 'k-00300000'" in text

    _reset(warehouse)
    duck, profile = _duck(warehouse), tmp_path / "candidates.json"
    duck.execute("PRAGMA enable_profiling='json'")
    duck.execute(f"PRAGMA profiling_output='{profile}'")
    try:
        duck.execute(text.replace("CREATE OR REPLACE TEMPORARY TABLE merge_candidates AS ", "")).fetchall()
    finally:
        duck.execute("PRAGMA disable_profiling")
    scanned = json.loads(profile.read_text())["query"]["total_rows_scanned"]
    assert 0 < scanned <= ROW_GROUP_SIZE  # the target's scan skipped all but the bound's row group
