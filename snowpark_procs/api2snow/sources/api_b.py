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

    def auth(self, platform: Platform, settings: Settings, http: requests.Session) -> Auth:
        return ApiKeyAuth("X-API-Key", platform.secret_string(SECRET_KEY))

    def first_request(self, since: datetime | None) -> PageRequest:
        params: dict[str, Any] = {}
        if since is not None:
            params["modified_since"] = (since - _EPOCH) // timedelta(milliseconds=1)
        return PageRequest("GET", "/api/v2/detections", params=params)

    def paginator(self) -> Paginator:
        return OffsetPaginator(
            offset_param="offset", limit_param="limit", limit=self.page_size, total_field="total"
        )

    def parse_page(self, response: requests.Response) -> tuple[Any, list[dict[str, Any]]]:
        payload = response.json()
        records = payload.get("items") if isinstance(payload, dict) else None
        if not isinstance(records, list):
            raise ValueError("API B page has no 'items' list")
        return payload, records

    def normalize(self, raw: dict[str, Any]) -> dict[str, Any]:
        score = raw["score"]
        return {
            "event_id": f"b-{int(raw['eventId'])}",
            "source": self.name,
            "event_type": str(raw["eventKind"]).lower(),
            "camera_id": raw.get("cameraRef"),
            "category": str(raw["label"]).lower() if raw.get("label") is not None else None,
            "confidence": score / 100.0 if isinstance(score, int | float) else score,
            "occurred_at": to_utc_iso(raw["timestampMs"]),
            "updated_at": to_utc_iso(raw["modifiedMs"]),
            "duration_ms": int(round(float(raw["durationSec"]) * 1000)),
            "attributes": None,
        }
