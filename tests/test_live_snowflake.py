"""Live suite: deploy into a throwaway database of a real Snowflake account, run the task graph once with
EXECUTE TASK, check every task, every layer and the analyst role's grants, deploy again (nothing that holds
data is recreated), and tear down. Every step goes through the same `api2snow deploy` plan that users run,
so a step that does not happen fails here loudly; nothing is mocked.

What the one graph run is held to, beyond "every task succeeded":
- auto-ingest: every RAW pipe has an SQS notification channel, the bucket's notification reached the pipes
  (SYSTEM$PIPE_STATUS), every staged file of the run is in RAW with exactly its manifest's rows and in
  COPY_HISTORY as Loaded by its pipe, every batch of the run is MERGED;
- the finalizer: one OPS.PIPELINE_RUNS row for the graph run group, its verdict and counts as TASK_HISTORY's
  latest attempts imply, stamped inside the finalizer's own run;
- time zones: in sessions set to America/Los_Angeles and Asia/Tokyo, the freshness view agrees with a UTC
  computation and the stored stamps are UTC;
- the analyst role, with secondary roles off: calls BUILD_ANALYTICS and RUN_DQ, is refused writes;
- the event table: this database's procedures' log records arrive (skipped when the account has none active).

Skipped unless API2SNOW_LIVE_CONNECTION names a `snow` connection (~/.snowflake/config.toml). It needs:
- API2SNOW_LIVE_CONNECTION: a connection whose user may use ACCOUNTADMIN, or API2SNOW_LIVE_SKIP_ADMIN=1
  when an admin already ran external_access/02 for this database (docs/DEPLOY.md); its user must be able to
  use the analyst role (external_access/02 grants it to SYSADMIN);
- the secrets, as for a deploy: API2SNOW_API_B_KEY, API2SNOW_API_C_USER, API2SNOW_API_C_PASSWORD, and for the
  admin part API2SNOW_API_A_CLIENT_ID, API2SNOW_API_A_CLIENT_SECRET (API A's OAuth2 integration) and
  API2SNOW_AWS_ROLE_ARN, and API2SNOW_ALERT_WEBHOOK_SECRET (the alert webhook's secret part, docs/DEPLOY.md);
- API2SNOW_LIVE_<KEY> for any snowflake.yml env value: API2SNOW_LIVE_API_A_BASE_URL=https://... and its B
  and C siblings for the mock APIs made reachable from Snowflake (`api2snow mock-apis` behind a public
  HTTPS endpoint) or for real sandbox APIs; API2SNOW_LIVE_BUCKET, API2SNOW_LIVE_REGION and
  API2SNOW_LIVE_STORAGE_AWS_ROLE_ARN for your bucket. Unset keys come from deploy/envs.yml [dev];
- AWS credentials that may read and put the bucket's notification configuration: the deploy applies it
  (`api2snow deploy --apply-s3-notification`), and auto-ingest depends on it;
- optional: API2SNOW_LIVE_EVENTS_ROLE, a role that may read the active event table (default ACCOUNTADMIN, or
  the owner role with API2SNOW_LIVE_SKIP_ADMIN=1; the default table needs SNOWFLAKE.EVENTS_VIEWER);
  API2SNOW_LIVE_EVENT_WAIT_S bounds the wait for event-table ingestion (default 600).
Run:  API2SNOW_LIVE_CONNECTION=<name> ... .venv/bin/pytest -m snowflake tests/test_live_snowflake.py -v -s

The external access integrations are account-wide, named per environment (dev: API2SNOW_*_EAI_DEV): while
this suite runs, dev's point at the throwaway database. Use a sandbox account, or redeploy dev afterwards.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from api2snow.loading import landings
from api2snow.platform import copy_history_paths
from api2snow.quality import analysed_sources
from api2snow.sources import SOURCES

from api2snow_cli.deploy import (
    ADMIN_ROLE,
    DeployError,
    build_plan,
    load_project,
    missing_secrets,
    remote_latest_run_rows,
    run_plan,
    snow_query,
    teardown_plan,
)
from api2snow_cli.history import GraphRunStatus, TaskStatus, graph_run_status
from api2snow_cli.local.tasks import project_task_graph
from api2snow_cli.project import PROJECT_ROOT

CONNECTION = os.environ.get("API2SNOW_LIVE_CONNECTION")
SKIP_ADMIN = os.environ.get("API2SNOW_LIVE_SKIP_ADMIN") == "1"
EVENTS_ROLE = os.environ.get("API2SNOW_LIVE_EVENTS_ROLE")
HOW = (
    "live Snowflake suite: set API2SNOW_LIVE_CONNECTION=<snow connection>, the API2SNOW_* secret "
    "variables and API2SNOW_LIVE_<KEY> env values (this file's docstring, docs/DEPLOY.md), then run "
    ".venv/bin/pytest -m snowflake tests/test_live_snowflake.py"
)
RUN_TIMEOUT_S = int(os.environ.get("API2SNOW_LIVE_RUN_TIMEOUT_S", "2400"))
EVENT_WAIT_S = int(os.environ.get("API2SNOW_LIVE_EVENT_WAIT_S", "600"))
RETRY_GRACE_S = 180.0  # how long a finished, failed run is watched for an auto-retry attempt
COPY_HISTORY_WAIT_S = 300.0
POLL_S = 20.0
CLOCK_SLACK_S = 120  # this machine's clock against Snowflake's, and DATEDIFF's boundary counting
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"}
NOT_SUCCEEDED = {"FAILED", "CANCELLED"}
# Session time zones for the timestamp tests, with their UTC offsets in minutes (with and without DST).
TIME_ZONE_OFFSETS = {"America/Los_Angeles": {-480, -420}, "Asia/Tokyo": {540}}
DEFAULT_EVENT_TABLE = "SNOWFLAKE.TELEMETRY.EVENTS"  # active when the account sets no EVENT_TABLE
NOT_AUTHORIZED = re.compile(r"does not exist or not authorized|insufficient privileges", re.IGNORECASE)
UNKNOWN_PROCEDURE = re.compile(r"unknown (user-defined )?(function|procedure)", re.IGNORECASE)
LAYERS = {  # table -> layer; each must hold rows after one graph run
    "RAW.API_A_EVENTS": "RAW",
    "RAW.API_B_EVENTS": "RAW",
    "RAW.API_C_CAMERAS": "RAW",
    "CLEAN.CLN_API_A_EVENTS": "CLEAN",
    "CLEAN.CLN_API_B_EVENTS": "CLEAN",
    "CLEAN.DIM_CAMERAS": "CLEAN",
    "ANALYTICS.ANL_DAILY_SUMMARY": "ANALYTICS",
    "ANALYTICS.DQ_CHECK_RESULTS": "ANALYTICS",
    "OPS.PIPELINE_RUNS": "OPS",
    "OPS.PIPELINE_METRICS": "OPS",
    "OPS.BATCH_LEDGER": "OPS",
}

pytestmark = [
    pytest.mark.snowflake,
    pytest.mark.skipif(not CONNECTION, reason=HOW),
    pytest.mark.timeout(RUN_TIMEOUT_S + 1800 + EVENT_WAIT_S),
]


def _overrides() -> dict[str, str]:
    keys = yaml.safe_load((PROJECT_ROOT / "snowflake.yml").read_text())["env"]
    values = {
        key: os.environ[f"API2SNOW_LIVE_{key.upper()}"]
        for key in keys
        if f"API2SNOW_LIVE_{key.upper()}" in os.environ
    }
    values["database"] = f"API2SNOW_LIVE_{uuid.uuid4().hex[:8].upper()}"
    values.setdefault("task_schedule", "USING CRON 0 0 1 1 * UTC")  # no scheduled run during the suite
    return values


def _deploy_plan(project):
    """`api2snow deploy --apply-s3-notification`: the auto-ingest pipes load nothing without the bucket's
    event notification, so the suite deploys as an operator who lets deploy apply it."""
    return build_plan(
        project,
        "dev",
        CONNECTION,
        skip_admin=SKIP_ADMIN,
        secrets_from_env=True,
        apply_s3_notification=True,
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _lit(value: str) -> str:
    """A Snowflake string literal (backslash and quote escaped)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def _ntz(value: datetime) -> str:
    """A naive-UTC TIMESTAMP_NTZ literal of an aware datetime."""
    return f"{_lit(value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S'))}::TIMESTAMP_NTZ"


