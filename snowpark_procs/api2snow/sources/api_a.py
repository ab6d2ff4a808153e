"""API A: OAuth2 client credentials, cursor pages, 100 requests a minute."""

from __future__ import annotations

from .declaration import AuthSpec, DeclaredSource, PaginationSpec, RequestSpec, SourceDeclaration
from .entities import EVENT_FIELDS, mapped


class ApiA(DeclaredSource):
    declaration = SourceDeclaration(
        name="api_a",
        title="API A",
        entity="events",
        auth=AuthSpec("oauth2_client_credentials", secret="api_a_client", scope="events:read"),
        request=RequestSpec(
            "/v1/events", since_param="updated_since", since_format="iso_z", page_size_param="limit"
        ),
        pagination=PaginationSpec("cursor", cursor_param="cursor", cursor_field="next_cursor"),
        records_path="data",
        id_field="id",
        version_field="updated_at",
        fields=mapped(
            EVENT_FIELDS,
            event_id={"wire": "id", "wire_type": "str"},
            event_type={"wire": "type", "convert": str.lower},
            camera_id={"wire": "camera_id", "wire_required": False},
            category={"wire": "category", "convert": str.lower},
            confidence={"wire": "confidence"},
            occurred_at={"wire": "occurred_at", "wire_type": "str"},
            updated_at={"wire": "updated_at", "wire_type": "str"},
            duration_ms={"wire": "duration_ms"},
            attributes={"wire": "attributes"},
        ),
        rate_limit_per_min=100,
        page_size=500,  # the largest the API allows: under its rate limit, records per request is the rate
        max_page_size=500,
        raw_table="RAW.API_A_EVENTS",
        clean_table="CLEAN.CLN_API_A_EVENTS",
        host_example="https://api-a.example.com",
    )
