"""Reading graph runs back from TASK_HISTORY, in the shape `api2snow status` and `history` print.

Locally TASK_HISTORY is a table the runner writes; in Snowflake it is INFORMATION_SCHEMA.TASK_HISTORY().
Both have the same columns, so one query shape serves both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .local.tasks import TaskGraph

# TASK_HISTORY.ERROR_MESSAGE of the tasks of a run found abandoned: its process ended mid-run (killed)
ABANDONED = "abandoned: the process running this graph run ended before it finished"


@dataclass
class TaskStatus:
    name: str
    state: str
    duration_s: float | None
    return_value: str | None
    error: str | None
    attempt: int
    after: list[str]
    started_s: float | None = None  # seconds from the run's first task start to this task's start
    started_at: datetime | None = None
    completed_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "started_at": iso_utc(self.started_at),
            "completed_at": iso_utc(self.completed_at),
            "duration_s": self.duration_s,
            "started_s": self.started_s,
            "attempt": self.attempt,
            "after": self.after,
            "return_value": parsed_return_value(self.return_value),
            "error": self.error,
        }


def _run_times(run: GraphRunStatus | GraphRunSummary) -> dict[str, Any]:
    """A graph run's id, state and times as `--format json` gives them: ISO 8601 UTC, seconds."""
    return {
        "run_id": run.run_id,
        "state": run.state,
        "scheduled_time": iso_utc(run.scheduled_at),
        "started_at": iso_utc(run.started_at),
        "completed_at": iso_utc(run.completed_at),
        "duration_s": run.duration_s,
    }


