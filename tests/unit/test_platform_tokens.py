"""Forced OAuth token refresh through the platform seam: Snowflake's (`_snowflake`) and the local one."""

from __future__ import annotations

import contextvars
import sys
import threading
import types
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from api2snow import redaction
from api2snow.http.auth import BearerTokenAuth
from api2snow.http.client import ApiClient
from api2snow.http.paginate import CursorPaginator, PageRequest
from api2snow.http.prefetch import prefetched
from api2snow.http.ratelimit import RateLimiter
from api2snow.http.retry import RetryPolicy
from api2snow.platform import PlatformError, SnowflakePlatform, TokenRefreshError, get_platform, set_platform

from api2snow_cli.local.platform import MAIN_THREAD_ONLY, LocalPlatform
from api2snow_cli.local.procedures import CallContext, _current
from api2snow_cli.local.secrets import LocalSecrets
from api2snow_cli.project import Procedure

try:
    from ._http_fixtures import MockServer, Seen, json_reply
except ImportError:
    from _http_fixtures import MockServer, Seen, json_reply


def fake_snowflake(monkeypatch: pytest.MonkeyPatch, *tokens: str) -> list[str]:
    """A fake `_snowflake` whose get_oauth_access_token answers `tokens` in turn; returns the keys asked."""
    asked: list[str] = []
    answers = iter(tokens)

    def get_oauth_access_token(key: str) -> str:
        asked.append(key)
        return next(answers)

    module = types.ModuleType("_snowflake")
    module.get_oauth_access_token = get_oauth_access_token  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "_snowflake", module)
    return asked


