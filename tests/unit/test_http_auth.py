"""Auth strategies against a real local token endpoint: caching, refresh, client auth methods, errors."""

from __future__ import annotations

import base64
import logging
import random
from collections.abc import Iterator

import pytest
import requests
from api2snow.http.auth import (
    ApiKeyAuth,
    Auth,
    BearerTokenAuth,
    HttpBasicAuth,
    OAuth2ClientCredentials,
)
from api2snow.http.errors import AuthError
from api2snow.http.retry import RetryPolicy

try:
    from ._http_fixtures import FakeClock, MockServer, Reply, Script, Seen, json_reply
except ImportError:
    from _http_fixtures import FakeClock, MockServer, Reply, Script, Seen, json_reply

CLIENT_ID = "camera client"
CLIENT_SECRET = "s3cr:t/+&=% wh0le-SECRET"


class TokenEndpoint:
    """RFC 6749 4.4 token endpoint: checks client credentials, issues numbered tokens."""

    def __init__(self, expires_in: int | None = 3600) -> None:
        self.expires_in = expires_in
        self.issued: list[str] = []

    def __call__(self, seen: Seen) -> Reply:
        form = seen.form()
        if form.get("grant_type") != "client_credentials":
            return json_reply({"error": "unsupported_grant_type"}, 400)
        creds = seen.basic_credentials() or (form.get("client_id"), form.get("client_secret"))
        if creds != (CLIENT_ID, CLIENT_SECRET):
            return json_reply({"error": "invalid_client"}, 401, **{"WWW-Authenticate": "Basic"})
        token = f"TOKEN-{len(self.issued) + 1}-abcdef"
        self.issued.append(token)
        body = {"access_token": token, "token_type": "Bearer", "scope": form.get("scope", "events:read")}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return json_reply(body, **{"Cache-Control": "no-store"})


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


def oauth(server: MockServer, clock: FakeClock, **kwargs) -> OAuth2ClientCredentials:
    kwargs.setdefault("client_secret", CLIENT_SECRET)
    return OAuth2ClientCredentials(
        server.url + "/oauth/token",
        CLIENT_ID,
        clock=clock,
        sleep=clock.sleep,
        retry_policy=RetryPolicy(max_attempts=3, rng=random.Random(1)),
        **kwargs,
    )


def bearer(auth: Auth) -> str:
    headers: dict[str, str] = {}
    auth.apply(headers, {})
    return headers["Authorization"]


def test_basic_client_auth_reuses_the_token_until_the_refresh_margin(server: MockServer) -> None:
    endpoint = TokenEndpoint(expires_in=3600)
    server.route("POST", "/oauth/token", endpoint)
    clock = FakeClock(0.0)
    auth = oauth(server, clock, scope="events:read")

    assert {bearer(auth) for _ in range(50)} == {"Bearer TOKEN-1-abcdef"}
    clock.now = 3539.9
    assert bearer(auth) == "Bearer TOKEN-1-abcdef"
    clock.now = 3540.0  # expires_at - refresh_margin_s (60)
    assert bearer(auth) == "Bearer TOKEN-2-abcdef"
    assert auth.token_requests == 2

    calls = server.calls("/oauth/token")
    assert len(calls) == 2
    assert calls[0].form() == {"grant_type": "client_credentials", "scope": "events:read"}
    assert calls[0].basic_credentials() == (CLIENT_ID, CLIENT_SECRET)
    raw = base64.b64decode(calls[0].headers["authorization"][6:]).decode()
    assert raw == "camera+client:s3cr%3At%2F%2B%26%3D%25+wh0le-SECRET"  # RFC 6749 2.3.1 form-encoding


def test_post_client_auth_sends_credentials_in_the_form(server: MockServer) -> None:
    server.route("POST", "/oauth/token", TokenEndpoint())
    auth = oauth(server, FakeClock(), method="client_secret_post")
    assert bearer(auth) == "Bearer TOKEN-1-abcdef"
    (call,) = server.calls("/oauth/token")
    assert "authorization" not in call.headers
    assert call.form() == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }


def test_short_lived_tokens_refresh_at_half_their_lifetime(server: MockServer) -> None:
    endpoint = TokenEndpoint(expires_in=30)
    server.route("POST", "/oauth/token", endpoint)
    clock = FakeClock(0.0)
    auth = oauth(server, clock, refresh_margin_s=60)
    for second in range(60):  # one request per second for a minute
        clock.now = float(second)
        bearer(auth)
    assert endpoint.issued == ["TOKEN-1-abcdef", "TOKEN-2-abcdef", "TOKEN-3-abcdef", "TOKEN-4-abcdef"]


