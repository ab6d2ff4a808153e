"""The `api2snow` console script, as a user runs it: the demo, status and sql as JSON (and CSV), errors in
one line (test_cli_concurrency.py: two processes at once, interrupts, history)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api2snow.sources import SOURCES

from .cli_helpers import TASKS, api2snow, one_error_line, utc

pytestmark = pytest.mark.integration
COUNTS = """SELECT 'RAW' AS layer, COUNT(*) AS n FROM VIDEO_ANALYTICS.RAW.API_A_EVENTS
UNION ALL SELECT 'RAW_B', COUNT(*) FROM VIDEO_ANALYTICS.RAW.API_B_EVENTS
UNION ALL SELECT 'CLEAN', COUNT(*) FROM VIDEO_ANALYTICS.CLEAN.CLN_API_A_EVENTS
UNION ALL SELECT 'CLEAN_B', COUNT(*) FROM VIDEO_ANALYTICS.CLEAN.CLN_API_B_EVENTS
UNION ALL SELECT 'ANALYTICS', COUNT(*) FROM VIDEO_ANALYTICS.ANALYTICS.ANL_DAILY_SUMMARY
UNION ALL SELECT 'DQ', COUNT(*) FROM VIDEO_ANALYTICS.ANALYTICS.DQ_CHECK_RESULTS"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    home = tmp_path_factory.mktemp("cli-home")
    result = api2snow(home, "demo", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # progress is on a terminal only; nothing else reaches stderr
    return home, json.loads(result.stdout)


@pytest.fixture(scope="module")
def home(demo) -> Path:
    return demo[0]


def test_demo_json_summarises_every_source_and_the_dq_result(demo):
    report = demo[1]
    assert report["state"] == "SUCCEEDED" and len(report["tasks"]) == TASKS
    assert report["duration_s"] > 0 and utc(report["completed_at"]) > utc(report["started_at"])
    assert {s["source"] for s in report["sources"]} == set(SOURCES)
    for source in report["sources"]:  # a first run: everything fetched is staged and merged
        assert source["fetched"] > 0 and source["rejected"] == 0, source
        assert source["fetched"] == source["staged"] + source["duplicates"] == source["merged"], source
    assert report["dq"]["checks"] == report["dq"]["passed"] > 0 and report["dq"]["failed_error"] == []
    ingest = next(t for t in report["tasks"] if t["name"] == "INGEST_API_A")
    assert isinstance(ingest["return_value"], dict) and ingest["return_value"]["requests"] >= 1
    assert report["top_categories"] and report["top_categories"][0]["CATEGORY_RANK"] == 1


def test_status_json_lists_every_task_succeeded(demo):
    home, report = demo
    result = api2snow(home, "status", "--run-id", report["run_id"], "--format", "json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["state"] == "SUCCEEDED" and status["run_id"] == report["run_id"]
    assert len(status["tasks"]) == TASKS
    assert {t["state"] for t in status["tasks"]} == {"SUCCEEDED"}
    utc(status["scheduled_time"])
    for task in status["tasks"]:
        assert {"name", "state", "duration_s", "return_value", "error"} <= task.keys()
        assert task["duration_s"] >= 0 and utc(task["completed_at"]) >= utc(task["started_at"])
    finalize = next(t for t in status["tasks"] if t["name"] == "FINALIZE")
    assert finalize["return_value"]["state"] == "SUCCEEDED"  # an object, not JSON in a string


def test_sql_json_shows_rows_in_every_layer(home):
    result = api2snow(home, "sql", "-q", COUNTS, "--format", "json")
    assert result.returncode == 0, result.stderr
    counts = {row["LAYER"]: row["N"] for row in json.loads(result.stdout)}
    assert counts["RAW"] == counts["CLEAN"] > 0 and counts["RAW_B"] == counts["CLEAN_B"] > 0
    assert counts["ANALYTICS"] > 0 and counts["DQ"] > 0


def test_sql_reads_a_file_or_stdin_and_writes_csv(home, tmp_path):
    query = tmp_path / "count.sql"
    query.write_text(
        "-- how many events\nSELECT COUNT(*) AS n, 'a,b' AS label FROM VIDEO_ANALYTICS.RAW.API_A_EVENTS;\n"
    )
    from_file = api2snow(home, "sql", "-f", str(query), "--format", "csv")
    assert from_file.returncode == 0, from_file.stderr
    header, row = from_file.stdout.splitlines()
    assert header == "N,LABEL" and int(row.split(",")[0]) > 0 and row.endswith(',"a,b"')
    from_stdin = api2snow(home, "sql", "--format", "csv", stdin=query.read_text())
    assert from_stdin.returncode == 0 and from_stdin.stdout == from_file.stdout


def test_bad_sql_is_one_line_and_a_non_zero_exit(home):
    result = api2snow(home, "sql", "-q", "SELEC 1")
    assert result.returncode == 1
    one_error_line(result)
    for refused in ("SELECT 1; SELECT 2", "  -- nothing\n"):  # refused before the warehouse starts
        result = api2snow(home, "sql", "-q", refused)
        assert result.returncode == 2, result.stderr
        assert "statements given" in one_error_line(result) or "no SQL statement" in result.stderr


def test_a_fresh_home_and_mistyped_input_get_one_line_errors(tmp_path):
    status = api2snow(tmp_path, "status")
    assert status.returncode == 1
    assert one_error_line(status) == "error: No graph run yet: run `.venv/bin/api2snow run`"
    typo = api2snow(tmp_path, "stauts")
    assert typo.returncode == 2 and "Did you mean `status`?" in one_error_line(typo)
    refused = api2snow(tmp_path, "up", "--every", "-5")  # minutes, above 0
    assert refused.returncode == 2 and "--every" in one_error_line(refused)
    assert (tmp_path / "logs" / "api2snow.log").exists()


def test_reconcile_runs_the_daily_task_and_status_still_shows_the_hourly_graph(home):
    result = api2snow(home, "reconcile")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every full-history check passed" in " ".join(result.stdout.split())  # rich wraps at 80 columns
    status = json.loads(api2snow(home, "status", "--format", "json").stdout)
    assert status["state"] == "SUCCEEDED"
    assert len(status["tasks"]) == TASKS  # the hourly graph's run, not RECONCILE's


def test_status_draws_the_run_as_a_timeline_and_watch_ends_with_a_finished_run(home):
    result = api2snow(home, "status", "--watch")  # the run has ended: one drawing, then the exit
    assert result.returncode == 0, result.stderr
    assert "timeline (" in result.stdout and "█" in result.stdout
    assert all(name in result.stdout for name in ("INGEST_API_A", "WAIT_FOR_LOAD", "FINALIZE"))
    status = json.loads(api2snow(home, "status", "--format", "json").stdout)
    assert all(t["started_s"] is not None and t["started_s"] >= 0 for t in status["tasks"])
