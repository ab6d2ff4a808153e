"""Nothing lost (issue 7): the real local stack against the hostile API server, reconciled with its truth.

One stack and one hostile server per module. Each test gets fresh stores in a later time window, its
sources' watermarks set just before that window and any batch a failed test left half-done quarantined, so
tests do not depend on each other. After each run, CLEAN must equal the hostile server's ground truth exactly
(ids, versions, columns), poison must be rejected with a reason and kept out of CLEAN, and the ledger must
reconcile. Faults that cannot be survived must fail the run loudly, within a few requests, and lose nothing
that was loaded before.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.hostile import API_A, API_B, HostileServer

from ..conftest import start_stack
from .helpers import scalar

pytestmark = pytest.mark.integration

TABLES = {API_A: ("API_A_EVENTS", "CLN_API_A_EVENTS"), API_B: ("API_B_EVENTS", "CLN_API_B_EVENTS")}
CLEAN_COLUMNS = (
    "event_type",
    "camera_id",
    "category",
    "confidence",
    "occurred_at",
    "updated_at",
    "duration_ms",
)
FEW = 6  # page requests a run may spend before it notices a server that makes no progress
FAIL_LOUDLY = ("PaginationError", "ApiError", "AuthError")


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, hostile: HostileServer) -> Iterator[Any]:
    urls = {"api_a_base_url": hostile.url, "api_b_base_url": hostile.url}
    started = start_stack(tmp_path_factory.mktemp("api2snow-hostile"), env_overrides=urls, history_hours=1)
    _set_config(  # no rate limits on the hostile server; a short retry budget keeps must-fail tests quick
        started,
        api_a_rate_limit_per_min="6000",
        api_b_rate_limit_per_min="6000",
        load_poll_seconds="0.1",
        http_max_attempts="4",
        # The scenarios place their faults by page (an empty page at offset 100, a loop after the second
        # cursor): pages of 100, where the sources ask for 500 by default.
        api_a_page_size="100",
        api_b_page_size="100",
    )
    try:
        yield started
    finally:
        started.stop()


def _set_config(stack: Any, **values: str) -> None:
    """Settings the procedures read from OPS.PIPELINE_CONFIG (the hostile server never rate-limits)."""
    table = f"{stack.database}.OPS.PIPELINE_CONFIG"
    for key, value in values.items():
        stack.session.sql(f"DELETE FROM {table} WHERE config_key = ?", params=[key]).collect()
        stack.session.sql(
            f"INSERT INTO {table} (config_key, config_value, updated_at) "
            "SELECT ?, ?, CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ",
            params=[key, value],
        ).collect()


@pytest.fixture
def scenario(stack: Any, hostile: HostileServer) -> Callable[..., HostileServer]:
    """``scenario(*faults, a=.., b=.., **options)``: fresh stores and faults, the stack isolated to them."""

    def make(*faults: str, a: int = 0, b: int = 0, **options: int) -> HostileServer:
        hostile.reset(a=a, b=b)
        hostile.enable(*faults, **options)
        _isolate(stack, hostile.window_start)
        return hostile

    return make


def _isolate(stack: Any, window_start: datetime) -> None:
    """Quarantine batches an earlier test left unfinished; start both sources just before the new window.

    A batch left STAGED or LOADED (e.g. poison that broke the load or the MERGE before the fixes) would
    otherwise be picked up by every later WAIT_FOR_LOAD and BUILD_CLEAN and fail unrelated tests.
    """
    db = stack.database
    stack.session.sql(
        f"UPDATE {db}.OPS.BATCH_LEDGER SET status = 'QUARANTINED' "
        "WHERE status IN ('STARTED', 'STAGED', 'LOADED')"
    ).collect()
    for source in TABLES:
        stack.session.sql(f"DELETE FROM {db}.OPS.WATERMARKS WHERE source = ?", params=[source]).collect()
        stack.session.sql(
            f"INSERT INTO {db}.OPS.WATERMARKS (source, watermark, batch_id, updated_at) "
            "SELECT ?, CAST(? AS TIMESTAMP_NTZ), 'hostile-isolation', "
            "CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ",
            params=[source, (window_start - timedelta(seconds=1)).isoformat(sep=" ")],
        ).collect()


# ----- running the pipeline ---------------------------------------------------------------------------------


@dataclass
class Runs:
    """The batches one test's runs produced, per source."""

    batches: dict[str, list[str]] = field(default_factory=lambda: {API_A: [], API_B: []})


