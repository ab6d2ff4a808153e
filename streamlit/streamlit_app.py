"""api2snow dashboard: freshness, graph runs, data quality, volumes, rejects and backfills of the pipeline.

The same file runs in Streamlit in Snowflake (deployed by `api2snow deploy` from snowflake.yml's streamlit
entity) and on localhost against the local stack (`api2snow dashboard`). It reads only what the analyst role
may read (dashboard_queries.py); queries live in dashboard_queries.py, charts in dashboard_charts.py.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

APP_DIR = str(Path(__file__).resolve().parent)
if APP_DIR not in sys.path:  # `streamlit run` puts the app's folder there; Streamlit's AppTest does not
    sys.path.insert(0, APP_DIR)

import dashboard_charts as charts  # noqa: E402  (the app's own modules, beside this file)
import dashboard_queries as queries  # noqa: E402
from dashboard_queries import DashboardError, Target  # noqa: E402
from dashboard_session import local_connection, open_local, open_snowflake  # noqa: E402

CACHE_SECONDS = 60  # what one view of the page costs the warehouse: each query at most once a minute

SECTIONS = {
    "freshness": "Freshness per source",
    "runs": "Latest graph runs",
    "dq": "Data quality over time",
    "volumes": "Daily volumes per source and category",
    "rejects": "Rejects by reason",
    "backfills": "Backfills",
}


@st.cache_resource(show_spinner=False)
def _local_session(connection_json: str) -> tuple[Any, Target]:
    return open_local(connection_json)


def _session() -> tuple[Any, Target]:
    connection = local_connection()
    return _local_session(connection) if connection else open_snowflake()


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def _query(_session: Any, cache_key: str, sql: str, columns: tuple[str, ...]) -> pd.DataFrame:
    return queries.frame(_session.sql(sql).collect(), list(columns))


COLUMNS = {
    "freshness": (
        "source",
        "last_event_at",
        "last_batch_loaded_at",
        "clean_rows",
        "minutes_since_last_event",
        "minutes_since_last_batch",
    ),
    "task_runs": ("run_id", "task", "state", "attempt", "started_at", "completed_at", "error"),
    "dq_runs": ("run_id", "checked_at", "checks", "passed", "failed_error", "failed_warn"),
    "dq_failures": (
        "checked_at",
        "run_id",
        "check_name",
        "source",
        "severity",
        "observed_value",
        "threshold",
        "details",
    ),
    "volumes": ("source", "event_date", "category", "event_count"),
    "rejects": ("source", "reason", "rejected"),
    "backfills": (
        "started_at",
        "source",
        "status",
        "window_start",
        "window_end",
        "fetched",
        "staged",
        "rejected",
        "merged_at",
        "error_message",
    ),
}


def _load(session: Any, target: Target, name: str, sql: str) -> pd.DataFrame | None:
    """One query's frame, or None after showing its error (one failing section leaves the others)."""
    try:
        return _query(session, f"{target}", sql, COLUMNS[name])
    except Exception as exc:  # the warehouse's error, shown where its section would be
        st.error(f"could not read {name}: {str(exc).strip().splitlines()[0]}")
        return None


def _number(value: Any) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def main() -> None:
    st.set_page_config(layout="wide")  # Streamlit in Snowflake ignores page_title, page_icon and menu_items
    st.title("api2snow pipeline")
    try:
        session, target = _session()
    except DashboardError as exc:
        st.error(str(exc))
        st.stop()
    with st.sidebar:
        days = st.slider("days shown", min_value=1, max_value=90, value=14)
        runs = st.slider("graph runs shown", min_value=1, max_value=48, value=10)
        if st.button("Refresh"):
            st.cache_data.clear()
    sql = queries.all_queries(target, days, runs)
    data = {name: _load(session, target, name, text) for name, text in sql.items()}
    st.caption(
        f"database {target.database} · read {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · every time is UTC "
        f"· refreshed at most every {CACHE_SECONDS} s"
    )
    task_runs = data["task_runs"]
    graph_runs = queries.graph_runs(task_runs) if task_runs is not None else None
    _headline(data, graph_runs, days)
    _freshness(data["freshness"])
    _runs(task_runs, graph_runs)
    _quality(data["dq_runs"], data["dq_failures"])
    _volumes(data["volumes"], days)
    _rejects(data["rejects"], days)
    _backfills(data["backfills"], days)


