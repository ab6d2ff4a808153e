"""The dashboard (streamlit/) rendered with Streamlit's AppTest over a real local stack after real graph runs:
what each section shows is what the warehouse holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from api2snow_cli.dashboard import APP, CONNECTION_ENV, TASK_HISTORY_ENV, app_environment

from ..conftest import start_stack

pytestmark = pytest.mark.integration
# The page's section headers, in order (the browser test looks for the same ones).
SECTIONS = (
    "Freshness per source",
    "Latest graph runs",
    "Data quality over time",
    "Daily volumes per source and category",
    "Rejects by reason",
    "Backfills",
)
INVALID_RECORD_RATE = 0.05  # API A serves some invalid records, so there are rejects to show


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A stack whose graph ran twice (the second run finds little new), then the daily RECONCILE once, then an
    analyst's backfill of an hour of API A, which serves some invalid records."""
    from api2snow_cli.local.mock_apis.faults import Faults

    faults = {"api_a": Faults.for_api("api_a", invalid_record_rate=INVALID_RECORD_RATE)}
    stack = start_stack(tmp_path_factory.mktemp("api2snow-dashboard"), history_hours=3, faults=faults)
    try:
        stack.run_ids = [stack.run_graph()[0], stack.run_graph()[0]]
        stack.reconcile_id = stack.run_graph(root="RECONCILE")[0]
        now = stack.mock_apis.clock.now().replace(tzinfo=None)
        start = (now - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
        stack.backfill_window = (start, start + timedelta(hours=1))
        window = ", ".join(f"'{moment:%Y-%m-%dT%H:%M:%SZ}'" for moment in stack.backfill_window)
        stack.backfill = json.loads(stack.call(f"CALL OPS.BACKFILL('api_a', {window})"))
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def page(watched: Any) -> Iterator[Any]:
    """The app rendered once, connected to the stack as `api2snow dashboard` connects it (for every rerun)."""
    from streamlit.testing.v1 import AppTest

    environment = app_environment(watched.warehouse.connection_parameters(), watched.database, {})
    with pytest.MonkeyPatch.context() as patch:
        for name in (CONNECTION_ENV, TASK_HISTORY_ENV):
            patch.setenv(name, environment[name])
        app = AppTest.from_file(str(APP), default_timeout=120)
        app.run()
        assert not app.exception, [e.message for e in app.exception]
        assert not app.error, [e.value for e in app.error]
        yield app


def table(page: Any, column: str) -> pd.DataFrame:
    """The one dataframe on the page that has `column`."""
    found = [frame.value for frame in page.dataframe if column in frame.value.columns]
    assert len(found) == 1, f"{len(found)} tables with a {column!r} column"
    return found[0]


def metric(page: Any, label_start: str) -> str:
    return next(m.value for m in page.metric if m.label.startswith(label_start))


def rows(stack: Any, query: str) -> list[Any]:
    return stack.session.sql(query).collect()


def clean_counts(stack: Any) -> dict[str, int]:
    """Events per source, counted in CLEAN itself (not through the views the page reads)."""
    from api2snow.sources import SOURCES

    return {
        name: rows(stack, f"SELECT COUNT(*) AS n FROM {stack.database}.{source.clean_table}")[0]["N"]
        for name, source in SOURCES.items()
        if source.clean_table.startswith("CLEAN.CLN_")
    }


def test_the_page_has_every_section(page):
    assert tuple(h.value for h in page.header) == SECTIONS


def test_freshness_shows_one_row_per_source_with_its_clean_rows(page, watched):
    shown = table(page, "minutes_since_last_batch")
    assert dict(zip(shown["source"], shown["clean_rows"], strict=True)) == clean_counts(watched)
    assert (shown["minutes_since_last_batch"] <= 1).all()  # both runs just loaded a batch of every source


def test_the_latest_runs_are_the_graph_runs_with_every_task(page, watched):
    runs = table(page, "graph")
    assert list(runs["run_id"]) == list(reversed(watched.run_ids))  # newest first
    assert set(runs["state"]) == {"SUCCEEDED"} and set(runs["graph"]) == {"ROOT"}
    for run_id, tasks in zip(runs["run_id"], runs["tasks"], strict=True):
        recorded = rows(
            watched,
            f"SELECT COUNT(DISTINCT name) AS n FROM {watched.database}.OPS.TASK_HISTORY "
            f"WHERE graph_run_group_id = '{run_id}'",
        )[0]["N"]
        assert tasks == recorded == len(watched.graph.tasks)  # every task, the finalizer included
    assert metric(page, "latest graph run") == "SUCCEEDED"


def test_the_daily_reconcile_runs_are_one_click_away(page, watched):
    choice = page.radio[0]
    assert choice.label == "graph" and choice.options == ["ROOT", "RECONCILE"] and choice.value == "ROOT"
    choice.set_value("RECONCILE").run()
    try:
        runs = table(page, "graph")
        assert list(runs["run_id"]) == [watched.reconcile_id] and list(runs["state"]) == ["SUCCEEDED"]
        assert list(table(page, "start_s")["task"]) == ["RECONCILE"]
        assert metric(page, "latest graph run") == "SUCCEEDED"
    finally:
        page.radio[0].set_value("ROOT").run()
    assert list(table(page, "graph")["run_id"]) == list(reversed(watched.run_ids))


def test_the_timeline_is_the_latest_run_in_start_order(page, watched):
    timeline = table(page, "start_s")
    recorded = rows(
        watched,
        f"SELECT name FROM {watched.database}.OPS.TASK_HISTORY "
        f"WHERE graph_run_group_id = '{watched.run_ids[-1]}'",
    )
    assert sorted(timeline["task"]) == sorted(r["NAME"] for r in recorded)
    assert timeline["task"].iloc[0] == "ROOT" and timeline["start_s"].iloc[0] == 0
    assert list(timeline["start_s"]) == sorted(timeline["start_s"])
    assert (timeline["end_s"] >= timeline["start_s"]).all()
    assert timeline["task"].iloc[-1] == "FINALIZE"


def test_dq_counts_per_run_match_the_recorded_results(page, watched):
    shown = table(page, "failed_error").set_index("run_id")
    recorded = rows(
        watched,
        f"SELECT run_id, COUNT(*) AS checks, COUNT_IF(passed) AS passed, "
        f"COUNT_IF(NOT passed AND severity = 'error') AS failed_error "
        f"FROM {watched.database}.ANALYTICS.DQ_CHECK_RESULTS GROUP BY run_id",
    )
    assert set(shown.index) == {r["RUN_ID"] for r in recorded} == {*watched.run_ids, watched.reconcile_id}
    for r in recorded:
        assert shown.loc[r["RUN_ID"], "checks"] == r["CHECKS"] > 0
        assert shown.loc[r["RUN_ID"], "passed"] == r["PASSED"]
        assert shown.loc[r["RUN_ID"], "failed_error"] == r["FAILED_ERROR"] == 0
    assert metric(page, "failed checks") == "0"


def test_daily_volumes_add_up_to_clean_per_source_and_category(page, watched):
    shown = table(page, "event_date")
    categories = [c for c in shown.columns if c not in ("event_date", "source")]
    per_source = shown.groupby("source")[categories].sum()
    assert per_source.sum(axis=1).to_dict() == clean_counts(watched)
    recorded = rows(
        watched,
        f"SELECT source, category, COUNT(*) AS n FROM {watched.database}.ANALYTICS.VW_EVENTS "
        "GROUP BY source, category",
    )
    assert {(r["SOURCE"], r["CATEGORY"]): r["N"] for r in recorded} == {
        (source, category): int(per_source.loc[source, category])
        for source in per_source.index
        for category in categories
        if per_source.loc[source, category]
    }
    assert metric(page, "events") == f"{sum(clean_counts(watched).values()):,}"


def test_rejects_by_reason_match_the_ledger_and_the_rejects_table(page, watched):
    shown = table(page, "reason")
    ledger = rows(
        watched,
        f"SELECT source, SUM(rejected) AS n FROM {watched.database}.OPS.BATCH_LEDGER "
        "GROUP BY source HAVING SUM(rejected) > 0",
    )
    assert shown.groupby("source")["rejected"].sum().to_dict() == {r["SOURCE"]: r["N"] for r in ledger}
    assert set(shown["source"]) == {"api_a"}
    recorded = rows(
        watched,
        f"SELECT payload:reason::STRING AS reason, COUNT(*) AS n "
        f"FROM {watched.database}.RAW.REJECTED_RECORDS GROUP BY 1",
    )
    by_reason = {r["REASON"]: r["N"] for r in recorded}
    assert dict(zip(shown["reason"], shown["rejected"], strict=True)) == by_reason
    assert metric(page, "rejected records") == f"{sum(r['N'] for r in recorded):,}"


def test_the_page_reads_the_local_stack_through_the_environment_api2snow_dashboard_sets(watched):
    environment = app_environment(watched.warehouse.connection_parameters(), watched.database, {"KEEP": "1"})
    assert environment["KEEP"] == "1"
    assert json.loads(environment[CONNECTION_ENV])["port"] == watched.warehouse.port
    assert environment[TASK_HISTORY_ENV] == f"{watched.database}.OPS.TASK_HISTORY"


def test_the_backfill_shows_with_its_window_and_counts(page, watched):
    shown = table(page, "window_start")
    assert watched.backfill["status"] == "MERGED" and watched.backfill["fetched"] > 0
    assert len(shown) == 1
    row = shown.iloc[0]
    assert (row["source"], row["status"]) == ("api_a", "MERGED")
    assert (row["window_start"], row["window_end"]) == watched.backfill_window
    assert (row["fetched"], row["staged"], row["rejected"]) == tuple(
        watched.backfill[key] for key in ("fetched", "staged", "rejected")
    )