def test_snowflake_forced_refresh_returns_a_new_token(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_snowflake(monkeypatch, "SF-TOKEN-1", "SF-TOKEN-2")
    platform = SnowflakePlatform()
    assert platform.oauth_access_token("api_a_client") == "SF-TOKEN-1"
    assert platform.oauth_access_token("api_a_client", force_refresh=True) == "SF-TOKEN-2"
    assert asked == ["api_a_client", "api_a_client"]


def test_snowflake_handing_back_the_refused_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_snowflake(monkeypatch, "SF-TOKEN-1", "SF-TOKEN-1")
    platform = SnowflakePlatform()
    platform.oauth_access_token("api_a_client")
    with pytest.raises(TokenRefreshError) as info:
        platform.oauth_access_token("api_a_client", force_refresh=True)
    message = str(info.value)
    assert "'api_a_client'" in message and "returned the same token again" in message
    assert "\n" not in message and "SF-TOKEN" not in message


def test_an_unforced_repeat_of_the_same_token_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_snowflake(monkeypatch, "SF-TOKEN-1", "SF-TOKEN-1")
    platform = SnowflakePlatform()
    assert platform.oauth_access_token("k") == platform.oauth_access_token("k") == "SF-TOKEN-1"


def test_get_platform_passes_the_flag_on_and_registers_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_snowflake(monkeypatch, "SF-TOKEN-AAAA", "SF-TOKEN-BBBB")
    set_platform(None)
    with redaction.call_scope():
        platform = get_platform()
        platform.oauth_access_token("api_a_client")
        assert platform.oauth_access_token("api_a_client", force_refresh=True) == "SF-TOKEN-BBBB"
        assert redaction.redact("a SF-TOKEN-AAAA b Bearer SF-TOKEN-BBBB") == "a *** b ***"


# ---- the local platform ------------------------------------------------------------------------------------
@pytest.fixture
def token_server() -> Iterator[MockServer]:
    issued: list[str] = []

    def token(seen: Seen):
        issued.append(f"LOCAL-TOKEN-{len(issued) + 1}")
        return json_reply({"access_token": issued[-1], "token_type": "Bearer", "expires_in": 3600})

    with MockServer() as server:
        server.route("POST", "/oauth/token", token)
        yield server


@pytest.fixture
def local_call(token_server: MockServer) -> Iterator[LocalPlatform]:
    statements = [
        "CREATE SECURITY INTEGRATION IF NOT EXISTS A_OAUTH TYPE = API_AUTHENTICATION AUTH_TYPE = OAUTH2 "
        f"OAUTH_TOKEN_ENDPOINT = '{token_server.url}/oauth/token' "
        "OAUTH_CLIENT_AUTH_METHOD = CLIENT_SECRET_POST OAUTH_CLIENT_ID = 'cid' "
        "OAUTH_CLIENT_SECRET = 'csecret' OAUTH_GRANT = 'CLIENT_CREDENTIALS'",
        "CREATE SECRET IF NOT EXISTS DB.OPS.A_TOKEN TYPE = OAUTH2 API_AUTHENTICATION = A_OAUTH",
    ]
    proc = Procedure("e", "INGEST_API_A", "OPS", "DB", "h.f", (), secrets={"api_a_client": "DB.OPS.A_TOKEN"})
    token = _current.set(CallContext(proc))
    try:
        yield LocalPlatform(LocalSecrets(statements, aws=None), loader=None, database="DB")  # type: ignore[arg-type]
    finally:
        _current.reset(token)


def test_local_token_is_cached_per_call_and_a_forced_refresh_fetches_a_new_one(
    local_call: LocalPlatform, token_server: MockServer
) -> None:
    assert local_call.oauth_access_token("api_a_client") == "LOCAL-TOKEN-1"
    assert local_call.oauth_access_token("api_a_client") == "LOCAL-TOKEN-1"  # cached for the call
    assert len(token_server.calls("/oauth/token")) == 1
    assert local_call.oauth_access_token("api_a_client", force_refresh=True) == "LOCAL-TOKEN-2"
    assert local_call.oauth_access_token("api_a_client") == "LOCAL-TOKEN-2"
    assert len(token_server.calls("/oauth/token")) == 2


def _in_another_thread(fn: Callable[[], Any]) -> BaseException | None:
    """Run `fn` in a thread that shares the call's context (as page prefetch does); what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=contextvars.copy_context().run, args=(run,))
    worker.start()
    worker.join()
    return raised[0] if raised else None


@pytest.mark.parametrize(
    "reader", ["secret_string", "username_password", "oauth_access_token", "aws_credentials"]
)
def test_local_secrets_are_refused_off_the_thread_that_started_the_call(
    local_call: LocalPlatform, token_server: MockServer, reader: str
) -> None:
    raised = _in_another_thread(lambda: getattr(local_call, reader)("api_a_client"))
    assert isinstance(raised, PlatformError) and str(raised) == MAIN_THREAD_ONLY
    assert token_server.calls("/oauth/token") == []


def test_a_401_in_the_prefetch_worker_refreshes_the_token_on_the_main_thread(
    local_call: LocalPlatform, token_server: MockServer
) -> None:
    """The API revokes the token after page 2, while the prefetch worker fetches: the forced refresh is read
    on the call's main thread (the local platform refuses any other) and page 3 is sent again, only it."""
    valid = {"LOCAL-TOKEN-1"}
    pages = {None: (1, "c2"), "c2": (2, "c3"), "c3": (3, None)}

    def events(seen: Seen):
        if seen.headers.get("authorization", "").removeprefix("Bearer ") not in valid:
            return json_reply({"error": "invalid_token"}, 401)
        number, next_cursor = pages[seen.query.get("cursor")]
        if number == 2:
            valid.clear()
            valid.add("LOCAL-TOKEN-2")
        return json_reply({"data": [{"id": number}], "next_cursor": next_cursor})

    token_server.route("GET", "/v1/events", events)
    parse = lambda response: (response.json(), response.json()["data"])  # noqa: E731
    set_platform(local_call)
    try:
        with redaction.call_scope():
            auth = BearerTokenAuth(partial(get_platform().oauth_access_token, "api_a_client"))
            auth.token()  # as sources/api_a.py does, in the handler's thread
            client = ApiClient(token_server.url, auth, RateLimiter(1000, 60), RetryPolicy(max_attempts=3))
            got = list(prefetched(client.pages(PageRequest("GET", "/v1/events"), CursorPaginator(), parse)))
            assert redaction.redact("Bearer LOCAL-TOKEN-2") == "***"  # registered by the seam, as always
    finally:
        set_platform(None)

    assert got == [[{"id": 1}], [{"id": 2}], [{"id": 3}]]
    calls = token_server.calls("/v1/events")
    assert [c.query.get("cursor") for c in calls] == [None, "c2", "c3", "c3"]
    assert [c.headers["authorization"] for c in calls] == ["Bearer LOCAL-TOKEN-1"] * 3 + [
        "Bearer LOCAL-TOKEN-2"
    ]
    assert len(token_server.calls("/oauth/token")) == 2 and client.stats["unauthorized_refreshes"] == 1
