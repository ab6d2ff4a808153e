"""API B: API-key protected, offset-paged detections with an epoch-ms ``modified_since`` filter."""

from __future__ import annotations

import hmac

from .http_base import (
    MockApp,
    Request,
    Response,
    error_response,
    json_bytes,
    method_not_allowed,
    not_found,
    parse_int,
    parse_optional_int,
)

SOURCE = "api_b"
DETECTIONS_PATH = "/api/v2/detections"


class ApiB(MockApp):
    """Offset pagination over the records ordered by ``(modifiedMs, eventId)``, with a ``total``."""

    name = SOURCE

    def route(self, request: Request) -> Response:
        if request.path == DETECTIONS_PATH:
            return self.detections(request) if request.method == "GET" else method_not_allowed("GET")
        return not_found()

    def detections(self, request: Request) -> Response:
        key = request.header("X-API-Key") or ""
        if not hmac.compare_digest(key.encode(), self.ctx.credentials.api_key.encode()):
            return error_response(401, "unauthorized")
        refused = self.admit(f"key:{key}")
        if refused is not None:
            return refused
        try:
            modified_since = parse_optional_int(request.query, "modified_since")
            offset = parse_int(request.query, "offset", 0, 0, None)
            limit = parse_int(request.query, "limit", 100, 1, 500)
        except ValueError as exc:
            return error_response(400, "bad_request", str(exc))
        dataset = self.ctx.dataset
        rows = dataset.scan(SOURCE, self.ctx.clock.now(), after_ms=modified_since)
        page = rows[offset : offset + limit]
        items = [dataset.render(SOURCE, index, is_update) for _, index, is_update in page]
        fault = None
        if 0 < offset <= len(rows) and self.injector.duplicate():
            _, index, is_update = rows[offset - 1]
            items.insert(0, dataset.render(SOURCE, index, is_update))
            fault = "duplicate"
        body = json_bytes({"total": len(rows), "offset": offset, "limit": limit, "items": items})
        response = Response(200, body, {"Content-Type": "application/json"}, records=len(items), fault=fault)
        return self.finish_page(response)
