"""Request authentication strategies.

Each strategy adds credentials to one outgoing request (`apply`) and says whether a 401 is worth one
retry with fresh credentials (`on_unauthorized`). None of them ever shows a secret in `repr`, logs or
exception messages: those surface in Snowflake query history and procedure results.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus, urljoin

import requests

from .errors import AuthError, safe_url
from .origin import describe, refuse_cookies
from .retry import RETRYABLE_EXCEPTIONS, RetryPolicy

logger = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN_S = 3600.0
_OAUTH_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Auth:
    """Base strategy: adds nothing, and a 401 is final."""

    def apply(self, headers: dict[str, str], request_kwargs: dict[str, Any]) -> None:
        """Add credentials to the headers (or requests kwargs) of one outgoing request."""

    def on_unauthorized(self) -> bool:
        """Forget cached credentials after a 401; True when a retry with fresh ones makes sense."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


NoAuth = Auth


class ApiKeyAuth(Auth):
    """Static API key sent in a header (API B: `X-API-Key`). A 401 will not fix itself."""

    def __init__(self, header_name: str, key: str) -> None:
        self.header_name = header_name
        self._key = key

    def apply(self, headers: dict[str, str], request_kwargs: dict[str, Any]) -> None:
        headers[self.header_name] = self._key

    def __repr__(self) -> str:
        return f"ApiKeyAuth(header_name={self.header_name!r}, key=***)"


