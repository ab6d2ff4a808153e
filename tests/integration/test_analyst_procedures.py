"""The analysts' procedures, called as an analyst would: CALL statements on the local stack (and once
through `api2snow sql` in another process), checked exactly against the ledger and the mock APIs' truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from api2snow.analyst import PIPELINE_STATUS_COLUMNS, REJECTS_COLUMNS
from api2snow.sources import SOURCES

from api2snow_cli.local.sql_calls import CallServer
from api2snow_cli.lock import WarehouseLock

from .helpers import batches_of_run, clean_versions, expected_ids, scalar

pytestmark = pytest.mark.integration
CLI = Path(sys.executable).parent / "api2snow"
SECRETS = ("demo-secret", "demo-key", "demo-pass", "demo-token")


@pytest.fixture(scope="module")
def first_run(stack) -> str:
    stack.mock_apis.set_faults("api_b", invalid_record_rate=0.05)  # some rejects to show
    run_id, runs = stack.run_graph()
    assert all(r.state == "SUCCEEDED" for r in runs), {r.name: r.error for r in runs}
    stack.mock_apis.set_faults("api_b", invalid_record_rate=0.0)
    return run_id


def _table(stack, statement: str) -> list[dict]:
    result = stack.dispatcher.execute(statement)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def _window(stack) -> tuple[str, str, object, object]:
    start = (stack.mock_apis.clock.now() - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=3)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ"), start, end


def test_status_reflects_the_run(stack, first_run):
    rows = {row["SOURCE"]: row for row in _table(stack, "CALL OPS.PIPELINE_STATUS()")}
    assert list(next(iter(rows.values()))) == [name for name, _ in PIPELINE_STATUS_COLUMNS]
    assert set(rows) == set(SOURCES)
    batches = batches_of_run(stack, first_run)
    for name, row in rows.items():
        batch = batches[name]
        assert row["LAST_RUN_ID"] == first_run and row["LAST_RUN_STATE"] == "SUCCEEDED"
        assert (row["LAST_BATCH_ID"], row["LAST_BATCH_KIND"], row["LAST_BATCH_STATUS"]) == (
            batch["BATCH_ID"],
            "HOURLY",
            "MERGED",
        )
        counts = ("FETCHED", "STAGED", "REJECTED", "DUPLICATES")
        assert [row[f"LAST_BATCH_{c}"] for c in counts] == [batch[c] for c in counts]
        assert row["RECENT_BATCHES"] == "MERGED"
        assert row["REJECTS_LAST_DAY"] == batch["REJECTED"]
        assert row["LAST_LOADED_AT"] == batch["LOADED_AT"] and row["MINUTES_SINCE_LOAD"] >= 0
        marks = stack.session.sql(
            f"SELECT watermark FROM {stack.database}.OPS.WATERMARKS WHERE source = ?", params=[name]
        ).collect()
        assert row["WATERMARK"] == (marks[0]["WATERMARK"] if marks else None)
        assert (row["WATERMARK"] is None) == (not SOURCES[name].incremental)
        assert row["READ_MODE"] == ("incremental" if SOURCES[name].incremental else "full")
    assert rows["api_b"]["REJECTS_LAST_DAY"] > 0
    failed = stack.session.sql(
        f"SELECT source, check_name FROM {stack.database}.ANALYTICS.DQ_CHECK_RESULTS "
        "WHERE run_id = ? AND NOT passed ORDER BY check_name",
        params=[first_run],
    ).collect()
    for name, row in rows.items():
        names = [r["CHECK_NAME"] for r in failed if r["SOURCE"] == name]
        assert (row["OPEN_DQ_FAILURES"], row["FAILED_CHECKS"]) == (len(names), ",".join(names))


def test_rejects_returns_the_rejected_records_with_reasons_and_no_secret(stack, first_run):
    db = stack.database
    batch = batches_of_run(stack, first_run)["api_b"]
    # A reject whose record echoes credentials (an upstream quoting a request): written as the rejects pipe
    # loads a line, into the run's api_b batch.
    echoed = {
        "reason": "normalize: missing field 'eventId' (Authorization: Bearer demo-token)",
        "record": {"note": "password=demo-pass", "api_key": "demo-key", "nested": {"client_secret": "x1"}},
        "_batch_id": batch["BATCH_ID"],
    }
    stack.session.sql(
        f"INSERT INTO {db}.RAW.REJECTED_RECORDS (payload, file_name, file_row_number, batch_id, loaded_at) "
        "SELECT PARSE_JSON(?), 'echo.jsonl.gz', 0, ?, CURRENT_TIMESTAMP()",
        params=[json.dumps(echoed), batch["BATCH_ID"]],
    ).collect()
    since = (stack.mock_apis.clock.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = _table(stack, f"CALL OPS.REJECTS('api_b', '{since}')")
    assert list(rows[0]) == [name for name, _ in REJECTS_COLUMNS]
    assert len(rows) == batch["REJECTED"] + 1
    assert {r["BATCH_ID"] for r in rows} == {batch["BATCH_ID"]} and {r["SOURCE"] for r in rows} == {"api_b"}
    assert all(r["REASON"] for r in rows)
    staged = {
        (r["FILE_NAME"], r["FILE_ROW_NUMBER"], r["REASON"])
        for r in stack.session.sql(
            "SELECT file_name, file_row_number, payload:reason::STRING AS reason "
            f"FROM {db}.RAW.REJECTED_RECORDS WHERE batch_id = ? AND file_name <> 'echo.jsonl.gz'",
            params=[batch["BATCH_ID"]],
        ).collect()
    }
    assert {
        (r["FILE_NAME"], r["FILE_ROW_NUMBER"], r["REASON"]) for r in rows if r["FILE_NAME"] != "echo.jsonl.gz"
    } == staged
    shown = next(r for r in rows if r["FILE_NAME"] == "echo.jsonl.gz")
    text = json.dumps(shown, default=str)
    assert not any(secret in text for secret in SECRETS) and "x1" not in text
    assert json.loads(shown["RECORD"]) == {
        "note": "password=***",
        "api_key": "***",
        "nested": {"client_secret": "***"},
    }
    assert shown["REASON"] == "normalize: missing field 'eventId' (Authorization: Bearer ***)"
    assert _table(stack, "CALL OPS.REJECTS('api_a', '2020-01-01')") == []


def test_backfill_reingests_the_window_exactly_and_idempotently(stack, first_run):
    db = stack.database
    from_ts, to_ts, start, end = _window(stack)
    truth = expected_ids(stack, "api_a", stack.mock_apis.truth("api_a", stack.mock_apis.clock.now()))
    wanted = {k: v for k, v in truth.items() if start.replace(tzinfo=None) <= v < end.replace(tzinfo=None)}
    assert len(wanted) > 100
    watermark = scalar(stack, f"SELECT watermark FROM {db}.OPS.WATERMARKS WHERE source = 'api_a'")
    before = {row["SOURCE"]: row for row in _table(stack, "CALL OPS.PIPELINE_STATUS()")}["api_a"]
    # An upstream fix to replay: the window's rows are gone from CLEAN.
    lost = stack.session.sql(
        f"DELETE FROM {db}.CLEAN.CLN_API_A_EVENTS WHERE updated_at >= ? AND updated_at < ?",
        params=[start.replace(tzinfo=None), end.replace(tzinfo=None)],
    ).collect()[0][0]
    assert lost == len(wanted)

    first = json.loads(stack.call(f"CALL OPS.BACKFILL('api_a', '{from_ts}', '{to_ts}')"))
    assert (first["status"], first["kind"], first["complete"]) == ("MERGED", "BACKFILL", True)
    assert first["fetched"] == first["staged"] == len(wanted)
    assert (first["rejected"], first["duplicates"], first["rows_merged"]) == (0, 0, len(wanted))
    assert first["outside_window"] > 0  # the read starts a little early and stops after the window's end
    raw_ids = {
        r["ID"]
        for r in stack.session.sql(
            f"SELECT payload:event_id::STRING AS id FROM {db}.RAW.API_A_EVENTS WHERE batch_id = ?",
            params=[first["batch_id"]],
        ).collect()
    }
    assert raw_ids == set(wanted)
    after_first = clean_versions(stack, "CLN_API_A_EVENTS")
    assert {k: v[0] for k, v in after_first.items()} == truth

    second = json.loads(stack.call(f"CALL OPS.BACKFILL('api_a', '{from_ts}', '{to_ts}')"))
    assert second["batch_id"] != first["batch_id"]
    assert (second["status"], second["staged"], second["rows_merged"]) == ("MERGED", len(wanted), 0)
    assert clean_versions(stack, "CLN_API_A_EVENTS") == after_first  # not a row rewritten

    assert first["watermark"] == second["watermark"] == watermark.isoformat()
    kinds = stack.session.sql(
        "SELECT kind, status, window_start, window_end FROM "  # what analysts and the dashboard read
        f"{db}.ANALYTICS.VW_PIPELINE_BATCHES WHERE batch_id IN (?, ?)",
        params=[first["batch_id"], second["batch_id"]],
    ).collect()
    assert {(r["KIND"], r["STATUS"], r["WINDOW_START"], r["WINDOW_END"]) for r in kinds} == {
        ("BACKFILL", "MERGED", start.replace(tzinfo=None), end.replace(tzinfo=None))
    }
    status = {row["SOURCE"]: row for row in _table(stack, "CALL OPS.PIPELINE_STATUS()")}["api_a"]
    assert (status["LAST_BATCH_KIND"], status["RECENT_BATCHES"]) == ("BACKFILL", "MERGED,MERGED,MERGED")
    assert status["LAST_LOADED_AT"] == before["LAST_LOADED_AT"]  # freshness is the hourly ingest's alone

    run_id, runs = stack.run_graph()  # the hourly graph goes on from its own watermark
    assert all(r.state == "SUCCEEDED" for r in runs), {r.name: r.error for r in runs}
    assert scalar(stack, f"SELECT watermark FROM {db}.OPS.WATERMARKS WHERE source = 'api_a'") >= watermark


def _open_batch(stack, kind: str) -> str:
    """A batch of api_a being written right now, as a running ingest or backfill leaves it in the ledger."""
    batch_id = f"open-{kind.lower()}"
    stack.session.sql(
        f"INSERT INTO {stack.database}.OPS.BATCH_LEDGER (batch_id, source, run_id, status, started_at, kind) "
        "SELECT ?, 'api_a', 'elsewhere', 'STARTED', "
        "CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ, ?",
        params=[batch_id, kind],
    ).collect()
    return batch_id


def test_backfill_and_the_hourly_ingest_take_turns_per_source(stack, first_run):
    db = stack.database
    from_ts, to_ts, _, _ = _window(stack)
    hourly = _open_batch(stack, "HOURLY")
    try:
        with pytest.raises(Exception, match=f"BACKFILL of api_a must wait: its batch {hourly} is STARTED"):
            stack.call(f"CALL OPS.BACKFILL('api_a', '{from_ts}', '{to_ts}')")
    finally:
        stack.session.sql(f"DELETE FROM {db}.OPS.BATCH_LEDGER WHERE batch_id = ?", params=[hourly]).collect()
    backfill = _open_batch(stack, "BACKFILL")
    try:
        waiting = json.loads(stack.call("CALL OPS.INGEST_API_A()"))
    finally:
        stack.session.sql(
            f"DELETE FROM {db}.OPS.BATCH_LEDGER WHERE batch_id = ?", params=[backfill]
        ).collect()
    assert (waiting["status"], waiting["skipped"]) == ("WAITING", f"batch {backfill} is STARTED")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            "'nope', '2024-01-01', '2024-01-02'",
            "argument source must be one of api_a, api_b, api_c, api_d, got 'nope'",
        ),
        ("'api_c', '2024-01-01', '2024-01-02'", "BACKFILL cannot read api_c by time"),
        ("'api_a', '2024-01-02', '2024-01-01'", "argument from_ts must be before to_ts"),
        ("'api_a', 'yesterday', '2024-01-01'", "argument from_ts must be an ISO 8601 timestamp"),
        ("'api_a', '2024-01-01', NULL", "argument to_ts must be an ISO 8601 timestamp"),
        ("'api_a', '2024-01-01', '2999-01-01'", "argument to_ts is in the future"),
        ("'api_a', '2023-01-01', '2024-01-01'", "more than backfill_max_window_hours = 168"),
    ],
)
def test_backfill_refuses_a_bad_argument_in_one_line(stack, first_run, arguments, message):
    before = scalar(stack, f"SELECT COUNT(*) FROM {stack.database}.OPS.BATCH_LEDGER")
    with pytest.raises(Exception) as caught:
        stack.call(f"CALL OPS.BACKFILL({arguments})")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert scalar(stack, f"SELECT COUNT(*) FROM {stack.database}.OPS.BATCH_LEDGER") == before


def test_api2snow_sql_runs_a_call_on_the_running_stack(stack, first_run):
    home = stack.options.home
    lock = WarehouseLock(home).acquire("this test's stack")  # published as `api2snow up` publishes its stack
    lock.publish(stack.warehouse.connection_parameters())
    calls = CallServer(stack.dispatcher.execute, home).start()
    env = {**os.environ, "API2SNOW_HOME": str(home)}
    try:
        ok = subprocess.run(
            [str(CLI), "sql", "-q", "CALL OPS.PIPELINE_STATUS()", "--format", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        bad = subprocess.run(
            [str(CLI), "sql", "-q", "CALL OPS.BACKFILL('api_a', 'soon', '2024-01-01')"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        calls.stop()
        (home / "stack.json").unlink(missing_ok=True)
        lock.release()
    assert ok.returncode == 0, ok.stderr
    rows = {row["SOURCE"]: row for row in json.loads(ok.stdout)}
    assert set(rows) == set(SOURCES) and rows["api_b"]["LAST_RUN_STATE"] == "SUCCEEDED"
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "argument from_ts must be an ISO 8601 timestamp" in bad.stderr


def test_api2snow_sql_starts_the_stack_for_a_call_when_none_runs(tmp_path):
    home = tmp_path / "fresh-home"
    env = {**os.environ, "API2SNOW_HOME": str(home)}
    done = subprocess.run(
        [str(CLI), "sql", "-q", "CALL OPS.PIPELINE_STATUS()", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [row["SOURCE"] for row in rows] == sorted(SOURCES)
    assert {(row["LAST_RUN_ID"], row["LAST_BATCH_ID"], row["REJECTS_LAST_DAY"]) for row in rows} == {
        (None, None, 0)
    }
    assert not (home / "stack.json").exists() and not (home / "calls.json").exists()
