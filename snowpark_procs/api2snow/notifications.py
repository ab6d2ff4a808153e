"""Alerts: what the finalizer sends, and when, through Snowflake's notification integrations.

When: once per failed graph run group, on its last attempt. The finalizer runs after every attempt of a run
group (TASK_AUTO_RETRY_ATTEMPTS on the root), and a failure that a retry cures is not a failed run; so a
failed attempt that a retry will follow sends nothing, and the last attempt (the root's CONFIG carries the
configured retries as `task_retry_attempts`; the attempt is the highest ATTEMPT_NUMBER of the group) sends
the alert. OPS.PIPELINE_ALERTS records every send, and a channel that has a SENT row for the run group and
kind sends nothing again: at most one alert per run group and channel, whatever re-runs the finalizer. An
error-severity DQ failure fails VALIDATE_DQ and so the run: its alert lists the failed checks. Failed
warn-severity checks of a passing run send an alert of their own only with `alert_on_warnings`. A run that
passes sends nothing.

How: SYSTEM$SEND_SNOWFLAKE_NOTIFICATION through the platform seam, to a WEBHOOK integration (Slack, Teams,
PagerDuty: the integration's body template puts the message where SNOWFLAKE_WEBHOOK_MESSAGE stands) and to
an EMAIL integration. Snowflake's documentation does not say whether it escapes the message for the JSON body
template, so the webhook text is one line without `"`, `\\` or control characters: valid JSON either way.

Safety: error texts are redacted (http.errors.redact: the call's registered secrets and token-looking
fragments) and cut short; webhook placeholders are removed from the message (what SANITIZE_WEBHOOK_CONTENT
does), so an error text cannot make Snowflake paste the webhook secret into a message. A failed send is
logged and recorded (PIPELINE_ALERTS.STATE = FAILED); it never raises over the run's outcome.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from .http.errors import one_line, redact
from .platform import Platform
from .settings import Settings
from .sqltime import UTC_NOW

log = logging.getLogger(__name__)

RUN_FAILED = "run_failed"
DQ_WARNINGS = "dq_warnings"
ALERTS_TABLE = "OPS.PIPELINE_ALERTS"
ERROR_CHARS = 300  # per error text: a PagerDuty summary holds 1024 characters, the whole message must fit
WEBHOOK_CHARS = 1000  # the one-line webhook text at most (its most useful lines come first)
SUBJECT_CHARS = 256  # Snowflake's limit for an email subject
LISTED = 8  # failed tasks or DQ checks named in one message; the query shows the rest
# How far back PIPELINE_ALERTS is read for a run group's earlier sends (a run group is over within hours).
ALERT_DAYS = 2
_PLACEHOLDER = re.compile(r"SNOWFLAKE_WEBHOOK_[A-Z_]*", re.IGNORECASE)
_UNSAFE_IN_TEMPLATE = re.compile(r'["\\\x00-\x1f\x7f]')


@dataclass(frozen=True)
class Channel:
    """Where an alert goes: a notification integration, and for email who receives it."""

    kind: str  # "webhook" | "email"
    integration: str
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Alert:
    """One alert: a subject and lines of text (email keeps the lines; a webhook gets them as one line)."""

    kind: str
    run_id: str
    subject: str
    lines: tuple[str, ...]

    def text(self) -> str:
        return "\n".join(self.lines)

    def webhook_text(self) -> str:
        """The lines as one line that stays valid JSON inside the body template, escaped or not, cut to
        WEBHOOK_CHARS (what a PagerDuty summary holds)."""
        return one_line(
            " | ".join(_UNSAFE_IN_TEMPLATE.sub(_replacement, line) for line in self.lines), WEBHOOK_CHARS
        )


def _replacement(match: re.Match[str]) -> str:
    return {'"': "'", "\\": "/"}.get(match.group(0), " ")


def sanitized(text: str) -> str:
    """`text` with webhook placeholders replaced, as SANITIZE_WEBHOOK_CONTENT does in Snowflake."""
    return _PLACEHOLDER.sub("REDACTED", text)


def safe_error(text: str | None) -> str:
    """An error text fit for an alert: redacted, placeholders removed, one line, cut short."""
    return one_line(sanitized(redact(text or "no error message")), ERROR_CHARS)


def channels(settings: Settings) -> list[Channel]:
    """The configured channels: a webhook when its integration is set; email when its integration and at
    least one recipient are set."""
    found = []
    webhook = settings.get("alert_webhook_integration").strip()
    if webhook:
        found.append(Channel("webhook", webhook))
    email = settings.get("alert_email_integration").strip()
    recipients = tuple(r.strip() for r in settings.get("alert_email_recipients").split(",") if r.strip())
    if email and recipients:
        found.append(Channel("email", email, recipients))
    return found


def current_attempt(tasks: list[dict[str, Any]]) -> int:
    """The run group's attempt that just ended: a retry re-runs at least the task that failed, under the next
    ATTEMPT_NUMBER, so the highest one among the group's task runs is the current one."""
    return max((int(t.get("ATTEMPT_NUMBER") or 1) for t in tasks), default=1)


