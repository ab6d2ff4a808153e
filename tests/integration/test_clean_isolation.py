"""One source whose CLEAN MERGE fails stops only itself: the others merge in the same call."""

from __future__ import annotations

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
        f"INSERT INTO {db}.RAW.API_B_EVENTS (payload, file_name, file_row_number, batch_id) "
        "SELECT PARSE_JSON(?), 'poison.jsonl.gz', 1, ?",
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
