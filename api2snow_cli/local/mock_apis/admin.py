"""``/_admin/*`` on every mock server: stats, the shared clock, runtime faults and ground truth.

The admin surface is shared state, so every server answers for all the APIs (``ctx.apis``, generated mocks
included); ``POST /_admin/faults`` with flat settings changes the faults of the server it is sent to.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from .clock import parse_iso
from .context import MockContext
from .dataset import iso_z, to_ms
from .http_base import Request, Response, error_response, json_response, method_not_allowed, not_found

_NOW_FORMAT_HINT = "ISO-8601, e.g. 2026-01-01T00:00:00Z"


class AdminApp:
    """Handles the admin endpoints of the server serving ``own_api``."""

    def __init__(self, ctx: MockContext, own_api: str) -> None:
        self.ctx = ctx
        self.own_api = own_api

    def handle(self, request: Request) -> Response:
        routes = {
            "/_admin/stats": {"GET": self.stats},
            "/_admin/reset": {"POST": self.reset},
            "/_admin/clock": {"GET": self.clock, "POST": self.set_clock},
            "/_admin/faults": {"GET": self.get_faults, "POST": self.set_faults},
            "/_admin/truth": {"GET": self.truth},
        }
        methods = routes.get(request.path)
        if methods is None:
            return not_found()
        action = methods.get(request.method)
        if action is None:
            return method_not_allowed(", ".join(methods))
        try:
            return action(request)
        except ValueError as exc:
            return error_response(400, "bad_request", str(exc))

    def stats(self, request: Request) -> Response:
        return json_response(200, {api: self.ctx.stats[api].snapshot() for api in self.ctx.apis})

    def reset(self, request: Request) -> Response:
        """Zero the stats and forget rate-limit windows (handy between benchmark runs)."""
        for api in self.ctx.apis:
            self.ctx.stats[api].reset()
            self.ctx.limiters[api].reset()
        return json_response(200, {"reset": True})

    def clock(self, request: Request) -> Response:
        return json_response(200, self._clock_state())

    def set_clock(self, request: Request) -> Response:
        """``{"advance_s": seconds}`` or ``{"now": iso}``."""
        body = _json_body(request)
        if "advance_s" in body:
            seconds = body["advance_s"]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ValueError("advance_s must be a number of seconds")
            self.ctx.clock.advance(seconds)
        elif "now" in body:
            self.ctx.clock.set(_parse_iso(body["now"]))
        else:
            raise ValueError('expected {"advance_s": seconds} or {"now": iso}')
        return json_response(200, self._clock_state())

    def get_faults(self, request: Request) -> Response:
        return json_response(200, {api: self.ctx.faults[api].as_dict() for api in self.ctx.apis})

    def set_faults(self, request: Request) -> Response:
        """Per API ``{"api_b": {"error_rate": 0.1}}``, or flat ``{"error_rate": 0.1}`` for this API."""
        body = _json_body(request)
        apis = self.ctx.apis
        if body and all(key in apis for key in body):
            changes = body
        elif any(key in apis for key in body):
            raise ValueError("mix of API names and fault settings; use one form")
        else:
            changes = {self.own_api: body}
        for api, settings in changes.items():
            if not isinstance(settings, dict):
                raise ValueError(f"faults for {api} must be an object")
            self.ctx.faults[api].update(settings)
        return self.get_faults(request)

    def truth(self, request: Request) -> Response:
        """Ground truth of ``source`` as of ``as_of`` (default: now), optionally after ``updated_since``."""
        source = request.query.get("source", self.own_api)
        if source not in self.ctx.apis:
            raise ValueError(f"source must be one of {', '.join(self.ctx.apis)}")
        as_of = _parse_iso(request.query["as_of"]) if request.query.get("as_of") else self.ctx.clock.now()
        since = request.query.get("updated_since")
        truth = self.ctx.truth(source, as_of, _parse_iso(since) if since else None)
        invalid = self.ctx.invalid_ids(source, as_of)
        payload: dict[str, Any] = {
            "source": source,
            "as_of": iso_z(to_ms(as_of)),
            "count": len(truth),
            "max_updated_at": iso_z(to_ms(max(truth.values()))) if truth else None,
            "invalid_count": len(invalid),
        }
        if request.query.get("ids", "true").lower() not in ("0", "false", "no"):
            payload["ids"] = list(truth)
            payload["invalid_ids"] = invalid
        return json_response(200, payload)

    def _clock_state(self) -> dict[str, Any]:
        clock = self.ctx.clock
        return {"now": clock.now().isoformat(), "follows_real_time": clock.follows_real_time}


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _parse_iso(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string ({_NOW_FORMAT_HINT})")
    return parse_iso(value)
