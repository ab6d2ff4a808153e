"""Cancelling a local graph run, as Snowflake cancels one: the running task CANCELLED (its late outcome not
recorded), the tasks not started CANCELLED, no retry, and the finalizer still runs; the run record says
CANCELLED, not SUCCEEDED."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

from api2snow.reporting import record_run

from api2snow_cli.local.tasks import (
    CANCELLED_BEFORE_START,
    CANCELLED_WHILE_RUNNING,
    RunContext,
    TaskDefinition,
    TaskGraphRunner,
)

from .test_local_task_retries import HistorySession, _graph
from .test_run_record import RecordingSession


def test_a_cancelled_run_marks_running_and_pending_tasks_cancelled_and_runs_the_finalizer():
    session, cancel = HistorySession(), threading.Event()
    a_started, a_may_end = threading.Event(), threading.Event()
    executed: list[str] = []

    def execute(task: TaskDefinition, context: RunContext) -> str:
        executed.append(task.short_name)
        if task.short_name == "A":
            a_started.set()
            a_may_end.wait(10)  # still running when the run is cancelled
        return task.short_name.lower()

    runner = TaskGraphRunner(_graph(retries=2), session, "DB", execute, cancel=cancel)
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=runner.run()))
    thread.start()
    assert a_started.wait(10)
    deadline = time.monotonic() + 10
    while not any(row["NAME"] == "B" for row in session.rows) and time.monotonic() < deadline:
        time.sleep(0.01)  # B (A's sibling) has ended and is recorded
    cancel.set()
    thread.join(10)
    a_may_end.set()  # A ends after the cancellation: its SUCCEEDED must not be recorded

    assert not thread.is_alive()
    states = {row["NAME"]: (row["STATE"], row["ERROR_MESSAGE"]) for row in session.rows}
    assert states["ROOT"] == ("SUCCEEDED", None) and states["B"] == ("SUCCEEDED", None)
    assert states["A"] == ("CANCELLED", CANCELLED_WHILE_RUNNING)
    assert states["JOIN"] == states["TAIL"] == ("CANCELLED", CANCELLED_BEFORE_START)
    assert states["FIN"] == ("SUCCEEDED", None)  # the finalizer ran
    assert {row["ATTEMPT_NUMBER"] for row in session.rows} == {1}  # no retry of a cancelled run
    assert "JOIN" not in executed and "TAIL" not in executed
    while runner._active and time.monotonic() < deadline:
        time.sleep(0.01)  # A's thread has returned
    assert not runner._active
    assert [row["NAME"] for row in session.rows].count("A") == 1  # the late outcome was dropped


def test_the_run_record_of_a_cancelled_run_is_cancelled():
    history = [
        {"NAME": "ROOT", "STATE": "SUCCEEDED", "ERROR_MESSAGE": None, "ATTEMPT_NUMBER": 1},
        {"NAME": "A", "STATE": "CANCELLED", "ERROR_MESSAGE": CANCELLED_WHILE_RUNNING, "ATTEMPT_NUMBER": 1},
    ]
    settings: Any = SimpleNamespace(table=lambda name: f"DB.{name}")
    outcome = record_run(RecordingSession(), settings, "42", history)
    assert (outcome["state"], outcome["tasks_failed"]) == ("CANCELLED", 0)


class _CancelledAsJoinStarts(TaskGraphRunner):
    """The signal lands between JOIN's submission and its start: JOIN's thread sees the cancellation, and
    the run loop, waiting on JOIN's future, collects it before it sees the cancellation itself."""

    def _run_task(self, task: TaskDefinition, attempt: Any, finalizer: bool = False) -> Any:
        if task.short_name == "JOIN":
            self.cancel.set()
        return super()._run_task(task, attempt, finalizer)


def test_a_task_that_sees_the_cancellation_as_it_starts_is_recorded_cancelled_once():
    session = HistorySession()
    runner = _CancelledAsJoinStarts(_graph(retries=2), session, "DB", lambda task, context: "ok")
    runner.run()

    names = [row["NAME"] for row in session.rows]
    states = {row["NAME"]: (row["STATE"], row["ERROR_MESSAGE"]) for row in session.rows}
    assert sorted(names) == sorted(set(names))  # every task recorded once, none left without a row
    assert set(names) == {"ROOT", "A", "B", "JOIN", "TAIL", "FIN"}
    assert states["JOIN"] == states["TAIL"] == ("CANCELLED", CANCELLED_BEFORE_START)
    assert states["FIN"] == ("SUCCEEDED", None)
