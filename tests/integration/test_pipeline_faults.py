"""Faults on the mock APIs: retries, duplicates across pages and invalid records still reconcile exactly."""

from __future__ import annotations

import gzip
import json
import re
import time

import boto3
import pytest
from api2snow.quality import DataQualityError

from ..conftest import start_stack
from .helpers import batches_of_run, expected_ids, notifications_lost, scalar

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    from api2snow_cli.local.mock_apis.faults import Faults

    faults = {
        "api_a": Faults.for_api(
            "api_a", error_rate=0.08, malformed_page_rate=0.05, invalid_record_rate=0.02, duplicate_rate=0.5
        ),
        "api_b": Faults.for_api(
            "api_b", error_rate=0.3, malformed_page_rate=0.1, invalid_record_rate=0.02, duplicate_rate=0.5
        ),
        "api_c": Faults.for_api("api_c"),
    }
    stack = start_stack(tmp_path_factory.mktemp("api2snow-faults"), faults=faults)
    # Pages of 100 (the sources ask for 500 by default): more pages, so records repeated on the next page
    # (duplicate_rate) and faults between pages happen several times in a batch.
    for key in ("api_a_page_size", "api_b_page_size"):
        stack.session.sql(
            f"INSERT INTO {stack.database}.OPS.PIPELINE_CONFIG (config_key, config_value) VALUES (?, '100')",
            params=[key],
        ).collect()
    stack.run_graph_result = stack.run_graph()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.mark.parametrize("source,raw_table", [("api_a", "API_A_EVENTS"), ("api_b", "API_B_EVENTS")])
def test_faults_reconcile(faulty, source, raw_table):
    run_id, runs = faulty.run_graph_result
    assert {r.state for r in runs} == {"SUCCEEDED"}, [(r.name, r.error) for r in runs if r.error]
    db = faulty.database
    now = faulty.mock_apis.clock.now()
    truth = expected_ids(faulty, source, faulty.mock_apis.dataset.truth(source, now))
    invalid = set(
        expected_ids(faulty, source, dict.fromkeys(faulty.mock_apis.dataset.invalid_ids(source, now), now))
    )
    batch = batches_of_run(faulty, run_id)[source]

    assert invalid, "the fault switch should have broken some records"
    assert batch["DUPLICATES"] > 0
    assert batch["FETCHED"] == batch["STAGED"] + batch["REJECTED"] + batch["DUPLICATES"]
    assert batch["FETCHED"] == len(truth) + batch["DUPLICATES"]
    assert batch["REJECTED"] == len(invalid)
    assert scalar(faulty, f"SELECT COUNT(*) FROM {db}.RAW.{raw_table}") == batch["STAGED"]
    assert scalar(
        faulty, f"SELECT COUNT(*) FROM {db}.RAW.REJECTED_RECORDS WHERE batch_id = ?", [batch["BATCH_ID"]]
    ) == len(invalid)
    clean = {r[0] for r in faulty.session.sql(f"SELECT event_id FROM {db}.CLEAN.CLN_{raw_table}").collect()}
    assert clean == set(truth) - invalid
    assert (
        scalar(
            faulty,
            f"SELECT batch.http_stats:retries::NUMBER FROM {db}.OPS.BATCH_LEDGER AS batch WHERE batch_id = ?",
            [batch["BATCH_ID"]],
        )
        > 0
    )


def test_rejects_carry_their_reason(faulty):
    reasons = faulty.session.sql(
        f"SELECT DISTINCT payload:reason::STRING AS reason FROM {faulty.database}.RAW.REJECTED_RECORDS"
    ).collect()
    assert reasons and all(r["REASON"] for r in reasons)


def test_validate_dq_fails_on_an_error_severity_failure(faulty):
    db = faulty.database
    faulty.session.sql(
        f"INSERT INTO {db}.ANALYTICS.DQ_CHECK_RESULTS (run_id, check_name, source, severity, observed_value, "
        "threshold, passed, details, checked_at) "
        "SELECT 'forced-failure', 'unique_event_id', 'api_a', 'error', "
        "3, 0, FALSE, 'test', "
        "DATEADD('minute', 1, CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ)"
    ).collect()
    with pytest.raises(DataQualityError, match=r"unique_event_id\[api_a\]"):
        faulty.call(f"CALL {db}.OPS.VALIDATE_DQ()")


def _s3(stack):
    return boto3.client(
        "s3",
        endpoint_url=stack.s3.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    )


def _stuck(stack, source: str) -> list:
    return stack.session.sql(
        f"SELECT batch_id, error_message FROM {stack.database}.OPS.BATCH_LEDGER "
        "WHERE source = ? AND status = 'STAGED' AND error_message IS NOT NULL",
        params=[source],
    ).collect()


