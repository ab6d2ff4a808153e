"""API C: the camera directory as a SOAP 1.1 document/literal service behind HTTP Basic auth."""

from __future__ import annotations

import hmac
import math

from . import soap
from .http_base import (
    MockApp,
    Request,
    Response,
    basic_credentials,
    error_response,
    method_not_allowed,
    not_found,
)

SOURCE = "api_c"
SOAP_PATH = "/soap/cameras"
_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="api2snow-cameras"'}


class ApiC(MockApp):
    """``GET ?wsdl`` serves the WSDL (no auth, like most SOAP stacks); ``POST`` runs ``ListCameras``."""

    name = SOURCE

    def route(self, request: Request) -> Response:
        if request.path != SOAP_PATH:
            return not_found()
        if request.method == "GET":
            if request.raw_query.lower() != "wsdl" and "wsdl" not in request.query:
                return error_response(400, "bad_request", "use ?wsdl for the service description")
            host = request.header("Host") or "127.0.0.1"
            return Response(200, soap.wsdl(f"http://{host}{SOAP_PATH}"), {"Content-Type": soap.CONTENT_TYPE})
        if request.method != "POST":
            return method_not_allowed("GET, POST")
        return self.list_cameras(request)

    def list_cameras(self, request: Request) -> Response:
        user = self._basic_user(request)
        if user is None:
            return Response(401, b"401 Unauthorized\n", {"Content-Type": "text/plain", **_BASIC_CHALLENGE})
        throttled = self.throttle(f"user:{user}")
        if throttled is not None:
            return throttled
        if self.injector.error_status() is not None:
            return _fault("Server", "service temporarily unavailable, retry later", fault="error")
        try:
            page, page_size = soap.parse_list_cameras(request.body, request.header("SOAPAction"))
        except soap.SoapFault as exc:
            return _fault(exc.code, exc.message)
        cameras = self.ctx.dataset.cameras(self.ctx.clock.now())
        total_pages = math.ceil(len(cameras) / page_size)
        start = (page - 1) * page_size
        chunk = cameras[start : start + page_size]
        fault = None
        if 0 < start <= len(cameras) and self.injector.duplicate():
            chunk.insert(0, cameras[start - 1])
            fault = "duplicate"
        body = soap.list_cameras_response(total_pages, page, chunk)
        response = Response(200, body, {"Content-Type": soap.CONTENT_TYPE}, records=len(chunk), fault=fault)
        return self.finish_page(response)

    def _basic_user(self, request: Request) -> str | None:
        """The user name when the Basic credentials match, else ``None`` (constant-time comparison)."""
        basic = basic_credentials(request.header("Authorization") or "")
        if basic is None:
            return None
        user, password = basic
        creds = self.ctx.credentials
        user_ok = hmac.compare_digest(user.encode(), creds.soap_user.encode())
        password_ok = hmac.compare_digest(password.encode(), creds.soap_password.encode())
        return user if user_ok and password_ok else None


def _fault(code: str, message: str, fault: str | None = None) -> Response:
    """SOAP 1.1 faults always travel with HTTP 500."""
    return Response(500, soap.fault_envelope(code, message), {"Content-Type": soap.CONTENT_TYPE}, fault=fault)
