"""API D: a static bearer token, numbered pages walked by their `Link: rel="next"` header, detections
nested under `result.detections` with some of their fields one object further down, 120 requests a minute."""

from __future__ import annotations

from .declaration import AuthSpec, DeclaredSource, PaginationSpec, RequestSpec, SourceDeclaration
from .entities import EVENT_FIELDS, mapped


class ApiD(DeclaredSource):
    declaration = SourceDeclaration(
        name="api_d",
        title="API D",
        entity="events",
        auth=AuthSpec("bearer", secret="api_d_token"),
        # The first request names page 1 and its size; later pages are the Link header's next URL.
        request=RequestSpec(
            "/v3/detections",
            params={"page": 1},
            since_param="updated_after",
            since_format="iso_z",
            page_size_param="per_page",
        ),
        pagination=PaginationSpec("link_header"),
        records_path="result.detections",
        id_field="uid",
        version_field="last_modified",
        fields=mapped(
            EVENT_FIELDS,
            event_id={"wire": "uid", "wire_type": "str"},
            event_type={"wire": "kind", "wire_type": "str", "convert": str.lower},
            camera_id={"wire": "device.camera", "wire_type": "str"},
            category={"wire": "detection.label", "wire_type": "str", "convert": str.lower},
            confidence={"wire": "detection.score", "wire_type": "number"},
            occurred_at={"wire": "observed_at", "wire_type": "str"},
            updated_at={"wire": "last_modified", "wire_type": "str"},
            duration_ms={"wire": "detection.duration_ms", "wire_type": "int"},
            attributes={"wire": "context"},
        ),
        rate_limit_per_min=120,
        page_size=100,
        max_page_size=100,
        host_example="https://api-d.example.com",
    )
