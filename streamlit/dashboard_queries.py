"""What the dashboard reads, and the frames it draws: SQL text and pandas shaping, no drawing.

Every query reads only objects the analyst role may read (sql/07_grants.sql; tests/unit/test_dashboard.py
holds it to that): ANALYTICS views and tables, and the task graph's run history, which Snowflake keeps in
INFORMATION_SCHEMA.TASK_HISTORY() (MONITOR on the tasks) and the local stack in a table shaped like it. The
app runs with its owner's rights in Snowflake, so this discipline, not a grant, is what keeps it to that.
All timestamps are naive UTC, like every timestamp the pipeline stores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

UTC_NOW = "CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ"
HISTORY_DAYS = 7  # how far back INFORMATION_SCHEMA.TASK_HISTORY() is asked (it keeps 7 days)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
FAILED_STATES = ("FAILED", "CANCELLED")


class DashboardError(RuntimeError):
    """The dashboard cannot tell what to read (no session, a malformed name)."""


@dataclass(frozen=True)
class Target:
    """Where the pipeline's objects are: its database, and the source of its task runs (a FROM item)."""

    database: str
    task_history: str

    @classmethod
    def snowflake(cls, database: str) -> Target:
        """In Snowflake: the database's TASK_HISTORY() table function over the days it keeps."""
        db = identifier(database)
        return cls(
            db,
            f"TABLE({db}.INFORMATION_SCHEMA.TASK_HISTORY("
            f"SCHEDULED_TIME_RANGE_START => DATEADD('day', -{HISTORY_DAYS}, CURRENT_TIMESTAMP()), "
            "RESULT_LIMIT => 10000))",
        )

    @classmethod
    def local(cls, database: str, task_history_table: str) -> Target:
        """On the local stack: the table its task runner records runs in (same columns)."""
        parts = task_history_table.split(".")
        return cls(identifier(database), ".".join(identifier(part) for part in parts))


def identifier(name: str) -> str:
    """An unquoted Snowflake identifier, upper-cased; anything else is refused, since it is put in SQL."""
    bare = name.strip().strip('"')
    if not _IDENTIFIER.fullmatch(bare):
        raise DashboardError(f"not a plain Snowflake identifier: {name!r}")
    return bare.upper()


# ---- SQL ------------------------------------------------------------------------------------------------
def freshness_sql(target: Target) -> str:
    return f"""SELECT
    source,
    last_event_at,
    last_batch_loaded_at,
    clean_rows,
    minutes_since_last_event,
    minutes_since_last_batch
FROM {target.database}.ANALYTICS.VW_DATA_FRESHNESS
ORDER BY source"""


def task_runs_sql(target: Target, runs: int) -> str:
    """Each task's latest attempt in the newest `runs` graph runs of the database's PIPELINE schema."""
    return f"""WITH history AS (
    SELECT
        name,
        state,
        scheduled_time,
        query_start_time,
        completed_time,
        error_message,
        graph_run_group_id,
        attempt_number
    FROM {target.task_history}
    WHERE
        database_name = '{target.database}'
        AND schema_name = 'PIPELINE'
        AND graph_run_group_id IS NOT NULL
        AND state <> 'SCHEDULED'
        AND scheduled_time >= DATEADD('day', -{HISTORY_DAYS}, CURRENT_TIMESTAMP())
),

latest_runs AS (
    SELECT
        graph_run_group_id,
        MIN(scheduled_time) AS first_scheduled_time
    FROM history
    GROUP BY graph_run_group_id
    ORDER BY first_scheduled_time DESC
    LIMIT {int(runs)}
)

SELECT
    history.graph_run_group_id AS run_id,
    history.name AS task,
    history.state,
    history.attempt_number AS attempt,
    CONVERT_TIMEZONE('UTC', history.query_start_time)::TIMESTAMP_NTZ AS started_at,
    CONVERT_TIMEZONE('UTC', history.completed_time)::TIMESTAMP_NTZ AS completed_at,
    history.error_message AS error
FROM history
INNER JOIN latest_runs
    ON history.graph_run_group_id = latest_runs.graph_run_group_id
QUALIFY ROW_NUMBER() OVER (
    PARTITION BY history.graph_run_group_id, history.name ORDER BY history.attempt_number DESC
) = 1"""


def dq_runs_sql(target: Target, days: int) -> str:
    """Per run that recorded checks in the last `days` days: how many passed, failed (error, warn)."""
    return f"""SELECT
    run_id,
    MIN(checked_at) AS checked_at,
    COUNT(*) AS checks,
    COUNT_IF(passed) AS passed,
    COUNT_IF(NOT passed AND severity = 'error') AS failed_error,
    COUNT_IF(NOT passed AND severity <> 'error') AS failed_warn
FROM {target.database}.ANALYTICS.DQ_CHECK_RESULTS
WHERE checked_at >= DATEADD('day', -{int(days)}, {UTC_NOW})
GROUP BY run_id
ORDER BY checked_at"""


def dq_failures_sql(target: Target, days: int, limit: int = 200) -> str:
    return f"""SELECT
    checked_at,
    run_id,
    check_name,
    source,
    severity,
    observed_value,
    threshold,
    details
FROM {target.database}.ANALYTICS.DQ_CHECK_RESULTS
WHERE NOT passed AND checked_at >= DATEADD('day', -{int(days)}, {UTC_NOW})
ORDER BY checked_at DESC, severity, check_name, source
LIMIT {int(limit)}"""


