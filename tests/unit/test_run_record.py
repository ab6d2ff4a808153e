"""The finalizer's run record judges each task's latest attempt and keeps one row per graph run group."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from api2snow.platform import is_graph_run, manual_run_id
from api2snow.reporting import latest_attempts, record_run


class RecordingSession:
    def __init__(self) -> None:
        self.statements: list[tuple[str, list[Any]]] = []

    def sql(self, query: str, params: list[Any]) -> RecordingSession:
        self.statements.append((query, params))
        return self

    def collect(self) -> list[Any]:
        return []


SETTINGS: Any = SimpleNamespace(table=lambda name: f"DB.{name}")


def _task(name: str, state: str, attempt: int, error: str | None = None) -> dict[str, Any]:
    return {"NAME": name, "STATE": state, "ERROR_MESSAGE": error, "ATTEMPT_NUMBER": attempt}


def test_a_task_that_failed_then_succeeded_on_the_retry_makes_a_succeeded_run():
    history = [  # TASK_HISTORY of the group as Snowflake keeps it: a row per task per attempt
        _task("ROOT", "SUCCEEDED", 1),
        _task("ANALYTICS", "FAILED", 1, "boom"),
        _task("DQ", "CANCELLED", 1),
        _task("ANALYTICS", "SUCCEEDED", 2),
        _task("DQ", "SUCCEEDED", 2),
    ]
    session = RecordingSession()
    outcome = record_run(session, SETTINGS, "42", history)

    assert outcome == {
        "run_id": "42",
        "state": "SUCCEEDED",
        "tasks_succeeded": 3,
        "tasks_failed": 0,
        "first_error": None,
    }
    [(query, params)] = session.statements
    assert query.startswith("MERGE INTO DB.OPS.PIPELINE_RUNS") and "ON runs.run_id = outcome.run_id" in query
    assert params == ["42", "SUCCEEDED", 3, 0, None]


def test_a_task_that_failed_on_its_last_attempt_makes_a_failed_run():
    history = [
        _task("ANALYTICS", "SUCCEEDED", 1),
        _task("ANALYTICS", "FAILED", 3, "late"),
        _task("X", "FAILED", 2),
    ]
    latest = {t["NAME"]: t["STATE"] for t in latest_attempts(history)}
    assert latest == {"ANALYTICS": "FAILED", "X": "FAILED"}
    outcome = record_run(RecordingSession(), SETTINGS, "42", history)
    assert (outcome["state"], outcome["tasks_failed"], outcome["first_error"]) == (
        "FAILED",
        2,
        "ANALYTICS: late",
    )


def test_manual_run_ids_are_told_apart_from_graph_run_groups():
    assert not is_graph_run(manual_run_id())
    assert is_graph_run("1712345678901") and is_graph_run("0b9e6c1e-0d1f-4a36-9a43-8f4d2b1e9c11")
