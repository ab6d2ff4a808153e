"""Alert messages, the once-per-run rule, and the local notification integrations over real loopback HTTP."""

from __future__ import annotations

import json

import pytest
from api2snow import notifications, redaction
from api2snow.notifications import Alert, channels, current_attempt, retry_follows, safe_error
from api2snow.platform import PlatformError
from api2snow.settings import Settings

from api2snow_cli.local.notifications import LocalNotifications
from api2snow_cli.local.secrets import LocalSecrets
from api2snow_cli.local.webhook_receiver import WebhookReceiver

RUN_ID = "0b7d0c55-5a4e-4f0e-9a53-1f6f0c2d9e11"
HISTORY = f"SELECT name, state FROM DB.OPS.TASK_HISTORY WHERE graph_run_group_id = '{RUN_ID}'"
DQ = f"SELECT check_name FROM DB.ANALYTICS.DQ_CHECK_RESULTS WHERE run_id = '{RUN_ID}' AND NOT passed"


def _alert(error: str, dq_failed: list[str] | None = None) -> Alert:
    failed = [{"NAME": "INGEST_API_B", "STATE": "FAILED", "ERROR_MESSAGE": error, "ATTEMPT_NUMBER": 3}]
    return notifications.failure_alert("prod", RUN_ID, failed, 3, dq_failed or [], HISTORY, DQ)


# ---- the message ------------------------------------------------------------------------------------
def test_a_failure_alert_names_the_run_the_task_its_error_and_a_query():
    alert = _alert("ApiError: API B answered HTTP 503 after 6 attempts")
    assert alert.lines == (
        f"api2snow prod: graph run {RUN_ID} FAILED (attempt 3)",
        "Failed task: INGEST_API_B",
        "Error: ApiError: API B answered HTTP 503 after 6 attempts",
        f"See more: {HISTORY}",
    )
    assert alert.subject == f"api2snow prod: graph run FAILED at INGEST_API_B ({RUN_ID})"
    assert alert.kind == notifications.RUN_FAILED


def test_failed_dq_checks_are_listed_with_their_query_and_long_lists_are_cut():
    checks = [f"check_{i}[api_a]" for i in range(12)]
    alert = _alert("DataQualityError: 12 error-severity data-quality check(s) failed", checks)
    assert f"Failed error-severity DQ checks: {', '.join(checks[:8])} and 4 more" in alert.lines
    assert f"DQ details: {DQ}" in alert.lines


def test_the_webhook_text_fits_a_pagerduty_summary_and_keeps_the_query():
    checks = [f"a_rather_long_check_name_{i}[api_source_{i}]" for i in range(12)]
    text = _alert("E" * 5000, checks).webhook_text()
    assert len(text) <= notifications.WEBHOOK_CHARS < 1024
    assert f"See more: {HISTORY}" in text  # the query comes before the lists that may be cut


def test_the_error_is_redacted_by_value_and_by_pattern_and_cut_short():
    with redaction.call_scope():
        redaction.register("hunter2-password")
        text = safe_error(
            "login hunter2-password refused; Authorization: Bearer abc.def.ghi; api_key=k3y "
            "SNOWFLAKE_WEBHOOK_SECRET " + "x" * 1000
        )
    assert "hunter2" not in text and "abc.def" not in text and "k3y" not in text
    assert "Bearer ***" in text and "api_key=***" in text
    assert "SNOWFLAKE_WEBHOOK_SECRET" not in text and "REDACTED" in text  # as SANITIZE_WEBHOOK_CONTENT
    assert len(text) == notifications.ERROR_CHARS and text.endswith("...")


def test_the_webhook_text_is_one_line_and_valid_json_in_the_body_template_escaped_or_not():
    alert = _alert('KeyError: "id"\nTraceback\\ at line\t3\x07')
    text = alert.webhook_text()
    assert "\n" not in text and '"' not in text and "\\" not in text
    assert not any(ord(c) < 32 for c in text)
    template = '{"text": "SNOWFLAKE_WEBHOOK_MESSAGE"}'
    assert json.loads(template.replace("SNOWFLAKE_WEBHOOK_MESSAGE", text))["text"] == text  # pasted as is
    escaped = json.dumps(text)[1:-1]
    assert json.loads(template.replace("SNOWFLAKE_WEBHOOK_MESSAGE", escaped))["text"] == text  # or escaped
    assert "Error: KeyError: 'id' Traceback/ at line 3 " in text


def test_a_warning_alert_names_the_checks():
    alert = notifications.warning_alert("", RUN_ID, ["null_rate_category[api_b]"], DQ)
    assert alert.kind == notifications.DQ_WARNINGS
    assert alert.lines[0] == f"api2snow: graph run {RUN_ID} passed with 1 failed warn-severity DQ check(s)"


