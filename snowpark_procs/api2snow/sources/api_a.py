"""API A: OAuth2 client credentials, cursor pages, 100 requests a minute."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

import requests

from ..http.auth import Auth, BearerTokenAuth, OAuth2ClientCredentials
from ..http.paginate import CursorPaginator, PageRequest, Paginator
from ..platform import Platform
from ..settings import ConfigError, Settings
from ..transform import EVENT_SCHEMA, to_utc_iso
from ..wire import json_body, optional_object, optional_str, require_int, require_number, require_str
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
    wire_id = "id"
    wire_version = "updated_at"

    def auth(self, platform: Platform, settings: Settings, http: requests.Session) -> Auth:
        """A token Snowflake obtains (OAUTH2 secret, default) or client credentials used here (PASSWORD)."""
        mode = settings.get("api_a_auth")
        if mode == "snowflake_oauth":
            bearer = BearerTokenAuth(partial(platform.oauth_access_token, SECRET_KEY))
            bearer.token()  # in the handler's thread, before page prefetch starts its own
            return bearer
        if mode != "client_credentials":
            raise ConfigError(f"api_a_auth must be client_credentials or snowflake_oauth, got {mode!r}")
        client_id, client_secret = platform.username_password(SECRET_KEY)
        return OAuth2ClientCredentials(
            token_url=f"{self.base_url(settings).rstrip('/')}/oauth/token",
            client_id=client_id,
            client_secret=client_secret,
            scope=settings.get("api_a_scope"),
            method=settings.get("api_a_client_auth"),
            http=http,
        )

    def first_request(self, since: datetime | None) -> PageRequest:
        params: dict[str, Any] = {"limit": self.page_size}
        if since is not None:
            params["updated_since"] = since.isoformat() + "Z"
        return PageRequest("GET", "/v1/events", params=params)

    def paginator(self, settings: Settings) -> Paginator:
        return CursorPaginator(cursor_param="cursor", cursor_field="next_cursor")

    def parse_page(self, response: requests.Response) -> tuple[Any, list[dict[str, Any]]]:
        payload = json_body(response.content)
        records = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(records, list):
            raise ValueError("API A page has no 'data' list")
        return payload, records

    def normalize(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Each field as the contract types it (wire.py rejects anything else); timestamps to UTC."""
        return {
            "event_id": require_str(raw, "id"),
            "source": self.name,
            "event_type": require_str(raw, "type").lower(),
            "camera_id": optional_str(raw, "camera_id"),
            "category": require_str(raw, "category").lower(),
            "confidence": require_number(raw, "confidence"),
            "occurred_at": to_utc_iso(require_str(raw, "occurred_at")),
            "updated_at": to_utc_iso(require_str(raw, "updated_at")),
            "duration_ms": require_int(raw, "duration_ms"),
            "attributes": optional_object(raw, "attributes"),
        }
