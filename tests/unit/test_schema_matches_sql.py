"""Ingest validation and the CLEAN layer agree: every field a source stages fits the column that holds it.

A value that validation accepts but the CLEAN cast or column cannot hold would load into RAW and then fail
the MERGE on every later run. So each FieldSpec's SQL type must be exactly the type sql/03_clean.sql gives
the column and the STG_ view's cast, and every CLEAN column must come from a validated field.
"""

from __future__ import annotations

import re

import pytest
from api2snow.sources import SOURCES
from api2snow.sources.entities import ANALYSED_ENTITY, SUMMARY_DAY_COLUMN
from api2snow.transform import sql_type_bounds

from api2snow_cli.project import Project

BOOKKEEPING_COLUMNS = {"BATCH_ID", "MERGED_AT", "SOURCE"}
DERIVED_COLUMNS = {SUMMARY_DAY_COLUMN.upper(): "DATE"}  # the stored day of an event (entities.SUMMARY_DAY_*)
_COLUMN = re.compile(r"^\s*(\w+)\s+([A-Z_]+(?:\(\s*\d+\s*(?:,\s*\d+\s*)?\))?)", re.MULTILINE)
_CAST = re.compile(r"payload:(\w+)::([A-Z_]+(?:\(\s*\d+\s*(?:,\s*\d+\s*)?\))?)\s+AS\s+(\w+)", re.IGNORECASE)


def canonical(sql_type: str) -> str:
    text = sql_type.upper().replace(" ", "")
    return {"NUMBER": "NUMBER(38,0)", "VARCHAR": "STRING", "TEXT": "STRING"}.get(text, text)


@pytest.fixture(scope="module")
def clean_sql() -> list[str]:
    project = Project.load()
    return [
        s for path in project.sql_files("sql") if path.name.startswith("03") for s in project.statements(path)
    ]


def table_columns(statements: list[str], table: str) -> dict[str, str]:
    name = table.split(".")[-1]
    ddl = next(s for s in statements if re.search(rf"CREATE TABLE IF NOT EXISTS \S+\.{name}\s*\(", s))
    body = ddl[ddl.index("(") + 1 : ddl.rindex(")")]
    return {m.group(1).upper(): canonical(m.group(2)) for m in _COLUMN.finditer(body)}


def view_casts(statements: list[str], view: str, raw_table: str) -> dict[str, str]:
    """Casts of the view's branch that reads `raw_table` (a UNION ALL view has one branch per source)."""
    name = view.split(".")[-1]
    ddl = next(s for s in statements if re.search(rf"CREATE OR REPLACE VIEW \S+\.{name} AS", s))
    branch = next(b for b in re.split(r"UNION ALL", ddl) if f"{raw_table.split('.')[-1]} AS" in b)
    return {m.group(3).upper(): canonical(m.group(2)) for m in _CAST.finditer(branch)}


@pytest.mark.parametrize("source", sorted(SOURCES.values(), key=lambda s: s.name), ids=lambda s: s.name)
def test_every_clean_column_is_a_validated_field_of_the_same_type(clean_sql, source):
    columns = table_columns(clean_sql, source.clean_table)
    casts = view_casts(clean_sql, source.staging_view, source.raw_table)
    fields = {spec.name.upper(): spec for spec in source.schema.fields}
    for column, column_type in columns.items():
        if column in BOOKKEEPING_COLUMNS:
            continue
        if column in DERIVED_COLUMNS:
            assert source.schema.name == ANALYSED_ENTITY and column_type == DERIVED_COLUMNS[column], column
            continue
        assert column in fields, f"{source.clean_table}.{column} is not a field of {source.schema.name}"
        spec = fields[column]
        assert canonical(spec.column_type) == column_type, f"{spec.name}: FieldSpec vs {source.clean_table}"
        assert casts[column] == column_type, f"{spec.name}: {source.staging_view} casts to {casts[column]}"


def test_integer_fields_fit_the_local_warehouse_too():
    """The local warehouse casts VARIANT numbers through 64-bit integers; NUMBER(18, 0) fits in both."""
    for source in SOURCES.values():
        for spec in source.schema.fields:
            if spec.kind == "int":
                assert sql_type_bounds(spec.column_type)[1] < 2**63, spec.name
