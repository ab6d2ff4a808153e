"""The record models CLEAN and ANALYTICS know, each declared once: target fields, types and constraints.

Sources of one entity share its CLEAN column types (their staging rows are one UNION ALL view), so a
source declares only where each field comes from on its wire (`mapped`). A source of a new kind of record
declares its own `Field`s in full instead. docs/CONTRACTS.md describes the normalised shapes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .declaration import DeclarationError, Field

EVENT_FIELDS = (
    Field("event_id", "str"),
    Field("event_type", "str"),
    Field("camera_id", "str"),
    Field("category", "str"),
    Field("confidence", "float", min_value=0.0, max_value=1.0),
    Field("occurred_at", "timestamp"),
    Field("updated_at", "timestamp"),
    Field("duration_ms", "int", min_value=0, sql_type="NUMBER(18,0)"),
    Field("attributes", "object", required=False),
)

# The entity ANALYTICS and the data-quality checks read (VW_EVENTS is the UNION ALL of its CLEAN tables).
ANALYSED_ENTITY = "events"
# The field whose UTC day keys ANL_DAILY_SUMMARY: a record that changes it moves between two summary days.
# Its day is stored in CLEAN as a column of its own (SUMMARY_DAY_COLUMN), so that a filter on the day reaches
# the CLEAN scans beneath the views' GROUP BY and prunes them (a filter on an expression does not).
SUMMARY_DAY_FIELD = "occurred_at"
SUMMARY_DAY_COLUMN = "event_date"
# Values the DQ checks accept (warn-severity checks `accepted_values_<field>`, hourly and in full).
ACCEPTED_VALUES = {
    "category": ("person", "vehicle", "bicycle", "animal", "package"),
    "event_type": ("detection", "motion", "line_crossing", "tamper"),
}


def bad_value_counts(alias: str = "") -> list[str]:
    """`COUNT_IF(<field> NOT IN (...)) AS bad_<field>` per ACCEPTED_VALUES field: what the hourly and the
    full-history DQ checks count (`alias.` before each column when given)."""
    prefix = f"{alias}." if alias else ""
    counts = []
    for field, values in ACCEPTED_VALUES.items():
        accepted = ", ".join(f"'{value}'" for value in values)
        counts.append(f"COUNT_IF({prefix}{field} NOT IN ({accepted})) AS bad_{field}")
    return counts


CAMERA_FIELDS = (
    Field("camera_id", "str"),
    Field("site_id", "str"),
    Field("site_name", "str", required=False),
    Field("city", "str", required=False),
    Field("country", "str", required=False),
    Field("timezone", "str", required=False),
    Field("latitude", "float", min_value=-90.0, max_value=90.0),
    Field("longitude", "float", min_value=-180.0, max_value=180.0),
    Field("installed_at", "timestamp", required=False),
    Field("active", "bool"),
    Field("updated_at", "timestamp"),
)
# The camera columns ANL_DAILY_SUMMARY depends on (VW_DAILY_SUMMARY's SITE_COUNT): a camera that appears or
# changes one of them changes the summary of every day its events fall on.
SUMMARY_CAMERA_COLUMNS = ("site_id",)

ENTITY_FIELDS = {"events": EVENT_FIELDS, "cameras": CAMERA_FIELDS}


def mapped(fields: tuple[Field, ...], **wire: dict[str, Any]) -> tuple[Field, ...]:
    """The entity's fields with each one's wire side (`wire`, `wire_type`, `convert`, ...) filled in.
    Every field must be mapped, or left to the source's `normalize` hook with `{"wire": None}`."""
    names = [f.name for f in fields]
    unknown = sorted(set(wire) - set(names))
    if unknown:
        raise DeclarationError(f"no field {unknown[0]!r} in this entity; its fields are {', '.join(names)}")
    missing = [name for name in names if name not in wire]
    if missing:
        raise DeclarationError(f"field {missing[0]!r} is not mapped to the wire")
    return tuple(dataclasses.replace(f, **wire[f.name]) for f in fields)
