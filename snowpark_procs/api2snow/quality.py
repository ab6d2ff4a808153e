"""Data-quality gate: record every check of ANALYTICS.VW_DQ_CHECKS under the run id, then judge it.

The checks themselves are SQL (sql/05_dq.sql), so an analyst can read exactly what is checked; this
module only snapshots them and turns error-severity failures into a failed task.
"""

from __future__ import annotations

from typing import Any

from .platform import is_graph_run
from .settings import Settings
from .sqltime import UTC_NOW


class DataQualityError(RuntimeError):
    """At least one error-severity check failed."""


def run_checks(session: Any, settings: Settings, run_id: str) -> dict[str, Any]:
    results = settings.table("ANALYTICS.DQ_CHECK_RESULTS")
    session.sql(
        f"""INSERT INTO {results}
            (run_id, check_name, source, severity, observed_value, threshold, passed, details, checked_at)
        SELECT ?, check_name, source, severity, observed_value, threshold, passed, details,
            {UTC_NOW}
        FROM {settings.table("ANALYTICS.VW_DQ_CHECKS")}""",
        params=[run_id],
    ).collect()
    return summarize(session, settings, run_id)


def latest_run_id(session: Any, settings: Settings) -> str:
    """The run whose checks were recorded last (a graph run's, or a manual RUN_DQ's)."""
    rows = session.sql(
        f"SELECT run_id FROM {settings.table('ANALYTICS.DQ_CHECK_RESULTS')} ORDER BY checked_at DESC LIMIT 1"
    ).collect()
    if not rows:
        raise DataQualityError("no data-quality results to validate: RUN_DQ has not run")
    return rows[0]["RUN_ID"]


def summarize(session: Any, settings: Settings, run_id: str) -> dict[str, Any]:
    rows = session.sql(
        f"SELECT check_name, source, severity, passed, observed_value FROM "
        f"{settings.table('ANALYTICS.DQ_CHECK_RESULTS')} WHERE run_id = ? ORDER BY check_name, source",
        params=[run_id],
    ).collect()
    failed = [r for r in rows if not r["PASSED"]]
    return {
        "run_id": run_id,
        "checks": len(rows),
        "passed": len(rows) - len(failed),
        "failed_error": [f"{r['CHECK_NAME']}[{r['SOURCE']}]" for r in failed if r["SEVERITY"] == "error"],
        "failed_warn": [f"{r['CHECK_NAME']}[{r['SOURCE']}]" for r in failed if r["SEVERITY"] == "warn"],
    }


def validate(session: Any, settings: Settings, run_id: str) -> dict[str, Any]:
    """Fail when an error-severity check of graph run `run_id` failed. Its own results, not the newest ones:
    an analyst's RUN_DQ during the run records under another run id and must not change the verdict. A
    manual CALL (outside a graph run) has no results of its own, so it judges the newest run's."""
    judged = run_id if is_graph_run(run_id) else latest_run_id(session, settings)
    summary = summarize(session, settings, judged)
    if summary["checks"] == 0:
        raise DataQualityError(f"run {summary['run_id']} recorded no data-quality checks")
    if summary["failed_error"]:
        raise DataQualityError(
            f"{len(summary['failed_error'])} error-severity data-quality check(s) failed: "
            + ", ".join(summary["failed_error"])
        )
    return summary
