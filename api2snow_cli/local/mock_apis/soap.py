"""SOAP 1.1 pieces of API C: the document/literal WSDL, envelopes, faults and request parsing (stdlib)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .dataset import iso_z, to_ms

TNS = "urn:api2snow:cameras"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
SOAP_ACTION = "urn:api2snow:cameras#ListCameras"
CONTENT_TYPE = "text/xml; charset=utf-8"

# Element order of tns:Camera, with its XML Schema type.
CAMERA_FIELDS = (
    ("cameraId", "xsd:string"),
    ("siteId", "xsd:string"),
    ("siteName", "xsd:string"),
    ("city", "xsd:string"),
    ("country", "xsd:string"),
    ("timezone", "xsd:string"),
    ("latitude", "xsd:decimal"),
    ("longitude", "xsd:decimal"),
    ("installedAt", "xsd:dateTime"),
    ("active", "xsd:boolean"),
    ("updatedAt", "xsd:dateTime"),
)

_WSDL = """<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions name="CameraDirectory"
    targetNamespace="urn:api2snow:cameras"
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="urn:api2snow:cameras">
  <wsdl:types>
    <xsd:schema targetNamespace="urn:api2snow:cameras" elementFormDefault="qualified">
      <xsd:complexType name="Camera">
        <xsd:sequence>
{camera_elements}
        </xsd:sequence>
      </xsd:complexType>
      <xsd:element name="ListCameras">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="page" type="xsd:int"/>
            <xsd:element name="pageSize" type="xsd:int"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="ListCamerasResponse">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="totalPages" type="xsd:int"/>
            <xsd:element name="page" type="xsd:int"/>
            <xsd:element name="camera" type="tns:Camera" minOccurs="0" maxOccurs="unbounded"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </wsdl:types>
  <wsdl:message name="ListCamerasRequest">
    <wsdl:part name="parameters" element="tns:ListCameras"/>
  </wsdl:message>
  <wsdl:message name="ListCamerasResponse">
    <wsdl:part name="parameters" element="tns:ListCamerasResponse"/>
  </wsdl:message>
  <wsdl:portType name="CameraDirectoryPortType">
    <wsdl:operation name="ListCameras">
      <wsdl:input message="tns:ListCamerasRequest"/>
      <wsdl:output message="tns:ListCamerasResponse"/>
    </wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="CameraDirectoryBinding" type="tns:CameraDirectoryPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="ListCameras">
      <soap:operation soapAction="urn:api2snow:cameras#ListCameras" style="document"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="CameraDirectoryService">
    <wsdl:port name="CameraDirectoryPort" binding="tns:CameraDirectoryBinding">
      <soap:address location={location}/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""


class SoapFault(Exception):
    """A fault to answer with (always HTTP 500); ``code`` is ``Client``, ``Server`` or ``VersionMismatch``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def wsdl(location: str) -> bytes:
    """The WSDL with the service address set to ``location``."""
    elements = "\n".join(
        f'          <xsd:element name="{name}" type="{xsd_type}"/>' for name, xsd_type in CAMERA_FIELDS
    )
    return _WSDL.format(camera_elements=elements, location=quoteattr(location)).encode("utf-8")


def envelope(body_xml: str) -> bytes:
    """A SOAP 1.1 envelope around already-serialised body content."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>{body_xml}</soap:Body></soap:Envelope>'
    ).encode()


def fault_envelope(code: str, message: str) -> bytes:
    """A SOAP 1.1 Fault (``faultcode`` in the envelope namespace, as the spec requires)."""
    return envelope(
        f"<soap:Fault><faultcode>soap:{escape(code)}</faultcode>"
        f"<faultstring>{escape(message)}</faultstring></soap:Fault>"
    )


def xml_value(value: Any) -> str:
    """Lexical XML Schema form of a camera field value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso_z(to_ms(value))
    if isinstance(value, Decimal):
        return format(value, "f")
    return escape(str(value))


def list_cameras_response(total_pages: int, page: int, cameras: list[dict[str, Any]]) -> bytes:
    """The ``ListCamerasResponse`` envelope (elements qualified in the target namespace)."""
    parts = [
        f'<tns:ListCamerasResponse xmlns:tns="{TNS}">',
        f"<tns:totalPages>{total_pages}</tns:totalPages>",
        f"<tns:page>{page}</tns:page>",
    ]
    for camera in cameras:
        parts.append("<tns:camera>")
        parts.extend(f"<tns:{name}>{xml_value(camera[name])}</tns:{name}>" for name, _ in CAMERA_FIELDS)
        parts.append("</tns:camera>")
    parts.append("</tns:ListCamerasResponse>")
    return envelope("".join(parts))


def parse_list_cameras(body: bytes, soap_action: str | None) -> tuple[int, int]:
    """``(page, pageSize)`` of a ListCameras request; raises :class:`SoapFault` for anything else."""
    action = (soap_action or "").strip().strip('"')
    if action != SOAP_ACTION:
        raise SoapFault("Client", f"unknown or missing SOAPAction {action!r}; expected {SOAP_ACTION!r}")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise SoapFault("Client", "DTDs are not allowed")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise SoapFault("Client", f"malformed XML: {exc}") from None
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise SoapFault("VersionMismatch", "only SOAP 1.1 is supported")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise SoapFault("Client", "not a SOAP 1.1 envelope")
    body_el = root.find(f"{{{SOAP_ENV}}}Body")
    operation = next(iter(body_el), None) if body_el is not None else None
    if operation is None or operation.tag != f"{{{TNS}}}ListCameras":
        raise SoapFault("Client", "expected a tns:ListCameras body element")
    values = {_local(child.tag): (child.text or "").strip() for child in operation}
    try:
        page, page_size = int(values["page"]), int(values["pageSize"])
    except (KeyError, ValueError):
        raise SoapFault("Client", "page and pageSize must be integers") from None
    if page < 1:
        raise SoapFault("Client", "page must be >= 1")
    if not 1 <= page_size <= 500:
        raise SoapFault("Client", "pageSize must be within 1..500")
    return page, page_size


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
