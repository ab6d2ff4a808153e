"""Each source maps its own wire shape onto the one normalised model, and builds its first request."""

from __future__ import annotations

from datetime import datetime

import pytest
from api2snow.sources import get_source
from api2snow.sources.api_c import list_cameras_envelope, parse_list_cameras
from api2snow.transform import validate

from tests.unit.entity_schemas import EVENT_SCHEMA


def test_api_a_normalises_offsets_to_utc_and_lowercases():
    record = get_source("api_a").normalize(
        {
            "id": "a-00000042",
            "type": "Detection",
            "camera_id": "cam-007",
            "category": "Person",
            "confidence": 0.87,
            "occurred_at": "2026-11-26T09:59:58.123+02:00",
            "updated_at": "2026-11-26T08:00:01Z",
            "duration_ms": 1200,
            "attributes": {"zone": "entrance"},
        }
    )
    assert record["occurred_at"] == "2026-11-26T07:59:58.123000"
    assert (record["event_type"], record["category"]) == ("detection", "person")
    assert validate(record, EVENT_SCHEMA) is None


def test_api_b_maps_field_names_epoch_ms_and_percent_scores():
    record = get_source("api_b").normalize(
        {
            "eventId": 42,
            "eventKind": "LINE_CROSSING",
            "cameraRef": "cam-003",
            "label": "Vehicle",
            "score": 87,
            "timestampMs": 1764150000000,
            "modifiedMs": 1764150100000,
            "durationSec": 1.25,
        }
    )
    assert record["event_id"] == "b-42"
    assert record["confidence"] == pytest.approx(0.87)
    assert record["duration_ms"] == 1250
    assert record["occurred_at"] == "2025-11-26T09:40:00.000000"
    assert validate(record, EVENT_SCHEMA) is None


def test_api_b_missing_camera_fails_validation_with_a_reason():
    record = get_source("api_b").normalize(
        {
            "eventId": 1,
            "eventKind": "MOTION",
            "label": "Animal",
            "score": 50,
            "timestampMs": 1764150000000,
            "modifiedMs": 1764150000001,
            "durationSec": 0,
        }
    )
    assert validate(record, EVENT_SCHEMA) == "missing required field camera_id"


def test_incremental_first_requests_carry_the_watermark():
    since = datetime(2026, 11, 26, 8, 0, 1, 5000)
    assert get_source("api_a").first_request(since).params["updated_since"] == "2026-11-26T08:00:01.005000Z"
    assert get_source("api_b").first_request(since).params["modified_since"] == 1795680001005
    assert get_source("api_b").first_request(None).params == {}


def test_soap_envelope_and_response_parse():
    assert "<c:page>3</c:page><c:pageSize>100</c:pageSize>" in list_cameras_envelope(3, 100)
    payload, cameras = parse_list_cameras(b"""<?xml version="1.0"?>
        <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:c="urn:api2snow:cameras">
        <soap:Body><c:ListCamerasResponse><c:totalPages>2</c:totalPages><c:page>1</c:page>
        <c:camera><c:cameraId>cam-001</c:cameraId><c:siteId>site-01</c:siteId><c:latitude>52.5</c:latitude>
        <c:longitude>13.4</c:longitude><c:active>true</c:active><c:updatedAt>2026-11-26T08:00:00Z</c:updatedAt>
        </c:camera></c:ListCamerasResponse></soap:Body></soap:Envelope>""")
    assert payload == {"totalPages": 2, "page": 1}
    camera = get_source("api_c").normalize(cameras[0])
    assert (camera["camera_id"], camera["active"], camera["latitude"]) == ("cam-001", True, 52.5)


def test_malformed_soap_is_a_value_error():
    with pytest.raises(ValueError, match="malformed XML"):
        parse_list_cameras(b"<soap:Envelope")


def test_unknown_source_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown source 'api_z'; expected one of api_a, api_b, api_c"):
        get_source("api_z")


class _Platform:
    def oauth_access_token(self, key: str) -> str:
        assert key == "api_a_client"
        return "token-from-snowflake"

    def username_password(self, key: str) -> tuple[str, str]:
        return "client", "secret"


def _settings(**values: str):
    from api2snow.settings import Settings

    return Settings(database="DB", values={"api_a_base_url": "http://a.example", **values})


def test_api_a_uses_the_token_snowflake_obtains_by_default():
    auth = get_source("api_a").auth(_Platform(), _settings(), http=None)
    headers: dict[str, str] = {}
    auth.apply(headers, {})
    assert headers["Authorization"] == "Bearer token-from-snowflake"


def test_api_a_can_exchange_client_credentials_itself():
    from api2snow.http.auth import OAuth2ClientCredentials

    auth = get_source("api_a").auth(_Platform(), _settings(api_a_auth="client_credentials"), http=None)
    assert isinstance(auth, OAuth2ClientCredentials)
    assert auth.token_url == "http://a.example/oauth/token"
    assert (auth.client_id, auth.scope) == ("client", "events:read")


def test_api_a_rejects_an_unknown_auth_mode():
    from api2snow.settings import ConfigError

    with pytest.raises(ConfigError, match="api_a_auth must be client_credentials or snowflake_oauth"):
        get_source("api_a").auth(_Platform(), _settings(api_a_auth="magic"), http=None)


def test_a_subclass_of_a_declared_source_keeps_its_own_overrides():
    base = type(get_source("api_b"))
    smaller = type("SmallPages", (base,), {"page_size": 7})()
    assert (smaller.page_size, smaller.first_request(None).params, smaller.name) == (7, {}, "api_b")
    assert base.page_size == 500


def test_each_source_asks_for_the_largest_page_its_api_allows_and_a_setting_lowers_it():
    api_a, api_b, api_c = get_source("api_a"), get_source("api_b"), get_source("api_c")
    assert [s.page_size for s in (api_a, api_b, api_c)] == [500, 500, 500]
    assert api_a.first_request(None, api_a.page_size_for(_settings())).params == {"limit": 500}
    lowered = _settings(api_a_page_size="50", api_b_page_size="40", api_c_page_size="30")
    assert api_a.first_request(None, api_a.page_size_for(lowered)).params == {"limit": 50}
    offset = api_b.paginator(lowered)
    assert (offset.limit, offset.overlap) == (40, 5)
    assert "<c:pageSize>30</c:pageSize>" in api_c.paginator(lowered).body_factory(1)
    assert api_b.paginator(_settings(api_b_page_size="3")).overlap == 2  # below the page, always
