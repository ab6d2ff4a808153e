"""Reading a graph run back from TASK_HISTORY, in the shape `api2snow status` prints.

Locally TASK_HISTORY is a table the runner writes; in Snowflake it is INFORMATION_SCHEMA.TASK_HISTORY().
Both have the same columns, so one query shape serves both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .local.tasks import TaskGraph


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


@dataclass
class GraphRunStatus:
    run_id: str | None
    state: str
    scheduled_time: str | None
    tasks: list[TaskStatus]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "state": self.state,
            "scheduled_time": self.scheduled_time,
            "tasks": [asdict(t) for t in self.tasks],
        }


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


def latest_run_rows(session: Any, history_source: str, graph: TaskGraph) -> list[Any]:
    """The rows of `latest_run_query` for `graph` on a Snowpark session (the local TASK_HISTORY table)."""
    return session.sql(latest_run_query(history_source, of_graph(graph))).collect()


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
            )
        )
    first = rows[0] if rows else None
    return GraphRunStatus(
        run_id=first["GRAPH_RUN_GROUP_ID"] if first else None,
        state=_graph_state({t.state for t in tasks}) if rows else "NO_RUNS",
        scheduled_time=str(first["SCHEDULED_TIME"]) if first else None,
        tasks=tasks,
    )


def _since(first: Any, moment: Any) -> float | None:
    return round((moment - first).total_seconds(), 3) if first is not None and moment else None


def _graph_state(task_states: set[str]) -> str:
    if task_states & {"FAILED", "CANCELLED"}:
        return "FAILED"
    return "SUCCEEDED" if task_states == {"SUCCEEDED"} else "EXECUTING"
