"""Credentials go only to the origin they belong to.

An origin is scheme + host + port. Every credential the HTTP client adds (Authorization, an API key
header) is meant for one configured API origin; a next-page link or a redirect pointing elsewhere must
not receive it. `requests` itself strips only Authorization on a cross-host redirect, and its cookie jar
ignores ports, so the client follows no redirects on its own and stores no cookies (these APIs
authenticate by header, never by cookie).
"""

from __future__ import annotations

from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urlsplit

import requests

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL, lower-cased, default port filled in; else None."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:  # a malformed port
        return None
    return scheme, parts.hostname.lower(), port


def same_origin(url: str, base_url: str) -> bool:
    """True when `url` is an absolute http(s) URL on exactly the origin of `base_url`."""
    target = origin(url)
    return target is not None and target == origin(base_url)


def describe(url: str) -> str:
    """`scheme://host:port` of a URL for messages: no user info, path or query (they may hold secrets)."""
    target = origin(url)
    if target is None:
        return "a URL that is not absolute http(s)"
    scheme, host, port = target
    return f"{scheme}://{host}:{port}"


def refuse_cookies(session: requests.Session) -> requests.Session:
    """Make `session` neither store nor send cookies (an empty allow-list blocks every domain)."""
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    session.cookies.clear()
    return session
