"""The local task runner's auto-retry, as Snowflake's: a new run in the same group, from the failed tasks."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from api2snow_cli.local.tasks import RunContext, TaskDefinition, TaskGraph, TaskGraphRunner, parse_task

# root -> a, b (parallel) -> join (after both) -> tail; finalizer
GRAPH = """
CREATE OR ALTER TASK DB.PIPELINE.ROOT SCHEDULE = 'USING CRON 0 * * * * UTC' TASK_AUTO_RETRY_ATTEMPTS = {n}
AS SELECT 1;
CREATE OR ALTER TASK DB.PIPELINE.A AFTER DB.PIPELINE.ROOT AS CALL DB.OPS.A();
CREATE OR ALTER TASK DB.PIPELINE.B AFTER DB.PIPELINE.ROOT AS CALL DB.OPS.B();
CREATE OR ALTER TASK DB.PIPELINE.JOIN AFTER DB.PIPELINE.A, DB.PIPELINE.B AS CALL DB.OPS.JOIN();
CREATE OR ALTER TASK DB.PIPELINE.TAIL AFTER DB.PIPELINE.JOIN AS CALL DB.OPS.TAIL();
CREATE OR ALTER TASK DB.PIPELINE.FIN FINALIZE = DB.PIPELINE.ROOT AS CALL DB.OPS.FIN();
"""


class HistorySession:
    """Keeps the rows the runner inserts into TASK_HISTORY."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def sql(self, query: str, params: list[Any]) -> HistorySession:
        columns = re.search(r"OPS\.TASK_HISTORY \(([^)]*)\)", query)
        assert columns, query
        names = [c.strip().upper() for c in columns.group(1).split(",")]
        self.rows.append(dict(zip(names, params, strict=True)))
        return self

    def collect(self) -> list[Any]:
        return []


def _graph(retries: int) -> TaskGraph:
    statements = [s for s in GRAPH.format(n=retries).split(";") if s.strip()]
    return TaskGraph([parse_task(s) for s in statements])


def _run(retries: int, failures: dict[str, int]) -> tuple[str, list[Any], HistorySession, list[RunContext]]:
    """Run the graph; task X fails its first failures[X] executions."""
    session, contexts, calls = HistorySession(), [], Counter()

    def execute(task: TaskDefinition, context: RunContext) -> str:
        contexts.append(context)
        calls[task.short_name] += 1
        if calls[task.short_name] <= failures.get(task.short_name, 0):
            raise RuntimeError(f"{task.short_name} broke")
        return task.short_name.lower()

    group, runs = TaskGraphRunner(_graph(retries), session, "DB", execute).run()
    return group, runs, session, contexts


def _attempts(session: HistorySession) -> dict[int, dict[str, str]]:
    by_attempt: dict[int, dict[str, str]] = {}
    for row in session.rows:
        by_attempt.setdefault(row["ATTEMPT_NUMBER"], {})[row["NAME"]] = row["STATE"]
    return by_attempt


def test_a_failed_run_is_retried_from_the_failed_task_in_the_same_group():
    group, runs, session, contexts = _run(retries=2, failures={"A": 1})

    assert _attempts(session) == {
        1: {"ROOT": "SUCCEEDED", "A": "FAILED", "B": "SUCCEEDED", "JOIN": "CANCELLED", "TAIL": "CANCELLED",
            "FIN": "SUCCEEDED"},
        2: {"A": "SUCCEEDED", "JOIN": "SUCCEEDED", "TAIL": "SUCCEEDED", "FIN": "SUCCEEDED"},
    }  # fmt: skip
    assert {r["GRAPH_RUN_GROUP_ID"] for r in session.rows} == {group}
    assert len({r["RUN_ID"] for r in session.rows}) == 1  # the group's original scheduled time
    second = [r for r in session.rows if r["ATTEMPT_NUMBER"] == 2]
    first = [r for r in session.rows if r["ATTEMPT_NUMBER"] == 1]
    assert {r["SCHEDULED_TIME"] for r in second} != {r["SCHEDULED_TIME"] for r in first}  # a new run
    assert {c.run_id for c in contexts} == {group}
    assert {r.name.rsplit(".", 1)[-1]: (r.state, r.attempt) for r in runs} == {
        "ROOT": ("SUCCEEDED", 1), "A": ("SUCCEEDED", 2), "B": ("SUCCEEDED", 1), "JOIN": ("SUCCEEDED", 2),
        "TAIL": ("SUCCEEDED", 2), "FIN": ("SUCCEEDED", 2),
    }  # fmt: skip


def test_retries_stop_after_task_auto_retry_attempts():
    _, runs, session, _ = _run(retries=2, failures={"TAIL": 99})

    assert _attempts(session) == {
        1: {"ROOT": "SUCCEEDED", "A": "SUCCEEDED", "B": "SUCCEEDED", "JOIN": "SUCCEEDED", "TAIL": "FAILED",
            "FIN": "SUCCEEDED"},
        2: {"TAIL": "FAILED", "FIN": "SUCCEEDED"},
        3: {"TAIL": "FAILED", "FIN": "SUCCEEDED"},
    }  # fmt: skip
    assert {r.name.rsplit(".", 1)[-1]: r.state for r in runs}["TAIL"] == "FAILED"


def test_without_auto_retry_a_failed_run_is_final():
    _, _, session, _ = _run(retries=0, failures={"B": 1})
    assert set(_attempts(session)) == {1}


def test_a_run_that_succeeds_is_not_retried():
    _, runs, session, contexts = _run(retries=2, failures={})
    assert set(_attempts(session)) == {1} and {r.state for r in runs} == {"SUCCEEDED"}
    assert {c.task for c in contexts} == {"ROOT", "A", "B", "JOIN", "TAIL", "FIN"}