def _failed_checks(stack) -> set[tuple[str, str]]:
    rows = stack.session.sql(
        f"SELECT check_name, source FROM {stack.database}.ANALYTICS.VW_DQ_CHECKS WHERE NOT passed"
    ).collect()
    return {(r["CHECK_NAME"], r["SOURCE"]) for r in rows}


def test_a_batch_that_does_not_load_in_time_is_noted_then_abandoned_and_read_again(faulty):
    db = faulty.database
    watermark = scalar(faulty, f"SELECT watermark FROM {db}.OPS.WATERMARKS WHERE source = 'api_b'")
    faulty.mock_apis.set_faults("api_b", error_rate=0.0, malformed_page_rate=0.0)
    faulty.mock_apis.clock.advance(3600)
    s3, bucket = _s3(faulty), faulty.project.env["bucket"]
    with notifications_lost(faulty, grace_seconds=0):
        assert '"status":"STAGED"' in faulty.call(f"CALL {db}.OPS.INGEST_API_B()")
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix="source=api_b/")["Contents"]:
            s3.delete_object(Bucket=bucket, Key=obj["Key"])  # the staged part never reaches the pipe
        faulty.call(f"CALL {db}.OPS.REFRESH_PIPE('api_b')")  # the safety net finds nothing to load
        summary = json.loads(faulty.call(f"CALL {db}.OPS.WAIT_FOR_LOAD(1)"))
    [(stuck_id, message)] = summary["stuck"].items()
    assert re.fullmatch(rf"api_b batch {stuck_id}: Snowpipe did not load 1 part\(s\) within 1s", message)
    assert [tuple(r) for r in _stuck(faulty, "api_b")] == [(stuck_id, message)]
    assert ("load_stuck", "api_b") in _failed_checks(faulty)  # the graph run fails loudly at VALIDATE_DQ
    assert scalar(faulty, f"SELECT watermark FROM {db}.OPS.WATERMARKS WHERE source = 'api_b'") == watermark

    # The next run closes the stuck batch (its files removed) and reads the same window again.
    retry = json.loads(faulty.call(f"CALL {db}.OPS.INGEST_API_B()"))
    assert retry["status"] == "STAGED" and retry["batch_id"] != stuck_id
    status = scalar(faulty, f"SELECT status FROM {db}.OPS.BATCH_LEDGER WHERE batch_id = ?", [stuck_id])
    assert status == "ABANDONED"
    assert not [o for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if stuck_id in o["Key"]]
    faulty.call(f"CALL {db}.OPS.REFRESH_PIPE('api_b')")
    assert json.loads(faulty.call(f"CALL {db}.OPS.WAIT_FOR_LOAD(60)"))["batch_ids"] == [retry["batch_id"]]
    assert ("load_stuck", "api_b") not in _failed_checks(faulty)


def test_a_file_snowpipe_refuses_is_noted_at_once(faulty):
    db = faulty.database
    faulty.mock_apis.set_faults("api_a", error_rate=0.0, malformed_page_rate=0.0, invalid_record_rate=0.0)
    faulty.mock_apis.clock.advance(3600)
    s3, bucket = _s3(faulty), faulty.project.env["bucket"]
    with notifications_lost(faulty, grace_seconds=0):  # the file is spoiled before Snowpipe hears of it
        assert '"status":"STAGED"' in faulty.call(f"CALL {db}.OPS.INGEST_API_A()")
        batch_id = scalar(
            faulty, f"SELECT batch_id FROM {db}.OPS.BATCH_LEDGER WHERE source = 'api_a' AND status = 'STAGED'"
        )
        keys = [
            o["Key"]
            for o in s3.list_objects_v2(Bucket=bucket, Prefix="source=api_a/")["Contents"]
            if batch_id in o["Key"]
        ]
        assert len(keys) == 1
        s3.put_object(Bucket=bucket, Key=keys[0], Body=gzip.compress(b"{not json\n"))
        started = time.monotonic()
        faulty.call(f"CALL {db}.OPS.REFRESH_PIPE('api_a')")
        summary = json.loads(faulty.call(f"CALL {db}.OPS.WAIT_FOR_LOAD(120)"))
    assert time.monotonic() - started < 20
    expected = rf"api_a batch {batch_id}: Snowpipe failed to load {keys[0]}: .*invalid JSON.*"
    assert re.fullmatch(expected, summary["stuck"][batch_id])
    assert [r["BATCH_ID"] for r in _stuck(faulty, "api_a")] == [batch_id]