def retry_follows(state: str, attempt: int, retry_attempts: int) -> bool:
    """Whether Snowflake retries this failed attempt (TASK_AUTO_RETRY_ATTEMPTS runs after the first)."""
    return state == "FAILED" and attempt <= retry_attempts


def failure_alert(
    env: str,
    run_id: str,
    failed: list[dict[str, Any]],
    attempt: int,
    dq_failed: list[str],
    history_query: str,
    dq_query: str,
) -> Alert:
    """A failed run group's alert: the run, the failed task and its redacted error, a query to see more."""
    first = failed[0]
    where = f"api2snow{f' {env}' if env else ''}"
    lines = [
        f"{where}: graph run {run_id} FAILED (attempt {attempt})",
        f"Failed task: {first['NAME']}",
        f"Error: {safe_error(first.get('ERROR_MESSAGE'))}",
    ]
    lines.append(f"See more: {history_query}")
    if dq_failed:
        lines.append(f"Failed error-severity DQ checks: {_listed(dq_failed)}")
        lines.append(f"DQ details: {dq_query}")
    others = [t["NAME"] for t in failed[1:]]
    if others:
        lines.append(f"Also failed: {_listed(others)}")
    subject = f"{where}: graph run FAILED at {first['NAME']} ({run_id})"
    return Alert(RUN_FAILED, run_id, subject[:SUBJECT_CHARS], tuple(lines))


def warning_alert(env: str, run_id: str, warnings: list[str], dq_query: str) -> Alert:
    """The alert of a passing run whose warn-severity DQ checks failed (sent only with alert_on_warnings)."""
    where = f"api2snow{f' {env}' if env else ''}"
    lines = (
        f"{where}: graph run {run_id} passed with {len(warnings)} failed warn-severity DQ check(s)",
        f"Checks: {_listed(warnings)}",
        f"See more: {dq_query}",
    )
    subject = f"{where}: DQ warnings in graph run {run_id}"
    return Alert(DQ_WARNINGS, run_id, subject[:SUBJECT_CHARS], lines)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:LISTED])
    return shown if len(names) <= LISTED else f"{shown} and {len(names) - LISTED} more"


def dq_query(settings: Settings, run_id: str) -> str:
    """The failed checks of a run, where they are recorded (the same table in Snowflake and locally)."""
    return (
        "SELECT check_name, source, severity, observed_value, threshold, details "
        f"FROM {settings.table('ANALYTICS.DQ_CHECK_RESULTS')} WHERE run_id = '{run_id}' AND NOT passed"
    )


def alerts_for_run(
    session: Any,
    platform: Platform,
    settings: Settings,
    outcome: dict[str, Any],
    tasks: list[dict[str, Any]],
) -> tuple[list[Alert], str | None]:
    """The alerts a run group's outcome calls for now; why none, when a failure's alert waits for a retry."""
    from . import quality  # here, not at import: quality imports reporting, which imports this module

    run_id, state = outcome["run_id"], outcome["state"]
    env = settings.get("env") or settings.get("env_name")
    attempt = current_attempt(tasks)
    if retry_follows(state, attempt, settings.get_int("task_retry_attempts")):
        return [], f"attempt {attempt} failed; Snowflake retries it, the last attempt alerts"
    if state == "FAILED":
        failed = [t for t in tasks if t["STATE"] == "FAILED"]
        dq_failed = quality.summarize(session, settings, run_id)["failed_error"]
        history = platform.run_history_query(settings.database, run_id)
        return [
            failure_alert(env, run_id, failed, attempt, dq_failed, history, dq_query(settings, run_id))
        ], None
    if state == "SUCCEEDED" and settings.get_bool(
        "alert_on_warnings"
    ):  # not a cancelled run: it did not pass
        warnings = quality.summarize(session, settings, run_id)["failed_warn"]
        if warnings:
            return [warning_alert(env, run_id, warnings, dq_query(settings, run_id))], None
    return [], None


