"""The whole task graph on the local stack, reconciled exactly against the mock APIs' ground truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from api2snow.sources import SOURCES

from .helpers import batches_of_run, clean_versions, expected_ids, scalar

pytestmark = pytest.mark.integration
OVERLAP = timedelta(seconds=300)  # the default of incremental_overlap_seconds
# Every events source, the declared ones with a generated mock (API D) included: (RAW table, CLEAN table).
EVENT_SOURCES = {
    name: (source.raw_table.split(".")[1], source.clean_table.split(".")[1])
    for name, source in SOURCES.items()
    if source.schema.name == "events"
}


def _run_ok(stack) -> str:
    run_id, runs = stack.run_graph()
    failed = {r.name: r.error for r in runs if r.state != "SUCCEEDED"}
    assert not failed, failed
    assert len(runs) == len(stack.graph.tasks)
    return run_id


@pytest.fixture(scope="module")
def first_run(stack) -> str:
    return _run_ok(stack)


@pytest.mark.parametrize("source", sorted(EVENT_SOURCES))
def test_first_run_reconciles_exactly(stack, first_run, source):
    raw_table, clean_table = EVENT_SOURCES[source]
    db = stack.database
    truth = expected_ids(stack, source, stack.mock_apis.truth(source, stack.mock_apis.clock.now()))
    batch = batches_of_run(stack, first_run)[source]

    assert batch["STATUS"] == "MERGED"
    assert batch["FETCHED"] == len(truth) > 1000
    assert batch["FETCHED"] == batch["STAGED"] + batch["REJECTED"] + batch["DUPLICATES"]
    assert (batch["REJECTED"], batch["DUPLICATES"]) == (0, 0)
    assert scalar(stack, f"SELECT COUNT(*) FROM {db}.RAW.{raw_table}") == batch["STAGED"]
    assert scalar(stack, f"SELECT COUNT(DISTINCT file_name) FROM {db}.RAW.{raw_table}") == batch["PARTS"]
    clean = clean_versions(stack, clean_table)
    assert {k: v[0] for k, v in clean.items()} == truth


def test_camera_directory_lands_in_clean(stack, first_run):
    cameras = stack.mock_apis.dataset.cameras(stack.mock_apis.clock.now())
    rows = stack.session.sql(f"SELECT camera_id, site_id FROM {stack.database}.CLEAN.DIM_CAMERAS").collect()
    assert {(r["CAMERA_ID"], r["SITE_ID"]) for r in rows} == {(c["cameraId"], c["siteId"]) for c in cameras}


def test_every_layer_and_dq_have_rows(stack, first_run):
    db = stack.database
    for source in EVENT_SOURCES:
        assert (
            scalar(stack, f"SELECT COUNT(*) FROM {db}.ANALYTICS.ANL_DAILY_SUMMARY WHERE source = ?", [source])
            >= 1
        )
        assert scalar(
            stack,
            f"SELECT SUM(event_count) FROM {db}.ANALYTICS.VW_DAILY_EVENT_COUNTS WHERE source = ?",
            [source],
        ) == scalar(stack, f"SELECT COUNT(*) FROM {db}.CLEAN.CLN_{source.upper()}_EVENTS")
    results = stack.session.sql(
        f"SELECT source, severity, passed FROM {db}.ANALYTICS.DQ_CHECK_RESULTS WHERE run_id = ?",
        params=[first_run],
    ).collect()
    events = {name for name, source in SOURCES.items() if source.schema.name == "events"}
    assert {r["SOURCE"] for r in results} == events
    assert len(results) == 15 * len(events)  # the hourly per-source checks (quality.py)
    assert all(r["PASSED"] for r in results if r["SEVERITY"] == "error")


def test_task_history_records_the_run_like_snowflake(stack, first_run):
    rows = stack.session.sql(
        f"SELECT name, state, attempt_number, return_value, query_start_time, completed_time "
        f"FROM {stack.database}.OPS.TASK_HISTORY WHERE graph_run_group_id = ?",
        params=[first_run],
    ).collect()
    assert {r["NAME"] for r in rows} == {t.short_name for t in stack.graph.tasks.values()}
    assert {r["STATE"] for r in rows} == {"SUCCEEDED"}
    assert all(r["COMPLETED_TIME"] >= r["QUERY_START_TIME"] for r in rows)
    ingest = next(r for r in rows if r["NAME"] == "INGEST_API_A")
    assert '"status":"STAGED"' in ingest["RETURN_VALUE"]


# ---- every timestamp is naive UTC; the local session runs in a fresh account's time zone (issue 9) ------
# Each stamp the pipeline writes, and RAW's LOADED_AT (TIMESTAMP_LTZ) as VW_RAW_STATS reads it.
STAMPS = [
    ("OPS.PIPELINE_CONFIG", "UPDATED_AT"),
    ("OPS.WATERMARKS", "UPDATED_AT"),
    ("OPS.BATCH_LEDGER", "STARTED_AT"),
    ("OPS.BATCH_LEDGER", "STAGED_AT"),
    ("OPS.BATCH_LEDGER", "LOADED_AT"),
    ("OPS.BATCH_LEDGER", "MERGED_AT"),
    ("OPS.PIPELINE_METRICS", "RECORDED_AT"),
    ("OPS.PIPELINE_RUNS", "FINISHED_AT"),
    ("OPS.LOCAL_PIPE_LOAD_HISTORY", "LAST_LOAD_TIME"),
    ("CLEAN.CLN_API_A_EVENTS", "MERGED_AT"),
    ("CLEAN.CLN_API_B_EVENTS", "MERGED_AT"),
    ("CLEAN.DIM_CAMERAS", "MERGED_AT"),
    ("ANALYTICS.ANL_DAILY_SUMMARY", "REFRESHED_AT"),
    ("ANALYTICS.DQ_CHECK_RESULTS", "CHECKED_AT"),
    ("ANALYTICS.VW_RAW_STATS", "LAST_LOADED_AT"),
]


def _utc_minus_session_minutes() -> int:
    """How many minutes the session's wall time is behind UTC now (480 in winter, 420 in summer)."""
    from api2snow_cli.local.warehouse import SESSION_TIME_ZONE

    return -int(datetime.now(ZoneInfo(SESSION_TIME_ZONE)).utcoffset().total_seconds()) // 60