# ---- when ---------------------------------------------------------------------------------------------
def _group(states_per_attempt: list[str]) -> list[tuple[bool, str]]:
    """For each attempt of a run group: whether its finalizer alerts (TASK_AUTO_RETRY_ATTEMPTS = 2)."""
    decisions = []
    for number, state in enumerate(states_per_attempt, 1):
        tasks = [{"NAME": "ROOT", "ATTEMPT_NUMBER": 1}, {"NAME": "CLEAN", "ATTEMPT_NUMBER": number}]
        attempt = current_attempt(tasks)
        alerts = state == "FAILED" and not retry_follows(state, attempt, retry_attempts=2)
        decisions.append((alerts, state))
    return decisions


def test_a_run_group_failing_on_every_attempt_alerts_once_on_the_last():
    assert _group(["FAILED", "FAILED", "FAILED"]) == [(False, "FAILED"), (False, "FAILED"), (True, "FAILED")]


def test_a_failure_cured_by_a_retry_never_alerts():
    assert _group(["FAILED", "SUCCEEDED"]) == [(False, "FAILED"), (False, "SUCCEEDED")]
    assert _group(["SUCCEEDED"]) == [(False, "SUCCEEDED")]


def test_without_retries_the_first_failure_alerts():
    assert not retry_follows("FAILED", 1, retry_attempts=0)
    assert current_attempt([]) == 1


def test_channels_follow_the_settings_and_an_empty_one_is_off():
    def configured(**values: str) -> list:
        return channels(Settings("DB", values))

    assert configured() == []
    assert [c.kind for c in configured(alert_webhook_integration="HOOK")] == ["webhook"]
    assert configured(alert_email_integration="MAIL") == []  # no recipients: no email
    [email] = configured(alert_email_integration="MAIL", alert_email_recipients=" a@x.io, ,b@x.io ")
    assert (email.kind, email.integration, email.recipients) == ("email", "MAIL", ("a@x.io", "b@x.io"))


# ---- the local notification integrations --------------------------------------------------------------
SECRET = "R0UTING-KEY-9f8e7d"
STATEMENTS = [
    "CREATE SECRET IF NOT EXISTS DB.OPS.ALERT_WEBHOOK_SECRET TYPE = GENERIC_STRING "
    f"SECRET_STRING = '{SECRET}'",
    "CREATE NOTIFICATION INTEGRATION IF NOT EXISTS PD TYPE = WEBHOOK ENABLED = TRUE "
    "WEBHOOK_URL = '{url}' WEBHOOK_SECRET = DB.OPS.ALERT_WEBHOOK_SECRET "
    """WEBHOOK_BODY_TEMPLATE = '{{"routing_key": "SNOWFLAKE_WEBHOOK_SECRET", "event_action": "trigger", """
    """"payload": {{"summary": "SNOWFLAKE_WEBHOOK_MESSAGE", "source": "api2snow", "severity": "error"}}}}' """
    "WEBHOOK_HEADERS = ('Content-Type' = 'application/json')",
    "CREATE NOTIFICATION INTEGRATION IF NOT EXISTS OFF TYPE = WEBHOOK ENABLED = FALSE WEBHOOK_URL = '{url}'",
    "CREATE NOTIFICATION INTEGRATION IF NOT EXISTS MAIL TYPE = EMAIL ENABLED = TRUE",
]


@pytest.fixture
def receiver():
    started = WebhookReceiver(secret="unused-path-secret").start()
    yield started
    started.stop()


@pytest.fixture
def local(receiver):
    url = f"{receiver.url}/services/unused-path-secret"
    statements = [s.replace("{url}", url).replace("{{", "{").replace("}}", "}") for s in STATEMENTS]
    return LocalNotifications(statements, LocalSecrets(statements, aws=None), receiver.email_url)  # type: ignore[arg-type]


def test_a_pagerduty_style_template_gets_the_secret_in_the_body_and_the_message_as_summary(local, receiver):
    local.send("PD", "run X FAILED | see SNOWFLAKE_WEBHOOK_SECRET", "", ())
    [received] = receiver.received("webhook")
    assert received.payload == {
        "routing_key": SECRET,
        "event_action": "trigger",
        "payload": {"summary": "run X FAILED | see REDACTED", "source": "api2snow", "severity": "error"},
    }
    assert received.text == "run X FAILED | see REDACTED"


def test_a_message_that_would_break_the_json_body_fails_the_send(local, receiver):
    with pytest.raises(PlatformError, match=r"notification through PD: the endpoint answered HTTP 400"):
        local.send("PD", 'a "quoted" word', "", ())
    assert receiver.received() == []


def test_unknown_and_disabled_integrations_fail_as_in_snowflake(local):
    with pytest.raises(PlatformError, match=r"Integration 'NOPE' does not exist or not authorized\."):
        local.send("NOPE", "m", "", ())
    with pytest.raises(PlatformError, match=r"Integration 'OFF' is disabled"):
        local.send("OFF", "m", "", ())