def ingest(stack: Any, source: str) -> dict[str, Any]:
    return json.loads(stack.call(f"CALL {stack.database}.OPS.INGEST_{source.upper()}()"))


def load(stack: Any, source: str, runs: Runs) -> dict[str, Any]:
    """One source through the pipeline: ingest, pipe refresh, wait for the load, MERGE into CLEAN."""
    summary = ingest(stack, source)
    runs.batches[source].append(summary["batch_id"])
    db = stack.database
    stack.call(f"CALL {db}.OPS.REFRESH_PIPE('{source}')")
    stack.call(f"CALL {db}.OPS.WAIT_FOR_LOAD(120)")
    stack.call(f"CALL {db}.OPS.BUILD_CLEAN()")
    return summary


def watermark(stack: Any, source: str) -> datetime | None:
    return scalar(stack, f"SELECT watermark FROM {stack.database}.OPS.WATERMARKS WHERE source = ?", [source])


# ----- what CLEAN, RAW and the ledger must show -------------------------------------------------------------


def clean_rows(stack: Any, server: HostileServer, source: str) -> dict[str, dict[str, Any]]:
    """CLEAN rows of this test: its truth's ids plus anything updated inside its time window."""
    start, end = server.window_start, server.window_end
    rows = stack.session.sql(
        f"SELECT event_id, {', '.join(CLEAN_COLUMNS)} FROM {stack.database}.CLEAN.{TABLES[source][1]}"
    ).collect()
    truth_ids = set(server.truth(source))
    mine = {}
    for row in rows:
        updated = row["UPDATED_AT"]
        if row["EVENT_ID"] in truth_ids or (updated is not None and start <= updated < end):
            mine[row["EVENT_ID"]] = {c: _plain(row[c.upper()]) for c in CLEAN_COLUMNS}
    return mine


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def describe_diff(actual: dict[str, dict], expected: dict[str, dict]) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(k for k in set(actual) & set(expected) if actual[k] != expected[k])
    lines = [f"{len(missing)} missing {missing[:5]}, {len(extra)} extra {extra[:5]}, {len(changed)} differ"]
    for key in changed[:3]:
        diff = {
            c: (actual[key][c], expected[key][c]) for c in CLEAN_COLUMNS if actual[key][c] != expected[key][c]
        }
        lines.append(f"{key}: (clean, truth) {diff}")
    return "; ".join(lines)


def assert_clean_is_truth(stack: Any, server: HostileServer, source: str) -> None:
    actual, expected = clean_rows(stack, server, source), server.truth(source)
    assert actual == expected, describe_diff(actual, expected)
    everything = {
        r[0]
        for r in stack.session.sql(
            f"SELECT event_id FROM {stack.database}.CLEAN.{TABLES[source][1]}"
        ).collect()
    }
    assert not everything & server.poison_ids(source), "poison reached CLEAN"


def assert_poison_rejected(stack: Any, server: HostileServer, source: str, runs: Runs) -> None:
    """Every poison record is in RAW.REJECTED_RECORDS of this test's batches, with a reason."""
    batch_ids, poisons = runs.batches[source], server.poison(source)
    if not poisons:
        return
    assert batch_ids, "no batch to find the rejects in"
    marks = ", ".join("?" for _ in batch_ids)
    rows = stack.session.sql(
        f"SELECT payload:reason::STRING AS reason, payload FROM {stack.database}.RAW.REJECTED_RECORDS "
        f"WHERE batch_id IN ({marks})",
        params=batch_ids,
    ).collect()
    rejects = [
        (r["REASON"], r["PAYLOAD"] if isinstance(r["PAYLOAD"], str) else json.dumps(r["PAYLOAD"]))
        for r in rows
    ]
    for poison in poisons:
        reasons = [reason for reason, text in rejects if poison.matches(text)]
        assert reasons, f"{poison.fault} record {poison.markers[0]} is not in RAW.REJECTED_RECORDS"
        assert all(reasons), f"{poison.fault} record {poison.markers[0]} was rejected without a reason"


