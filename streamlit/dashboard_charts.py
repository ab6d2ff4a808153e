"""Drawing: the Altair charts of the dashboard (Altair ships with Streamlit in Snowflake). No queries here."""

from __future__ import annotations

import altair as alt
import pandas as pd

# The colours `api2snow status` uses for task states, so the terminal and the page read alike.
STATE_COLOURS = {
    "SUCCEEDED": "#2e7d32",
    "FAILED": "#c62828",
    "CANCELLED": "#f9a825",
    "EXECUTING": "#0277bd",
    "SKIPPED": "#9e9e9e",
}
OUTCOME_COLOURS = {"passed": "#2e7d32", "failed (warn)": "#f9a825", "failed (error)": "#c62828"}


def _scale(colours: dict[str, str]) -> alt.Scale:
    return alt.Scale(domain=list(colours), range=list(colours.values()))


def freshness(data: pd.DataFrame) -> alt.Chart:
    """Minutes since each source's last confirmed batch and last event."""
    long = data.melt(
        id_vars=["source"],
        value_vars=["minutes_since_last_batch", "minutes_since_last_event"],
        var_name="measure",
        value_name="minutes",
    )
    long["measure"] = long["measure"].map(
        {"minutes_since_last_batch": "since last batch", "minutes_since_last_event": "since last event"}
    )
    base = alt.Chart(long).encode(
        y=alt.Y("source:N", title=None),
        x=alt.X("minutes:Q", title="minutes"),
        yOffset="measure:N",
        tooltip=["source", "measure", "minutes"],
    )
    bars = base.mark_bar().encode(color=alt.Color("measure:N", title=None))
    labels = base.mark_text(align="left", dx=4).encode(text="minutes:Q")  # 0 minutes: no bar, a number
    return bars + labels


def _moment(values: pd.Series) -> pd.Series:
    """Timestamps as labels of an ordinal axis: one bar each, in time order, however close together."""
    return values.dt.strftime("%m-%d %H:%M:%S")


def graph_runs(runs: pd.DataFrame) -> alt.Chart:
    """One bar per graph run: when it started, how long it took, how it ended."""
    data = runs.assign(started=_moment(runs["started_at"]))
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("started:O", title="started (UTC)", sort="ascending"),
            y=alt.Y("duration_s:Q", title="seconds"),
            color=alt.Color("state:N", scale=_scale(STATE_COLOURS), title="state"),
            tooltip=["run_id", "graph", "started_at", "duration_s", "state", "succeeded", "failed"],
        )
    )


def timeline(tasks: pd.DataFrame) -> alt.Chart:
    """A run's tasks as bars on one time axis: which ran side by side, where the time went."""
    order = list(tasks["task"])
    return (
        alt.Chart(tasks)
        .mark_bar()
        .encode(
            y=alt.Y("task:N", sort=order, title=None, axis=alt.Axis(labelLimit=240)),
            x=alt.X("start_s:Q", title="seconds from the run's start"),
            x2="end_s:Q",
            color=alt.Color("state:N", scale=_scale(STATE_COLOURS), title="state"),
            tooltip=["task", "state", "attempt", "start_s", "duration_s", "error"],
        )
    )


def dq_over_time(outcomes: pd.DataFrame) -> alt.Chart:
    """Checks per run over time, stacked by outcome."""
    data = outcomes.assign(checked=_moment(outcomes["checked_at"]))
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("checked:O", title="checked (UTC)", sort="ascending"),
            y=alt.Y("sum(count):Q", title="checks"),
            color=alt.Color("outcome:N", scale=_scale(OUTCOME_COLOURS), title=None),
            tooltip=["run_id", "checked_at", "outcome", "count"],
        )
    )


def daily_volumes(volumes: pd.DataFrame) -> alt.Chart:
    """Events per UTC day, stacked by category, one column per source."""
    return (
        alt.Chart(volumes)
        .mark_bar()
        .encode(
            x=alt.X("event_date:O", title="day (UTC)", timeUnit="utcyearmonthdate"),
            y=alt.Y("sum(event_count):Q", title="events"),
            color=alt.Color("category:N", title="category"),
            column=alt.Column("source:N", title=None),
            tooltip=["source", "event_date", "category", "event_count"],
        )
        .properties(width=180)
    )


def rejects_by_reason(rejects: pd.DataFrame) -> alt.Chart:
    """Rejected records per reason, split by source."""
    return (
        alt.Chart(rejects)
        .mark_bar()
        .encode(
            y=alt.Y("reason:N", sort="-x", title=None, axis=alt.Axis(labelLimit=360)),
            x=alt.X("sum(rejected):Q", title="rejected records"),
            color=alt.Color("source:N", title="source"),
            tooltip=["source", "reason", "rejected"],
        )
    )
