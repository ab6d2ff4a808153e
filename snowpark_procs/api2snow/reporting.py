"""Run metrics and the finalizer's run record, both written to OPS tables for dashboards and alerts."""

from __future__ import annotations

import logging
from typing import Any

from . import ledger, notifications
from .platform import Platform
from .settings import Settings
from .sources import SOURCES
from .sqltime import UTC_NOW

log = logging.getLogger(__name__)
LEDGER_METRICS = ("fetched", "staged", "rejected", "duplicates")
HTTP_METRICS = ("requests", "retries", "throttled_429")
# A graph run group, its auto-retries included, is over within hours: its ledger rows, its PIPELINE_RUNS row
# and its DQ results are read within this many days, which keeps the reads bounded as the tables grow.
RUN_DAYS = 2


def collect_metrics(session: Any, settings: Settings, run_id: str) -> list[tuple[str, str | None, float]]:
    """(metric, source, value) for this run: ledger counts and HTTP effort per source, layer row counts."""
    metrics: list[tuple[str, str | None, float]] = []
    ledger_rows = session.sql(
        f"SELECT source, SUM(fetched) AS fetched, SUM(staged) AS staged, SUM(rejected) AS rejected, "
        f"SUM(duplicates) AS duplicates, SUM(http_stats:requests::NUMBER) AS requests, "
        f"SUM(http_stats:retries::NUMBER) AS retries, SUM(http_stats:throttled_429::NUMBER) AS throttled_429 "
        f"FROM {settings.table('OPS.BATCH_LEDGER')} WHERE {ledger.lookback(settings, RUN_DAYS)} "
        "AND run_id = ? GROUP BY source",
        params=[run_id],
    ).collect()
    for row in ledger_rows:
        for name in LEDGER_METRICS + HTTP_METRICS:
            metrics.append((name, row["SOURCE"], float(row[name.upper()] or 0)))
    # A table's row count is metadata in Snowflake (and statistics in the local warehouse): no scan.
    for source in SOURCES.values():
        for layer, table in (("raw_rows", source.raw_table), ("clean_rows", source.clean_table)):
            count = session.sql(f"SELECT COUNT(*) AS n FROM {settings.table(table)}").collect()[0]["N"]
            metrics.append((layer, source.name, float(count)))
    return metrics


def publish_metrics(session: Any, settings: Settings, run_id: str) -> dict[str, Any]:
    metrics = collect_metrics(session, settings, run_id)
    values = ", ".join("(?, ?, ?, ?)" for _ in metrics)
    params: list[Any] = []
    for name, source, value in metrics:
        params += [run_id, name, source, value]
    session.sql(
        f"INSERT INTO {settings.table('OPS.PIPELINE_METRICS')} "
        f"(run_id, metric_name, source, metric_value, recorded_at) "
        "SELECT column1, column2, column3, column4, "
        f"{UTC_NOW} FROM VALUES {values}",
        params=params,
    ).collect()
    return {"run_id": run_id, "metrics": len(metrics)}


def latest_attempts(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each task's latest attempt: an auto-retry is a new run in the same graph run group, so a task that
    failed and then succeeded has a row for each, and only the last one says how it ended."""
    latest: dict[str, dict[str, Any]] = {}
    for task in tasks:
        kept = latest.get(task["NAME"])
        if kept is None or (task.get("ATTEMPT_NUMBER") or 0) > (kept.get("ATTEMPT_NUMBER") or 0):
            latest[task["NAME"]] = task
    return list(latest.values())


def record_run(session: Any, settings: Settings, run_id: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the graph run group's outcome, judged on each task's latest attempt; log an ERROR (the event
    table's alert hook) when a task failed. The finalizer runs after every attempt, so the row is merged on
    RUN_ID: one row per run group, holding the last attempt's verdict."""
    outcome = run_outcome(run_id, tasks)
    _merge_run_row(session, settings, outcome)
    if outcome["state"] == "FAILED":
        log.error("api2snow graph run %s FAILED: %s", run_id, outcome["first_error"])
    return outcome


def run_outcome(run_id: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """The graph run group's outcome, judged on each task's latest attempt."""
    latest = latest_attempts(tasks)
    failed = [t for t in latest if t["STATE"] == "FAILED"]
    succeeded = [t for t in latest if t["STATE"] == "SUCCEEDED"]
    cancelled = any(t["STATE"] == "CANCELLED" for t in latest)  # a cancelled run did not do all its work
    return {
        "run_id": run_id,
        "state": "FAILED" if failed else "CANCELLED" if cancelled else "SUCCEEDED",
        "tasks_succeeded": len(succeeded),
        "tasks_failed": len(failed),
        "first_error": f"{failed[0]['NAME']}: {failed[0]['ERROR_MESSAGE']}" if failed else None,
    }


def finalize_run(session: Any, platform: Platform, settings: Settings, run_id: str) -> dict[str, Any]:
    """The finalizer: record the run group's outcome, then alert (notifications.py). Alerting never raises, so
    the recorded outcome and the finalizer's own state stay what the run was; a run record that cannot be
    written still alerts first, then fails the finalizer."""
    tasks = latest_attempts(platform.graph_run_tasks(session, run_id))
    unrecorded: Exception | None = None
    try:
        outcome = record_run(session, settings, run_id, tasks)
    except Exception as exc:
        outcome, unrecorded = run_outcome(run_id, tasks), exc
    try:
        outcome["alerts"] = notifications.alert_run(session, platform, settings, outcome, tasks)
    except Exception as exc:  # a last guard: alert_run catches what it expects
        log.error("api2snow alerting for run %s failed: %s", run_id, notifications.safe_error(str(exc)))
        outcome["alerts"] = {"sent": [], "error": notifications.safe_error(str(exc))}
    if unrecorded is not None:
        raise unrecorded
    return outcome


def _merge_run_row(session: Any, settings: Settings, outcome: dict[str, Any]) -> None:
    """Insert the run group's PIPELINE_RUNS row, or overwrite it with a later attempt's outcome."""
    session.sql(
        f"""MERGE INTO {settings.table("OPS.PIPELINE_RUNS")} AS runs
        USING (
            SELECT CAST(? AS STRING) AS run_id, CAST(? AS STRING) AS state, CAST(? AS NUMBER) AS succeeded,
                CAST(? AS NUMBER) AS failed, CAST(? AS STRING) AS first_error
        ) AS outcome
            ON runs.run_id = outcome.run_id AND runs.finished_at >= DATEADD('day', {-RUN_DAYS}, {UTC_NOW})
        WHEN MATCHED THEN UPDATE SET
            runs.state = outcome.state, runs.tasks_succeeded = outcome.succeeded,
            runs.tasks_failed = outcome.failed, runs.first_error = outcome.first_error,
            runs.finished_at = {UTC_NOW}
        WHEN NOT MATCHED THEN INSERT (run_id, state, tasks_succeeded, tasks_failed, first_error, finished_at)
            VALUES (outcome.run_id, outcome.state, outcome.succeeded, outcome.failed, outcome.first_error,
                {UTC_NOW})""",
        params=[outcome[k] for k in ("run_id", "state", "tasks_succeeded", "tasks_failed", "first_error")],
    ).collect()
