"""Redaction by value: what a procedure call writes or raises never shows a secret it read."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from api2snow import ledger, procedures, redaction
from api2snow.http.errors import ApiError
from api2snow.http.prefetch import prefetched
from api2snow.platform import AwsCredentials, set_platform

PASSWORD = "pä ss/word+&=42"
API_KEY = "KEY-B-SECRET-0042"
TOKEN = "TOKEN.abc-DEF_123"
AWS_SECRET = "AWS-SECRET-ACCESS-KEY-9"


class FakePlatform:
    """A platform whose secret readers return fixed values and whose task return value is captured."""

    def __init__(self) -> None:
        self.return_values: list[str] = []

    def secret_string(self, key: str) -> str:
        return API_KEY

    def username_password(self, key: str) -> tuple[str, str]:
        return "svc_user", PASSWORD

    def oauth_access_token(self, key: str, force_refresh: bool = False) -> str:
        return TOKEN

    def aws_credentials(self, key: str) -> AwsCredentials:
        return AwsCredentials("AKIAEXAMPLE", AWS_SECRET)

    def set_return_value(self, session: Any, value: str) -> None:
        self.return_values.append(value)


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePlatform]:
    fake = FakePlatform()
    set_platform(fake)
    monkeypatch.setattr(procedures, "load_settings", lambda session, platform: None)
    try:
        yield fake
    finally:
        set_platform(None)


def test_values_and_their_encodings_are_masked() -> None:
    with redaction.call_scope():
        redaction.register(API_KEY)
        redaction.register_login("svc_user", PASSWORD)
        redaction.register_token(TOKEN)
        basic = base64.b64encode(f"svc_user:{PASSWORD}".encode()).decode()
        form_basic = base64.b64encode(f"svc_user:{quote_plus(PASSWORD, safe='')}".encode()).decode()
        for form in (API_KEY, PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD), basic, form_basic):
            assert redaction.redact(f"<{form}>") == "<***>", form
        assert redaction.redact(f"Authorization: Bearer {TOKEN}") == "Authorization: ***"
        assert redaction.redact(json.dumps({"p": PASSWORD + '"'})) == '{"p": "***\\""}'
        assert redaction.redact("nothing secret here") == "nothing secret here"


def test_short_and_empty_values_are_not_registered() -> None:
    with redaction.call_scope() as registry:
        redaction.register("", "abc", None)
        assert len(registry) == 0
        assert redaction.redact("abc is fine") == "abc is fine"
        redaction.register("abcd")
        assert redaction.redact("abcd!") == "***!"


def test_nothing_is_masked_outside_a_call_and_calls_do_not_share_values() -> None:
    redaction.register(API_KEY)  # no call: ignored
    assert redaction.redact(API_KEY) == API_KEY
    with redaction.call_scope():
        redaction.register(API_KEY)
    with redaction.call_scope():
        assert redaction.redact(API_KEY) == API_KEY


def test_a_worker_thread_registers_into_the_callers_registry() -> None:
    def pages() -> Iterator[str]:
        assert threading.current_thread().name == "page-prefetch"
        redaction.register(TOKEN)  # e.g. a token fetched after a 401 in the prefetch worker
        yield "page"

    with redaction.call_scope():
        assert list(prefetched(pages())) == ["page"]
        assert redaction.redact(TOKEN) == "***"


def test_the_exception_and_its_whole_chain_are_redacted_in_place(platform: FakePlatform) -> None:
    def work(p: Any, settings: Any) -> dict[str, Any]:
        key = p.secret_string("api_b_key")
        try:
            try:
                raise KeyError(f"no such key {key}")
            except KeyError as inner:
                raise ValueError(f"lookup failed for {key}") from inner
        except ValueError:
            raise RuntimeError(f"upstream echoed {quote(key)}") from None

    with pytest.raises(RuntimeError) as info:
        procedures._run(None, work)
    assert str(info.value) == "upstream echoed ***"
    with pytest.raises(ValueError) as info2:

        def chained(p: Any, settings: Any) -> dict[str, Any]:
            key = p.secret_string("api_b_key")
            try:
                raise KeyError(key)
            except KeyError as inner:
                raise ValueError(f"lookup failed for {key}") from inner

        procedures._run(None, chained)
    assert str(info2.value) == "lookup failed for ***"
    assert str(info2.value.__cause__) == "'***'"
    assert str(info2.value.__context__) == "'***'"


def test_an_api_error_echoing_a_password_is_masked_in_every_part(platform: FakePlatform) -> None:
    def work(p: Any, settings: Any) -> dict[str, Any]:
        user, password = p.username_password("api_c_login")
        raise ApiError(
            "POST", "http://h/soap", 400, "bad", excerpt=f"you sent user {user} password {password}"
        )

    with pytest.raises(ApiError) as info:
        procedures._run(None, work)
    assert "password ***" in str(info.value) and PASSWORD not in str(info.value)
    assert PASSWORD not in info.value.excerpt and "svc_user" in info.value.excerpt


def test_a_custom_str_that_args_do_not_feed_is_replaced(platform: FakePlatform) -> None:
    class Holder:
        def __init__(self, value: str) -> None:
            self.value = value

    class Opaque(Exception):
        """Its message comes from an object redaction cannot see into, not from args."""

        def __init__(self, secret: str) -> None:
            super().__init__()
            self.holder = Holder(secret)

        def __str__(self) -> str:
            return f"opaque {self.holder.value}"

    def work(p: Any, settings: Any) -> dict[str, Any]:
        raise Opaque(p.secret_string("k"))

    with pytest.raises(RuntimeError, match=r"^Opaque: opaque \*\*\*$"):
        procedures._run(None, work)


def test_return_value_and_summary_are_redacted(platform: FakePlatform) -> None:
    def work(p: Any, settings: Any) -> dict[str, Any]:
        creds = p.aws_credentials("aws_s3")
        return {"note": f"used {creds.secret_access_key}", "nested": [{"token": p.oauth_access_token("a")}]}

    summary = procedures._run(None, work)
    assert summary == {"note": "used ***", "nested": [{"token": "***"}]}
    (value,) = platform.return_values
    assert AWS_SECRET not in value and TOKEN not in value and json.loads(value) == summary


def test_log_records_of_the_package_are_redacted(
    platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("api2snow.ingest")

    def work(p: Any, settings: Any) -> dict[str, Any]:
        key = p.secret_string("api_b_key")
        log.info("the key is %s", key)
        try:
            raise ValueError(f"bad key {key}")
        except ValueError:
            log.exception("failed")
        return {}

    procedures._run(None, work)
    assert "the key is ***" in caplog.text and "bad key ***" in caplog.text
    assert API_KEY not in caplog.text


def test_ledger_fail_batch_redacts_its_message() -> None:
    class Session:
        params: list[Any] = []

        def sql(self, query: str, params: list[Any]) -> Session:
            Session.params = params
            return self

        def collect(self) -> list[Any]:
            return []

    class Settings:
        def table(self, name: str) -> str:
            return f"DB.{name}"

    with redaction.call_scope():
        redaction.register(API_KEY)
        ledger.fail_batch(Session(), Settings(), "b-1", f"ApiError: 403 forbidden for key {API_KEY}")  # type: ignore[arg-type]
    assert Session.params == ["FAILED", "ApiError: 403 forbidden for key ***", "b-1"]
