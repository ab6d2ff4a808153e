"""Auto-retry of the task graph on the local stack, and what the finalizer and VALIDATE_DQ make of it.

sql/06 sets TASK_AUTO_RETRY_ATTEMPTS = 2 on the root: a failed graph run is retried as a new run in the same
graph run group, from the failed task, at most twice; the finalizer runs after each run.
"""

from __future__ import annotations

from typing import Any

import pytest
from api2snow import procedures
from api2snow.quality import DataQualityError

from .helpers import failing

pytestmark = pytest.mark.integration
ANALYTICS_AND_AFTER = {"ANALYTICS", "DQ", "VALIDATE_DQ", "PUBLISH_METRICS"}


def _history(stack, run_id: str) -> dict[int, dict[str, str]]:
    """TASK_HISTORY of one graph run group: attempt -> task -> state."""
    rows = stack.session.sql(
        f"SELECT name, state, attempt_number FROM {stack.database}.OPS.TASK_HISTORY "
        "WHERE graph_run_group_id = ?",
        params=[run_id],
    ).collect()
    attempts: dict[int, dict[str, str]] = {}
    for row in rows:
        runs = attempts.setdefault(int(row["ATTEMPT_NUMBER"]), {})
        assert row["NAME"] not in runs, f"{row['NAME']} ran twice in attempt {row['ATTEMPT_NUMBER']}"
        runs[row["NAME"]] = row["STATE"]
    return attempts


def _pipeline_runs(stack, run_id: str) -> list[Any]:
    return stack.session.sql(
        f"SELECT state, tasks_succeeded, tasks_failed, first_error FROM {stack.database}.OPS.PIPELINE_RUNS "
        "WHERE run_id = ?",
        params=[run_id],
    ).collect()


def test_a_task_that_fails_once_is_retried_from_there_and_the_run_is_one_succeeded_row(stack, monkeypatch):
    monkeypatch.setattr(procedures, "build_analytics", failing(procedures.build_analytics, times=1))
    run_id, runs = stack.run_graph()

    assert {r.state for r in runs} == {"SUCCEEDED"}, [(r.name, r.error) for r in runs if r.error]
    history = _history(stack, run_id)
    assert sorted(history) == [1, 2]
    names = {t.short_name for t in stack.graph.tasks.values()}
    assert set(history[1]) == names  # the first run: everything, the failure cancels what follows it
    assert history[1]["ANALYTICS"] == "FAILED" and history[1]["FINALIZE"] == "SUCCEEDED"
    assert {history[1][n] for n in ANALYTICS_AND_AFTER - {"ANALYTICS"}} == {"CANCELLED"}
    assert {history[1][n] for n in names - ANALYTICS_AND_AFTER - {"FINALIZE"}} == {"SUCCEEDED"}
    # the retry: the failed task and its descendants only, then the finalizer again
    assert history[2] == dict.fromkeys(ANALYTICS_AND_AFTER | {"FINALIZE"}, "SUCCEEDED")

    [record] = _pipeline_runs(stack, run_id)
    assert (record["STATE"], record["TASKS_FAILED"], record["FIRST_ERROR"]) == ("SUCCEEDED", 0, None)
    assert record["TASKS_SUCCEEDED"] == len(names) - 1  # every task but the finalizer itself


def test_a_task_that_fails_on_every_attempt_makes_one_failed_row(stack, monkeypatch):
    monkeypatch.setattr(procedures, "publish_metrics", failing(procedures.publish_metrics, times=99))
    run_id, runs = stack.run_graph()

    states = {r.name.rsplit(".", 1)[-1]: (r.state, r.attempt) for r in runs}
    assert states["PUBLISH_METRICS"] == ("FAILED", 3)
    history = _history(stack, run_id)
    assert sorted(history) == [1, 2, 3]  # TASK_AUTO_RETRY_ATTEMPTS = 2: two retries, then it stays failed
    assert history[2] == history[3] == {"PUBLISH_METRICS": "FAILED", "FINALIZE": "SUCCEEDED"}

    [record] = _pipeline_runs(stack, run_id)
    assert (record["STATE"], record["TASKS_FAILED"]) == ("FAILED", 1)
    assert record["FIRST_ERROR"] == "PUBLISH_METRICS: RuntimeError: transient fault 3"


def test_validate_dq_judges_its_own_runs_checks_not_ones_recorded_later(stack, monkeypatch):
    """An analyst's RUN_DQ during the graph run records under its own run id, after the graph's DQ task."""
    db = stack.database
    run_dq = procedures.run_dq

    def dq_then_analyst(session: Any) -> Any:
        result = run_dq(session)
        session.sql(
            f"INSERT INTO {db}.ANALYTICS.DQ_CHECK_RESULTS (run_id, check_name, source, severity, "
            "observed_value, threshold, passed, details, checked_at) "
            "SELECT 'manual-analyst', 'unique_event_id', 'api_a', 'error', 3, 0, FALSE, 'test', "
            f"DATEADD('minute', 1, MAX(checked_at)) FROM {db}.ANALYTICS.DQ_CHECK_RESULTS"
        ).collect()
        return result

    monkeypatch.setattr(procedures, "run_dq", dq_then_analyst)
    try:
        run_id, runs = stack.run_graph()
        states = {r.name.rsplit(".", 1)[-1]: r.state for r in runs}
        assert states["VALIDATE_DQ"] == "SUCCEEDED", [(r.name, r.error) for r in runs if r.error]
        assert _history(stack, run_id).keys() == {1}
        # A manual CALL has no graph run of its own: it judges the newest results, the analyst's.
        with pytest.raises(DataQualityError, match=r"unique_event_id\[api_a\]"):
            stack.call(f"CALL {db}.OPS.VALIDATE_DQ()")
    finally:
        stack.session.sql(
            f"DELETE FROM {db}.ANALYTICS.DQ_CHECK_RESULTS WHERE run_id = 'manual-analyst'"
        ).collect()
