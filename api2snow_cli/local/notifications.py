"""The local stand-in for SYSTEM$SEND_SNOWFLAKE_NOTIFICATION and the notification integrations behind it.

No second list of integrations: the CREATE NOTIFICATION INTEGRATION statements of external_access/, rendered
by the local stack with its webhook receiver's URL (local/webhook_receiver.py), are what a send goes through.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

from api2snow.platform import PlatformError

from .egress import platform_side
from .secrets import LocalSecrets, parse_properties

_NOTIFICATION_INTEGRATION = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?NOTIFICATION\s+INTEGRATION\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w.$]+)\s+"
    r"(?P<body>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_PLACEHOLDER = re.compile(r"SNOWFLAKE_WEBHOOK_[A-Z_]*")
SEND_TIMEOUT_S = 10.0


class LocalNotifications:
    """SYSTEM$SEND_SNOWFLAKE_NOTIFICATION over the notification integrations external_access/ declares.

    A webhook integration is rendered as Snowflake documents it: its secret (a GENERIC_STRING secret of
    external_access/01) in place of SNOWFLAKE_WEBHOOK_SECRET in the URL, body template and headers, and the
    message, placeholders removed (SANITIZE_WEBHOOK_CONTENT), in place of SNOWFLAKE_WEBHOOK_MESSAGE. The
    message goes in as it is, unescaped: the stricter reading, so a message that would break the JSON body
    fails here. An email integration posts the mail as JSON to `email_outbox` (the local webhook receiver).
    """

    def __init__(self, statements: list[str], secrets: LocalSecrets, email_outbox: str | None) -> None:
        self.secrets = secrets
        self.email_outbox = email_outbox
        self.integrations: dict[str, dict[str, Any]] = {}
        for statement in statements:
            match = _NOTIFICATION_INTEGRATION.match(statement.strip())
            if match is not None:
                self.integrations[match.group("name").upper()] = parse_properties(match.group("body"))

    def send(self, integration: str, message: str, subject: str, recipients: tuple[str, ...]) -> None:
        properties = self.integrations.get(integration.upper())
        if properties is None:  # Snowflake's wording
            raise PlatformError(f"Integration '{integration}' does not exist or not authorized.")
        if str(properties.get("ENABLED", "TRUE")).upper() != "TRUE":
            raise PlatformError(f"Integration '{integration}' is disabled.")
        kind = str(properties.get("TYPE", "")).upper()
        if kind == "WEBHOOK":
            self._webhook(integration, properties, message)
        elif kind == "EMAIL":
            if not recipients:
                raise PlatformError(f"email notification through {integration}: no recipients")
            mail = {"integration": integration, "subject": subject, "to": list(recipients), "body": message}
            self._post(
                integration, self._outbox(), json.dumps(mail).encode(), {"Content-Type": "application/json"}
            )
        else:
            raise PlatformError(f"integration {integration} is TYPE = {kind}: locally, WEBHOOK or EMAIL only")

    def _outbox(self) -> str:
        if not self.email_outbox:
            raise PlatformError("the local stack has no email outbox (its webhook receiver is not running)")
        return self.email_outbox

    def _webhook(self, integration: str, properties: dict[str, Any], message: str) -> None:
        secret_name = properties.get("WEBHOOK_SECRET")
        secret = self.secrets.secret_string(str(secret_name)) if secret_name else None

        def filled(text: str) -> str:
            return text.replace("SNOWFLAKE_WEBHOOK_SECRET", secret) if secret is not None else text

        url = filled(str(properties.get("WEBHOOK_URL", "")))
        template = properties.get("WEBHOOK_BODY_TEMPLATE")
        body_message = _PLACEHOLDER.sub("REDACTED", message)
        body = (
            filled(str(template)).replace("SNOWFLAKE_WEBHOOK_MESSAGE", body_message)
            if template
            else body_message
        )
        pairs = properties.get("WEBHOOK_HEADERS") or []
        headers = {filled(k): filled(v) for k, v in zip(pairs[::2], pairs[1::2], strict=True)}
        self._post(integration, url, body.encode("utf-8"), headers)

    def _post(self, integration: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        """POST, failing as Snowflake's send would; the URL may hold the secret, so no message names it."""
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with platform_side(), urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise PlatformError(
                f"notification through {integration}: the endpoint answered HTTP {exc.code}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PlatformError(
                f"notification through {integration}: could not reach the endpoint ({reason})"
            ) from None