@dataclass
class GraphRunStatus:
    run_id: str | None
    state: str
    scheduled_time: str | None
    tasks: list[TaskStatus]
    scheduled_at: datetime | None = None

    @property
    def started_at(self) -> datetime | None:
        return min((t.started_at for t in self.tasks if t.started_at), default=None)

    @property
    def completed_at(self) -> datetime | None:
        if self.state == "EXECUTING":
            return None
        return max((t.completed_at for t in self.tasks if t.completed_at), default=None)

    @property
    def duration_s(self) -> float | None:
        start, end = self.started_at, self.completed_at
        return round((end - start).total_seconds(), 3) if start and end else None

    def task(self, name: str) -> TaskStatus | None:
        return next((t for t in self.tasks if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {**_run_times(self), "tasks": [t.to_dict() for t in self.tasks]}


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC (a naive value is UTC already: every timestamp the pipeline stores is)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parsed_return_value(value: str | None) -> Any:
    """A task's return value as the JSON it is (procedures return objects); other text as it is."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def latest_run_query(history_source: str, condition: str = "TRUE") -> str:
    """Latest attempt of every task of the newest started graph run among the rows of `history_source` that
    meet `condition` (the local TASK_HISTORY table, or Snowflake's TASK_HISTORY() table function)."""
    return f"""WITH history AS (
    SELECT *
    FROM {history_source}
    WHERE {condition}
),

latest_run AS (
    SELECT graph_run_group_id
    FROM history
    WHERE graph_run_group_id IS NOT NULL AND state <> 'SCHEDULED'
    ORDER BY scheduled_time DESC, query_start_time DESC NULLS LAST
    LIMIT 1
)

SELECT
    name,
    state,
    scheduled_time,
    query_start_time,
    completed_time,
    return_value,
    error_message,
    graph_run_group_id,
    attempt_number
FROM history
WHERE graph_run_group_id = (SELECT graph_run_group_id FROM latest_run)
QUALIFY ROW_NUMBER() OVER (PARTITION BY name ORDER BY attempt_number DESC) = 1"""


def of_graph(graph: TaskGraph) -> str:
    """A `latest_run_query` condition: the tasks of `graph` only (the hourly graph, not RECONCILE)."""
    names = ", ".join(f"'{task.short_name}'" for task in graph.tasks.values())
    return f"name IN ({names})"


def latest_run_rows(
    session: Any, history_source: str, graph: TaskGraph, run_id: str | None = None
) -> list[Any]:
    """The rows of `latest_run_query` for `graph` on a Snowpark session (the local TASK_HISTORY table): its
    newest run, or the run `run_id`."""
    condition = of_graph(graph)
    params: list[Any] = []
    if run_id is not None:
        condition += " AND graph_run_group_id = ?"
        params.append(run_id)
    return session.sql(latest_run_query(history_source, condition), params=params or None).collect()


def graph_runs_query(history_source: str, graph: TaskGraph, limit: int) -> str:
    """The newest `limit` runs of `graph`, one row each: when, how long, how many tasks ended how, the first
    error (each task's latest attempt counts)."""
    return f"""WITH latest AS (
    SELECT *
    FROM {history_source}
    WHERE {of_graph(graph)} AND graph_run_group_id IS NOT NULL AND state <> 'SCHEDULED'
    QUALIFY ROW_NUMBER() OVER (PARTITION BY graph_run_group_id, name ORDER BY attempt_number DESC) = 1
)

SELECT
    graph_run_group_id,
    MIN(scheduled_time) AS scheduled_time,
    MIN(query_start_time) AS started_at,
    MAX(completed_time) AS completed_at,
    COUNT_IF(state = 'SUCCEEDED') AS succeeded,
    COUNT_IF(state = 'FAILED') AS failed,
    COUNT_IF(state = 'CANCELLED') AS cancelled,
    COUNT(*) AS tasks,
    MAX(attempt_number) AS attempts,
    MIN(CASE WHEN state = 'FAILED' THEN name || ': ' || error_message END) AS first_error
FROM latest
GROUP BY graph_run_group_id
ORDER BY scheduled_time DESC, started_at DESC NULLS LAST
LIMIT {int(limit)}"""


@dataclass
class GraphRunSummary:
    """One line of `api2snow history`."""

    run_id: str
    state: str
    scheduled_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    tasks: dict[str, int]
    attempts: int
    first_error: str | None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return round((self.completed_at - self.started_at).total_seconds(), 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            **_run_times(self),
            "tasks": self.tasks,
            "attempts": self.attempts,
            "first_error": self.first_error,
        }


def graph_runs(session: Any, history_source: str, graph: TaskGraph, limit: int = 10) -> list[GraphRunSummary]:
    expected = len(graph.tasks)
    runs = []
    for row in session.sql(graph_runs_query(history_source, graph, limit)).collect():
        counts = {k: int(row[k.upper()]) for k in ("succeeded", "failed", "cancelled")}
        finished = int(row["TASKS"]) >= expected
        states = {k.upper() for k, n in counts.items() if n} | (set() if finished else {"EXECUTING"})
        runs.append(
            GraphRunSummary(
                run_id=row["GRAPH_RUN_GROUP_ID"],
                state=_graph_state(states),
                scheduled_at=as_moment(row["SCHEDULED_TIME"]),
                started_at=as_moment(row["STARTED_AT"]),
                completed_at=as_moment(row["COMPLETED_AT"]) if finished else None,
                tasks={**counts, "not_run": max(0, expected - int(row["TASKS"]))},
                attempts=int(row["ATTEMPTS"] or 1),
                first_error=row["FIRST_ERROR"],
            )
        )
    return runs


def graph_run_status(rows: list[Any], graph: TaskGraph) -> GraphRunStatus:
    by_name = {row["NAME"].upper(): row for row in rows}
    starts = [row["QUERY_START_TIME"] for row in rows if row["QUERY_START_TIME"]]
    first_start = min(starts) if starts else None
    tasks = []
    ordered = graph.order() + ([graph.finalizer] if graph.finalizer else [])
    for task in ordered:
        row = by_name.get(task.short_name)
        duration = None
        if row is not None and row["QUERY_START_TIME"] and row["COMPLETED_TIME"]:
            duration = round((row["COMPLETED_TIME"] - row["QUERY_START_TIME"]).total_seconds(), 3)
        tasks.append(
            TaskStatus(
                name=task.short_name,
                state=row["STATE"] if row is not None else "NOT_RUN",
                duration_s=duration,
                return_value=row["RETURN_VALUE"] if row is not None else None,
                error=row["ERROR_MESSAGE"] if row is not None else None,
                attempt=int(row["ATTEMPT_NUMBER"]) if row is not None else 0,
                after=[a.rsplit(".", 1)[-1] for a in task.after]
                or ([task.finalize.rsplit(".", 1)[-1]] if task.finalize else []),
                started_s=_since(first_start, row["QUERY_START_TIME"] if row is not None else None),
                started_at=as_moment(row["QUERY_START_TIME"]) if row is not None else None,
                completed_at=as_moment(row["COMPLETED_TIME"]) if row is not None else None,
            )
        )
    first = rows[0] if rows else None
    scheduled = as_moment(first["SCHEDULED_TIME"]) if first else None
    return GraphRunStatus(
        run_id=first["GRAPH_RUN_GROUP_ID"] if first else None,
        state=_graph_state({t.state for t in tasks}) if rows else "NO_RUNS",
        scheduled_time=iso_utc(scheduled),
        tasks=tasks,
        scheduled_at=scheduled,
    )


def with_running_tasks(status: GraphRunStatus, running: dict[str, datetime]) -> GraphRunStatus:
    """An EXECUTING run with the tasks its process is running now shown EXECUTING (their TASK_HISTORY rows are
    written when they end), so `status` draws them as open bars."""
    if status.state != "EXECUTING" or not running:
        return status
    first = min([t.started_at for t in status.tasks if t.started_at] + list(running.values()))
    for task in status.tasks:
        started = running.get(task.name)
        if task.state == "NOT_RUN" and started is not None:
            task.state, task.started_at = "EXECUTING", started
            task.started_s = _since(first, started)
    for task in status.tasks:  # the same origin for every bar
        if task.started_at is not None:
            task.started_s = _since(first, task.started_at)
    return status


def as_moment(value: Any) -> datetime | None:
    """A timestamp cell as a datetime (None for NULL or a value of another type)."""
    return value if isinstance(value, datetime) else None


def _since(first: Any, moment: Any) -> float | None:
    return round((moment - first).total_seconds(), 3) if first is not None and moment else None


def _graph_state(task_states: set[str]) -> str:
    """FAILED when a task failed; CANCELLED when the run was cancelled (or abandoned) with none failed;
    SUCCEEDED when every task did; otherwise it is still EXECUTING."""
    if "FAILED" in task_states:
        return "FAILED"
    if "CANCELLED" in task_states:
        return "CANCELLED"
    return "SUCCEEDED" if task_states == {"SUCCEEDED"} else "EXECUTING"
