"""API B: API key header, offset pages with a total, epoch-millisecond timestamps, 60 requests a minute."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import requests

from ..http.auth import ApiKeyAuth, Auth
from ..http.paginate import OffsetPaginator, PageRequest, Paginator
from ..platform import Platform
from ..settings import Settings
from ..transform import EVENT_SCHEMA, to_utc_iso
from ..wire import json_body, optional_str, require_int, require_number, require_str
from .base import Source

SECRET_KEY = "api_b_key"
_EPOCH = datetime(1970, 1, 1)  # watermarks are naive UTC


class ApiB(Source):
    name = "api_b"
    raw_table = "RAW.API_B_EVENTS"
    pipe = "RAW.API_B_EVENTS_PIPE"
    clean_table = "CLEAN.CLN_API_B_EVENTS"
    staging_view = "CLEAN.STG_EVENTS"
    schema = EVENT_SCHEMA
    id_field = "event_id"
    clean_key = "EVENT_ID"
    rate_limit_per_min = 60
    page_size = 100
    wire_id = "eventId"
    wire_version = "modifiedMs"

    def auth(self, platform: Platform, settings: Settings, http: requests.Session) -> Auth:
        return ApiKeyAuth("X-API-Key", platform.secret_string(SECRET_KEY))

    def first_request(self, since: datetime | None) -> PageRequest:
        params: dict[str, Any] = {}
        if since is not None:
            params["modified_since"] = (since - _EPOCH) // timedelta(milliseconds=1)
        return PageRequest("GET", "/api/v2/detections", params=params)

    def paginator(self, settings: Settings) -> Paginator:
        """Offset pages that re-read a few records of the previous page to survive data changing mid-run."""
        return OffsetPaginator(
            offset_param="offset",
            limit_param="limit",
            limit=self.page_size,
            total_field="total",
            overlap=min(settings.get_int("pagination_overlap_records"), self.page_size - 1),
            record_key=self.record_key,
        )

    def parse_page(self, response: requests.Response) -> tuple[Any, list[dict[str, Any]]]:
        payload = json_body(response.content)
        records = payload.get("items") if isinstance(payload, dict) else None
        if not isinstance(records, list):
            raise ValueError("API B page has no 'items' list")
        return payload, records

    def normalize(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Each field as the contract types it (wire.py rejects anything else); epoch ms to UTC."""
        label = optional_str(raw, "label")
        return {
            "event_id": f"b-{require_int(raw, 'eventId')}",
            "source": self.name,
            "event_type": require_str(raw, "eventKind").lower(),
            "camera_id": optional_str(raw, "cameraRef"),
            "category": label.lower() if label is not None else None,
            "confidence": require_number(raw, "score") / 100.0,
            "occurred_at": to_utc_iso(require_int(raw, "timestampMs")),
            "updated_at": to_utc_iso(require_int(raw, "modifiedMs")),
            "duration_ms": int(round(require_number(raw, "durationSec") * 1000)),
            "attributes": None,
        }
