"""Run metrics and the finalizer's run record, both written to OPS tables for dashboards and alerts."""

from __future__ import annotations

import logging
from typing import Any

from .settings import Settings
from .sources import SOURCES

log = logging.getLogger(__name__)
LEDGER_METRICS = ("fetched", "staged", "rejected", "duplicates")
HTTP_METRICS = ("requests", "retries", "throttled_429")


def collect_metrics(session: Any, settings: Settings, run_id: str) -> list[tuple[str, str | None, float]]:
    """(metric, source, value) for this run: ledger counts and HTTP effort per source, layer row counts."""
    metrics: list[tuple[str, str | None, float]] = []
    ledger_rows = session.sql(
        f"SELECT source, SUM(fetched) AS fetched, SUM(staged) AS staged, SUM(rejected) AS rejected, "
        f"SUM(duplicates) AS duplicates, SUM(http_stats:requests::NUMBER) AS requests, "
        f"SUM(http_stats:retries::NUMBER) AS retries, SUM(http_stats:throttled_429::NUMBER) AS throttled_429 "
        f"FROM {settings.table('OPS.BATCH_LEDGER')} WHERE run_id = ? GROUP BY source",
        params=[run_id],
    ).collect()
    for row in ledger_rows:
        for name in LEDGER_METRICS + HTTP_METRICS:
            metrics.append((name, row["SOURCE"], float(row[name.upper()] or 0)))
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
        f"SELECT column1, column2, column3, column4, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ FROM VALUES {values}",
        params=params,
    ).collect()
    return {"run_id": run_id, "metrics": len(metrics)}


def record_run(session: Any, settings: Settings, run_id: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the graph run's outcome; log an ERROR (the event table's alert hook) when a task failed."""
    failed = [t for t in tasks if t["STATE"] == "FAILED"]
    succeeded = [t for t in tasks if t["STATE"] == "SUCCEEDED"]
    state = "FAILED" if failed else "SUCCEEDED"
    first_error = f"{failed[0]['NAME']}: {failed[0]['ERROR_MESSAGE']}" if failed else None
    session.sql(
        f"INSERT INTO {settings.table('OPS.PIPELINE_RUNS')} "
        "(run_id, state, tasks_succeeded, tasks_failed, first_error, finished_at) "
        "SELECT ?, ?, ?, ?, ?, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ",
        params=[run_id, state, len(succeeded), len(failed), first_error],
    ).collect()
    if failed:
        log.error("api2snow graph run %s FAILED: %s", run_id, first_error)
    return {
        "run_id": run_id,
        "state": state,
        "tasks_succeeded": len(succeeded),
        "tasks_failed": len(failed),
        "first_error": first_error,
    }