def _in_session(
    project, statements: list[str], role: str | None = None, setup: tuple[str, ...] = ()
) -> list[dict]:
    """`setup`, then the project's warehouse (the connection's default may not be one `role` can use), then
    `statements`, in one `snow sql` session; the last statement's rows. `role` defaults to the owner."""
    warehouse = [f"USE WAREHOUSE {project.env['warehouse']}"] if project.env.get("warehouse") else []
    role = role or project.env["owner_role"]
    return snow_query(CONNECTION, ";\n".join([*setup, *warehouse, *statements]), role=role, cwd=project.root)


def _query(project, sql: str) -> list[dict]:
    return _in_session(project, [sql])


def _as_analyst(project, sql: str) -> list[dict]:
    """`sql` with the analyst role alone: secondary roles off first, or a user whose
    DEFAULT_SECONDARY_ROLES is ('ALL') would act with every role it holds (the warehouse included) and no
    refusal could be seen."""
    return _in_session(project, [sql], role=project.env["analyst_role"], setup=("USE SECONDARY ROLES NONE",))


def _refused(project, sql: str) -> str:
    """The error message of `sql` run as the analyst; fails the test when the statement ran."""
    try:
        rows = _as_analyst(project, sql)
    except DeployError as exc:
        return str(exc)
    pytest.fail(f"the analyst role ran {sql!r}: {rows!r}")


def _call_result(rows: list[dict]) -> dict[str, Any]:
    """A procedure's VARIANT return value (`snow` prints it as JSON text) from a CALL's one row."""
    assert len(rows) == 1 and len(rows[0]) == 1, f"a CALL returned {rows!r}"
    value = next(iter(rows[0].values()))
    result = json.loads(value) if isinstance(value, str) else value
    assert isinstance(result, dict), f"the procedure returned {value!r}, not an object"
    return result


def _row_count(project, table: str) -> int:
    rows = _query(project, f"SELECT COUNT(*) AS n FROM {table}")
    assert len(rows) == 1, f"SELECT COUNT(*) FROM {table} returned {rows!r}"
    return int(rows[0]["N"])


def _parse_status_time(value: str) -> datetime:
    """A SYSTEM$PIPE_STATUS timestamp ("2026-11-30T10:00:00.123Z")."""
    return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))


# ---- the deployment and the one graph run -------------------------------------------------------------
@dataclass(frozen=True)
class GraphRun:
    """The graph run the suite started: its latest attempt per task, as TASK_HISTORY gave it once finished."""

    status: GraphRunStatus
    rows: list[Any]
    started: datetime  # UTC, 30 s before EXECUTE TASK
    settled: datetime  # UTC, when the finalizer's last attempt was seen finished

    @property
    def run_id(self) -> str:
        return str(self.status.run_id)

    def not_succeeded(self) -> dict[str, tuple[str, str | None]]:
        return {t.name: (t.state, t.error) for t in self.status.tasks if t.state != "SUCCEEDED"}

    def elapsed_s(self) -> float:
        return (datetime.now(UTC) - self.started).total_seconds()


def _task(status: GraphRunStatus, name: str) -> TaskStatus | None:
    return next((t for t in status.tasks if t.name == name), None)


