"""API A: OAuth2 client credentials, cursor pages, 100 requests a minute."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests

from ..http.auth import Auth, BearerTokenAuth, OAuth2ClientCredentials
from ..http.paginate import CursorPaginator, PageRequest, Paginator
from ..platform import Platform
from ..settings import ConfigError, Settings
from ..transform import EVENT_SCHEMA, to_utc_iso
from .base import Source

SECRET_KEY = "api_a_client"  # the key in the procedure's SECRETS clause (snowflake.yml)


class ApiA(Source):
    name = "api_a"
    raw_table = "RAW.API_A_EVENTS"
    pipe = "RAW.API_A_EVENTS_PIPE"
    clean_table = "CLEAN.CLN_API_A_EVENTS"
    staging_view = "CLEAN.STG_EVENTS"
    schema = EVENT_SCHEMA
    id_field = "event_id"
    clean_key = "EVENT_ID"
    rate_limit_per_min = 100
    page_size = 100

    def auth(self, platform: Platform, settings: Settings, http: requests.Session) -> Auth:
        """A token Snowflake obtains (OAUTH2 secret, default) or client credentials used here (PASSWORD)."""
        mode = settings.get("api_a_auth", "snowflake_oauth")
        if mode == "snowflake_oauth":
            bearer = BearerTokenAuth(lambda: platform.oauth_access_token(SECRET_KEY))
            bearer.token()  # in the handler's thread, before page prefetch starts its own
            return bearer
        if mode != "client_credentials":
            raise ConfigError(f"api_a_auth must be client_credentials or snowflake_oauth, got {mode!r}")
        client_id, client_secret = platform.username_password(SECRET_KEY)
        return OAuth2ClientCredentials(
            token_url=f"{self.base_url(settings).rstrip('/')}/oauth/token",
            client_id=client_id,
            client_secret=client_secret,
            scope=settings.get("api_a_scope", "events:read"),
            method=settings.get("api_a_client_auth", "client_secret_basic"),
            http=http,
        )

    def first_request(self, since: datetime | None) -> PageRequest:
        params: dict[str, Any] = {"limit": self.page_size}
        if since is not None:
            params["updated_since"] = since.isoformat() + "Z"
        return PageRequest("GET", "/v1/events", params=params)

    def paginator(self) -> Paginator:
        return CursorPaginator(cursor_param="cursor", cursor_field="next_cursor")

    def parse_page(self, response: requests.Response) -> tuple[Any, list[dict[str, Any]]]:
        payload = response.json()
        records = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(records, list):
            raise ValueError("API A page has no 'data' list")
        return payload, records

    def normalize(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {
            "event_id": raw["id"],
            "source": self.name,
            "event_type": _lower(raw["type"]),
            "camera_id": raw.get("camera_id"),
            "category": _lower(raw["category"]),
            "confidence": raw["confidence"],
            "occurred_at": to_utc_iso(raw["occurred_at"]),
            "updated_at": to_utc_iso(raw["updated_at"]),
            "duration_ms": raw["duration_ms"],
            "attributes": raw.get("attributes"),
        }


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value
