"""Closing a local graph run whose process died mid-run (killed or crashed), so `status` never shows a run
EXECUTING that no process executes. Local only: it writes the local stand-in of TASK_HISTORY, whose times
are TIMESTAMP_LTZ as Snowflake's are."""

from __future__ import annotations

from typing import Any

from ..history import ABANDONED, GraphRunStatus, as_moment, graph_run_status, iso_utc, latest_run_rows
from .tasks import TaskGraph


def repair_abandoned_run(session: Any, history_source: str, graph: TaskGraph) -> GraphRunStatus | None:
    """Close the newest run of `graph` if it never finished: call only while no process runs the graph (the
    caller holds the warehouse lock), so an unfinished run is one whose process ended mid-run (killed or
    crashed). Its tasks without an outcome are recorded CANCELLED, as ABANDONED, so `status` stops showing
    it EXECUTING; returns the repaired run (None: nothing to repair)."""
    rows = latest_run_rows(session, history_source, graph)
    status = graph_run_status(rows, graph)
    if status.state != "EXECUTING":
        return None
    first = rows[0]
    attempt = max(int(row["ATTEMPT_NUMBER"] or 1) for row in rows)
    database, schema = graph.root.name.split(".")[:2]
    for task in status.tasks:
        if task.state in ("NOT_RUN", "EXECUTING"):
            session.sql(
                f"INSERT INTO {history_source} (name, database_name, schema_name, state, scheduled_time, "
                "error_message, graph_run_group_id, root_task_name, attempt_number, run_id) "
                "SELECT ?, ?, ?, 'CANCELLED', CAST(? AS TIMESTAMP_LTZ), ?, ?, ?, ?, "
                f"(SELECT MAX(run_id) FROM {history_source} WHERE graph_run_group_id = ?)",
                params=[
                    task.name,
                    database,
                    schema,
                    iso_utc(as_moment(first["SCHEDULED_TIME"])),
                    ABANDONED,
                    status.run_id,
                    graph.root.short_name,
                    attempt,
                    status.run_id,
                ],
            ).collect()
    return graph_run_status(latest_run_rows(session, history_source, graph, status.run_id), graph)