def _finished(status: GraphRunStatus, finalizer: TaskStatus | None) -> bool:
    """The finalizer's latest attempt ended, it is the run's latest attempt, and nothing is still running."""
    if finalizer is None or finalizer.state not in TERMINAL:
        return False
    if any(t.state in ("SCHEDULED", "EXECUTING") for t in status.tasks):
        return False
    return finalizer.attempt >= max(t.attempt for t in status.tasks)


def _require_success(run: GraphRun) -> None:
    failed = run.not_succeeded()
    if failed:
        pytest.fail(f"graph run {run.run_id} did not succeed ({failed}): nothing more to check here")


@pytest.fixture(scope="module")
def project():
    project = load_project("dev", _overrides())
    plan = _deploy_plan(project)
    missing = missing_secrets(plan)
    assert not missing, f"the live suite needs {', '.join(missing)} (see {__file__})"
    print(f"\nlive suite: deploying into {project.env['database']} on connection {CONNECTION}")
    try:
        run_plan(plan, dry_run=False, echo=print)
        yield project
    finally:
        run_plan(teardown_plan(project, "dev", CONNECTION), dry_run=False, echo=print)
        left = _query(project, f"SHOW DATABASES LIKE '{project.env['database']}'")
        assert not left, f"teardown left database {project.env['database']} behind"


@pytest.fixture(scope="module")
def graph(project):
    return project_task_graph(project)


@pytest.fixture(scope="module")
def graph_run(project, graph) -> GraphRun:
    """EXECUTE TASK on the root once, then wait until the run group is over: the finalizer's latest attempt
    finished, and, when a task failed, no auto-retry attempt (TASK_AUTO_RETRY_ATTEMPTS) follows."""
    db = project.env["database"]
    started = datetime.now(UTC) - timedelta(seconds=30)
    _query(project, f"EXECUTE TASK {db}.PIPELINE.ROOT")
    attempts = 1 + graph.root.retry_attempts
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = None
    seen: tuple[Any, int] | None = None
    seen_at = 0.0
    while time.monotonic() < deadline:
        rows = remote_latest_run_rows(project, CONNECTION)
        status = graph_run_status(rows, graph)
        ours = bool(rows) and _aware(rows[0]["SCHEDULED_TIME"]) >= started
        finalizer = _task(status, graph.finalizer.short_name)
        if ours and finalizer is not None and _finished(status, finalizer):
            failed = any(t.state in NOT_SUCCEEDED for t in status.tasks)
            if not failed or finalizer.attempt >= attempts:
                return GraphRun(status, rows, started, datetime.now(UTC))
            if seen != (status.run_id, finalizer.attempt):
                seen, seen_at = (status.run_id, finalizer.attempt), time.monotonic()
            elif time.monotonic() - seen_at >= RETRY_GRACE_S:  # no retry came: this attempt is the last
                return GraphRun(status, rows, started, datetime.now(UTC))
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
    pytest.fail(f"the graph run did not finish within {RUN_TIMEOUT_S} s: {status and status.to_dict()}")


def _run_batches(project, run_id: str) -> list[dict[str, Any]]:
    db = project.env["database"]
    rows = _query(
        project,
        "SELECT batch_id, source, status, staged, rejected, manifest::STRING AS manifest "
        f"FROM {db}.OPS.BATCH_LEDGER WHERE run_id = {_lit(run_id)} ORDER BY source, batch_id",
    )
    return [{**row, "MANIFEST": json.loads(row["MANIFEST"] or "{}")} for row in rows]


# ---- the deployment -----------------------------------------------------------------------------------
def test_deploy_created_every_task_pipe_procedure_and_secret(project, graph):
    db = project.env["database"]
    tasks = {row["name"] for row in _query(project, f"SHOW TASKS IN SCHEMA {db}.PIPELINE")}
    assert tasks == {t.short_name for t in graph.tasks.values()}
    pipes = {row["name"] for row in _query(project, f"SHOW PIPES IN SCHEMA {db}.RAW")}
    assert pipes == {s.pipe.split(".")[-1] for s in SOURCES.values()} | {"REJECTED_RECORDS_PIPE"}
    procedures = {row["name"] for row in _query(project, f"SHOW USER PROCEDURES IN SCHEMA {db}.OPS")}
    assert procedures == set(project.procedures())
    secrets = {row["name"] for row in _query(project, f"SHOW SECRETS IN SCHEMA {db}.OPS")}
    declared = {f"{s.declaration.auth.secret.upper()}_SECRET" for s in SOURCES.values()}  # type: ignore[attr-defined]
    assert secrets == declared | {"AWS_S3_SECRET", "ALERT_WEBHOOK_SECRET"}
    states = {row["name"]: row["state"] for row in _query(project, f"SHOW TASKS IN SCHEMA {db}.PIPELINE")}
    assert states[graph.root.short_name] == "started", "deploy did not resume the graph"


def test_every_raw_pipe_auto_ingests_through_a_notification_channel(project):
    """AUTO_INGEST = TRUE pipes on an S3 stage have an SQS queue (SHOW PIPES notification_channel); a pipe
    created without it has none, and deploy never recreates a pipe."""
    db = project.env["database"]
    channels = {
        row["name"]: row.get("notification_channel")
        for row in _query(project, f"SHOW PIPES IN SCHEMA {db}.RAW")
    }
    assert channels, f"no pipes in {db}.RAW"
    without = {
        name: channel
        for name, channel in channels.items()
        if not str(channel or "").startswith("arn:aws:sqs:")
    }
    assert not without, f"pipes without an SQS notification channel (not AUTO_INGEST): {without}"


