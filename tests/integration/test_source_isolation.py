"""One source that cannot load or merge stops only itself: the others go on in the same run."""

from __future__ import annotations

import gzip
import json

import pytest
from api2snow.layers import CleanMergeError

from .helpers import expected_ids, scalar

pytestmark = pytest.mark.integration


def _loaded_batch(stack, source: str) -> str:
    return scalar(
        stack,
        f"SELECT batch_id FROM {stack.database}.OPS.BATCH_LEDGER WHERE source = ? AND status = 'LOADED'",
        [source],
    )


def test_a_failing_merge_fails_loudly_for_its_source_alone(stack):
    db = stack.database
    stack.run_graph()
    stack.mock_apis.clock.advance(3600)
    for source in ("api_a", "api_b"):
        stack.call(f"CALL {db}.OPS.INGEST_{source.upper()}()")
        stack.call(f"CALL {db}.OPS.REFRESH_PIPE('{source}')")
    stack.call(f"CALL {db}.OPS.WAIT_FOR_LOAD(60)")
    batch_a, batch_b = _loaded_batch(stack, "api_a"), _loaded_batch(stack, "api_b")
    # A row no validation would pass (from an older release, say): its cast fails the api_b MERGE.
    poison = {
        "event_id": "b-poison",
        "updated_at": "2026-01-01T00:00:00.000000",
        "duration_ms": "not a number",
    }
    stack.session.sql(
        f"INSERT INTO {db}.RAW.API_B_EVENTS (payload, file_name, file_row_number, batch_id, loaded_at) "
        "SELECT PARSE_JSON(?), 'poison.jsonl.gz', 1, ?, CURRENT_TIMESTAMP()",
        params=[json.dumps(poison), batch_b],
    ).collect()

    with pytest.raises(CleanMergeError, match=r"CLEAN merge failed for api_b \(batches stay LOADED"):
        stack.call(f"CALL {db}.OPS.BUILD_CLEAN()")

    status = f"SELECT status FROM {db}.OPS.BATCH_LEDGER WHERE batch_id = ?"
    assert scalar(stack, status, [batch_a]) == "MERGED"
    assert scalar(stack, status, [batch_b]) == "LOADED"
    now = stack.mock_apis.clock.now()
    truth_a = expected_ids(stack, "api_a", stack.mock_apis.dataset.truth("api_a", now))
    rows = stack.session.sql(f"SELECT event_id, updated_at FROM {db}.CLEAN.CLN_API_A_EVENTS").collect()
    assert {r["EVENT_ID"]: r["UPDATED_AT"] for r in rows} == truth_a
    assert scalar(stack, f"SELECT COUNT(*) FROM {db}.CLEAN.CLN_API_B_EVENTS WHERE event_id = 'b-poison'") == 0
    stack.session.sql(f"DELETE FROM {db}.RAW.API_B_EVENTS WHERE file_name = 'poison.jsonl.gz'").collect()
    stack.call(f"CALL {db}.OPS.BUILD_CLEAN()")  # with the poison gone, api_b merges again
    assert scalar(stack, status, [batch_b]) == "MERGED"


def test_a_batch_that_cannot_load_stops_only_its_source_and_the_next_run_heals_it(stack, monkeypatch):
    db = stack.database
    stack.mock_apis.clock.advance(3600)
    s3, bucket = stack.s3.client(), stack.project.env["bucket"]
    load_notified = stack.loader.load_notified

    def corrupting_load(bucket_name: str, key: str) -> int:
        if key.startswith("source=api_b/"):  # every new api_b part arrives unreadable
            s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(b"{not json\n"))
        return load_notified(bucket_name, key)

    monkeypatch.setattr(stack.loader, "load_notified", corrupting_load)
    run_id, runs = stack.run_graph()
    states = {r.name.rsplit(".", 1)[-1]: r.state for r in runs}
    assert states["CLEAN"] == states["ANALYTICS"] == states["DQ"] == "SUCCEEDED"  # the others went on
    assert states["VALIDATE_DQ"] == "FAILED"  # and the stuck source failed the run loudly
    error = next(r.error for r in runs if r.name.endswith("VALIDATE_DQ"))
    assert "load_stuck[api_b]" in error
    now = stack.mock_apis.clock.now()
    truth_a = expected_ids(stack, "api_a", stack.mock_apis.dataset.truth("api_a", now))
    rows = stack.session.sql(f"SELECT event_id, updated_at FROM {db}.CLEAN.CLN_API_A_EVENTS").collect()
    assert {r["EVENT_ID"]: r["UPDATED_AT"] for r in rows} == truth_a

    monkeypatch.setattr(stack.loader, "load_notified", load_notified)
    run_id, runs = stack.run_graph()
    assert {r.state for r in runs} == {"SUCCEEDED"}, [(r.name, r.error) for r in runs if r.error]
    truth_b = expected_ids(stack, "api_b", stack.mock_apis.dataset.truth("api_b", now))
    rows = stack.session.sql(f"SELECT event_id, updated_at FROM {db}.CLEAN.CLN_API_B_EVENTS").collect()
    assert {r["EVENT_ID"]: r["UPDATED_AT"] for r in rows} == truth_b
    abandoned = scalar(
        stack, f"SELECT COUNT(*) FROM {db}.OPS.BATCH_LEDGER WHERE source = 'api_b' AND status = 'ABANDONED'"
    )
    assert abandoned == 1
