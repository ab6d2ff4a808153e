"""API C: a SOAP 1.1 camera/site directory behind HTTP Basic auth, read in full every run.

The directory is small and has no updated-since filter, so every run stages all of it; CLEAN's MERGE
keeps the latest version per camera. XML is built and parsed with the standard library.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

import requests

from ..http.paginate import PageNumberPaginator, PageRequest, Paginator
from ..settings import Settings
from ..transform import to_utc_iso
from .declaration import AuthSpec, DeclaredSource, PaginationSpec, RequestSpec, SourceDeclaration
from .entities import CAMERA_FIELDS, mapped

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


def _or_none(text: str) -> str | None:
    """XML has no null: an empty element is an absent value."""
    return text or None


class ApiC(DeclaredSource):
    """The declaration says what it can; SOAP's envelope, page numbers in the body and XML parsing are
    override hooks."""

    declaration = SourceDeclaration(
        name="api_c",
        title="API C",
        entity="cameras",
        auth=AuthSpec("basic", secret="api_c_login"),
        request=RequestSpec("/soap/cameras", method="POST"),
        pagination=PaginationSpec("custom"),
        records_path=None,
        id_field="cameraId",
        version_field="updatedAt",
        fields=mapped(
            CAMERA_FIELDS,
            camera_id={"wire": "cameraId"},
            site_id={"wire": "siteId"},
            site_name={"wire": "siteName", "convert": _or_none},
            city={"wire": "city", "convert": _or_none},
            country={"wire": "country", "convert": _or_none},
            timezone={"wire": "timezone", "convert": _or_none},
            latitude={"wire": "latitude", "wire_type": "str", "convert": float},
            longitude={"wire": "longitude", "wire_type": "str", "convert": float},
            installed_at={"wire": "installedAt", "convert": lambda v: to_utc_iso(v) if v else None},
            active={"wire": "active", "wire_type": "str", "convert": lambda v: _xsd_bool(v)},
            updated_at={"wire": "updatedAt", "wire_type": "str"},
        ),
        rate_limit_per_min=60,
        page_size=500,
        max_page_size=500,  # ListCameras' pageSize is 1..500 (docs/CONTRACTS.md)
        incremental=False,
        tag_source=False,
        raw_table="RAW.API_C_CAMERAS",
        clean_table="CLEAN.DIM_CAMERAS",
        host_example="https://api-c.example.com",
    )

    def first_request(self, since: datetime | None, page_size: int | None = None) -> PageRequest:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION}
        return PageRequest("POST", self.declaration.request.path, headers=headers)

    def paginator(self, settings: Settings) -> Paginator:
        page_size = self.page_size_for(settings)
        return PageNumberPaginator(
            page_param=None,
            total_pages_getter=lambda payload: payload.get("totalPages"),
            body_factory=lambda page: list_cameras_envelope(page, page_size),
        )

    def parse_page(self, response: requests.Response) -> tuple[Any, list[dict[str, Any]]]:
        return parse_list_cameras(response.content)


def _xsd_bool(text: str) -> bool:
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not an xsd:boolean: {text!r}")
