"""What the CLI decides around the warehouse: one SQL statement or a one-line refusal, results that fit the
terminal, a run summary from the run's own return values, and the warehouse lock's refusal."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

import pytest
from rich.console import Console

from api2snow_cli import console as console_module
from api2snow_cli import output
from api2snow_cli.cli import UsageProblem, _one_statement
from api2snow_cli.console import describe_value
from api2snow_cli.history import graph_run_status, with_running_tasks
from api2snow_cli.local.tasks import TaskGraph, parse_task
from api2snow_cli.lock import WarehouseBusy, WarehouseLock, running_stack

T0 = datetime(2026, 11, 30, 12, 0, 0)
WARN = "volume_last_24h[api_a]"
INGEST = {
    "source": "api_a",
    "batch_id": "65eea64a-4d29-5381-a624-c3f7c00fb294",
    "fetched": 120,
    "staged": 118,
    "rejected": 2,
    "duplicates": 0,
    "requests": 30,
    "retries": 1,
    "throttled_429": 3,
}


@pytest.mark.parametrize(
    ("text", "statement"),
    [
        ("SELECT 1;", "SELECT 1"),
        ("-- note\nSELECT ';' AS x ;\n", "-- note\nSELECT ';' AS x"),
        ("SELECT 1", "SELECT 1"),
    ],
)
def test_one_statement_is_passed_on(text, statement):
    assert _one_statement(text) == statement


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1; SELECT 2", "2 statements given"),
        ("", "no SQL statement given"),
        ("  -- only a comment\n", "no SQL statement given"),
        (";", "no SQL statement given"),
    ],
)
def test_no_statement_or_several_are_refused_in_one_line(text, message):
    with pytest.raises(UsageProblem) as refused:
        _one_statement(text)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def _recording(monkeypatch, width: int) -> Console:
    recorder = Console(width=width, record=True, color_system=None)
    monkeypatch.setattr(output, "console", recorder)
    monkeypatch.setattr(console_module, "console", recorder)
    return recorder


def test_a_result_wider_than_the_terminal_is_one_block_per_record(monkeypatch):
    recorder = _recording(monkeypatch, width=60)
    row = {f"COLUMN_{i:02d}": "x" * 100 for i in range(12)}
    output.print_fitted([row, row])
    lines = recorder.export_text().splitlines()
    assert lines[0] == "── record 1 ──" and lines.count("── record 2 ──") == 1
    assert all(len(line) <= 60 for line in lines)
    assert lines[1].startswith("COLUMN_00  xxx") and lines[1].endswith("…")


def test_a_result_that_fits_is_a_table_whose_long_values_wrap(monkeypatch):
    recorder = _recording(monkeypatch, width=60)
    output.print_fitted([{"ID": 1, "NOTE": "y" * 150}])
    text = recorder.export_text()
    assert "┃ ID" in text and text.count("y") == 150  # wrapped, nothing cut off
    assert all(len(line) <= 60 for line in text.splitlines())


def _graph() -> TaskGraph:
    statements = [
        "CREATE OR ALTER TASK DB.P.ROOT SCHEDULE = '60 MINUTE' AS SELECT 1",
        "CREATE OR ALTER TASK DB.P.INGEST_API_A AFTER DB.P.ROOT AS SELECT 1",
        "CREATE OR ALTER TASK DB.P.INGEST_API_B AFTER DB.P.ROOT AS SELECT 1",
        "CREATE OR ALTER TASK DB.P.CLEAN AFTER DB.P.INGEST_API_A, DB.P.INGEST_API_B AS SELECT 1",
        "CREATE OR ALTER TASK DB.P.DQ AFTER DB.P.CLEAN AS SELECT 1",
    ]
    return TaskGraph([parse_task(s) for s in statements])


def _row(name: str, value: dict | None, state: str = "SUCCEEDED", error: str | None = None) -> dict:
    return {
        "NAME": name,
        "STATE": state,
        "SCHEDULED_TIME": T0,
        "QUERY_START_TIME": T0,
        "COMPLETED_TIME": T0 + timedelta(seconds=2),
        "RETURN_VALUE": json.dumps(value) if value is not None else None,
        "ERROR_MESSAGE": error,
        "GRAPH_RUN_GROUP_ID": "g-1",
        "ATTEMPT_NUMBER": 1,
    }


def test_the_run_summary_reads_the_counts_the_run_recorded_and_lists_only_failures(monkeypatch):
    rows = [
        _row("ROOT", None),
        _row("INGEST_API_A", INGEST),
        _row("INGEST_API_B", None, "FAILED", "HttpError: 503 from api_b"),
        _row("CLEAN", {"merged": {"api_a": {"batches": 1, "rows_merged": 118}}}),
        _row("DQ", {"checks": 10, "passed": 9, "failed_error": [], "failed_warn": [WARN]}),
    ]
    status = graph_run_status(rows, _graph())
    report = output.run_report(status)
    assert json.loads(json.dumps(report))["state"] == "FAILED"
    [a, b] = report["sources"]
    assert (a["fetched"], a["staged"], a["rejected"], a["merged"]) == (120, 118, 2, 118)
    assert (a["requests"], a["retries"], a["throttled_429"]) == (30, 1, 3)
    assert (b["state"], b["error"]) == ("FAILED", "HttpError: 503 from api_b")
    assert report["dq"]["failed_warn"] == ["volume_last_24h[api_a]"]
    assert report["tasks"][1]["return_value"] == INGEST and report["scheduled_time"] == "2026-11-30T12:00:00Z"

    recorder = _recording(monkeypatch, width=100)
    output.print_run_summary(status)
    text = recorder.export_text()
    assert "graph run g-1 FAILED in 2.0 s" in text
    assert "api_a" in text and "120" in text and "118" in text
    assert "data quality: 9/10 checks passed, 1 failed:" in text and "warn  volume_last_24h[api_a]" in text
    assert "INGEST_API_B FAILED: HttpError: 503 from api_b" in text
    assert len(text.splitlines()) <= 10


def test_a_return_value_reads_as_key_value_pairs_with_the_counts_kept():
    text = describe_value(json.dumps({**INGEST, "batch_ids": ["a", "b", "c", "d"], "stuck": {}}))
    assert "requests 30 · retries 1 · throttled_429 3" in text
    assert INGEST["batch_id"] not in text and "batch_ids 4 items" in text and "stuck" not in text


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    first = WarehouseLock(tmp_path).acquire("api2snow run")
    try:
        first.publish({"host": "127.0.0.1"})
        assert running_stack(tmp_path)["connection"] == {"host": "127.0.0.1"}
        with pytest.raises(WarehouseBusy) as refused:
            WarehouseLock(tmp_path).acquire("api2snow up", reader_wait_s=0)
        assert f"in use by pid {os.getpid()} (`" in str(refused.value) and refused.value.exit_code == 2
    finally:
        first.release()
    assert running_stack(tmp_path) is None and not (tmp_path / "stack.json").exists()
    WarehouseLock(tmp_path).acquire("api2snow up").release()  # free again


def test_status_shows_the_tasks_a_live_run_is_executing_as_open_bars():
    rows = [_row("ROOT", None)]  # ROOT ended; the ingests run (no TASK_HISTORY row until they end)
    status = graph_run_status(rows, _graph())
    assert status.state == "EXECUTING" and status.task("INGEST_API_A").state == "NOT_RUN"
    running = {"INGEST_API_A": T0 + timedelta(seconds=3)}
    shown = with_running_tasks(status, running)
    ingest = shown.task("INGEST_API_A")
    assert (ingest.state, ingest.started_s, ingest.duration_s) == ("EXECUTING", 3.0, None)
    assert shown.task("INGEST_API_B").state == "NOT_RUN"
    done = graph_run_status(
        [_row(n, None) for n in ("ROOT", "INGEST_API_A", "INGEST_API_B", "CLEAN", "DQ")], _graph()
    )
    assert (
        with_running_tasks(done, running).task("INGEST_API_A").state == "SUCCEEDED"
    )  # a finished run stays so