def assert_ledger_reconciles(stack: Any, source: str, runs: Runs) -> None:
    db, raw_table = stack.database, TABLES[source][0]
    for batch_id in runs.batches[source]:
        row = stack.session.sql(
            f"SELECT * FROM {db}.OPS.BATCH_LEDGER WHERE batch_id = ?", params=[batch_id]
        ).collect()[0]
        assert row["FETCHED"] == row["STAGED"] + row["REJECTED"] + row["DUPLICATES"], dict(row.as_dict())
        assert row["STAGED"] == scalar(
            stack, f"SELECT COUNT(*) FROM {db}.RAW.{raw_table} WHERE batch_id = ?", [batch_id]
        )
        assert row["REJECTED"] == scalar(
            stack, f"SELECT COUNT(*) FROM {db}.RAW.REJECTED_RECORDS WHERE batch_id = ?", [batch_id]
        )


def assert_reconciled(stack: Any, server: HostileServer, source: str, runs: Runs) -> None:
    assert_clean_is_truth(stack, server, source)
    assert_poison_rejected(stack, server, source, runs)
    assert_ledger_reconciles(stack, source, runs)


def assert_fails_loudly(stack: Any, server: HostileServer, source: str, runs: Runs, few: int | None) -> str:
    """The run fails with a clear error within ``few`` page requests; CLEAN and the watermark are untouched.

    Returns the error text. Afterwards the fault is switched off and a clean run must load everything.
    """
    before_clean, before_watermark = clean_rows(stack, server, source), watermark(stack, source)
    server.new_run()
    with pytest.raises(Exception) as failure:
        load(stack, source, runs)
    text = f"{type(failure.value).__name__}: {failure.value}"
    assert any(name in text for name in FAIL_LOUDLY), text
    assert "hostile_tripwire" not in text, f"the run only stopped at the test server's tripwire: {text}"
    requests = len(server.page_requests(source))
    if few is not None:
        assert requests <= few, f"{requests} page requests before failing: {text}"
    assert clean_rows(stack, server, source) == before_clean
    assert watermark(stack, source) == before_watermark
    server.disable()
    server.new_run()
    load(stack, source, runs)
    assert_reconciled(stack, server, source, Runs({source: runs.batches[source][-1:]}))
    return text


def baseline(stack: Any, server: HostileServer, source: str, runs: Runs) -> None:
    """A first, fault-free run that loads the seeded records (so a failing run has something to lose)."""
    load(stack, source, runs)
    assert_reconciled(stack, server, source, runs)


def seeded(source: str, count: int = 250) -> dict[str, int]:
    """``scenario`` keyword arguments seeding ``count`` good records for ``source``."""
    return {"a" if source == API_A else "b": count}


def fail_later(server: HostileServer, source: str, fault: str, new_records: int, **options: int) -> None:
    """New records arrive and the fault switches on, for the next run."""
    server.add(source, new_records)
    server.enable(fault, **options)
    server.clear_stats()


# ----- the tests --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [API_A, API_B])
def test_fault_free_run_reconciles_exactly(stack, scenario, source):
    server, runs = scenario(**seeded(source)), Runs()
    load(stack, source, runs)
    assert_reconciled(stack, server, source, runs)


@pytest.mark.parametrize("source", [API_A, API_B])
def test_ordinary_noise_503_429_and_short_pages_loses_nothing(stack, scenario, source):
    server, runs = (
        scenario("flaky_503", "throttle_once", "short_pages", page_cap=37, **seeded(source)),
        Runs(),
    )
    load(stack, source, runs)
    assert_reconciled(stack, server, source, runs)
    statuses = [r.status for r in server.page_requests(source)]
    assert statuses.count(429) == 1 and statuses.count(503) >= 3


