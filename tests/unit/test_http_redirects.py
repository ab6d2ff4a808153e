"""Credentials stay with the API origin: redirects, absolute next-page links, token endpoints, cookies."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import requests
from api2snow.http.auth import ApiKeyAuth, Auth, OAuth2ClientCredentials
from api2snow.http.client import MAX_REDIRECTS, ApiClient
from api2snow.http.errors import ApiError, AuthError
from api2snow.http.origin import same_origin
from api2snow.http.paginate import PageRequest
from api2snow.http.ratelimit import RateLimiter
from api2snow.http.retry import RetryPolicy

try:
    from ._http_fixtures import FakeClock, MockServer, Reply, Script, json_reply
except ImportError:
    from _http_fixtures import FakeClock, MockServer, Reply, Script, json_reply

API_KEY = "KEY-REDIRECT-SECRET-77"
OK = json_reply({"data": []})


@pytest.fixture
def api() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


@pytest.fixture
def elsewhere() -> Iterator[MockServer]:
    """Another origin: same host, another port (cookies and requests' redirect logic ignore ports)."""
    with MockServer() as srv:
        srv.route("GET", "/landing", Script(OK))
        srv.route("POST", "/oauth/token", Script(OK))
        yield srv


def client_for(
    server: MockServer, auth: Auth | None = None, http: requests.Session | None = None
) -> ApiClient:
    clock = FakeClock()
    return ApiClient(
        server.url,
        auth or ApiKeyAuth("X-API-Key", API_KEY),
        RateLimiter(1000, 60, clock=clock, sleep=clock.sleep),
        RetryPolicy(max_attempts=2, rng=random.Random(3)),
        http=http,
        sleep=clock.sleep,
    )


def redirect(location: str, status: int = 302) -> Script:
    return Script(Reply(status, b"", {"Location": location}))


def test_origin_comparison_fills_default_ports_and_ignores_case() -> None:
    assert same_origin("https://API.example.com:443/x?y=1", "https://api.example.com")
    assert same_origin("http://h/x", "http://h:80/base")
    assert not same_origin("http://h:81/x", "http://h")
    assert not same_origin("https://h/x", "http://h")
    assert not same_origin("https://evil.com/x", "https://api.example.com")
    assert not same_origin("/relative", "https://api.example.com")
    assert not same_origin("http://h:bad/x", "http://h")


def test_same_origin_redirect_is_followed_with_credentials(api: MockServer) -> None:
    api.route("GET", "/old", redirect("/new?page=2"))
    api.route("GET", "/new", Script(OK))
    client = client_for(api)
    assert client.send(PageRequest("GET", "/old", params={"page": "1"})).json() == {"data": []}
    (new,) = api.calls("/new")
    assert new.headers["x-api-key"] == API_KEY and new.query == {"page": "2"}
    assert client.stats["requests"] == 2  # each hop is rate limited and counted


def test_303_after_post_becomes_a_bodyless_get(api: MockServer) -> None:
    api.route("POST", "/submit", redirect("/result", 303))
    api.route("GET", "/result", Script(OK))
    client_for(api).send(PageRequest("POST", "/submit", headers={"Content-Type": "text/xml"}, body="<x/>"))
    (result,) = api.calls("/result")
    assert result.method == "GET" and result.body == b"" and "content-type" not in result.headers


def test_requests_alone_would_carry_the_api_key_to_another_host(
    api: MockServer, elsewhere: MockServer
) -> None:
    """Why the client follows redirects itself: requests strips Authorization only, not X-API-Key."""
    api.route("GET", "/old", redirect(elsewhere.url + "/landing"))
    requests.get(api.url + "/old", headers={"X-API-Key": API_KEY}, timeout=5)
    assert elsewhere.calls("/landing")[0].headers["x-api-key"] == API_KEY


def test_cross_origin_redirect_is_refused_naming_only_the_host(
    api: MockServer, elsewhere: MockServer
) -> None:
    api.route("GET", "/old", redirect(elsewhere.url + "/landing?token=QUERY-SECRET"))
    client = client_for(api)
    with pytest.raises(ApiError) as info:
        client.send(PageRequest("GET", "/old"))
    message = str(info.value)
    assert message == (f"GET {api.url}/old -> HTTP 302: redirect to another host refused: {elsewhere.url}")
    assert elsewhere.seen == [] and "QUERY-SECRET" not in message and API_KEY not in message
    assert isinstance(info.value, ApiError) and info.value.status == 302


def test_redirect_loop_stops_after_the_limit(api: MockServer) -> None:
    loop = redirect("/loop", 307)
    api.route("GET", "/loop", loop)
    with pytest.raises(ApiError, match=f"more than {MAX_REDIRECTS} redirects"):
        client_for(api).send(PageRequest("GET", "/loop"))
    assert loop.count == MAX_REDIRECTS + 1


def test_absolute_url_on_another_origin_is_refused_before_sending(
    api: MockServer, elsewhere: MockServer
) -> None:
    client = client_for(api)
    with pytest.raises(ApiError, match=f"not sent: credentials go only to {api.url}"):
        client.send(PageRequest("GET", elsewhere.url + "/landing?cursor=abc"))
    assert elsewhere.seen == [] and client.stats["requests"] == 0
    api.route("GET", "/v1/events", Script(OK))
    client.send(PageRequest("GET", api.url + "/v1/events"))  # an absolute link on the API's origin is fine
    assert len(api.calls("/v1/events")) == 1


def test_token_endpoint_redirect_is_an_auth_error(api: MockServer, elsewhere: MockServer) -> None:
    api.route("POST", "/oauth/token", redirect(elsewhere.url + "/oauth/token?x=1", 307))
    auth = OAuth2ClientCredentials(api.url + "/oauth/token", "cid", "CLIENT-SECRET-REDIRECT")
    with pytest.raises(AuthError) as info:
        auth.token()
    assert str(info.value) == (
        f"POST {api.url}/oauth/token -> HTTP 307: token endpoint redirected to {elsewhere.url}; not followed"
    )
    assert elsewhere.seen == [] and auth.token_requests == 1


def _token_and_cookie() -> Reply:
    body = {"access_token": "TOKEN-C", "token_type": "Bearer", "expires_in": 3600}
    return Reply(200, body, {"Set-Cookie": "sid=COOKIE-SECRET; Path=/"})


def test_a_plain_session_sends_one_port_s_cookie_to_another(api: MockServer, elsewhere: MockServer) -> None:
    """Why the client refuses cookies: the jar domain-matches hosts but ignores ports."""
    api.route("GET", "/login", Script(_token_and_cookie()))
    with requests.Session() as session:
        session.get(api.url + "/login", timeout=5)
        session.get(elsewhere.url + "/landing", timeout=5)
    assert elsewhere.calls("/landing")[0].headers.get("cookie") == "sid=COOKIE-SECRET"


def test_cookies_are_neither_stored_nor_sent(api: MockServer, elsewhere: MockServer) -> None:
    """The token endpoint (one origin) sets a cookie; the API (another origin, same session) never sees it."""
    api.route("POST", "/oauth/token", Script(_token_and_cookie()))
    elsewhere.route("GET", "/v1/events", Script(Reply(200, {"data": []}, {"Set-Cookie": "lb=STICKY"})))
    with requests.Session() as shared:
        auth = OAuth2ClientCredentials(api.url + "/oauth/token", "cid", "secret-c", http=shared)
        client = client_for(elsewhere, auth, http=shared)
        client.send(PageRequest("GET", "/v1/events"))
        client.send(PageRequest("GET", "/v1/events"))
        assert len(shared.cookies) == 0
    assert [c.headers.get("cookie") for c in elsewhere.calls("/v1/events")] == [None, None]