def test_missing_expires_in_means_one_hour(server: MockServer) -> None:
    server.route("POST", "/oauth/token", TokenEndpoint(expires_in=None))
    clock = FakeClock(0.0)
    auth = oauth(server, clock)
    bearer(auth)
    clock.now = 3539.0
    bearer(auth)
    assert auth.token_requests == 1
    clock.now = 3540.0
    bearer(auth)
    assert auth.token_requests == 2


def test_on_unauthorized_drops_the_token(server: MockServer) -> None:
    server.route("POST", "/oauth/token", TokenEndpoint())
    auth = oauth(server, FakeClock())
    assert bearer(auth) == "Bearer TOKEN-1-abcdef"
    assert auth.on_unauthorized() is True
    assert bearer(auth) == "Bearer TOKEN-2-abcdef"
    assert bearer(auth) == "Bearer TOKEN-2-abcdef"


def test_invalid_client_raises_auth_error_naming_the_code_only(
    server: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("POST", "/oauth/token", TokenEndpoint())
    auth = oauth(server, FakeClock(), client_secret="wrong-SECRET-value")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as info:
        bearer(auth)
    message = str(info.value)
    assert "token endpoint refused client credentials: invalid_client" in message
    assert info.value.status == 401
    assert "\n" not in message and "wrong-SECRET-value" not in message
    assert "wrong-SECRET-value" not in caplog.text
    assert auth.token_requests == 1  # a refused secret is not retried


def test_unsupported_grant_and_unparseable_error_codes(server: MockServer) -> None:
    server.route(
        "POST",
        "/oauth/token",
        Script(
            json_reply({"error": "unsupported_grant_type"}, 400),
            json_reply({"error": f"bad secret={CLIENT_SECRET}"}, 400),
            Reply(403, "<html>forbidden</html>", {"Content-Type": "text/html"}),
        ),
    )
    auth = oauth(server, FakeClock())
    messages = []
    for _ in range(3):
        with pytest.raises(AuthError) as info:
            bearer(auth)
        messages.append(str(info.value))
    assert messages[0].endswith("token endpoint rejected the request: unsupported_grant_type")
    assert messages[1].endswith("token endpoint rejected the request: unknown_error")
    assert messages[2].endswith("token endpoint rejected the request: unknown_error")
    assert all(CLIENT_SECRET not in m for m in messages)


def test_transient_token_endpoint_failures_are_retried(server: MockServer) -> None:
    endpoint = TokenEndpoint()
    failures = Script(json_reply({"error": "unavailable"}, 503), Reply(200, '{"access_tok'))

    def flaky(seen: Seen) -> Reply:
        return failures(seen) if failures.count < 2 else endpoint(seen)

    server.route("POST", "/oauth/token", flaky)
    clock = FakeClock()
    auth = oauth(server, clock)
    assert bearer(auth) == "Bearer TOKEN-1-abcdef"
    assert auth.token_requests == 3
    assert len(clock.sleeps) == 2


def test_token_endpoint_down_gives_up_after_the_retry_budget(server: MockServer) -> None:
    server.route(
        "POST", "/oauth/token", Script(json_reply({"error": "rate_limited"}, 429, **{"Retry-After": "4"}))
    )
    clock = FakeClock()
    auth = oauth(server, clock)
    with pytest.raises(AuthError, match="HTTP 429: token endpoint unavailable.*after 3 attempts"):
        bearer(auth)
    assert clock.sleeps == [4.0, 4.0]


def test_token_without_access_token_or_with_other_type_is_refused(server: MockServer) -> None:
    server.route(
        "POST",
        "/oauth/token",
        Script(
            json_reply({"token_type": "Bearer"}),
            json_reply({"access_token": "MAC-TOKEN", "token_type": "mac"}),
        ),
    )
    auth = oauth(server, FakeClock())
    with pytest.raises(AuthError, match="no access_token"):
        bearer(auth)
    with pytest.raises(AuthError, match="token_type") as info:
        bearer(auth)
    assert "MAC-TOKEN" not in str(info.value)


def test_token_is_never_logged(server: MockServer, caplog: pytest.LogCaptureFixture) -> None:
    server.route("POST", "/oauth/token", TokenEndpoint())
    caplog.set_level(logging.DEBUG)
    auth = oauth(server, FakeClock())
    bearer(auth)
    assert "TOKEN-1" not in caplog.text and CLIENT_SECRET not in caplog.text
    assert "TOKEN-1" not in repr(auth) and CLIENT_SECRET not in repr(auth)


def test_api_key_basic_and_bearer_headers() -> None:
    headers: dict[str, str] = {"Accept": "application/json"}
    ApiKeyAuth("X-API-Key", "KEY-123").apply(headers, {})
    HttpBasicAuth("svc_user", "pä:ss").apply(headers, {})
    assert headers["X-API-Key"] == "KEY-123"
    assert base64.b64decode(headers["Authorization"][6:]).decode() == "svc_user:pä:ss"
    assert headers["Accept"] == "application/json"

    tokens = iter(["t1", "t2"])
    asked: list[bool] = []

    def get_token(force_refresh: bool = False) -> str:
        asked.append(force_refresh)
        return next(tokens)

    provider = BearerTokenAuth(get_token)
    assert [bearer(provider), bearer(provider)] == ["Bearer t1", "Bearer t1"]  # asked once, reused
    assert provider.on_unauthorized() is True
    assert bearer(provider) == "Bearer t2"  # asked again after a 401, with a forced refresh
    assert bearer(provider) == "Bearer t2" and asked == [False, True]
    assert ApiKeyAuth("X-API-Key", "k").on_unauthorized() is False
    assert HttpBasicAuth("u", "p").on_unauthorized() is False


def test_empty_bearer_token_is_an_auth_error() -> None:
    with pytest.raises(AuthError, match="empty token"):
        bearer(BearerTokenAuth(lambda: ""))


def test_no_repr_shows_a_secret() -> None:
    auths = [
        ApiKeyAuth("X-API-Key", "KEY-SECRET-1"),
        HttpBasicAuth("svc_user", "PASSWORD-SECRET-2"),
        BearerTokenAuth(lambda: "BEARER-SECRET-3"),
        OAuth2ClientCredentials(
            "https://u:PW-SECRET-5@h/oauth/token?x=QUERY-SECRET-6",
            "cid",
            "CLIENT-SECRET-4",
            http=requests.Session(),
        ),
    ]
    text = " ".join(repr(a) for a in auths)
    assert "SECRET" not in text
    assert "svc_user" in text and "X-API-Key" in text and "cid" in text


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        OAuth2ClientCredentials("http://x/token", "id", "secret", method="private_key_jwt")
    with pytest.raises(ValueError):
        HttpBasicAuth("a:b", "pw")


def test_401_mid_extract_forces_a_refresh_and_resumes_at_the_failed_page(server: MockServer) -> None:
    """The API revokes the token after serving page 2: page 3 is sent again with a new token; 1-2 are not."""
    from api2snow.http.client import ApiClient
    from api2snow.http.paginate import CursorPaginator, PageRequest
    from api2snow.http.ratelimit import RateLimiter

    asked: list[bool] = []
    valid = {"TOKEN-1"}
    pages = {None: (1, "c2"), "c2": (2, "c3"), "c3": (3, None)}

    def provider(force_refresh: bool = False) -> str:
        asked.append(force_refresh)
        return f"TOKEN-{len(asked)}"

    def events(seen: Seen) -> Reply:
        if seen.headers.get("authorization", "").removeprefix("Bearer ") not in valid:
            return json_reply({"error": "invalid_token"}, 401)
        number, next_cursor = pages[seen.query.get("cursor")]
        if number == 2:
            valid.clear()  # revoked right after page 2; only a freshly issued token works now
            valid.add("TOKEN-2")
        return json_reply({"data": [{"id": number}], "next_cursor": next_cursor})

    server.route("GET", "/v1/events", events)
    clock = FakeClock()
    client = ApiClient(
        server.url,
        BearerTokenAuth(provider),
        RateLimiter(100, 60, clock=clock, sleep=clock.sleep),
        RetryPolicy(max_attempts=3, rng=random.Random(2)),
        sleep=clock.sleep,
    )
    parse = lambda response: (response.json(), response.json()["data"])  # noqa: E731
    got = list(client.pages(PageRequest("GET", "/v1/events"), CursorPaginator(), parse))

    assert got == [[{"id": 1}], [{"id": 2}], [{"id": 3}]]
    calls = server.calls("/v1/events")
    assert [c.query.get("cursor") for c in calls] == [None, "c2", "c3", "c3"]
    assert [c.headers["authorization"] for c in calls] == ["Bearer TOKEN-1"] * 3 + ["Bearer TOKEN-2"]
    assert asked == [False, True]  # the provider was told to force a refresh, once
    assert client.stats["unauthorized_refreshes"] == 1 and clock.sleeps == []