def volumes_sql(target: Target, days: int) -> str:
    return f"""SELECT
    source,
    event_date,
    category,
    event_count
FROM {target.database}.ANALYTICS.VW_DAILY_EVENT_COUNTS
WHERE event_date >= DATEADD('day', -{int(days)}, {UTC_NOW})::DATE
ORDER BY event_date, source, category"""


def rejects_sql(target: Target, days: int) -> str:
    return f"""SELECT
    source,
    reason,
    SUM(rejected_count)::INTEGER AS rejected
FROM {target.database}.ANALYTICS.VW_REJECTS_BY_REASON
WHERE loaded_date >= DATEADD('day', -{int(days)}, {UTC_NOW})::DATE
GROUP BY source, reason
ORDER BY rejected DESC, source, reason"""


def backfills_sql(target: Target, days: int, limit: int = 100) -> str:
    """OPS.BACKFILL's batches (re-reads of a past window), newest first, from the analysts' ledger view."""
    return f"""SELECT
    started_at,
    source,
    status,
    window_start,
    window_end,
    fetched,
    staged,
    rejected,
    merged_at,
    error_message
FROM {target.database}.ANALYTICS.VW_PIPELINE_BATCHES
WHERE kind = 'BACKFILL' AND started_at >= DATEADD('day', -{int(days)}, {UTC_NOW})
ORDER BY started_at DESC, source
LIMIT {int(limit)}"""


def all_queries(target: Target, days: int, runs: int) -> dict[str, str]:
    """Every query the dashboard runs, by section (what the grants test reads)."""
    return {
        "freshness": freshness_sql(target),
        "task_runs": task_runs_sql(target, runs),
        "dq_runs": dq_runs_sql(target, days),
        "dq_failures": dq_failures_sql(target, days),
        "volumes": volumes_sql(target, days),
        "rejects": rejects_sql(target, days),
        "backfills": backfills_sql(target, days),
    }


# ---- frames ---------------------------------------------------------------------------------------------
def frame(rows: list[Any], columns: list[str]) -> pd.DataFrame:
    """Snowpark Rows as a DataFrame with the lower-case `columns` (the query's), empty or not."""
    records = [{key.lower(): value for key, value in row.as_dict().items()} for row in rows]
    return pd.DataFrame(records, columns=columns)


def run_state(states: list[str]) -> str:
    """A graph run's state from its tasks' latest attempts, as `api2snow status` judges it."""
    if any(state in FAILED_STATES for state in states):
        return "FAILED"
    return "SUCCEEDED" if states and all(state == "SUCCEEDED" for state in states) else "EXECUTING"


def graph_runs(tasks: pd.DataFrame) -> pd.DataFrame:
    """One row per graph run, newest first: its graph (the task that started first: the root), start,
    duration, state, and how many tasks succeeded and failed."""
    columns = ["run_id", "graph", "started_at", "duration_s", "state", "tasks", "succeeded", "failed"]
    if tasks.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for run_id, group in tasks.groupby("run_id", sort=False):
        started = group.dropna(subset=["started_at"]).sort_values("started_at")
        first, last = started["started_at"].min(), group["completed_at"].max()
        states = list(group["state"])
        rows.append(
            {
                "run_id": run_id,
                "graph": started["task"].iloc[0] if not started.empty else "",
                "started_at": first,
                "duration_s": _seconds(first, last),
                "state": run_state(states),
                "tasks": len(states),
                "succeeded": states.count("SUCCEEDED"),
                "failed": sum(state in FAILED_STATES for state in states),
            }
        )
    return pd.DataFrame(rows, columns=columns).sort_values("started_at", ascending=False, ignore_index=True)


def graphs(runs: pd.DataFrame) -> list[str]:
    """The graphs that ran, the pipeline first: by their largest run's task count (the hourly graph has a task
    per source and layer; the daily RECONCILE one), then by name."""
    largest = runs.groupby("graph")["tasks"].max()
    return sorted(largest.index, key=lambda graph: (-largest[graph], graph))


def timeline(tasks: pd.DataFrame, run_id: str, now: datetime) -> pd.DataFrame:
    """The tasks of one run on one time axis: seconds from the run's first start to each task's start and
    end (a task still running ends at `now`), in start order."""
    run = tasks[tasks["run_id"] == run_id].dropna(subset=["started_at"]).sort_values(["started_at", "task"])
    columns = ["task", "state", "attempt", "start_s", "end_s", "duration_s", "error"]
    if run.empty:
        return pd.DataFrame(columns=columns)
    origin = run["started_at"].min()
    ends = run["completed_at"].where(run["completed_at"].notna(), now)
    return pd.DataFrame(
        {
            "task": run["task"],
            "state": run["state"],
            "attempt": run["attempt"],
            "start_s": [_seconds(origin, start) for start in run["started_at"]],
            "end_s": [_seconds(origin, end) for end in ends],
            "duration_s": list(map(_seconds, run["started_at"], run["completed_at"])),
            "error": run["error"],
        },
        columns=columns,
    ).reset_index(drop=True)


def dq_outcomes(dq_runs: pd.DataFrame) -> pd.DataFrame:
    """The per-run DQ counts in long form (run_id, checked_at, outcome, count) for a stacked chart."""
    outcomes = {"passed": "passed", "failed_warn": "failed (warn)", "failed_error": "failed (error)"}
    long = dq_runs.melt(
        id_vars=["run_id", "checked_at"], value_vars=list(outcomes), var_name="outcome", value_name="count"
    )
    long["outcome"] = long["outcome"].map(outcomes)
    return long


def _seconds(start: Any, end: Any) -> float | None:
    if start is None or end is None or pd.isna(start) or pd.isna(end):
        return None
    return round((end - start).total_seconds(), 3)
