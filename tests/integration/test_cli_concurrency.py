"""The `api2snow` console script with two processes at once: one writer at a time (the second refuses,
naming the first), readers served through the running stack, and interrupts that cancel a graph run cleanly.
Each test has its own home (its own warehouse), so this file runs beside test_cli.py."""

from __future__ import annotations

import json
import signal

import pytest

from api2snow_cli.history import ABANDONED
from api2snow_cli.local.tasks import CANCELLED_WHILE_RUNNING

from .cli_helpers import TASKS, api2snow, one_error_line, read_until, start, utc

pytestmark = pytest.mark.integration


def test_one_writer_at_a_time_and_interrupts_cancel_the_run_cleanly(tmp_path):
    # Ctrl-C mid-run: the running tasks CANCELLED, the finalizer run, a message saying how to resume.
    first = start(tmp_path, "run", "--verbose")
    read_until(first, "INGEST_API_A started")
    second = api2snow(tmp_path, "run")
    assert second.returncode == 2
    refusal = one_error_line(second)
    assert f"pid {first.pid}" in refusal and "api2snow run --verbose" in refusal
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert "interrupted by SIGINT" in err and "resume with `.venv/bin/api2snow run`" in err
    assert "Traceback" not in err
    result = api2snow(tmp_path, "status", "--format", "json")
    assert result.returncode == 1, result.stderr
    cancelled = json.loads(result.stdout)
    assert cancelled["state"] == "CANCELLED" and cancelled["run_id"] in err
    tasks = {t["name"]: t for t in cancelled["tasks"]}
    assert tasks["FINALIZE"]["state"] == "SUCCEEDED"
    assert tasks["FINALIZE"]["return_value"]["state"] == "CANCELLED"  # OPS.PIPELINE_RUNS says so too
    assert any(t["error"] == CANCELLED_WHILE_RUNNING for t in tasks.values())
    assert "NOT_RUN" not in {t["state"] for t in tasks.values()}

    # A process killed mid-run cannot cancel its run: the next command finds it abandoned and closes it.
    killed = start(tmp_path, "run", "--verbose")
    read_until(killed, "INGEST_API_A started")
    killed.kill()
    killed.wait(timeout=60)
    result = api2snow(tmp_path, "status", "--format", "json")
    assert result.returncode == 1, result.stderr
    abandoned = json.loads(result.stdout)
    assert abandoned["state"] == "CANCELLED" and abandoned["run_id"] != cancelled["run_id"]
    assert {t["error"] for t in abandoned["tasks"] if t["state"] != "SUCCEEDED"} == {ABANDONED}

    # Resumed: a run to the end, and the history of all three.
    resumed = api2snow(tmp_path, "run", "--format", "json")
    assert resumed.returncode == 0, resumed.stderr
    succeeded = json.loads(resumed.stdout)
    assert succeeded["state"] == "SUCCEEDED" and succeeded["dq"]["failed_error"] == []
    history = api2snow(tmp_path, "history", "--format", "json")
    assert history.returncode == 0, history.stderr
    runs = json.loads(history.stdout)
    assert [(r["run_id"], r["state"]) for r in runs] == [
        (succeeded["run_id"], "SUCCEEDED"),
        (abandoned["run_id"], "CANCELLED"),
        (cancelled["run_id"], "CANCELLED"),
    ]
    assert runs[0]["tasks"]["succeeded"] == TASKS and runs[0]["duration_s"] > 0
    utc(runs[0]["scheduled_time"])


def test_up_prints_a_line_per_run_serves_readers_and_refuses_a_second_writer(tmp_path):
    up = start(tmp_path, "up", "--every", "60")
    try:
        banner = read_until(up, "next run at")
        assert "mock api_b: http://127.0.0.1:" in banner and "X-API-Key" in banner
        assert "graph run" in banner.splitlines()[-1] and "SUCCEEDED" in banner.splitlines()[-1]
        count = "SELECT COUNT(*) AS n FROM VIDEO_ANALYTICS.OPS.PIPELINE_CONFIG"
        query = api2snow(tmp_path, "sql", "-q", count, "--format", "json")
        assert query.returncode == 0, query.stderr
        assert json.loads(query.stdout)[0]["N"] > 0
        status = api2snow(tmp_path, "status", "--format", "json")
        assert status.returncode == 0 and json.loads(status.stdout)["state"] == "SUCCEEDED"
        refused = api2snow(tmp_path, "run")
        assert refused.returncode == 2
        assert f"pid {up.pid} (`api2snow up --every 60`" in one_error_line(refused)
        read_until(up, "reconciliation")  # the daily task, after the first run: between runs from here on
    finally:
        up.send_signal(signal.SIGTERM)
        _, err = up.communicate(timeout=60)
    assert up.returncode == 0, err
    assert not (tmp_path / "stack.json").exists()
