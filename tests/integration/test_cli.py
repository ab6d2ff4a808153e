"""The `api2snow` console script, as a user runs it: one graph run, then status and sql as JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from api2snow.sources import SOURCES

pytestmark = pytest.mark.integration
CLI = Path(sys.executable).parent / "api2snow"
COUNTS = """SELECT 'RAW' AS layer, COUNT(*) AS n FROM VIDEO_ANALYTICS.RAW.API_A_EVENTS
UNION ALL SELECT 'RAW_B', COUNT(*) FROM VIDEO_ANALYTICS.RAW.API_B_EVENTS
UNION ALL SELECT 'CLEAN', COUNT(*) FROM VIDEO_ANALYTICS.CLEAN.CLN_API_A_EVENTS
UNION ALL SELECT 'CLEAN_B', COUNT(*) FROM VIDEO_ANALYTICS.CLEAN.CLN_API_B_EVENTS
UNION ALL SELECT 'ANALYTICS', COUNT(*) FROM VIDEO_ANALYTICS.ANALYTICS.ANL_DAILY_SUMMARY
UNION ALL SELECT 'DQ', COUNT(*) FROM VIDEO_ANALYTICS.ANALYTICS.DQ_CHECK_RESULTS"""


def api2snow(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "API2SNOW_HOME": str(home)}
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("cli-home")
    result = api2snow(home, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    return home


def test_status_json_lists_every_task_succeeded(home):
    result = api2snow(home, "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["state"] == "SUCCEEDED"
    assert len(status["tasks"]) == 8 + 2 * len(SOURCES)  # INGEST_ and REFRESH_PIPE_ per source
    assert {t["state"] for t in status["tasks"]} == {"SUCCEEDED"}
    for task in status["tasks"]:
        assert {"name", "state", "duration_s", "return_value", "error"} <= task.keys()
        assert task["duration_s"] >= 0


def test_sql_json_shows_rows_in_every_layer(home):
    result = api2snow(home, "sql", "-q", COUNTS, "--format", "json")
    assert result.returncode == 0, result.stderr
    counts = {row["LAYER"]: row["N"] for row in json.loads(result.stdout)}
    assert counts["RAW"] == counts["CLEAN"] > 0 and counts["RAW_B"] == counts["CLEAN_B"] > 0
    assert counts["ANALYTICS"] > 0 and counts["DQ"] > 0


def test_bad_sql_is_one_line_and_a_non_zero_exit(home):
    result = api2snow(home, "sql", "-q", "SELEC 1")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_sql_and_status_reach_a_running_up_stack_and_run_refuses(tmp_path):
    env = {**os.environ, "API2SNOW_HOME": str(tmp_path)}
    up = subprocess.Popen(
        [str(CLI), "up", "--every", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "stack.json").exists():
            assert up.poll() is None, up.stderr.read()
            assert time.monotonic() < deadline, "api2snow up did not start within 120 s"
            time.sleep(0.5)
        count = "SELECT COUNT(*) AS n FROM VIDEO_ANALYTICS.OPS.PIPELINE_CONFIG"
        query = api2snow(tmp_path, "sql", "-q", count, "--format", "json")
        assert query.returncode == 0, query.stderr
        assert json.loads(query.stdout)[0]["N"] > 0
        refused = api2snow(tmp_path, "run")
        assert refused.returncode == 1 and "already running" in refused.stderr
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    assert up.returncode == 0
    assert not (tmp_path / "stack.json").exists()


def test_reconcile_runs_the_daily_task_and_status_still_shows_the_hourly_graph(home):
    result = api2snow(home, "reconcile")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every full-history check passed" in " ".join(result.stdout.split())  # rich wraps at 80 columns
    status = json.loads(api2snow(home, "status", "--format", "json").stdout)
    assert status["state"] == "SUCCEEDED"
    assert len(status["tasks"]) == 8 + 2 * len(SOURCES)  # the hourly graph's run, not RECONCILE's


def test_status_draws_the_run_as_a_timeline_and_watch_ends_with_a_finished_run(home):
    result = api2snow(home, "status", "--watch")  # the run has ended: one drawing, then the exit
    assert result.returncode == 0, result.stderr
    assert "timeline (" in result.stdout and "█" in result.stdout
    assert all(name in result.stdout for name in ("INGEST_API_A", "WAIT_FOR_LOAD", "FINALIZE"))
    status = json.loads(api2snow(home, "status", "--format", "json").stdout)
    assert all(t["started_s"] is not None and t["started_s"] >= 0 for t in status["tasks"])