def send(session: Any, platform: Platform, settings: Settings, alert: Alert) -> list[dict[str, Any]]:
    """Send `alert` on every configured channel that has not sent it for this run group; record each send.
    Never raises: a failed send is logged and recorded, and the run's outcome stands as it is."""
    results = []
    for channel in channels(settings):
        try:
            if _already_sent(session, settings, alert, channel):
                results.append({"channel": channel.kind, "state": "ALREADY_SENT"})
                continue
        except Exception as exc:  # an unreadable record must not stop the alert: sending twice beats never
            log.warning("could not read %s: %s", settings.table(ALERTS_TABLE), safe_error(str(exc)))
        results.append(_send_one(session, platform, settings, alert, channel))
    return results


def _send_one(
    session: Any, platform: Platform, settings: Settings, alert: Alert, channel: Channel
) -> dict[str, Any]:
    message = alert.webhook_text() if channel.kind == "webhook" else sanitized(alert.text())
    state, error = "SENT", None
    try:
        if channel.kind == "webhook":
            platform.send_notification(session, channel.integration, message)
        else:
            platform.send_notification(
                session, channel.integration, message, subject=alert.subject, recipients=channel.recipients
            )
    except Exception as exc:
        state, error = "FAILED", safe_error(f"{type(exc).__name__}: {exc}")
        log.error(
            "api2snow alert for run %s could not be sent through %s (%s): %s",
            alert.run_id,
            channel.integration,
            channel.kind,
            error,
        )
    try:
        _record(session, settings, alert, channel, state, error, message)
    except Exception as exc:
        log.error("could not record the alert for run %s: %s", alert.run_id, safe_error(str(exc)))
    return {"channel": channel.kind, "integration": channel.integration, "state": state, "error": error}


def _already_sent(session: Any, settings: Settings, alert: Alert, channel: Channel) -> bool:
    rows = session.sql(
        f"SELECT COUNT(*) AS n FROM {settings.table(ALERTS_TABLE)} WHERE run_id = ? AND alert_kind = ? "
        f"AND channel = ? AND state = 'SENT' AND sent_at >= DATEADD('day', {-ALERT_DAYS}, {UTC_NOW})",
        params=[alert.run_id, alert.kind, channel.kind],
    ).collect()
    return int(rows[0]["N"]) > 0


def _record(
    session: Any,
    settings: Settings,
    alert: Alert,
    channel: Channel,
    state: str,
    error: str | None,
    message: str,
) -> None:
    session.sql(
        f"INSERT INTO {settings.table(ALERTS_TABLE)} "
        "(run_id, alert_kind, channel, integration, state, error_message, message, sent_at) "
        f"SELECT ?, ?, ?, ?, ?, ?, ?, {UTC_NOW}",
        params=[alert.run_id, alert.kind, channel.kind, channel.integration, state, error, message],
    ).collect()


def alert_run(
    session: Any,
    platform: Platform,
    settings: Settings,
    outcome: dict[str, Any],
    tasks: list[dict[str, Any]],
) -> dict[str, Any]:
    """What the finalizer does after recording the run: decide, send, and say what happened. Never raises."""
    try:
        alerts, deferred = alerts_for_run(session, platform, settings, outcome, tasks)
    except Exception as exc:  # e.g. the DQ results unreadable: still alert on a failed run, with less detail
        log.error(
            "api2snow could not prepare the alert for run %s: %s", outcome["run_id"], safe_error(str(exc))
        )
        if outcome["state"] != "FAILED":
            return {"sent": [], "error": safe_error(str(exc))}
        failed = [t for t in tasks if t["STATE"] == "FAILED"]
        alerts, deferred = [_fallback_alert(settings, outcome["run_id"], failed, tasks)], None
    if deferred:
        return {"sent": [], "deferred": deferred}
    return {"sent": [result for alert in alerts for result in send(session, platform, settings, alert)]}


def _fallback_alert(
    settings: Settings, run_id: str, failed: list[dict[str, Any]], tasks: list[dict[str, Any]]
) -> Alert:
    env = settings.get("env") or settings.get("env_name")
    query = f"SELECT * FROM {settings.table('OPS.PIPELINE_RUNS')} WHERE run_id = '{run_id}'"
    return failure_alert(env, run_id, failed, current_attempt(tasks), [], query, "")
