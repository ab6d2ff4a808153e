"""Forced OAuth token refresh through the platform seam: Snowflake's (`_snowflake`) and the local one."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest
from api2snow import redaction
from api2snow.platform import SnowflakePlatform, TokenRefreshError, get_platform, set_platform

from api2snow_cli.local.platform import LocalPlatform
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