def basic_header(user: str, password: str) -> str:
    """`Authorization` value for HTTP Basic (RFC 7617, UTF-8 credentials)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class HttpBasicAuth(Auth):
    """HTTP Basic credentials (API C's SOAP endpoint). The user name is not secret; the password is."""

    def __init__(self, user: str, password: str) -> None:
        if ":" in user:
            raise ValueError("HTTP Basic user names cannot contain ':'")
        self.user = user
        self._header = basic_header(user, password)

    def apply(self, headers: dict[str, str], request_kwargs: dict[str, Any]) -> None:
        headers["Authorization"] = self._header

    def __repr__(self) -> str:
        return f"HttpBasicAuth(user={self.user!r}, password=***)"


class BearerTokenAuth(Auth):
    """Bearer token from a provider callable, e.g. Snowflake's OAuth2 secret (`get_oauth_access_token`).

    The token is asked for once (`get_token()`) and reused; after a 401 it is forgotten and the provider is
    asked for a new one with `get_token(force_refresh=True)`, so a provider that caches tokens (Snowflake,
    the local stack) does not hand back the refused one, and one retry is worth it. Asking once, not per
    request, keeps the provider's work (a call into Snowflake) off the hot path; `token()` lets the caller
    ask in its own thread before worker threads send requests. A refresh after a 401 is asked for from
    whichever thread got the 401, often the page-prefetch worker; the platform seam runs that secret read on
    the handler's main thread (`prefetch.on_consumer_thread`), which must therefore not itself wait for
    `token()` while the worker holds the lock.
    """

    def __init__(self, get_token: Callable[..., str]) -> None:
        self._get_token = get_token
        self._token: str | None = None
        self._refused = False  # the last token got a 401: the next one must be a forced refresh
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None:
                token = self._get_token(force_refresh=True) if self._refused else self._get_token()
                if not token:
                    raise AuthError("", "", None, "bearer token provider returned an empty token")
                self._token, self._refused = token, False
            return self._token

    def apply(self, headers: dict[str, str], request_kwargs: dict[str, Any]) -> None:
        headers["Authorization"] = f"Bearer {self.token()}"

    def on_unauthorized(self) -> bool:
        with self._lock:
            self._token, self._refused = None, True
        return True

    def __repr__(self) -> str:
        return "BearerTokenAuth(token=***)"


class OAuth2ClientCredentials(Auth):
    """OAuth 2.0 client credentials grant (RFC 6749 section 4.4) with a cached access token.

    The token is reused until `refresh_margin_s` before it expires, so long runs never send a token
    that dies in flight. For tokens living less than twice the margin, the margin shrinks to half the
    lifetime; otherwise every request would fetch a new token. Token requests bypass the API rate
    limiter because the APIs do not count them.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        method: str = "client_secret_basic",
        http: requests.Session | None = None,
        refresh_margin_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if method not in ("client_secret_basic", "client_secret_post"):
            raise ValueError("method must be 'client_secret_basic' or 'client_secret_post'")
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.method = method
        self.refresh_margin_s = float(refresh_margin_s)
        self.token_requests = 0
        self._http = refuse_cookies(http if http is not None else requests.Session())
        self._clock = clock
        self._timeout = timeout
        self._retry = retry_policy if retry_policy is not None else RetryPolicy(max_attempts=3)
        self._sleep = sleep
        self._token: str | None = None
        self._refresh_at = float("-inf")
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentials(token_url={safe_url(self.token_url)!r}, client_id={self.client_id!r}, "
            f"client_secret=***, method={self.method!r})"
        )

    def apply(self, headers: dict[str, str], request_kwargs: dict[str, Any]) -> None:
        headers["Authorization"] = f"Bearer {self.token()}"

    def on_unauthorized(self) -> bool:
        with self._lock:
            self._token = None
        return True

    def token(self) -> str:
        """Return a valid access token, fetching one when none is cached or it is about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                started = self._clock()
                token, expires_in = self._fetch_token()
                margin = min(self.refresh_margin_s, expires_in / 2)
                self._token, self._refresh_at = token, started + expires_in - margin
            return self._token

    def _token_request(self) -> tuple[dict[str, str], dict[str, str]]:
        """Form body and headers for one token request, per the configured client auth method."""
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        headers = {"Accept": "application/json"}
        if self.method == "client_secret_basic":
            # RFC 6749 2.3.1: form-urlencode id and secret before building the Basic credentials.
            headers["Authorization"] = basic_header(
                quote_plus(self.client_id, safe=""), quote_plus(self._client_secret, safe="")
            )
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = self._client_secret
        return form, headers

    def _fetch_token(self) -> tuple[str, float]:
        """POST to the token endpoint, retrying transient failures, and return (token, expires_in)."""
        form, headers = self._token_request()
        attempt = 0
        while True:
            attempt += 1
            self.token_requests += 1
            status, retry_after, problem = None, None, "no response"
            try:
                response = self._http.post(
                    self.token_url, data=form, headers=headers, timeout=self._timeout, allow_redirects=False
                )
            except RETRYABLE_EXCEPTIONS as exc:
                problem = type(exc).__name__
            else:
                with response:
                    _refuse_redirect(response, self.token_url)
                    status, retry_after = response.status_code, response.headers.get("Retry-After")
                    problem = "transient failure"
                    if not self._retry.should_retry_status(status):
                        parsed = _parse_token_response(response, self.token_url)
                        if parsed is not None:
                            logger.debug("fetched access token from %s", safe_url(self.token_url))
                            return parsed
                        problem = "body is not JSON"
            if not self._retry.can_retry(attempt):
                reason = f"token endpoint unavailable: {problem}"
                raise AuthError("POST", self.token_url, status, reason, attempts=attempt)
            logger.debug("token request to %s failed (%s), retrying", safe_url(self.token_url), problem)
            self._sleep(self._retry.delay(attempt, retry_after))


def _refuse_redirect(response: requests.Response, token_url: str) -> None:
    """A token endpoint that redirects is misconfigured or hijacked: the client secret stays here."""
    if 300 <= response.status_code < 400:
        location = response.headers.get("Location")
        where = describe(urljoin(token_url, location)) if location else "nowhere"
        raise AuthError(
            "POST", token_url, response.status_code, f"token endpoint redirected to {where}; not followed"
        )


def _parse_token_response(response: requests.Response, token_url: str) -> tuple[str, float] | None:
    """(access_token, expires_in) from a final token endpoint answer; None if a 200 body is not JSON."""
    try:
        body = response.json()
    except ValueError:
        if response.status_code == 200:
            return None
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code != 200:
        code = _oauth_error_code(body)
        what = "refused client credentials" if response.status_code == 401 else "rejected the request"
        raise AuthError("POST", token_url, response.status_code, f"token endpoint {what}: {code}")
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthError("POST", token_url, 200, "token endpoint response has no access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise AuthError("POST", token_url, 200, "token endpoint issued a token_type other than Bearer")
    return token, _expires_in(body.get("expires_in"))


def _oauth_error_code(body: dict[str, Any]) -> str:
    """The RFC 6749 `error` code, if it looks like one (free text could echo request data)."""
    code = body.get("error")
    return code if isinstance(code, str) and _OAUTH_ERROR_CODE.match(code) else "unknown_error"


def _expires_in(value: Any) -> float:
    """Token lifetime in seconds; RFC 6749 makes expires_in optional, so fall back to an hour."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_EXPIRES_IN_S
    return seconds if math.isfinite(seconds) and seconds >= 0 else DEFAULT_EXPIRES_IN_S
