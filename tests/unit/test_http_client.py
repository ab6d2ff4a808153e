"""ApiClient against a real local server: retries, 429 handling, 401 refresh, malformed pages, secrecy."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator

import pytest
import requests
from api2snow.http.auth import ApiKeyAuth, Auth, HttpBasicAuth, OAuth2ClientCredentials
from api2snow.http.client import ApiClient
from api2snow.http.errors import ApiError, AuthError, RateLimitExceeded
from api2snow.http.paginate import CursorPaginator, PageRequest
from api2snow.http.ratelimit import RateLimiter
from api2snow.http.retry import RetryPolicy

try:
    from ._http_fixtures import FakeClock, MockServer, Reply, Script, Seen, json_reply, unused_port
except ImportError:
    from _http_fixtures import FakeClock, MockServer, Reply, Script, Seen, json_reply, unused_port

OK = json_reply({"data": [{"id": "a-1"}], "next_cursor": None})
API_KEY = "KEY-VERY-SECRET-42"


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(
    base_url: str, clock: FakeClock, auth: Auth | None = None, max_requests: int = 1000, **kwargs
) -> ApiClient:
    """Limiter and backoff share one fake clock, so a Retry-After deferral is visibly honoured once."""
    return ApiClient(
        base_url,
        auth or Auth(),
        RateLimiter(max_requests, 60, clock=clock, sleep=clock.sleep),
        RetryPolicy(max_attempts=3, base_delay_s=0.5, rng=random.Random(5)),
        sleep=clock.sleep,
        **kwargs,
    )


def get(path: str = "/v1/events", **params) -> PageRequest:
    return PageRequest("GET", path, params=params)


def test_429_with_retry_after_defers_then_succeeds(server: MockServer, clock: FakeClock) -> None:
    script = Script(json_reply({"error": "rate_limited"}, 429, **{"Retry-After": "2"}), OK)
    server.route("GET", "/v1/events", script)
    client = make_client(server.url, clock)
    response = client.send(get())
    assert response.json()["data"] == [{"id": "a-1"}]
    assert script.count == 2
    assert clock.sleeps == [2.0]  # backoff slept the Retry-After; the limiter had nothing left to wait
    assert client.stats == {
        "requests": 2,
        "retries": 1,
        "throttled_429": 1,
        "waited_s": 2.0,
        "unauthorized_refreshes": 0,
        "malformed_bodies": 0,
        "inconsistent_pages": 0,
        "pages": 0,
    }


def test_429_deferral_holds_back_other_callers_of_the_limiter(server: MockServer, clock: FakeClock) -> None:
    server.route(
        "GET", "/v1/events", Script(json_reply({"error": "rate_limited"}, 429, **{"Retry-After": "9"}), OK)
    )
    limiter = RateLimiter(1000, 60, clock=clock, sleep=clock.sleep)
    sleeps: list[float] = []  # this client's backoff does not move the clock
    client = ApiClient(server.url, Auth(), limiter, RetryPolicy(rng=random.Random(1)), sleep=sleeps.append)
    client.send(get())
    assert sleeps == [9.0]
    assert clock.sleeps == [9.0]  # the retry's acquire() waited for the deferral
    assert limiter.acquire() == 0.0


def test_503_twice_then_200(server: MockServer, clock: FakeClock) -> None:
    script = Script(json_reply({"error": "unavailable"}, 503), json_reply({"error": "bad gateway"}, 502), OK)
    server.route("GET", "/v1/events", script)
    client = make_client(server.url, clock)
    assert client.send(get()).status_code == 200
    assert script.count == 3
    assert client.stats["requests"] == 3 and client.stats["retries"] == 2
    expected = random.Random(5)
    assert clock.sleeps == [expected.uniform(0, 0.5), expected.uniform(0, 1.0)]


def test_exhausted_retries_name_attempts_and_last_status(server: MockServer, clock: FakeClock) -> None:
    server.route("GET", "/v1/events", Script(Reply(503, "upstream\nbusy")))
    client = make_client(server.url, clock)
    with pytest.raises(ApiError) as info:
        client.send(get(updated_since="2026-01-01"))
    message = str(info.value)
    assert (
        message
        == f"GET {server.url}/v1/events -> HTTP 503: retries exhausted after 3 attempts; body: upstream busy"
    )
    assert info.value.status == 503 and info.value.attempts == 3
    assert len(server.calls("/v1/events")) == 3 and len(clock.sleeps) == 2


def test_persistent_429_raises_rate_limit_exceeded(server: MockServer, clock: FakeClock) -> None:
    server.route(
        "GET", "/v1/events", Script(json_reply({"error": "rate_limited"}, 429, **{"Retry-After": "1"}))
    )
    client = make_client(server.url, clock)
    with pytest.raises(RateLimitExceeded, match="HTTP 429.*after 3 attempts"):
        client.send(get())
    assert client.stats["throttled_429"] == 3 and client.stats["requests"] == 3


def test_404_fails_at_once(server: MockServer, clock: FakeClock) -> None:
    client = make_client(server.url, clock)
    with pytest.raises(ApiError) as info:
        client.send(get("/v1/nothing-here"))
    assert info.value.status == 404 and not isinstance(info.value, AuthError)
    assert (
        str(info.value)
        == f'GET {server.url}/v1/nothing-here -> HTTP 404: not retryable; body: {{"error": "not_found"}}'
    )
    assert len(server.seen) == 1 and clock.sleeps == [] and client.stats["retries"] == 0


def test_connection_refused_is_retried_then_reported(clock: FakeClock) -> None:
    client = make_client(f"http://127.0.0.1:{unused_port()}", clock)
    with pytest.raises(ApiError, match=r"no response: ConnectionError after 3 attempts") as info:
        client.send(get())
    assert info.value.status is None and client.stats["requests"] == 3


def test_timeout_is_retried(server: MockServer, clock: FakeClock) -> None:
    script = Script(Reply(200, {"data": []}, delay_s=0.5), OK)
    server.route("GET", "/v1/events", script)
    client = make_client(server.url, clock, timeout=(1.0, 0.1))
    assert client.send(get()).json()["data"] == [{"id": "a-1"}]
    assert script.count == 2 and client.stats["retries"] == 1


def test_truncated_json_page_is_fetched_again(server: MockServer, clock: FakeClock) -> None:
    script = Script(Reply(200, '{"data": [{"id": "a-1"}, {"id": "a-'), OK)
    server.route("GET", "/v1/events", script)
    client = make_client(server.url, clock)

    def parse(response: requests.Response) -> tuple[dict, list]:
        payload = response.json()
        return payload, payload["data"]

    pages = list(client.pages(get(limit=2), CursorPaginator(), parse))
    assert pages == [[{"id": "a-1"}]]
    assert script.count == 2
    assert (
        client.stats["malformed_bodies"] == 1 and client.stats["retries"] == 1 and client.stats["pages"] == 1
    )


def test_always_truncated_json_gives_up(server: MockServer, clock: FakeClock) -> None:
    server.route("GET", "/v1/events", Script(Reply(200, '{"data": [')))
    client = make_client(server.url, clock)
    with pytest.raises(ApiError, match=r"HTTP 200: malformed body \(JSONDecodeError\) after 3 attempts"):
        list(client.pages(get(), CursorPaginator(), lambda r: (r.json(), r.json()["data"])))
    assert len(server.seen) == 3


class TokenServer:
    """Token endpoint issuing numbered tokens plus an events endpoint accepting only listed tokens."""

    def __init__(self, server: MockServer) -> None:
        self.issued: list[str] = []
        self.valid: set[str] = set()
        server.route("POST", "/oauth/token", self.token)
        server.route("GET", "/v1/events", self.events)

    def token(self, seen: Seen) -> Reply:
        token = f"ACCESS-TOKEN-{len(self.issued) + 1}"
        self.issued.append(token)
        return json_reply({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def events(self, seen: Seen) -> Reply:
        token = seen.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.valid:
            return json_reply(
                {"error": "invalid_token", "echo": seen.headers.get("authorization")},
                401,
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return OK


def oauth_client(server: MockServer, clock: FakeClock) -> tuple[ApiClient, OAuth2ClientCredentials]:
    auth = OAuth2ClientCredentials(server.url + "/oauth/token", "cid", "CLIENT-SECRET-9", clock=clock)
    return make_client(server.url, clock, auth, max_requests=100), auth


def test_401_refreshes_the_token_once(server: MockServer, clock: FakeClock) -> None:
    tokens = TokenServer(server)
    tokens.valid.add("ACCESS-TOKEN-2")  # the first token was revoked server-side
    client, auth = oauth_client(server, clock)
    assert client.send(get()).status_code == 200
    assert tokens.issued == ["ACCESS-TOKEN-1", "ACCESS-TOKEN-2"] and auth.token_requests == 2
    calls = server.calls("/v1/events")
    assert [c.headers["authorization"] for c in calls] == ["Bearer ACCESS-TOKEN-1", "Bearer ACCESS-TOKEN-2"]
    assert client.stats["unauthorized_refreshes"] == 1 and client.stats["requests"] == 2
    assert client.stats["retries"] == 0 and clock.sleeps == []


def test_second_401_is_final_and_leaks_no_token(
    server: MockServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = TokenServer(server)
    caplog.set_level(logging.DEBUG, logger="api2snow")
    client, auth = oauth_client(server, clock)
    with pytest.raises(AuthError) as info:
        client.send(get(updated_since="2026-11-26T00:00:00Z"))
    message = str(info.value)
    assert message.startswith(
        f"GET {server.url}/v1/events -> HTTP 401: credentials refused even after refresh"
    )
    assert '"error": "invalid_token"' in message
    assert len(server.calls("/v1/events")) == 2 and tokens.issued == ["ACCESS-TOKEN-1", "ACCESS-TOKEN-2"]
    for text in (message, caplog.text, repr(client), repr(auth)):
        assert "ACCESS-TOKEN" not in text and "CLIENT-SECRET-9" not in text
    assert "updated_since" not in caplog.text and "2026-11-26" not in message
    assert "/v1/events" in caplog.text


def test_api_key_never_appears_in_errors_or_logs(
    server: MockServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    echo = Script(Reply(403, f"forbidden for key {API_KEY}", {"Content-Type": "text/plain"}))
    server.route("GET", "/api/v2/detections", echo)
    caplog.set_level(logging.DEBUG, logger="api2snow")  # urllib3's own DEBUG lines print full URLs
    client = make_client(server.url, clock, ApiKeyAuth("X-API-Key", API_KEY))
    with pytest.raises(ApiError) as info:
        client.send(get("/api/v2/detections", api_key=API_KEY))
    assert server.calls("/api/v2/detections")[0].headers["x-api-key"] == API_KEY
    assert "forbidden for key ***" in str(info.value)
    for text in (str(info.value), repr(info.value), caplog.text, repr(client)):
        assert API_KEY not in text


def test_basic_credentials_never_appear_in_errors(server: MockServer, clock: FakeClock) -> None:
    def echo_auth(seen: Seen) -> Reply:
        return Reply(400, f"bad request, you sent {seen.headers['authorization']}")

    server.route("POST", "/soap/cameras", echo_auth)
    client = make_client(server.url, clock, HttpBasicAuth("svc", "PASSWORD-7"))
    with pytest.raises(ApiError) as info:
        client.send(PageRequest("POST", "/soap/cameras", body="<x/>"))
    header = server.calls("/soap/cameras")[0].headers["authorization"]
    assert header.split()[1] not in str(info.value) and "you sent ***" in str(info.value)


def test_rate_limiter_paces_requests(server: MockServer, clock: FakeClock) -> None:
    server.route("GET", "/v1/events", Script(OK))
    client = make_client(server.url, clock, max_requests=3)
    for _ in range(7):
        client.send(get())
    assert clock.sleeps == [pytest.approx(60.25), pytest.approx(60.25)]
    assert client.stats["waited_s"] == pytest.approx(120.5) and client.stats["requests"] == 7


def test_post_body_headers_and_absolute_urls(server: MockServer, clock: FakeClock) -> None:
    server.route("POST", "/soap/cameras", Script(Reply(200, "<ok/>", {"Content-Type": "text/xml"})))
    client = make_client(server.url + "/", clock)
    req = PageRequest(
        "POST", "soap/cameras", headers={"SOAPAction": '"urn:x#ListCameras"'}, body="<ListCameras/>"
    )
    assert client.send(req).text == "<ok/>"
    (call,) = server.calls("/soap/cameras")
    assert call.body == b"<ListCameras/>" and call.headers["soapaction"] == '"urn:x#ListCameras"'
    assert client.url_for(server.url + "/v1/x") == server.url + "/v1/x"
    assert client.url_for("") == server.url


def test_client_closes_only_its_own_session(clock: FakeClock) -> None:
    shared = requests.Session()
    with make_client("http://127.0.0.1:9", clock, http=shared) as client:
        assert client.http is shared
    assert shared.adapters  # still usable by its owner
    shared.close()