def test_the_analyst_role_holds_nothing_on_raw_clean_secrets_or_integrations(project):
    db = project.env["database"]
    grants = _query(project, f"SHOW GRANTS TO ROLE {project.env['analyst_role']}")
    assert grants, "SHOW GRANTS TO ROLE <analyst> returned nothing: sql/07_grants.sql did not run"
    ours = [
        (row["privilege"], row["granted_on"], row["name"])
        for row in grants
        if str(row["name"]).upper().startswith(f"{db}.") or row["granted_on"] == "DATABASE"
    ]
    forbidden = [
        g
        for g in ours
        if g[1] in ("SECRET", "INTEGRATION")
        or f"{db}.RAW." in str(g[2]).upper()
        or f"{db}.CLEAN." in str(g[2]).upper()
    ]
    assert not forbidden, f"the analyst role can reach {forbidden}"
    assert any(g[1] == "VIEW" and f"{db}.ANALYTICS." in str(g[2]).upper() for g in ours), ours


# ---- one graph run ------------------------------------------------------------------------------------
def test_one_graph_run_succeeds_and_fills_every_layer(project, graph, graph_run):
    db = project.env["database"]
    failed = graph_run.not_succeeded()
    assert not failed, f"graph run {graph_run.run_id}: tasks that did not succeed: {failed}"
    for task in graph_run.status.tasks:
        if task.name != graph.root.short_name:
            assert task.return_value, f"{task.name} set no return value (SYSTEM$SET_RETURN_VALUE)"
    counts = _query(
        project,
        " UNION ALL ".join(
            f"SELECT '{table}' AS table_name, COUNT(*) AS row_count FROM {db}.{table}" for table in LAYERS
        ),
    )
    empty = [row["TABLE_NAME"] for row in counts if int(row["ROW_COUNT"]) == 0]
    assert len(counts) == len(LAYERS) and not empty, f"no rows in {empty}"


def _copy_history(project, table: str) -> list[dict]:
    """COPY_HISTORY of one RAW table over the last day (well inside its 14 days); `SELECT *` because
    STAGE_LOCATION is read when given, as platform.load_errors does."""
    db = project.env["database"]
    return _query(
        project,
        f"SELECT * FROM TABLE({db}.INFORMATION_SCHEMA.COPY_HISTORY("
        f"TABLE_NAME => {_lit(f'{db}.{table}')}, START_TIME => DATEADD('day', -1, CURRENT_TIMESTAMP())))",
    )


def _copy_history_gaps(project, table: str, files: dict[str, tuple[str, str, int]]) -> dict[str, str]:
    """Of `files` (key -> (pipe, batch id, rows)), those COPY_HISTORY does not show as Loaded by their pipe
    with their rows (summed over its Loaded rows, so a file loaded twice shows too), with what it shows."""
    db = project.env["database"].upper()
    seen: dict[str, list[dict]] = defaultdict(list)
    for row in _copy_history(project, table):
        for path in copy_history_paths(str(row["FILE_NAME"]), row.get("STAGE_LOCATION")):
            if path in files:
                seen[path].append(row)
    gaps = {}
    for key, (pipe, _, rows) in files.items():
        loaded = [r for r in seen[key] if str(r.get("STATUS", "")).lower() == "loaded"]
        by_pipe = [r for r in loaded if r.get("PIPE_NAME") == pipe and r.get("PIPE_CATALOG_NAME") == db]
        loaded_rows = sum(int(r.get("ROW_COUNT") or 0) for r in loaded)
        if not by_pipe or len(by_pipe) != len(loaded) or loaded_rows != rows:
            shown = [(r.get("STATUS"), r.get("PIPE_NAME"), r.get("ROW_COUNT")) for r in seen[key]]
            gaps[key] = f"expected Loaded by {pipe} with {rows} rows, COPY_HISTORY shows {shown or 'nothing'}"
    return gaps


def test_the_run_staged_files_landed_in_raw_through_their_auto_ingest_pipes(project, graph_run):
    """Every batch of the run is MERGED; each staged file (part or rejects file) is in its RAW table with
    exactly its manifest's rows, and in COPY_HISTORY as Loaded by its pipe; and each pipe that had files
    got S3's event for them through its notification channel (not only the REFRESH safety net)."""
    _require_success(graph_run)
    db = project.env["database"]
    batches = _run_batches(project, graph_run.run_id)
    assert Counter(b["SOURCE"] for b in batches) == Counter(list(SOURCES)), (
        f"expected one ledger batch per source in run {graph_run.run_id}, got {batches}"
    )
    not_merged = {b["BATCH_ID"]: (b["SOURCE"], b["STATUS"]) for b in batches if b["STATUS"] != "MERGED"}
    assert not not_merged, f"batches of a succeeded run not MERGED: {not_merged}"

    expected: dict[str, dict[str, tuple[str, str, int]]] = defaultdict(
        dict
    )  # table -> key -> pipe, batch, rows
    for batch in batches:
        manifest = batch["MANIFEST"]
        part_rows = sum(int(f["rows"]) for f in manifest.get("parts", []))
        reject_rows = sum(int(f["rows"]) for f in manifest.get("rejects", []))
        assert int(batch["STAGED"]) == part_rows == int(manifest.get("staged_rows", -1)), batch
        assert int(batch["REJECTED"] or 0) == reject_rows, batch
        for landing in landings(batch["SOURCE"]):
            for staged in manifest.get(landing.manifest_key, []):
                pipe = landing.pipe.rsplit(".", 1)[-1]
                expected[landing.table][staged["key"]] = (pipe, batch["BATCH_ID"], int(staged["rows"]))
    missing_tables = {s.raw_table for s in SOURCES.values()} - set(expected)
    assert not missing_tables, f"the first run staged no file for {missing_tables}"

    for table, files in sorted(expected.items()):
        batch_ids = sorted({batch_id for _, batch_id, _ in files.values()})
        rows = _query(
            project,
            f"SELECT batch_id, file_name, COUNT(*) AS row_count FROM {db}.{table} "
            f"WHERE batch_id IN ({', '.join(_lit(b) for b in batch_ids)}) GROUP BY batch_id, file_name",
        )
        in_raw = {(r["BATCH_ID"], posixpath.basename(r["FILE_NAME"])): int(r["ROW_COUNT"]) for r in rows}
        staged = {(b, posixpath.basename(key)): n for key, (_, b, n) in files.items()}
        assert in_raw == staged, f"{table}: RAW rows per (batch, file) {in_raw} != the manifests' {staged}"

    for table, files in sorted(expected.items()):
        deadline = time.monotonic() + COPY_HISTORY_WAIT_S
        while (gaps := _copy_history_gaps(project, table, files)) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        assert not gaps, f"{table}: {gaps}"

    channels = {
        row["name"]: row.get("notification_channel")
        for row in _query(project, f"SHOW PIPES IN SCHEMA {db}.RAW")
    }
    for pipe in sorted({pipe for files in expected.values() for pipe, _, _ in files.values()}):
        rows = _query(project, f"SELECT SYSTEM$PIPE_STATUS({_lit(f'{db}.RAW.{pipe}')}) AS pipe_status")
        status = json.loads(rows[0]["PIPE_STATUS"])
        assert status.get("executionState") == "RUNNING", f"{pipe}: {status}"
        assert status.get("pendingFileCount") == 0, f"{pipe}: {status}"
        assert status.get("notificationChannelName") == channels[pipe], f"{pipe}: {status}"
        forwarded = status.get("lastForwardedMessageTimestamp")
        earliest = graph_run.started - timedelta(seconds=CLOCK_SLACK_S)
        assert forwarded and _parse_status_time(forwarded) >= earliest, (
            f"{pipe}: no S3 event for this run's files reached the pipe (lastForwardedMessageTimestamp "
            f"{forwarded!r}, run started {graph_run.started:%Y-%m-%dT%H:%M:%SZ}): is the bucket notification "
            f"applied? {status}"
        )


