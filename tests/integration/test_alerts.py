"""Alerts on the local stack: the finalizer's notifications reach a real webhook receiver on loopback.

The local stack renders external_access/'s notification integrations with the receiver's URL and a webhook
secret of its own, and posts what Snowflake would post (the body template with the message in it). A run group
that fails on every attempt alerts exactly once; a passing run, or one a retry cures, sends nothing; a send
that fails is recorded and leaves the run's outcome as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api2snow import procedures
from api2snow.platform import get_platform

from api2snow_cli.local.platform import set_run_context
from api2snow_cli.local.tasks import RunContext

from .helpers import failing, scalar, set_config

pytestmark = pytest.mark.integration
FAKE_TOKEN = "sk_live_4f9a8b7c6d5e"  # what a careless upstream error might echo back


def _always_failing(session: Any, *args: Any) -> Any:
    raise RuntimeError(f'upstream said "no": Authorization: Bearer {FAKE_TOKEN} (SNOWFLAKE_WEBHOOK_SECRET)')


def _record_check(severity: str) -> Callable[..., Any]:
    """RUN_DQ, then one failed check of `severity` recorded under the graph run's id, as RUN_DQ would."""
    run_dq = procedures.run_dq

    def run_dq_with_a_failure(session: Any) -> Any:
        result = run_dq(session)
        database = session.get_current_database().strip('"')
        session.sql(
            f"INSERT INTO {database}.ANALYTICS.DQ_CHECK_RESULTS (run_id, check_name, source, severity, "
            "observed_value, threshold, passed, details, checked_at) "
            "SELECT ?, 'unique_event_id', 'api_a', ?, 3, 0, FALSE, 'test', "
            "CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ",
            params=[get_platform().run_id(session), severity],
        ).collect()
        return result

    return run_dq_with_a_failure


def _webhooks(stack) -> list[str]:
    return [alert.payload["text"] for alert in stack.webhook_receiver.received("webhook")]


def _alert_rows(stack, run_id: str) -> list[Any]:
    return stack.session.sql(
        f"SELECT alert_kind, channel, integration, state, error_message, message "
        f"FROM {stack.database}.OPS.PIPELINE_ALERTS WHERE run_id = ? ORDER BY channel",
        params=[run_id],
    ).collect()


def _run_state(stack, run_id: str) -> str:
    return scalar(stack, f"SELECT state FROM {stack.database}.OPS.PIPELINE_RUNS WHERE run_id = ?", [run_id])


@pytest.fixture(autouse=True)
def _empty_receiver(stack):
    stack.webhook_receiver.clear()


def test_a_passing_run_sends_nothing_even_with_a_failed_warning(stack, monkeypatch):
    monkeypatch.setattr(procedures, "run_dq", _record_check("warn"))
    run_id, runs = stack.run_graph()
    assert {r.state for r in runs} == {"SUCCEEDED"}, [(r.name, r.error) for r in runs if r.error]
    assert stack.webhook_receiver.received() == []  # alert_on_warnings is off by default
    assert _alert_rows(stack, run_id) == []


def test_a_run_that_fails_on_every_attempt_alerts_once_with_the_task_its_redacted_error_and_a_query(
    stack, monkeypatch
):
    set_config(stack, "alert_email_recipients", "ops@example.com, oncall@example.com")
    monkeypatch.setattr(procedures, "build_analytics", _always_failing)
    try:
        run_id, runs = stack.run_graph()
    finally:
        set_config(stack, "alert_email_recipients", "")
    assert max(r.attempt for r in runs) == 3  # the first run and two retries: three finalizer runs
    assert _run_state(stack, run_id) == "FAILED"

    [text] = _webhooks(stack)  # one webhook post for the run group, not one per attempt
    assert f"graph run {run_id} FAILED (attempt 3)" in text
    assert "Failed task: ANALYTICS" in text
    assert "Error: RuntimeError: upstream said 'no': Authorization: Bearer *** (REDACTED)" in text
    assert FAKE_TOKEN not in text and stack.webhook_receiver.secret not in text
    query = text.split("See more: ", 1)[1].split(" | ", 1)[0]
    history = stack.session.sql(query).collect()  # the query in the alert runs, and shows the failure
    assert ("ANALYTICS", "FAILED", 3) in {(r["NAME"], r["STATE"], r["ATTEMPT_NUMBER"]) for r in history}

    [mail] = stack.webhook_receiver.received("email")
    assert mail.payload["to"] == ["ops@example.com", "oncall@example.com"]
    assert mail.payload["subject"] == f"api2snow local: graph run FAILED at ANALYTICS ({run_id})"
    assert mail.payload["body"].splitlines()[:2] == [
        f"api2snow local: graph run {run_id} FAILED (attempt 3)",
        "Failed task: ANALYTICS",
    ]
    assert [(r["CHANNEL"], r["STATE"], r["INTEGRATION"]) for r in _alert_rows(stack, run_id)] == [
        ("email", "SENT", "API2SNOW_ALERTS_EMAIL"),
        ("webhook", "SENT", "API2SNOW_ALERTS_WEBHOOK"),
    ]

    sent_at = scalar(
        stack, f"SELECT MIN(sent_at) FROM {stack.database}.OPS.PIPELINE_ALERTS WHERE run_id = ?", [run_id]
    )
    assert abs(sent_at - datetime.now(UTC).replace(tzinfo=None)) < timedelta(
        minutes=30
    )  # naive UTC, as every stamp

    # The finalizer run again for the same run group (say, re-run by hand) sends nothing more.
    set_config(stack, "alert_email_recipients", "ops@example.com")
    set_run_context(RunContext(run_id, stack.graph.root.config, "FINALIZE"))
    try:
        again = json.loads(stack.dispatcher.call(stack.graph.finalizer.body))
    finally:
        set_run_context(None)
        set_config(stack, "alert_email_recipients", "")
    assert [a["state"] for a in again["alerts"]["sent"]] == ["ALREADY_SENT", "ALREADY_SENT"]
    assert len(stack.webhook_receiver.received()) == 2 and len(_alert_rows(stack, run_id)) == 2