def _headline(data: dict[str, pd.DataFrame | None], graph_runs: pd.DataFrame | None, days: int) -> None:
    volumes, dq_runs, rejects = data["volumes"], data["dq_runs"], data["rejects"]
    left, middle, right, last = st.columns(4)
    if volumes is not None:
        left.metric(f"events, last {days} days", f"{_number(volumes['event_count'].sum()):,}")
    if graph_runs is not None and graph_runs.empty:
        middle.metric("latest graph run", "none yet")
    elif graph_runs is not None:  # of the pipeline's graph, not the daily RECONCILE
        pipeline = graph_runs[graph_runs["graph"] == queries.graphs(graph_runs)[0]]
        middle.metric("latest graph run", pipeline["state"].iloc[0])
    if dq_runs is not None and not dq_runs.empty:
        latest = dq_runs.iloc[-1]
        right.metric("failed checks, latest DQ run", _number(latest["failed_error"] + latest["failed_warn"]))
    if rejects is not None:
        last.metric(f"rejected records, last {days} days", f"{_number(rejects['rejected'].sum()):,}")


def _freshness(freshness: pd.DataFrame | None) -> None:
    st.header(SECTIONS["freshness"])
    if freshness is None:
        return
    if freshness.empty:
        st.info("no source has loaded anything yet")
        return
    st.altair_chart(charts.freshness(freshness), width="stretch")
    st.dataframe(freshness, hide_index=True, width="stretch")


def _runs(task_runs: pd.DataFrame | None, graph_runs: pd.DataFrame | None) -> None:
    st.header(SECTIONS["runs"])
    if task_runs is None or graph_runs is None:
        return
    if graph_runs.empty:
        st.info("no graph run recorded yet")
        return
    names = queries.graphs(graph_runs)
    graph = st.radio("graph", names, horizontal=True) if len(names) > 1 else names[0]
    shown = graph_runs[graph_runs["graph"] == graph]
    st.altair_chart(charts.graph_runs(shown), width="stretch")
    st.dataframe(shown, hide_index=True, width="stretch")
    labels = {
        f"{row.started_at:%Y-%m-%d %H:%M:%S} · {row.state} · {row.run_id}": row.run_id
        for row in shown.itertuples()
    }
    chosen = st.selectbox("timeline of run", list(labels))
    tasks = queries.timeline(task_runs, labels[chosen], datetime.now(UTC).replace(tzinfo=None))
    st.altair_chart(charts.timeline(tasks), width="stretch")
    st.dataframe(tasks, hide_index=True, width="stretch")


def _quality(dq_runs: pd.DataFrame | None, failures: pd.DataFrame | None) -> None:
    st.header(SECTIONS["dq"])
    if dq_runs is None:
        return
    if dq_runs.empty:
        st.info("no data-quality results in this window")
        return
    st.altair_chart(charts.dq_over_time(queries.dq_outcomes(dq_runs)), width="stretch")
    st.dataframe(dq_runs, hide_index=True, width="stretch")
    if failures is None:
        return
    if failures.empty:
        st.success("every check passed in this window")
    else:
        st.subheader("failed checks")
        st.dataframe(failures, hide_index=True, width="stretch")


def _volumes(volumes: pd.DataFrame | None, days: int) -> None:
    st.header(SECTIONS["volumes"])
    if volumes is None:
        return
    if volumes.empty:
        st.info(f"no events in the last {days} days")
        return
    st.altair_chart(charts.daily_volumes(volumes))
    per_day = volumes.pivot_table(
        index=["event_date", "source"], columns="category", values="event_count", aggfunc="sum", fill_value=0
    ).reset_index()
    per_day.columns.name = None
    st.dataframe(per_day, hide_index=True, width="stretch")


def _rejects(rejects: pd.DataFrame | None, days: int) -> None:
    st.header(SECTIONS["rejects"])
    if rejects is None:
        return
    if rejects.empty:
        st.success(f"no record rejected in the last {days} days")
        return
    st.altair_chart(charts.rejects_by_reason(rejects), width="stretch")
    st.dataframe(rejects, hide_index=True, width="stretch")


def _backfills(backfills: pd.DataFrame | None, days: int) -> None:
    st.header(SECTIONS["backfills"])
    if backfills is None:
        return
    if backfills.empty:
        st.info(f"no backfill in the last {days} days: `CALL OPS.BACKFILL(source, from, to)` re-reads one")
        return
    st.dataframe(backfills, hide_index=True, width="stretch")


main()