def test_the_finalizer_recorded_the_run_once_as_task_history_implies(project, graph, graph_run):
    """One OPS.PIPELINE_RUNS row, keyed by the graph run group id; its STATE and counts are what the latest
    attempt of every other task implies; FINISHED_AT (naive UTC) falls inside the finalizer's last attempt."""
    db = project.env["database"]
    rows = remote_latest_run_rows(project, CONNECTION)
    status = graph_run_status(rows, graph)
    assert status.run_id == graph_run.run_id, f"another graph run ({status.run_id}) started after ours"
    finalizer = graph.finalizer.short_name
    latest = {str(r["NAME"]).upper(): str(r["STATE"]) for r in rows if str(r["NAME"]).upper() != finalizer}
    failed = sorted(name for name, state in latest.items() if state in NOT_SUCCEEDED)
    succeeded = sorted(name for name, state in latest.items() if state == "SUCCEEDED")
    records = _query(
        project,
        f"SELECT run_id, state, tasks_succeeded, tasks_failed, first_error FROM {db}.OPS.PIPELINE_RUNS",
    )
    assert [r["RUN_ID"] for r in records] == [graph_run.run_id], f"expected one row for the run: {records}"
    record = records[0]
    implied = ("FAILED" if failed else "SUCCEEDED", len(succeeded), len(failed))
    recorded = (record["STATE"], int(record["TASKS_SUCCEEDED"]), int(record["TASKS_FAILED"]))
    assert recorded == implied, f"PIPELINE_RUNS says {recorded}, TASK_HISTORY's latest attempts {latest}"
    if failed:
        assert str(record["FIRST_ERROR"] or "").split(":", 1)[0].upper() in failed, record
    else:
        assert record["FIRST_ERROR"] is None, record
        assert succeeded == sorted(t.short_name for t in graph.order()), latest

    timing = _query(
        project,
        f"""SELECT
    DATEDIFF('second', CONVERT_TIMEZONE('UTC', history.query_start_time)::TIMESTAMP_NTZ, runs.finished_at)
        AS after_start_s,
    DATEDIFF('second', runs.finished_at, CONVERT_TIMEZONE('UTC', history.completed_time)::TIMESTAMP_NTZ)
        AS before_end_s
FROM {db}.OPS.PIPELINE_RUNS AS runs
INNER JOIN TABLE({db}.INFORMATION_SCHEMA.TASK_HISTORY(
    SCHEDULED_TIME_RANGE_START => DATEADD('day', -1, CURRENT_TIMESTAMP()),
    RESULT_LIMIT => 10000
)) AS history
    ON history.graph_run_group_id = runs.run_id
WHERE history.name = {_lit(finalizer)} AND history.database_name = {_lit(db.upper())}
QUALIFY ROW_NUMBER() OVER (ORDER BY history.attempt_number DESC) = 1""",
    )
    assert len(timing) == 1, f"no TASK_HISTORY row of {finalizer} for run {graph_run.run_id}: {timing}"
    after_start, before_end = int(timing[0]["AFTER_START_S"]), int(timing[0]["BEFORE_END_S"])
    assert after_start >= 0 and before_end >= 0, (
        f"PIPELINE_RUNS.FINISHED_AT is {after_start} s after the finalizer started and {before_end} s "
        "before it completed (both UTC): not written in the finalizer's own run, or not stored as UTC"
    )