def test_a_failure_a_retry_cures_sends_nothing(stack, monkeypatch):
    monkeypatch.setattr(procedures, "build_analytics", failing(procedures.build_analytics, times=1))
    run_id, runs = stack.run_graph()
    assert _run_state(stack, run_id) == "SUCCEEDED"
    assert max(r.attempt for r in runs) == 2
    assert stack.webhook_receiver.received() == []
    assert _alert_rows(stack, run_id) == []


def test_an_error_severity_dq_failure_alerts_with_the_failed_checks(stack, monkeypatch):
    monkeypatch.setattr(procedures, "run_dq", _record_check("error"))
    run_id, _ = stack.run_graph()
    [text] = _webhooks(stack)
    assert "Failed task: VALIDATE_DQ" in text
    assert "Failed error-severity DQ checks: unique_event_id[api_a]" in text
    dq_query = text.split("DQ details: ", 1)[1].split(" | ", 1)[0]
    [check] = stack.session.sql(dq_query).collect()
    assert (check["CHECK_NAME"], check["SOURCE"], check["SEVERITY"]) == ("unique_event_id", "api_a", "error")


def test_failed_warnings_alert_when_asked(stack, monkeypatch):
    monkeypatch.setattr(procedures, "run_dq", _record_check("warn"))
    set_config(stack, "alert_on_warnings", "true")
    try:
        run_id, _ = stack.run_graph()
    finally:
        set_config(stack, "alert_on_warnings", "false")
    assert _run_state(stack, run_id) == "SUCCEEDED"
    [text] = _webhooks(stack)
    assert f"graph run {run_id} passed with 1 failed warn-severity DQ check(s)" in text
    assert "Checks: unique_event_id[api_a]" in text


def test_sends_that_fail_are_recorded_and_the_run_stays_failed(stack, monkeypatch):
    """The webhook integration missing, the email endpoint down (last in the module: it stays down)."""
    set_config(stack, "alert_webhook_integration", "API2SNOW_NO_SUCH_INTEGRATION")
    set_config(stack, "alert_email_recipients", "ops@example.com")
    stack.webhook_receiver.stop()
    monkeypatch.setattr(procedures, "build_analytics", _always_failing)
    run_id, runs = stack.run_graph()

    finalizers = [r for r in runs if r.name.endswith(".FINALIZE")]
    assert [r.state for r in finalizers] == ["SUCCEEDED"]  # the failed sends did not fail the finalizer
    assert _run_state(stack, run_id) == "FAILED"
    email, webhook = _alert_rows(stack, run_id)
    assert (webhook["CHANNEL"], webhook["STATE"]) == ("webhook", "FAILED")
    assert (
        "Integration 'API2SNOW_NO_SUCH_INTEGRATION' does not exist or not authorized"
        in webhook["ERROR_MESSAGE"]
    )
    assert (email["CHANNEL"], email["STATE"]) == ("email", "FAILED")
    assert "could not reach the endpoint" in email["ERROR_MESSAGE"]
    sent = json.loads(finalizers[0].return_value)["alerts"]["sent"]
    assert sorted(s["state"] for s in sent) == ["FAILED", "FAILED"]