def test_the_local_session_runs_in_a_fresh_accounts_time_zone(stack):
    row = stack.session.sql(
        "SELECT CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ AS now, "
        "DATEDIFF('minute', CURRENT_TIMESTAMP()::TIMESTAMP_NTZ, now) AS behind, "
        "DATEDIFF('second', SYSDATE(), now) AS sysdate_behind"
    ).collect()[0]
    assert abs(row["NOW"] - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=1)
    assert row["BEHIND"] == _utc_minus_session_minutes() in (420, 480)
    assert row["SYSDATE_BEHIND"] == 0  # outside a MERGE


@pytest.mark.parametrize(("table", "column"), STAMPS, ids=lambda v: v)
def test_every_stamp_of_a_run_is_naive_utc(stack, first_run, table, column):
    value = scalar(stack, f"SELECT MAX({column}) FROM {stack.database}.{table}")
    now = datetime.now(UTC).replace(tzinfo=None)
    assert value is not None and value.tzinfo is None
    assert now - timedelta(hours=1) < value <= now + timedelta(minutes=1), f"{table}.{column} = {value}"


def test_freshness_is_counted_in_utc_where_the_session_time_zone_is_hours_off(stack, first_run):
    rows = stack.session.sql(
        "SELECT source, minutes_since_last_event, minutes_since_last_load, minutes_since_last_batch, "
        # what the view computed before issue 9: wall time in the session's time zone
        "DATEDIFF('minute', last_event_at, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ) AS event_in_session_tz, "
        "DATEDIFF('minute', last_batch_loaded_at, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ) AS batch_in_session_tz "
        f"FROM {stack.database}.ANALYTICS.VW_DATA_FRESHNESS"
    ).collect()
    assert {r["SOURCE"] for r in rows} == set(EVENT_SOURCES)
    offset = _utc_minus_session_minutes()
    for row in rows:
        assert 0 <= row["MINUTES_SINCE_LAST_BATCH"] <= 60 and 0 <= row["MINUTES_SINCE_LAST_LOAD"] <= 60
        assert abs(row["MINUTES_SINCE_LAST_EVENT"]) <= 180  # the mock clock runs up to an hour ahead
        assert row["MINUTES_SINCE_LAST_EVENT"] - row["EVENT_IN_SESSION_TZ"] == offset
        assert row["MINUTES_SINCE_LAST_BATCH"] - row["BATCH_IN_SESSION_TZ"] == offset


def _overlap_start(stack, source: str) -> datetime:
    """Where the next incremental read starts: the overlap before the stored watermark (UTC)."""
    watermark = scalar(
        stack, f"SELECT watermark FROM {stack.database}.OPS.WATERMARKS WHERE source = ?", [source]
    )
    return (watermark - OVERLAP).replace(tzinfo=UTC)


def test_second_run_without_new_data_changes_no_clean_row(stack, first_run):
    before = {t: clean_versions(stack, t) for _, t in EVENT_SOURCES.values()}
    now = stack.mock_apis.clock.now()
    overlap = {
        source: stack.mock_apis.truth(source, now, updated_since=_overlap_start(stack, source))
        for source in EVENT_SOURCES
    }
    run_id = _run_ok(stack)
    assert {t: clean_versions(stack, t) for _, t in EVENT_SOURCES.values()} == before  # nothing rewritten
    batches = batches_of_run(stack, run_id)
    for source in EVENT_SOURCES:  # only the overlap before the watermark is read again
        assert batches[source]["FETCHED"] == batches[source]["STAGED"] == len(overlap[source]) > 0
    # the camera directory is read in full each run: the same window again gets the next id, not the old one
    assert batches["api_c"]["BATCH_ID"] != batches_of_run(stack, first_run)["api_c"]["BATCH_ID"]
    assert batches_of_run(stack, first_run)["api_c"]["STATUS"] == "MERGED"


