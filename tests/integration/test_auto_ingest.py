"""Snowpipe auto-ingest on the local stack: S3 events to moto's SQS, consumed by the local pipe loader.

Notifications load every part with no REFRESH; REFRESH is the safety net for parts a notification missed,
after `pipe_refresh_grace_seconds`; a batch past REFRESH's 7-day window is copied file by file, and a file
already in RAW is never copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api2snow.sources import SOURCES

from .helpers import notifications_lost, scalar, set_config

pytestmark = pytest.mark.integration


@pytest.fixture
def refreshes(stack: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every ALTER PIPE ... REFRESH the procedures make, recorded and then done."""
    calls: list[tuple[str, str]] = []
    refresh = stack.loader.refresh

    def recording_refresh(pipe: str, prefix: str = "") -> dict[str, Any]:
        calls.append((pipe, prefix))
        return refresh(pipe, prefix)

    monkeypatch.setattr(stack.loader, "refresh", recording_refresh)
    return calls


@pytest.fixture
def grace(stack: Any) -> Iterator[Any]:
    """Set pipe_refresh_grace_seconds for one test."""
    yield lambda seconds: set_config(stack, "pipe_refresh_grace_seconds", str(seconds))
    set_config(stack, "pipe_refresh_grace_seconds", "120")


def _ingest(stack: Any, source: str = "api_b") -> str:
    """One new hour of `source` staged; returns its batch id."""
    stack.mock_apis.clock.advance(3600)
    stack.call(f"CALL {stack.database}.OPS.INGEST_{source.upper()}()")
    return scalar(
        stack,
        f"SELECT batch_id FROM {stack.database}.OPS.BATCH_LEDGER WHERE source = ? AND status = 'STAGED'",
        [source],
    )


def _raw_rows(stack: Any, batch_id: str) -> int:
    return scalar(
        stack, f"SELECT COUNT(*) FROM {stack.database}.RAW.API_B_EVENTS WHERE batch_id = ?", [batch_id]
    )


def _staged(stack: Any, batch_id: str) -> int:
    return scalar(
        stack, f"SELECT staged FROM {stack.database}.OPS.BATCH_LEDGER WHERE batch_id = ?", [batch_id]
    )


def _status(stack: Any, batch_id: str) -> str:
    return scalar(
        stack, f"SELECT status FROM {stack.database}.OPS.BATCH_LEDGER WHERE batch_id = ?", [batch_id]
    )


def test_the_deploy_notification_reaches_the_pipes_queue(stack):
    config = stack.s3.client().get_bucket_notification_configuration(Bucket=stack.project.env["bucket"])
    prefixes = {
        q["Id"]: next(r["Value"] for r in q["Filter"]["Key"]["FilterRules"] if r["Name"] == "prefix")
        for q in config["QueueConfigurations"]
    }
    expected = {f"api2snow-{s.pipe.split('.')[-1].lower()}": f"source={s.name}/" for s in SOURCES.values()}
    assert prefixes == {**expected, "api2snow-rejected_records_pipe": "_rejects/"}
    assert expected["api2snow-api_c_cameras_pipe"] == "source=api_c/"
    assert {q["QueueArn"] for q in config["QueueConfigurations"]} == {stack.snowpipe_queue.queue_arn}


def test_a_graph_run_loads_every_part_by_notification_without_refresh(stack, refreshes):
    run_id, runs = stack.run_graph()
    assert {r.state for r in runs} == {"SUCCEEDED"}, [(r.name, r.error) for r in runs if r.error]
    assert refreshes == []
    unmatched = scalar(
        stack,
        f"SELECT COUNT(*) FROM {stack.database}.OPS.BATCH_LEDGER l WHERE l.run_id = ? AND l.staged <> "
        f"(SELECT COUNT(*) FROM {stack.database}.RAW.API_B_EVENTS r WHERE r.batch_id = l.batch_id) "
        "AND l.source = 'api_b'",
        [run_id],
    )
    assert unmatched == 0


