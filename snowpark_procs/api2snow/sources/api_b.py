"""API B: API key header, offset pages with a total, epoch-millisecond timestamps, 60 requests a minute."""

from __future__ import annotations

from .declaration import AuthSpec, DeclaredSource, PaginationSpec, RequestSpec, SourceDeclaration
from .entities import EVENT_FIELDS, mapped


def _seconds_to_ms(seconds: float) -> int:
    return int(round(seconds * 1000))


class ApiB(DeclaredSource):
    declaration = SourceDeclaration(
        name="api_b",
        title="API B",
        entity="events",
        auth=AuthSpec("api_key", secret="api_b_key", header="X-API-Key"),
        request=RequestSpec("/api/v2/detections", since_param="modified_since", since_format="epoch_ms"),
        # Offset pages re-read a few records of the previous page to survive data changing mid-run.
        pagination=PaginationSpec("offset", offset_param="offset", limit_param="limit", total_field="total"),
        records_path="items",
        id_field="eventId",
        version_field="modifiedMs",
        fields=mapped(
            EVENT_FIELDS,
            event_id={"wire": "eventId", "wire_type": "int", "convert": lambda v: f"b-{v}"},
            event_type={"wire": "eventKind", "convert": str.lower},
            camera_id={"wire": "cameraRef", "wire_required": False},
            category={"wire": "label", "wire_required": False, "convert": str.lower},
            confidence={"wire": "score", "convert": lambda v: v / 100.0},  # a percentage on the wire
            occurred_at={"wire": "timestampMs", "wire_type": "int"},
            updated_at={"wire": "modifiedMs", "wire_type": "int"},
            duration_ms={
                "wire": "durationSec",
                "wire_type": "number",
                "convert": lambda v: int(round(v * 1000)),
            },
            attributes={"wire": None},  # API B has none
        ),
        rate_limit_per_min=60,
        page_size=500,  # the largest the API allows: under its rate limit, records per request is the rate
        max_page_size=500,
        raw_table="RAW.API_B_EVENTS",
        clean_table="CLEAN.CLN_API_B_EVENTS",
        host_example="https://api-b.example.com",
    )
