"""API C: a SOAP 1.1 camera/site directory behind HTTP Basic auth, read in full every run.

The directory is small and has no updated-since filter, so every run stages all of it; CLEAN's MERGE
keeps the latest version per camera. XML is built and parsed with the standard library.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

import requests

from ..http.auth import Auth, HttpBasicAuth
from ..http.paginate import PageNumberPaginator, PageRequest, Paginator
from ..platform import Platform
from ..settings import Settings
from ..transform import CAMERA_SCHEMA, to_utc_iso
from .base import Source

SECRET_KEY = "api_c_login"
NAMESPACE = "urn:api2snow:cameras"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ACTION = '"urn:api2snow:cameras#ListCameras"'


def list_cameras_envelope(page: int, page_size: int) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:c="{NAMESPACE}"><soap:Body>'
        f"<c:ListCameras><c:page>{int(page)}</c:page><c:pageSize>{int(page_size)}</c:pageSize></c:ListCameras>"
        f"</soap:Body></soap:Envelope>"
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_list_cameras(xml: bytes) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """({'totalPages', 'page'}, cameras as dicts of element text) from a ListCamerasResponse."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ValueError(f"API C answered with malformed XML: {exc}") from None
    response = next((el for el in root.iter() if _local(el.tag) == "ListCamerasResponse"), None)
    if response is None:
        raise ValueError("API C answer has no ListCamerasResponse element")
    payload: dict[str, Any] = {}
    cameras: list[dict[str, str]] = []
    for child in response:
        name = _local(child.tag)
        if name == "camera":
            cameras.append({_local(field.tag): (field.text or "") for field in child})
        elif name in ("totalPages", "page"):
            payload[name] = int(child.text or 0)
    return payload, cameras


class ApiC(Source):
    name = "api_c"
    raw_table = "RAW.API_C_CAMERAS"
    pipe = "RAW.API_C_CAMERAS_PIPE"
    clean_table = "CLEAN.DIM_CAMERAS"
    staging_view = "CLEAN.STG_CAMERAS"
    schema = CAMERA_SCHEMA
    id_field = "camera_id"
    clean_key = "CAMERA_ID"
    rate_limit_per_min = 60
    page_size = 100
    incremental = False
    wire_id = "cameraId"
    wire_version = "updatedAt"

    def auth(self, platform: Platform, settings: Settings, http: requests.Session) -> Auth:
        user, password = platform.username_password(SECRET_KEY)
        return HttpBasicAuth(user, password)

    def first_request(self, since: datetime | None) -> PageRequest:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION}
        return PageRequest("POST", "/soap/cameras", headers=headers)

    def paginator(self, settings: Settings) -> Paginator:
        return PageNumberPaginator(
            page_param=None,
            total_pages_getter=lambda payload: payload.get("totalPages"),
            body_factory=lambda page: list_cameras_envelope(page, self.page_size),
        )

    def parse_page(self, response: requests.Response) -> tuple[Any, list[dict[str, Any]]]:
        return parse_list_cameras(response.content)

    def normalize(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {
            "camera_id": raw["cameraId"],
            "site_id": raw["siteId"],
            "site_name": raw.get("siteName") or None,
            "city": raw.get("city") or None,
            "country": raw.get("country") or None,
            "timezone": raw.get("timezone") or None,
            "latitude": float(raw["latitude"]),
            "longitude": float(raw["longitude"]),
            "installed_at": to_utc_iso(raw["installedAt"]) if raw.get("installedAt") else None,
            "active": _xsd_bool(raw["active"]),
            "updated_at": to_utc_iso(raw["updatedAt"]),
        }


def _xsd_bool(text: str) -> bool:
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not an xsd:boolean: {text!r}")