def test_run_after_data_advanced_picks_up_exactly_new_and_updated(stack, first_run):
    clock = stack.mock_apis.clock
    before_time = clock.now()
    before = {t: clean_versions(stack, t) for _, t in EVENT_SOURCES.values()}
    read_from = {source: _overlap_start(stack, source) for source in EVENT_SOURCES}
    clock.advance(2 * 3600)
    run_id = _run_ok(stack)
    batches = batches_of_run(stack, run_id)
    for source, (_, clean_table) in EVENT_SOURCES.items():
        since = stack.mock_apis.truth(source, clock.now(), updated_since=before_time)
        changed = expected_ids(stack, source, since)
        read = stack.mock_apis.truth(source, clock.now(), updated_since=read_from[source])
        updated = [i for i in changed if i in before[clean_table]]
        assert batches[source]["FETCHED"] == len(read) >= len(changed) > 0
        assert updated, "the data set should update some existing events within two hours"
        after = clean_versions(stack, clean_table)
        assert {k: v[0] for k, v in after.items()} == expected_ids(
            stack, source, stack.mock_apis.truth(source, clock.now())
        )
        untouched = set(before[clean_table]) - set(changed)
        assert all(after[i] == before[clean_table][i] for i in untouched)


def test_local_stack_applies_exactly_the_sql_that_deploy_runs_and_reapplying_changes_nothing(
    stack, first_run, monkeypatch
):
    from api2snow_cli.deploy import build_plan

    before = {t: clean_versions(stack, t) for _, t in EVENT_SOURCES.values()}
    applied: list[str] = []
    execute = stack.execute

    def recording(statement: str):
        applied.append(statement)
        return execute(statement)

    monkeypatch.setattr(stack, "execute", recording)
    stack.apply_sql()  # what `api2snow up|run` does on every start
    plan = build_plan(stack.project, "local", "any", secrets_from_env=False)
    deployed = {statement for step in plan for statement in step.statements}
    assert applied and set(applied) <= deployed
    sql_steps = [s for step in plan if step.kind == "sql" for s in step.statements if s in set(applied)]
    assert len(sql_steps) == len(applied)
    assert {t: clean_versions(stack, t) for _, t in EVENT_SOURCES.values()} == before


def test_the_ledger_keeps_each_batchs_recent_requests_for_the_next_runs_rate_limiter(stack, first_run):
    from api2snow import ledger
    from api2snow.platform import get_platform
    from api2snow.settings import load_settings

    newest = stack.session.sql(
        f"SELECT http_stats:requests::NUMBER AS requests FROM {stack.database}.OPS.BATCH_LEDGER "
        "WHERE source = 'api_a' ORDER BY staged_at DESC LIMIT 1"
    ).collect()[0]
    times = ledger.recent_request_times(stack.session, load_settings(stack.session, get_platform()), "api_a")
    # this batch's own requests plus the earlier runs' that were still inside its window (seeded)
    assert 0 < newest["REQUESTS"] <= len(times) <= 100
    assert times == sorted(times) and times[-1] - times[0] < 60.25


def test_api_a_token_comes_from_the_oauth2_secrets_integration_once_per_call(stack, first_run):
    """The OAUTH2 secret and its integration in external_access/ drive the token exchange, as in Snowflake."""
    stack.mock_apis.reset()
    _run_ok(stack)
    _run_ok(stack)
    stats = stack.mock_apis.stats()["api_a"]
    assert stats["paths"]["/oauth/token"]["status"] == {"200": 2}  # one token per INGEST_API_A call
    assert stats["unauthorized_401"] == 0 and stats["paths"]["/v1/events"]["requests"] >= 2


def test_a_null_timestamp_reads_back_as_none_not_the_epoch(stack):
    """fakesnow's server mode answered NULL timestamps as 1970-01-01; code testing `is None` would misread."""
    row = stack.session.sql(
        "SELECT CAST(NULL AS TIMESTAMP_NTZ) AS ntz, CAST(NULL AS TIMESTAMP_LTZ) AS ltz, "
        "CAST('2026-01-01 10:00:00' AS TIMESTAMP_NTZ) AS set_ntz"
    ).collect()[0]
    assert (row["NTZ"], row["LTZ"]) == (None, None)
    assert row["SET_NTZ"].isoformat() == "2026-01-01T10:00:00"