@pytest.mark.parametrize("source", [API_A, API_B])
@pytest.mark.parametrize("fault", ["surrogate_text", "huge_number", "wrong_types", "huge_record"])
def test_poison_is_rejected_with_a_reason_and_the_rest_loads(stack, scenario, fault, source):
    server, runs = scenario(fault, **seeded(source)), Runs()
    assert server.poison(source)
    load(stack, source, runs)
    assert_reconciled(stack, server, source, runs)


def test_empty_page_before_total_is_not_the_end(stack, scenario):
    server, runs = scenario("empty_page_before_total", b=250), Runs()
    load(stack, API_B, runs)
    assert_reconciled(stack, server, API_B, runs)


def test_an_offset_that_stays_empty_before_total_fails_loudly(stack, scenario):
    server, runs = scenario(b=250), Runs()
    baseline(stack, server, API_B, runs)
    fail_later(server, API_B, "empty_page_always", 250)
    assert_fails_loudly(stack, server, API_B, runs, few=None)


def test_an_empty_cursor_page_with_a_next_cursor_is_not_the_end(stack, scenario):
    server, runs = scenario("has_more", a=250), Runs()
    load(stack, API_A, runs)
    assert_reconciled(stack, server, API_A, runs)


@pytest.mark.parametrize("source", [API_A, API_B])
def test_late_commits_at_and_before_the_watermark_are_picked_up_next_run(stack, scenario, source):
    server, runs = scenario(**seeded(source)), Runs()
    baseline(stack, server, source, runs)
    late = server.commit_late(source, 4, seconds_back=3)
    server.new_run()
    load(stack, source, runs)
    assert {e.key for e in late} <= set(clean_rows(stack, server, source)), "late commits were skipped"
    assert_reconciled(stack, server, source, runs)


@pytest.mark.parametrize("source", [API_A, API_B])
def test_equal_updated_at_within_a_run_the_version_served_last_wins(stack, scenario, source):
    server, runs = scenario("equal_updated_at_versions", **seeded(source)), Runs()
    load(stack, source, runs)
    assert_reconciled(stack, server, source, runs)


@pytest.mark.parametrize("source", [API_A, API_B])
def test_equal_updated_at_across_runs_the_rewritten_version_wins(stack, scenario, source):
    server, runs = scenario(**seeded(source)), Runs()
    baseline(stack, server, source, runs)
    rewritten = server.rewrite_same_version(source)
    server.new_run()
    load(stack, source, runs)
    assert clean_rows(stack, server, source)[rewritten] == server.truth(source)[rewritten]
    assert_reconciled(stack, server, source, runs)


def test_records_moving_while_offset_paging_are_not_skipped(stack, scenario):
    server, runs = scenario("mutate_while_paging", b=250), Runs()
    load(stack, API_B, runs)
    assert_reconciled(stack, server, API_B, runs)


def test_a_cursor_loop_fails_within_a_few_requests(stack, scenario):
    server, runs = scenario(a=250), Runs()
    baseline(stack, server, API_A, runs)
    fail_later(server, API_A, "cursor_loop", 450)
    text = assert_fails_loudly(stack, server, API_A, runs, few=FEW)
    assert "PaginationError" in text


def test_a_server_ignoring_offset_fails_within_a_few_requests(stack, scenario):
    server, runs = scenario(b=250), Runs()
    baseline(stack, server, API_B, runs)
    fail_later(server, API_B, "ignore_offset", 450)
    assert_fails_loudly(stack, server, API_B, runs, few=FEW)


def test_the_same_records_behind_new_cursors_fail_within_a_few_requests(stack, scenario):
    server, runs = scenario(a=250), Runs()
    baseline(stack, server, API_A, runs)
    fail_later(server, API_A, "same_records_again", 450)
    assert_fails_loudly(stack, server, API_A, runs, few=FEW)


