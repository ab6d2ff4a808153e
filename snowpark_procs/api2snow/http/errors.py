"""Exceptions raised by the HTTP building blocks.

Messages are always one line and never carry credentials: they end up in Snowflake procedure
results and task history, which many more people can read than the secrets they were built from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from .. import redaction

_EXCERPT_CHARS = 200
_REDACTED = "***"
# Token-looking fragments a server might echo back (e.g. a debugging proxy quoting our request).
_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r'(?i)("?(?:access_token|refresh_token|client_secret|api[_-]?key|password)"?\s*[:=]\s*"?)[^"&,\s}]+'
    ),
)


def safe_url(url: str) -> str:
    """Return the URL without user info, query string or fragment, which may hold secrets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secret values (`secrets`, and those the procedure call registered) and token-looking
    fragments in a piece of text."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, _REDACTED)
    text = redaction.redact(text)
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)} {_REDACTED}", text)
    return _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}{_REDACTED}", text)


def one_line(text: str, limit: int = _EXCERPT_CHARS) -> str:
    """Collapse whitespace so a message stays on one log line, and cut it to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class HttpError(Exception):
    """Base class of everything raised by `api2snow.http`."""


class ApiError(HttpError):
    """A request failed for good: non-retryable status, or retries exhausted.

    Carries the pieces separately so callers can branch on `status` without parsing the message.
    """

    def __init__(
        self,
        method: str,
        url: str,
        status: int | None,
        reason: str,
        *,
        attempts: int = 1,
        excerpt: str = "",
        secrets: Iterable[str] = (),
    ) -> None:
        self.method = method
        self.url = safe_url(url)
        self.status = status
        self.attempts = attempts
        self.excerpt = one_line(redact(excerpt, secrets)) if excerpt else ""
        self.reason = one_line(redact(reason, secrets), 300)
        super().__init__(self._message())

    def _message(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        message = f"{self.method} {self.url} -> {status}: {self.reason}" if self.method else self.reason
        if self.attempts > 1:
            message += f" after {self.attempts} attempts"
        return f"{message}; body: {self.excerpt}" if self.excerpt else message


class AuthError(ApiError):
    """Credentials were refused (token endpoint error, or 401 even with fresh credentials)."""


class RateLimitExceeded(ApiError):
    """The server kept answering 429 until the retry budget ran out."""


class PaginationError(HttpError):
    """A paginator cannot make progress (e.g. the server repeats the same cursor)."""


class InconsistentPage(HttpError):
    """A page contradicts the API's own paging data (an empty page before the declared total); the same
    request is sent again, and the run fails once the retry budget is spent."""
