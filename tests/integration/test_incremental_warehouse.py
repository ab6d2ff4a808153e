"""The hourly warehouse work reads what is new; the daily RECONCILE checks and repairs the full history.

- The hourly RUN_DQ checks each merged batch once (a graph run marks it), and its per-batch checks see what a
  batch lost on its way to CLEAN.
- A camera that changes site queues every summary day; the summary then equals a fresh GROUP BY again.
- RECONCILE records the full-history checks, ANL_DAILY_SUMMARY against VW_DAILY_SUMMARY included, fails
  loudly on a finding, and merges a loaded batch older than the hourly ledger lookback.
"""

from __future__ import annotations

import json

import pytest
from api2snow.quality import DataQualityError

from .helpers import load_batch, scalar

pytestmark = pytest.mark.integration
EVENTS = ("api_a", "api_b", "api_d")
COLUMNS = "source, event_date, event_count, camera_count, site_count, ROUND(avg_confidence, 9), top_category"


@pytest.fixture(scope="module")
def ran(stack):
    run_id, runs = stack.run_graph()
    assert {r.state for r in runs} == {"SUCCEEDED"}, [(r.name, r.error) for r in runs if r.error]
    return run_id


def _summary_rows(stack, relation: str) -> set[tuple]:
    rows = stack.session.sql(f"SELECT {COLUMNS} FROM {stack.database}.ANALYTICS.{relation}").collect()
    return {tuple(row) for row in rows}


def _results(stack, run_id: str) -> dict[tuple[str, str], object]:
    rows = stack.session.sql(
        f"SELECT check_name, source, passed, observed_value FROM {stack.database}.ANALYTICS.DQ_CHECK_RESULTS "
        "WHERE run_id = ?",
        params=[run_id],
    ).collect()
    return {(r["CHECK_NAME"], r["SOURCE"]): (r["PASSED"], r["OBSERVED_VALUE"]) for r in rows}


def _event_payload(row, **changes) -> dict:
    fields = ("event_id", "event_type", "camera_id", "category", "confidence", "duration_ms")
    payload = {name: row[name.upper()] for name in fields}
    for name in ("occurred_at", "updated_at"):
        payload[name] = row[name.upper()].isoformat(timespec="microseconds")
    return {**payload, **changes}


def test_a_graph_run_checks_each_merged_batch_once(stack, ran):
    db = stack.database
    checked = scalar(stack, f"SELECT COUNT(*) FROM {db}.OPS.BATCH_LEDGER WHERE dq_run_id = ?", [ran])
    merged = scalar(stack, f"SELECT COUNT(*) FROM {db}.OPS.BATCH_LEDGER WHERE status = 'MERGED'")
    events = scalar(
        stack,
        f"SELECT COUNT(*) FROM {db}.OPS.BATCH_LEDGER WHERE status = 'MERGED' AND source <> 'api_c'",
    )
    assert checked == events and 0 < events <= merged  # the events sources' batches; cameras have no checks
    results = _results(stack, ran)
    assert results[("reconcile_staged_to_raw", "api_a")] == (True, 0.0)
    assert results[("unique_event_id", "api_a")] == (True, 0.0)
    assert results[("volume_clean_rows", "api_a")][0] is True

    second = json.loads(stack.call(f"CALL {db}.OPS.RUN_DQ()"))  # manual: nothing new since the graph's check
    assert second["batches_checked"] == 0 and not second["failed_error"]


def test_the_per_batch_checks_see_a_batch_that_did_not_reach_clean(stack, ran):
    db, clean = stack.database, f"{stack.database}.CLEAN.CLN_API_B_EVENTS"
    rows = stack.session.sql(f"SELECT * FROM {clean} ORDER BY event_id LIMIT 3").collect()
    load_batch(stack, "api_b", [_event_payload(r, confidence=0.5) for r in rows])
    stack.call(f"CALL {db}.OPS.BUILD_CLEAN()")
    # CLEAN loses one of the batch's ids behind the pipeline's back
    stack.session.sql(f"DELETE FROM {clean} WHERE event_id = ?", params=[rows[0]["EVENT_ID"]]).collect()
    summary = json.loads(stack.call(f"CALL {db}.OPS.RUN_DQ()"))
    assert summary["batches_checked"] == 1
    assert "reconcile_raw_to_clean[api_b]" in summary["failed_error"]
    assert _results(stack, summary["run_id"])[("reconcile_raw_to_clean", "api_b")] == (False, 1.0)
    reloaded = load_batch(stack, "api_b", [_event_payload(rows[0])])  # put it back the pipeline's way
    stack.call(f"CALL {db}.OPS.BUILD_CLEAN()")
    status = f"SELECT status FROM {db}.OPS.BATCH_LEDGER WHERE batch_id = ?"
    assert scalar(stack, status, [reloaded]) == "MERGED"


def test_a_camera_that_changes_site_refreshes_every_day_of_the_summary(stack, ran):
    db = stack.database
    camera = stack.session.sql(
        f"SELECT c.* FROM {db}.CLEAN.DIM_CAMERAS AS c WHERE c.camera_id IN "
        f"(SELECT camera_id FROM {db}.CLEAN.CLN_API_A_EVENTS) ORDER BY c.camera_id LIMIT 1"
    ).collect()[0]
    payload = {k.lower(): v for k, v in camera.as_dict().items() if k not in ("BATCH_ID", "MERGED_AT")}
    payload.update(site_id="site-moved", updated_at=camera["UPDATED_AT"].replace(year=2100))
    for name in ("installed_at", "updated_at"):
        if payload[name] is not None:
            payload[name] = payload[name].isoformat(timespec="microseconds")
    load_batch(stack, "api_c", [payload])
    stack.call(f"CALL {db}.OPS.BUILD_CLEAN()")
    assert scalar(stack, f"SELECT COUNT(*) FROM {db}.OPS.SUMMARY_QUEUE WHERE source IS NULL") >= 1
    result = json.loads(stack.call(f"CALL {db}.OPS.BUILD_ANALYTICS()"))
    assert result["daily_summary"]["days_refreshed"] == "all"
    assert _summary_rows(stack, "ANL_DAILY_SUMMARY") == _summary_rows(stack, "VW_DAILY_SUMMARY")
    assert not scalar(stack, f"SELECT COUNT(*) FROM {db}.OPS.SUMMARY_QUEUE")