def test_an_email_goes_to_the_outbox_with_subject_and_recipients(local, receiver):
    local.send("MAIL", "line 1\nline 2", "api2snow: run FAILED", ("ops@example.com",))
    [mail] = receiver.received("email")
    assert mail.payload == {
        "integration": "MAIL",
        "subject": "api2snow: run FAILED",
        "to": ["ops@example.com"],
        "body": "line 1\nline 2",
    }
    with pytest.raises(PlatformError, match="no recipients"):
        local.send("MAIL", "m", "s", ())


def test_the_receiver_refuses_a_webhook_path_without_its_secret(receiver):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{receiver.url}/services/wrong", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 404 and receiver.received() == []


# ---- in Snowflake ---------------------------------------------------------------------------------------
class _RecordingSession:
    def __init__(self) -> None:
        self.statements: list[tuple[str, list]] = []

    def sql(self, statement: str, params: list | None = None) -> _RecordingSession:
        self.statements.append((statement, params or []))
        return self

    def collect(self) -> list:
        return []


def test_snowflake_sends_through_the_documented_functions_with_the_message_bound_not_inlined():
    from api2snow.platform import SnowflakePlatform

    session = _RecordingSession()
    message = "run 'x' FAILED; DROP TABLE y"
    SnowflakePlatform().send_notification(session, "API2SNOW_ALERTS_WEBHOOK", message)
    SnowflakePlatform().send_notification(
        session, "API2SNOW_ALERTS_EMAIL", message, subject="s" * 300, recipients=("a@x.io", "b@x.io")
    )
    (webhook, webhook_params), (email, email_params) = session.statements
    assert webhook == (
        "CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION(SNOWFLAKE.NOTIFICATION.TEXT_PLAIN("
        "SNOWFLAKE.NOTIFICATION.SANITIZE_WEBHOOK_CONTENT(?)), SNOWFLAKE.NOTIFICATION.INTEGRATION(?))"
    )
    assert webhook_params == [message, "API2SNOW_ALERTS_WEBHOOK"]
    assert email == (
        "CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION(SNOWFLAKE.NOTIFICATION.TEXT_PLAIN(?), "
        "SNOWFLAKE.NOTIFICATION.EMAIL_INTEGRATION_CONFIG(?, ?, SPLIT(?, ',')))"
    )
    assert email_params == [message, "API2SNOW_ALERTS_EMAIL", "s" * 256, "a@x.io,b@x.io"]  # subject <= 256
    assert message not in webhook + email


def test_an_unreachable_webhook_fails_without_naming_its_secret_url():
    down = WebhookReceiver(secret="path-secret-5e6f7a").start()
    url = f"{down.url}/services/SNOWFLAKE_WEBHOOK_SECRET"
    down.stop()
    statements = [
        "CREATE SECRET S TYPE = GENERIC_STRING SECRET_STRING = 'path-secret-5e6f7a'",
        f"CREATE NOTIFICATION INTEGRATION HOOK TYPE = WEBHOOK ENABLED = TRUE WEBHOOK_URL = '{url}' "
        """WEBHOOK_SECRET = S WEBHOOK_BODY_TEMPLATE = '{"text": "SNOWFLAKE_WEBHOOK_MESSAGE"}'""",
    ]
    local = LocalNotifications(statements, LocalSecrets(statements, aws=None), None)  # type: ignore[arg-type]
    with pytest.raises(PlatformError, match="could not reach the endpoint") as failed:
        local.send("HOOK", "m", "", ())
    assert "path-secret" not in str(failed.value) and "/services/" not in str(failed.value)


# ---- the finalizer: record, then alert; alert even when the record cannot be written ---------------------
class _WarehouseDown:
    """A session whose MERGE into PIPELINE_RUNS fails; every other statement answers with no rows."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def sql(self, statement: str, params: list | None = None) -> _WarehouseDown:
        self.statements.append(statement)
        if "MERGE INTO DB.OPS.PIPELINE_RUNS" in statement:
            raise RuntimeError("warehouse unavailable")
        return self

    def collect(self) -> list:
        return [{"N": 0}] if "COUNT(*)" in self.statements[-1] else []


class _Platform:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def graph_run_tasks(self, session, run_id):
        return [{"NAME": "CLEAN", "STATE": "FAILED", "ERROR_MESSAGE": "boom", "ATTEMPT_NUMBER": 3}]

    def run_history_query(self, database, run_id):
        return f"SELECT 1 -- {run_id}"

    def send_notification(self, session, integration, message, subject="", recipients=()):
        self.sent.append((integration, message))


def test_a_run_record_that_cannot_be_written_still_alerts_then_fails_the_finalizer():
    from api2snow.reporting import finalize_run

    platform = _Platform()
    settings = Settings("DB", {"alert_webhook_integration": "HOOK", "task_retry_attempts": "2"})
    with pytest.raises(RuntimeError, match="warehouse unavailable"):
        finalize_run(_WarehouseDown(), platform, settings, RUN_ID)  # type: ignore[arg-type]
    [(integration, message)] = platform.sent
    assert integration == "HOOK" and f"graph run {RUN_ID} FAILED (attempt 3)" in message
    assert "Failed task: CLEAN | Error: boom" in message