@pytest.mark.parametrize("time_zone", sorted(TIME_ZONE_OFFSETS))
def test_stored_times_are_utc_in_a_session_of_any_time_zone(project, graph_run, time_zone):
    """With the session's TIMEZONE far from UTC, VW_DATA_FRESHNESS's minutes equal a UTC computation
    (SYSDATE() is UTC), and the run's stamps lie between its start and now in UTC: wall time of the session
    (or of the account's America/Los_Angeles default) would be hours off either way."""
    _require_success(graph_run)
    db = project.env["database"]
    owner = project.env["owner_role"]
    session = f"ALTER SESSION SET TIMEZONE = {_lit(time_zone)}"
    freshness = _in_session(
        project,
        [
            session,
            f"""SELECT
    ROUND(DATEDIFF('second', SYSDATE(), CURRENT_TIMESTAMP()::TIMESTAMP_NTZ) / 60) AS session_offset_min,
    f.source,
    f.minutes_since_last_load,
    f.minutes_since_last_batch,
    f.minutes_since_last_event,
    DATEDIFF('minute', f.last_loaded_at, SYSDATE()) AS utc_minutes_since_last_load,
    DATEDIFF('minute', f.last_batch_loaded_at, SYSDATE()) AS utc_minutes_since_last_batch,
    DATEDIFF('minute', f.last_event_at, SYSDATE()) AS utc_minutes_since_last_event
FROM {db}.ANALYTICS.VW_DATA_FRESHNESS AS f
ORDER BY f.source""",
        ],
        role=owner,
    )
    elapsed_min = graph_run.elapsed_s() / 60
    assert {r["SOURCE"] for r in freshness} == {"api_a", "api_b"}, freshness
    for row in freshness:
        offset = round(float(row["SESSION_OFFSET_MIN"]))
        assert offset in TIME_ZONE_OFFSETS[time_zone], f"the session is not in {time_zone}: {row}"
        for what in ("load", "batch", "event"):
            view, utc = (
                row[f"MINUTES_SINCE_LAST_{what.upper()}"],
                row[f"UTC_MINUTES_SINCE_LAST_{what.upper()}"],
            )
            assert view is not None and utc is not None, f"{row['SOURCE']}: no last {what}: {row}"
            assert abs(int(view) - int(utc)) <= 1, f"{row['SOURCE']} in {time_zone}: {what} minutes {row}"
        for what in ("load", "batch"):  # both happened during the run
            minutes = int(row[f"MINUTES_SINCE_LAST_{what.upper()}"])
            assert -2 <= minutes <= elapsed_min + 2, f"{row['SOURCE']}: last {what} {minutes} min ago: {row}"

    stamps = {
        "OPS.BATCH_LEDGER": ("STARTED_AT", "STAGED_AT", "LOADED_AT", "MERGED_AT"),
        "OPS.PIPELINE_RUNS": ("FINISHED_AT",),
    }
    ages = _in_session(
        project,
        [
            session,
            "WITH now_utc AS (SELECT CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ AS ts)\n"
            + "\nUNION ALL\n".join(
                f"SELECT '{table}.{column}' AS stamp, DATEDIFF('second', t.{column}, now_utc.ts) AS age_s "
                f"FROM {db}.{table} AS t, now_utc WHERE t.run_id = {_lit(graph_run.run_id)}"
                for table, columns in stamps.items()
                for column in columns
            ),
        ],
        role=owner,
    )
    elapsed_s = graph_run.elapsed_s()
    found = Counter(r["STAMP"] for r in ages)
    assert found == Counter(
        {f"OPS.BATCH_LEDGER.{c}": len(SOURCES) for c in stamps["OPS.BATCH_LEDGER"]}
        | {"OPS.PIPELINE_RUNS.FINISHED_AT": 1}
    ), found
    outside = [
        (r["STAMP"], r["AGE_S"])
        for r in ages
        if r["AGE_S"] is None or not -CLOCK_SLACK_S <= int(r["AGE_S"]) <= elapsed_s + CLOCK_SLACK_S
    ]
    assert not outside, (
        f"stamps (age in s against CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP()), in a {time_zone} session) "
        f"outside the run's {elapsed_s:.0f} s: {outside}"
    )