def test_reconcile_records_the_full_history_checks_and_fails_on_a_summary_that_drifted(stack, ran):
    db = stack.database
    run_id, runs = stack.run_graph(root="RECONCILE")
    assert [(r.name.rsplit(".", 1)[-1], r.state) for r in runs] == [("RECONCILE", "SUCCEEDED")], runs
    results = _results(stack, run_id)
    assert results[("summary_matches_clean", "api_a")] == (True, 0.0)
    assert results[("reconcile_raw_to_clean", "api_a")] == (True, 0.0)

    stack.session.sql(
        f"UPDATE {db}.ANALYTICS.ANL_DAILY_SUMMARY SET event_count = event_count + 1 WHERE source = 'api_d'"
    ).collect()
    days = scalar(stack, f"SELECT COUNT(*) FROM {db}.ANALYTICS.ANL_DAILY_SUMMARY WHERE source = 'api_d'")
    with pytest.raises(DataQualityError, match=r"summary_matches_clean\[api_d\]"):
        stack.call(f"CALL {db}.OPS.RECONCILE()")
    failed = scalar(
        stack,
        f"SELECT observed_value FROM {db}.ANALYTICS.DQ_CHECK_RESULTS "
        "WHERE check_name = 'summary_matches_clean' AND source = 'api_d' AND NOT passed "
        "ORDER BY checked_at DESC LIMIT 1",
    )
    assert failed == days
    # repaired the pipeline's way: every day of the source queued, then the hourly refresh
    queue = f"{db}.OPS.SUMMARY_QUEUE"
    stack.session.sql(f"INSERT INTO {queue} (source, event_date) VALUES (NULL, NULL)").collect()
    stack.call(f"CALL {db}.OPS.BUILD_ANALYTICS()")
    assert json.loads(stack.call(f"CALL {db}.OPS.RECONCILE()"))["failed_error"] == []


def test_reconcile_merges_a_loaded_batch_the_hourly_lookback_no_longer_sees(stack, ran):
    db, clean = stack.database, f"{stack.database}.CLEAN.CLN_API_D_EVENTS"
    row = stack.session.sql(f"SELECT * FROM {clean} ORDER BY event_id LIMIT 1").collect()[0]
    late = row["UPDATED_AT"].replace(year=2099)
    newer = _event_payload(row, updated_at=late.isoformat(timespec="microseconds"))
    old = load_batch(stack, "api_d", [newer])
    stack.session.sql(
        f"UPDATE {db}.OPS.BATCH_LEDGER SET started_at = DATEADD('day', -30, started_at) WHERE batch_id = ?",
        params=[old],
    ).collect()
    stack.call(f"CALL {db}.OPS.BUILD_CLEAN()")  # hourly: outside the 14-day lookback, not seen
    assert scalar(stack, f"SELECT status FROM {db}.OPS.BATCH_LEDGER WHERE batch_id = ?", [old]) == "LOADED"
    stack.call(f"CALL {db}.OPS.RECONCILE()")
    assert scalar(stack, f"SELECT status FROM {db}.OPS.BATCH_LEDGER WHERE batch_id = ?", [old]) == "MERGED"
    assert scalar(stack, f"SELECT updated_at FROM {clean} WHERE event_id = ?", [row["EVENT_ID"]]) == late


def test_a_table_out_of_key_order_is_reclustered_between_runs(stack, ran):
    """sql/03 declares CLUSTER BY (EVENT_DATE) on the events' CLEAN tables; the local stand-in for Snowflake's
    automatic clustering rewrites a declared table a large MERGE left out of order, keeping its rows."""
    db = stack.database
    assert all(stack.clustering.keys[f"{db}.CLEAN.CLN_{s.upper()}_EVENTS"] == ["EVENT_DATE"] for s in EVENTS)
    probe = f"{db}.OPS.CLUSTER_PROBE"
    stack.execute(
        f"CREATE TABLE IF NOT EXISTS {probe} (ID STRING NOT NULL, EVENT_DATE DATE) CLUSTER BY (EVENT_DATE)"
    )
    # what a one-shot rebuild's MERGE leaves: a year of rows in the join's order
    stack.session.sql(
        f"INSERT INTO {probe} SELECT 'e-' || seq4()::STRING, DATEADD('day', UNIFORM(0, 364, RANDOM(7)), "
        "'2026-01-01'::DATE) FROM TABLE(GENERATOR(ROWCOUNT => 100000))"
    ).collect()
    before = sorted(tuple(r) for r in stack.session.sql(f"SELECT * FROM {probe}").collect())
    assert stack.clustering.depth(probe) > 3
    stack.run_graph()
    assert stack.clustering.depth(probe) < 2
    assert sorted(tuple(r) for r in stack.session.sql(f"SELECT * FROM {probe}").collect()) == before
    stack.session.sql(f"DROP TABLE {probe}").collect()