def test_a_missed_notification_waits_out_the_grace_then_refresh_loads_it(stack, refreshes, grace):
    db = stack.database
    grace(3600)
    with notifications_lost(stack):
        batch = _ingest(stack)
        stack.snowpipe_queue.drain()  # whatever the queue holds is handled now, not later
        assert '"batches_refreshed":0' in stack.call(f"CALL {db}.OPS.REFRESH_PIPE('api_b')")
        assert refreshes == [] and _raw_rows(stack, batch) == 0
        stack.call(f"CALL {db}.OPS.WAIT_FOR_LOAD(1)")
        assert _status(stack, batch) == "STAGED"  # noted, not lost: still waiting for its parts

        grace(0)
        assert '"batches_refreshed":1' in stack.call(f"CALL {db}.OPS.REFRESH_PIPE('api_b')")
        assert [pipe for pipe, _ in refreshes] == [f"{db}.RAW.API_B_EVENTS_PIPE"]
        assert all(prefix.endswith(f"batch_id={batch}/") for _, prefix in refreshes)
        stack.call(f"CALL {db}.OPS.WAIT_FOR_LOAD(10)")
    assert _status(stack, batch) == "LOADED"
    assert _raw_rows(stack, batch) == _staged(stack, batch) > 0


def test_wait_for_load_refreshes_what_auto_ingest_missed(stack, refreshes, grace):
    grace(0)
    with notifications_lost(stack):
        batch = _ingest(stack)
        stack.call(f"CALL {stack.database}.OPS.WAIT_FOR_LOAD(10)")
    assert len(refreshes) == 1
    assert _status(stack, batch) == "LOADED"
    assert _raw_rows(stack, batch) == _staged(stack, batch) > 0


def _backdate(stack: Any, batch: str, days: int) -> None:
    stack.session.sql(
        f"UPDATE {stack.database}.OPS.BATCH_LEDGER SET started_at = DATEADD('day', ?, started_at), "
        "staged_at = DATEADD('day', ?, staged_at) WHERE batch_id = ?",
        params=[-days, -days, batch],
    ).collect()


def test_a_batch_past_the_refresh_window_is_copied_once(stack, refreshes, grace, monkeypatch):
    db = stack.database
    grace(0)
    monkeypatch.setattr(stack.loader, "refresh_window_seconds", 0)  # files as old as their batch
    with notifications_lost(stack):
        batch = _ingest(stack)
        _backdate(stack, batch, 8)  # staged eight days ago: beyond what ALTER PIPE ... REFRESH can see
        assert stack.loader.refresh(f"{db}.RAW.API_B_EVENTS_PIPE")["files_loaded"] == 0
        refreshes.clear()
        assert '"batches_copied":1' in stack.call(f"CALL {db}.OPS.REFRESH_PIPE('api_b')")
        assert refreshes == []
        assert _raw_rows(stack, batch) == _staged(stack, batch) > 0
        assert '"batches_copied":0' in stack.call(f"CALL {db}.OPS.REFRESH_PIPE('api_b')")
        stack.call(f"CALL {db}.OPS.WAIT_FOR_LOAD(10)")
    assert _status(stack, batch) == "LOADED"
    assert _raw_rows(stack, batch) == _staged(stack, batch)


def test_the_copy_skips_a_file_the_pipe_loaded_meanwhile(stack, grace, monkeypatch):
    """The race the copy guards against: parts found missing, then loaded by the pipe, then copied."""
    from api2snow import ledger, loading, platform

    grace(0)
    monkeypatch.setattr(stack.loader, "refresh_window_seconds", 0)
    with notifications_lost(stack):
        batch = _ingest(stack)
        _backdate(stack, batch, 8)
        record = next(
            b for b in ledger.batches(stack.session, _settings(stack), "STAGED") if b.batch_id == batch
        )
        missing, _ = loading.unloaded_parts(stack.session, _settings(stack), record)
        for key in _part_keys(stack, batch):  # the pipe hears of the parts late, after the check
            stack.loader.load_notified(stack.project.env["bucket"], key)
        loaded = _raw_rows(stack, batch)
        assert loaded == _staged(stack, batch) > 0 and missing
        seam = platform.get_platform()
        assert loading.catch_missed(stack.session, seam, _settings(stack), record, missing) == "copy"
    assert _raw_rows(stack, batch) == loaded  # nothing copied on top
    stack.call(f"CALL {stack.database}.OPS.WAIT_FOR_LOAD(10)")
    assert _status(stack, batch) == "LOADED"


def _settings(stack: Any) -> Any:
    from api2snow import platform
    from api2snow.settings import load_settings

    return load_settings(stack.session, platform.get_platform())


def _part_keys(stack: Any, batch: str) -> list[str]:
    s3, bucket = stack.s3.client(), stack.project.env["bucket"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="source=api_b/").get("Contents", [])]
    return sorted(key for key in keys if f"batch_id={batch}/" in key and key.endswith(".jsonl.gz"))
