"""The validation schema of each entity across its sources, for tests that validate records of any source.

The ingest validates a record with its own source's schema (`source.schema`, where `source` allows only that
source's name); these allow every source of the entity.
"""

from __future__ import annotations

from api2snow.sources import SOURCES
from api2snow.transform import FieldSpec, RecordSchema


def entity_schema(entity: str) -> RecordSchema:
    """The validation schema of an entity across its sources (the `source` field allows each of them)."""
    sources = [s for s in SOURCES.values() if s.schema.name == entity]
    if not sources:
        raise ValueError(f"no source of entity {entity!r}")
    names = frozenset(s.name for s in sources)
    fields = tuple(
        FieldSpec("source", "str", choices=names) if f.name == "source" else f
        for f in sources[0].schema.fields
    )
    return RecordSchema(entity, fields)


EVENT_SCHEMA = entity_schema("events")
CAMERA_SCHEMA = entity_schema("cameras")