# ---- the analyst role ---------------------------------------------------------------------------------
def test_the_analyst_role_calls_its_procedures_and_is_refused_writes(project, graph_run):
    """As the analyst role alone (secondary roles off): BUILD_ANALYTICS and RUN_DQ run (owner's rights) and
    return their summaries; a write to CLEAN or ANALYTICS and a procedure not granted are refused."""
    _require_success(graph_run)
    db = project.env["database"]
    who = _as_analyst(project, "SELECT CURRENT_ROLE() AS role_name, CURRENT_SECONDARY_ROLES() AS secondary")
    assert who[0]["ROLE_NAME"] == project.env["analyst_role"].upper(), who
    assert not json.loads(who[0]["SECONDARY"]).get("roles"), f"secondary roles are still on: {who}"

    summary = _call_result(_as_analyst(project, f"CALL {db}.OPS.BUILD_ANALYTICS()"))
    assert set(summary) == {"daily_summary"}, summary
    assert set(summary["daily_summary"]) == {"days_refreshed", "rows_changed"}, summary  # the days queued
    days = int(_as_analyst(project, f"SELECT COUNT(*) AS n FROM {db}.ANALYTICS.VW_DAILY_SUMMARY")[0]["N"])
    stored = int(_as_analyst(project, f"SELECT COUNT(*) AS n FROM {db}.ANALYTICS.ANL_DAILY_SUMMARY")[0]["N"])
    assert days > 0 and stored == days, f"ANL_DAILY_SUMMARY has {stored} days; VW_DAILY_SUMMARY has {days}"

    dq = _call_result(_as_analyst(project, f"CALL {db}.OPS.RUN_DQ()"))
    assert set(dq) == {"run_id", "checks", "passed", "failed_error", "failed_warn", "batches_checked"}, dq
    assert str(dq["run_id"]).startswith("manual-"), f"a CALL outside the graph took a graph run id: {dq}"
    assert int(dq["checks"]) == 15 * len(analysed_sources()), dq  # the hourly per-source checks

    full = _call_result(_as_analyst(project, f"CALL {db}.OPS.RECONCILE()"))  # the daily task's work
    checks = int(_as_analyst(project, f"SELECT COUNT(*) AS n FROM {db}.ANALYTICS.VW_DQ_CHECKS")[0]["N"])
    assert checks > 0 and int(full["checks"]) == checks and not full["failed_error"], full
    assert int(dq["passed"]) + len(dq["failed_error"]) + len(dq["failed_warn"]) == checks, dq
    recorded = _as_analyst(
        project,
        f"SELECT COUNT(*) AS n, COUNT_IF(passed) AS passed FROM {db}.ANALYTICS.DQ_CHECK_RESULTS "
        f"WHERE run_id = {_lit(dq['run_id'])}",
    )
    assert (int(recorded[0]["N"]), int(recorded[0]["PASSED"])) == (checks, int(dq["passed"])), recorded

    clean_rows = _row_count(project, f"{db}.CLEAN.CLN_API_A_EVENTS")
    error = _refused(
        project, f"INSERT INTO {db}.CLEAN.CLN_API_A_EVENTS (EVENT_ID) VALUES ('api2snow-live-analyst-write')"
    )
    assert NOT_AUTHORIZED.search(error), f"INSERT into CLEAN failed, but not for lack of privileges: {error}"
    assert _row_count(project, f"{db}.CLEAN.CLN_API_A_EVENTS") == clean_rows
    summary_rows = _row_count(project, f"{db}.ANALYTICS.ANL_DAILY_SUMMARY")
    error = _refused(
        project,
        f"INSERT INTO {db}.ANALYTICS.ANL_DAILY_SUMMARY (SOURCE, EVENT_DATE) "
        "VALUES ('api2snow_live', CURRENT_DATE())",
    )
    assert re.search(r"insufficient privileges", error, re.IGNORECASE), (
        f"INSERT into ANALYTICS (SELECT granted, INSERT not) failed otherwise: {error}"
    )
    assert _row_count(project, f"{db}.ANALYTICS.ANL_DAILY_SUMMARY") == summary_rows
    error = _refused(project, f"CALL {db}.OPS.BUILD_CLEAN()")
    assert NOT_AUTHORIZED.search(error) or UNKNOWN_PROCEDURE.search(error), (
        f"CALL BUILD_CLEAN (no USAGE granted) failed otherwise: {error}"
    )


def test_the_analyst_reads_status_backfills_a_window_and_lists_rejects(project, graph_run):
    """As the analyst role alone: PIPELINE_STATUS and REJECTS return their declared columns (table
    procedures), BACKFILL re-reads a past window of the first incremental source through BACKFILL_<SOURCE>
    without moving its watermark, a bad argument fails in one line, and BACKFILL_<SOURCE> is refused."""
    from api2snow.analyst import PIPELINE_STATUS_COLUMNS, REJECTS_COLUMNS

    _require_success(graph_run)
    db = project.env["database"]
    status = _as_analyst(project, f"CALL {db}.OPS.PIPELINE_STATUS()")
    assert [list(row) for row in status] == [[c for c, _ in PIPELINE_STATUS_COLUMNS]] * len(SOURCES), status
    assert {row["SOURCE"] for row in status} == set(SOURCES) and {
        row["LAST_RUN_STATE"] for row in status
    } == {"SUCCEEDED"}, status
    source = next(name for name, s in SOURCES.items() if s.incremental)
    watermark = _query(project, f"SELECT watermark FROM {db}.OPS.WATERMARKS WHERE source = {_lit(source)}")
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    window = f"{_lit(source)}, {_lit((end - timedelta(hours=2)).isoformat())}, {_lit(end.isoformat())}"
    result = _call_result(_as_analyst(project, f"CALL {db}.OPS.BACKFILL({window})"))
    assert result["status"] == "MERGED" and result["kind"] == "BACKFILL", result
    assert result["fetched"] == result["staged"] + result["rejected"] + result["duplicates"], result
    assert result["loaded_rows"] == result["staged"], result
    assert (
        _query(project, f"SELECT watermark FROM {db}.OPS.WATERMARKS WHERE source = {_lit(source)}")
        == watermark
    )
    error = _refused(project, f"CALL {db}.OPS.BACKFILL({_lit(source)}, 'yesterday', {_lit(end.isoformat())})")
    assert "argument from_ts must be an ISO 8601 timestamp" in error, error
    error = _refused(project, f"CALL {db}.OPS.BACKFILL_{source.upper()}('2024-01-01', '2024-01-02')")
    assert NOT_AUTHORIZED.search(error) or UNKNOWN_PROCEDURE.search(error), error
    since = _lit((datetime.now(UTC) - timedelta(days=1)).isoformat())
    rejects = _as_analyst(project, f"CALL {db}.OPS.REJECTS({_lit(source)}, {since})")
    assert all(list(row) == [c for c, _ in REJECTS_COLUMNS] for row in rejects), rejects


# ---- the event table ----------------------------------------------------------------------------------
def _parameter(project, name: str, scope: str, role: str) -> dict | None:
    """SHOW PARAMETERS LIKE `name` IN `scope`: its row, or None when the scope does not list it."""
    try:
        rows = snow_query(
            CONNECTION, f"SHOW PARAMETERS LIKE {_lit(name)} IN {scope}", role=role, cwd=project.root
        )
    except DeployError:
        return None
    return next((r for r in rows if str(r.get("key", "")).upper() == name.upper()), None)


