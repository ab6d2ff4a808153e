"""ApiClient: one place that combines rate limiting, authentication, retries and pagination.

Sources describe *what* to fetch (a PageRequest, a paginator, a parse function); the client decides
*how*: it waits for the rate limiter, adds credentials, retries transient failures with backoff,
refreshes credentials once on 401, and turns final failures into one-line `ApiError`s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin
from xml.etree.ElementTree import ParseError

import requests

from .auth import Auth
from .errors import ApiError, AuthError, InconsistentPage, PaginationError, RateLimitExceeded, safe_url
from .origin import describe, refuse_cookies, same_origin
from .paginate import PageRequest, Paginator
from .progress import ProgressGuard
from .ratelimit import RateLimiter
from .retry import RETRYABLE_EXCEPTIONS, RetryPolicy, parse_retry_after

logger = logging.getLogger(__name__)

Parse = Callable[[requests.Response], tuple[Any, list]]

# A 200 whose body does not parse (truncated JSON or XML) is a transient fault: fetch the page again.
MALFORMED_BODY_ERRORS: tuple[type[BaseException], ...] = (ValueError, ParseError)
_EXCERPT_BYTES = 400
MAX_REDIRECTS = 5  # same-origin hops per request (cross-origin ones are refused outright)
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})


class ApiClient:
    """HTTP client for one API: `send` for single requests, `pages` for paginated reads.

    `stats` counts requests sent, retries, 429 answers, seconds waited (limiter and backoff) and 401
    refreshes, so a run can report how hard it had to work.
    """

    def __init__(
        self,
        base_url: str,
        auth: Auth,
        rate_limiter: RateLimiter,
        retry_policy: RetryPolicy,
        http: requests.Session | None = None,
        timeout: float | tuple[float, float] = (5, 60),
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.rate_limiter = rate_limiter
        self.retry_policy = retry_policy
        self.timeout = timeout
        self._owns_http = http is None
        self.http = refuse_cookies(http if http is not None else requests.Session())
        self._sleep = sleep
        self._stats_lock = threading.Lock()
        self.stats: dict[str, float] = {
            "requests": 0,
            "retries": 0,
            "throttled_429": 0,
            "waited_s": 0.0,
            "unauthorized_refreshes": 0,
            "malformed_bodies": 0,
            "inconsistent_pages": 0,
            "pages": 0,
        }

    def __repr__(self) -> str:
        return f"ApiClient({safe_url(self.base_url)!r}, auth={self.auth!r})"

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session if this client created it (a shared one belongs to the caller)."""
        if self._owns_http:
            self.http.close()

    def url_for(self, path: str) -> str:
        """Absolute URL for a request path; absolute URLs (e.g. next-page links) pass through."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def send(self, req: PageRequest) -> requests.Response:
        """Send one request with rate limiting, auth and retries; return the successful response."""
        response, _, _ = self._exchange(req, None)
        return response

    def pages(
        self,
        req: PageRequest,
        paginator: Paginator,
        parse: Parse,
        progress: ProgressGuard | None = None,
    ) -> Iterator[list]:
        """Yield the new records of each page until the paginator says there are no more.

        Only the paginator's state survives from one page to the next, so memory stays at one page. A page
        that contradicts the paging data is requested again, within the retry budget; `progress` fails the
        run when pages keep serving records already received.
        """
        req = req.copy()
        paginator.init_request(req)
        while True:
            records = self._consistent_page(req, paginator, parse)
            self._bump("pages")
            if progress is not None:
                progress.observe(records)
            if records:
                yield records
            if not paginator.has_next:
                return
            paginator.update_request(req)

    def _consistent_page(self, req: PageRequest, paginator: Paginator, parse: Parse) -> list:
        """One page that the paginator accepts: its new records. Retries `InconsistentPage` answers."""
        attempt = 1
        while True:
            response, payload, records = self._exchange(req, parse)
            try:
                fresh = paginator.update_state(response, payload, records)
            except InconsistentPage as exc:
                if not self.retry_policy.can_retry(attempt):
                    raise PaginationError(
                        f"{req.method} {safe_url(self.url_for(req.path))}: {exc} (after {attempt} attempts)"
                    ) from None
                self._bump("inconsistent_pages")
                self._bump("retries")
                delay = self.retry_policy.delay(attempt)
                self._bump("waited_s", delay)
                self._sleep(delay)
                attempt += 1
                continue
            return records if fresh is None else fresh

    def _exchange(self, req: PageRequest, parse: Parse | None) -> tuple[requests.Response, Any, list]:
        """The attempt loop shared by `send` and `pages`; parse failures count against the same budget.

        A 401 is retried once with fresh credentials for this same request, so a paginated read resumes
        at the page that failed, not at page 1.
        """
        url = self.url_for(req.path)
        if not same_origin(url, self.base_url):
            raise ApiError(
                req.method, url, None, f"not sent: credentials go only to {describe(self.base_url)}"
            )
        attempt, refreshed = 1, False
        while True:
            secrets: list[str] = []
            try:
                response = self._send_once(req, url, secrets)
            except RETRYABLE_EXCEPTIONS as exc:
                self._backoff(req, url, attempt, None, type(exc).__name__)
                attempt += 1
                continue
            status = response.status_code
            logger.debug("%s %s -> %d (attempt %d)", req.method, safe_url(url), status, attempt)
            if status == 401:
                refreshed = self._handle_unauthorized(req, url, response, refreshed, secrets)
                continue
            if self.retry_policy.should_retry_status(status):
                self._handle_retryable_status(req, url, response, attempt, secrets)
                attempt += 1
                continue
            if status >= 400:
                raise ApiError(
                    req.method,
                    url,
                    status,
                    "not retryable",
                    attempts=attempt,
                    excerpt=_excerpt(response),
                    secrets=secrets,
                )
            if parse is None:
                return response, None, []
            try:
                payload, records = parse(response)
            except MALFORMED_BODY_ERRORS as exc:
                self._bump("malformed_bodies")
                self._backoff(req, url, attempt, status, f"malformed body ({type(exc).__name__})")
                attempt += 1
                continue
            return response, payload, records

    def _send_once(self, req: PageRequest, url: str, secrets: list[str]) -> requests.Response:
        """One request, following redirects within the API origin only; collects the credentials it added.

        requests is not allowed to follow redirects: it strips only Authorization on a host change, so an
        API key header would travel on to the new host. Each hop is rate limited and authenticated anew;
        a redirect to another origin is refused, naming only that origin.
        """
        method, target, params, body, headers = req.method, url, req.params or None, req.body, req.headers
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._send_raw(method, target, params, body, headers, secrets)
            if not response.is_redirect:
                return response
            status, location = response.status_code, urljoin(target, response.headers["Location"])
            response.close()
            if not same_origin(location, self.base_url):
                raise ApiError(
                    req.method, target, status, f"redirect to another host refused: {describe(location)}"
                )
            if status == 303 or (status in (301, 302) and method == "POST"):  # what HTTP clients do
                method, body, headers = "GET", None, _without_body_headers(headers)
            target, params = location, None  # the Location carries its own query
        raise ApiError(req.method, url, status, f"more than {MAX_REDIRECTS} redirects")

    def _send_raw(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None,
        body: str | bytes | None,
        base_headers: dict[str, str],
        secrets: list[str],
    ) -> requests.Response:
        """One rate-limited, authenticated HTTP exchange, redirects not followed."""
        self._bump("waited_s", self.rate_limiter.acquire())
        headers = dict(base_headers)
        kwargs: dict[str, Any] = {}
        self.auth.apply(headers, kwargs)
        secrets.extend(_applied_secrets(base_headers, headers))
        kwargs["allow_redirects"] = False
        self._bump("requests")
        return self.http.request(
            method, url, params=params, data=body, headers=headers, timeout=self.timeout, **kwargs
        )

    def _handle_unauthorized(
        self, req: PageRequest, url: str, response: requests.Response, refreshed: bool, secrets: list[str]
    ) -> bool:
        """Allow one immediate retry with fresh credentials; a second 401 is final."""
        excerpt = _excerpt(response)
        response.close()
        if not refreshed and self.auth.on_unauthorized():
            self._bump("unauthorized_refreshes")
            logger.debug("%s %s -> 401, retrying with fresh credentials", req.method, safe_url(url))
            return True
        reason = "credentials refused even after refresh" if refreshed else "credentials refused"
        raise AuthError(req.method, url, 401, reason, excerpt=excerpt, secrets=secrets)

    def _handle_retryable_status(
        self, req: PageRequest, url: str, response: requests.Response, attempt: int, secrets: list[str]
    ) -> None:
        """Back off after a 429/5xx; a 429's Retry-After also holds back every other caller of the limiter."""
        status = response.status_code
        retry_after = response.headers.get("Retry-After")
        excerpt = _excerpt(response)
        response.close()
        if status == 429:
            self._bump("throttled_429")
            server_wait = parse_retry_after(retry_after)
            if server_wait is not None:
                self.rate_limiter.defer(server_wait)
        self._backoff(req, url, attempt, status, "retries exhausted", retry_after, excerpt, secrets)

    def _backoff(
        self,
        req: PageRequest,
        url: str,
        attempt: int,
        status: int | None,
        reason: str,
        retry_after: str | None = None,
        excerpt: str = "",
        secrets: list[str] | None = None,
    ) -> None:
        """Sleep before the next attempt, or raise when failed attempt `attempt` was the last one."""
        if not self.retry_policy.can_retry(attempt):
            error = RateLimitExceeded if status == 429 else ApiError
            raise error(
                req.method, url, status, reason, attempts=attempt, excerpt=excerpt, secrets=secrets or ()
            )
        delay = self.retry_policy.delay(attempt, retry_after)
        logger.debug(
            "%s %s failed (%s, attempt %d), retrying in %.2fs",
            req.method,
            safe_url(url),
            status if status is not None else reason,
            attempt,
            delay,
        )
        self._bump("retries")
        self._bump("waited_s", delay)
        self._sleep(delay)

    def _bump(self, key: str, amount: float = 1) -> None:
        """Thread-safe stats counter update (one client may serve several worker threads)."""
        with self._stats_lock:
            self.stats[key] += amount


def _excerpt(response: requests.Response) -> str:
    """The start of a response body for error messages (redacted and shortened by ApiError)."""
    try:
        return response.content[:_EXCERPT_BYTES].decode("utf-8", "replace")
    except (requests.RequestException, RuntimeError):
        return ""


def _without_body_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers for a redirect that turned the request into a body-less GET."""
    return {name: value for name, value in headers.items() if name.lower() not in _BODY_HEADERS}


def _applied_secrets(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Header values the auth added or changed, and their credential part after the scheme word."""
    secrets: list[str] = []
    for name, value in after.items():
        if before.get(name) == value or not isinstance(value, str):
            continue
        secrets.append(value)
        scheme, _, credential = value.partition(" ")
        if credential and scheme.isalpha():
            secrets.append(credential)
    return secrets