def test_a_revoked_token_is_replaced_and_the_failed_page_resumed(stack, scenario):
    server, runs = scenario("revoke_token", a=450, revoke_after_pages=2), Runs()
    load(stack, API_A, runs)
    assert_reconciled(stack, server, API_A, runs)
    tokens = server.issued_tokens
    assert len(server.token_requests()) == 2 and len(set(tokens)) == 2, "expected exactly one new token"
    statuses = server.statuses_by_cursor()
    failed = [cursor for cursor, seen in statuses.items() if 401 in seen]
    assert len(failed) == 1 and statuses[failed[0]] == [401, 200], statuses
    assert all(seen == [200] for cursor, seen in statuses.items() if cursor != failed[0]), statuses
    resumed = [
        r for r in server.page_requests(API_A) if r.params.get("cursor") == failed[0] and r.status == 200
    ]
    assert resumed[0].bearer == tokens[1]


def test_a_redirect_to_another_host_never_carries_the_api_key(stack, scenario):
    server, runs = scenario(b=250), Runs()
    baseline(stack, server, API_B, runs)
    fail_later(server, API_B, "redirect_other_host", 250)
    recorded: list[dict[str, str]] = []
    before = len(server.recorder.requests)
    try:
        assert_fails_loudly(stack, server, API_B, runs, few=None)
    finally:
        recorded = [r.headers for r in server.recorder.requests[before:]]
    leaked = [h for h in recorded if {k.lower() for k in h} & {"x-api-key", "authorization"}]
    assert not leaked, f"credentials reached the other host on {len(leaked)} of {len(recorded)} requests"


def _secrets(stack: Any, server: HostileServer) -> set[str]:
    creds = stack.options.credentials
    return {creds.client_secret, creds.api_key, *server.issued_tokens}


def _assert_no_secret(texts: list[str], secrets: set[str], where: str) -> None:
    for text in texts:
        found = [s for s in secrets if s and s in (text or "")]
        assert not found, f"a secret appears in {where}: {text[:300]!r}"


@pytest.mark.parametrize(
    "source,fault", [(API_A, "echo_secret"), (API_A, "echo_secret_token"), (API_B, "echo_secret")]
)
def test_secrets_echoed_in_error_bodies_never_surface(stack, scenario, source, fault):
    server, runs = scenario(fault, **seeded(source)), Runs()
    with pytest.raises(Exception) as failure:
        load(stack, source, runs)
    text = "".join(traceback.format_exception(failure.value))
    assert any(name in text for name in FAIL_LOUDLY), text
    secrets = _secrets(stack, server)
    _assert_no_secret([text, repr(failure.value)], secrets, "the exception")
    ledger = f"{stack.database}.OPS.BATCH_LEDGER"
    newest = stack.session.sql(
        f"SELECT status, error_message FROM {ledger} WHERE source = ? ORDER BY started_at DESC LIMIT 1",
        params=[source],
    ).collect()[0]
    assert newest["STATUS"] == "FAILED" and newest["ERROR_MESSAGE"], (
        "the failed batch should record its error"
    )
    messages = [r[0] for r in stack.session.sql(f"SELECT error_message FROM {ledger}").collect() if r[0]]
    _assert_no_secret(messages, secrets, "OPS.BATCH_LEDGER.ERROR_MESSAGE")


def test_secrets_echoed_in_error_bodies_never_reach_task_history(stack, scenario):
    server = scenario("echo_secret", a=120, b=120)
    run_id, runs = stack.run_graph()
    failed = {r.name.rsplit(".", 1)[-1] for r in runs if r.state == "FAILED"}
    assert {"INGEST_API_A", "INGEST_API_B"} <= failed, [(r.name, r.state) for r in runs]
    rows = stack.session.sql(
        f"SELECT return_value, error_message FROM {stack.database}.OPS.TASK_HISTORY "
        "WHERE graph_run_group_id = ?",
        params=[run_id],
    ).collect()
    texts = [t for r in rows for t in (r["RETURN_VALUE"], r["ERROR_MESSAGE"]) if t]
    texts += [r.error for r in runs if r.error]
    assert texts
    _assert_no_secret(texts, _secrets(stack, server), "task history")