def _active_event_table(project, role: str) -> str | None:
    """The event table this database's procedures log to: the database's own EVENT_TABLE when it sets one,
    else the account's; unset means the default SNOWFLAKE.TELEMETRY.EVENTS, NONE means none is active."""
    db = project.env["database"].upper()
    own = _parameter(project, "EVENT_TABLE", f"DATABASE {db}", role)
    if own and str(own.get("level") or "").upper() == "DATABASE" and str(own.get("value") or "").strip():
        value = str(own["value"]).strip()
    else:
        account = _parameter(project, "EVENT_TABLE", "ACCOUNT", role)
        value = str((account or {}).get("value") or "").strip()
    if value.upper() == "NONE":
        return None
    return value or DEFAULT_EVENT_TABLE


def test_procedure_logs_reach_the_active_event_table(project, graph_run):
    """sql/01 sets LOG_LEVEL = INFO on the database, so its procedures' log records reach the active event
    table. The happy path logs nothing of its own, so a known record is provoked: a CALL with a bad argument
    raises, and Snowflake records the unhandled exception (severity FATAL for Python). Once it is in (after
    the documented ingestion delay), the run's own records are judged: none at ERROR or FATAL when the run
    succeeded, the finalizer's ERROR line when it failed."""
    db = project.env["database"].upper()
    owner = project.env["owner_role"]
    log_level = _parameter(project, "LOG_LEVEL", f"DATABASE {db}", owner)
    assert log_level and (str(log_level["value"]).upper(), str(log_level["level"]).upper()) == (
        "INFO",
        "DATABASE",
    ), f"LOG_LEVEL on {db}: {log_level}"

    role = EVENTS_ROLE or (owner if SKIP_ADMIN else ADMIN_ROLE)
    table = _active_event_table(project, role)
    if table is None:
        pytest.skip("the account has no active event table (EVENT_TABLE = NONE): procedure logs go nowhere")
    for scope in (f"DATABASE {db}", "ACCOUNT"):
        reporting = _parameter(project, "ENABLE_UNHANDLED_EXCEPTIONS_REPORTING", scope, role)
        if reporting is not None:
            if str(reporting.get("value")).lower() == "false":
                pytest.skip(f"ENABLE_UNHANDLED_EXCEPTIONS_REPORTING is false ({scope}): no record to provoke")
            break

    probe = f"api2snow_live_probe_{uuid.uuid4().hex[:8]}"
    try:
        _query(project, f"CALL {db}.OPS.REFRESH_PIPE({_lit(probe)})")
    except DeployError as exc:
        assert probe in str(exc), f"REFRESH_PIPE({probe!r}) failed, but not on its argument: {exc}"
    else:
        pytest.fail(f"REFRESH_PIPE({probe!r}) accepted an unknown source")

    since = graph_run.started - timedelta(seconds=CLOCK_SLACK_S)
    until = graph_run.settled + timedelta(seconds=30)
    query = f"""SELECT
    events.record:severity_text::STRING AS severity,
    events.resource_attributes:"snow.executable.name"::STRING AS executable,
    events.record_attributes:"exception.message"::STRING AS exception_message,
    events.value::STRING AS message,
    events.timestamp <= {_ntz(until)} AS in_run
FROM {table} AS events
WHERE events.record_type = 'LOG'
    AND events.resource_attributes:"snow.database.name"::STRING = {_lit(db)}
    AND events.timestamp >= {_ntz(since)}
ORDER BY events.timestamp"""
    deadline = time.monotonic() + EVENT_WAIT_S
    while True:
        try:
            records = _in_session(project, [query], role=role)
        except DeployError as exc:
            if NOT_AUTHORIZED.search(str(exc)):
                pytest.skip(
                    f"role {role} cannot read the event table {table}: set API2SNOW_LIVE_EVENTS_ROLE to a "
                    "role that can (for the default table: GRANT APPLICATION ROLE SNOWFLAKE.EVENTS_VIEWER): "
                    f"{exc}"
                )
            raise
        probes = [r for r in records if probe in f"{r.get('EXCEPTION_MESSAGE')} {r.get('MESSAGE')}"]
        if probes or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    assert probes, (
        f"no LOG record of {db}'s failed CALL REFRESH_PIPE({probe!r}) in {table} within {EVENT_WAIT_S} s "
        f"({len(records)} other records of {db} since the run started)"
    )
    assert probes[0]["SEVERITY"] == "FATAL" and "REFRESH_PIPE" in str(probes[0]["EXECUTABLE"]).upper(), probes

    run_lines = [r for r in records if r["IN_RUN"] and r not in probes]
    print(
        f"\n{len(run_lines)} log records of {db} during graph run {graph_run.run_id}: "
        f"{dict(Counter(r['SEVERITY'] for r in run_lines))}"
    )
    failed = {name: state for name, (state, _) in graph_run.not_succeeded().items() if state in NOT_SUCCEEDED}
    if failed:
        line = f"api2snow graph run {graph_run.run_id} FAILED"
        assert any(line in str(r["MESSAGE"]) for r in run_lines), (
            f"tasks {failed} failed, but the finalizer's ERROR line {line!r} is not in {table}: {run_lines}"
        )
    else:
        errors = [r for r in run_lines if r["SEVERITY"] in ("ERROR", "FATAL")]
        assert not errors, f"a succeeded run logged errors: {errors}"


# ---- a second deploy ----------------------------------------------------------------------------------
def test_a_second_deploy_keeps_pipes_and_tables(project):
    db = project.env["database"]
    before = {row["name"]: row["created_on"] for row in _query(project, f"SHOW PIPES IN SCHEMA {db}.RAW")}
    rows_before = _row_count(project, f"{db}.RAW.API_A_EVENTS")
    run_plan(_deploy_plan(project), dry_run=False, echo=print)
    after = {row["name"]: row["created_on"] for row in _query(project, f"SHOW PIPES IN SCHEMA {db}.RAW")}
    assert after == before, "a redeploy recreated a pipe (its load history is gone)"
    assert _row_count(project, f"{db}.RAW.API_A_EVENTS") == rows_before
