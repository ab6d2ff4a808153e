"""Live suite: deploy into a throwaway database of a real Snowflake account, run the task graph once with
EXECUTE TASK, check every task, every layer and the analyst role's grants, deploy again (nothing that holds
data is recreated), and tear down. Every step goes through the same `api2snow deploy` plan that users run,
so a step that does not happen fails here loudly; nothing is mocked.

Skipped unless API2SNOW_LIVE_CONNECTION names a `snow` connection (~/.snowflake/config.toml). It needs:
- API2SNOW_LIVE_CONNECTION: a connection whose user may use ACCOUNTADMIN, or API2SNOW_LIVE_SKIP_ADMIN=1
  when an admin already ran external_access/02 for this database (docs/DEPLOY.md);
- the secrets, as for a deploy: API2SNOW_API_B_KEY, API2SNOW_API_C_USER, API2SNOW_API_C_PASSWORD, and for the
  admin part API2SNOW_API_A_CLIENT_ID, API2SNOW_API_A_CLIENT_SECRET (API A's OAuth2 integration) and
  API2SNOW_AWS_ROLE_ARN;
- API2SNOW_LIVE_<KEY> for any snowflake.yml env value: API2SNOW_LIVE_API_A_BASE_URL=https://... and its B
  and C siblings for the mock APIs made reachable from Snowflake (`api2snow mock-apis` behind a public
  HTTPS endpoint) or for real sandbox APIs; API2SNOW_LIVE_BUCKET, API2SNOW_LIVE_REGION and
  API2SNOW_LIVE_STORAGE_AWS_ROLE_ARN for your bucket. Unset keys come from deploy/envs.yml [dev].
Run:  API2SNOW_LIVE_CONNECTION=<name> ... .venv/bin/pytest -m snowflake tests/test_live_snowflake.py -v -s

The external access integrations are account-wide, named per environment (dev: API2SNOW_*_EAI_DEV): while
this suite runs, dev's point at the throwaway database. Use a sandbox account, or redeploy dev afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from api2snow_cli.deploy import (
    build_plan,
    load_project,
    missing_secrets,
    remote_latest_run_rows,
    run_plan,
    snow_query,
    teardown_plan,
)
from api2snow_cli.history import graph_run_status
from api2snow_cli.local.tasks import project_task_graph
from api2snow_cli.project import PROJECT_ROOT

CONNECTION = os.environ.get("API2SNOW_LIVE_CONNECTION")
SKIP_ADMIN = os.environ.get("API2SNOW_LIVE_SKIP_ADMIN") == "1"
HOW = (
    "live Snowflake suite: set API2SNOW_LIVE_CONNECTION=<snow connection>, the API2SNOW_* secret "
    "variables and API2SNOW_LIVE_<KEY> env values (this file's docstring, docs/DEPLOY.md), then run "
    ".venv/bin/pytest -m snowflake tests/test_live_snowflake.py"
)
RUN_TIMEOUT_S = int(os.environ.get("API2SNOW_LIVE_RUN_TIMEOUT_S", "2400"))
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"}
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
    pytest.mark.timeout(RUN_TIMEOUT_S + 1800),
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


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _query(project, sql: str) -> list[dict]:
    return snow_query(CONNECTION, sql, role=project.env["owner_role"], cwd=project.root)


def _row_count(project, table: str) -> int:
    rows = _query(project, f"SELECT COUNT(*) AS n FROM {table}")
    assert len(rows) == 1, f"SELECT COUNT(*) FROM {table} returned {rows!r}"
    return int(rows[0]["N"])


@pytest.fixture(scope="module")
def project():
    project = load_project("dev", _overrides())
    plan = build_plan(project, "dev", CONNECTION, skip_admin=SKIP_ADMIN, secrets_from_env=True)
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


def test_deploy_created_every_task_pipe_procedure_and_secret(project, graph):
    db = project.env["database"]
    tasks = {row["name"] for row in _query(project, f"SHOW TASKS IN SCHEMA {db}.PIPELINE")}
    assert tasks == {t.short_name for t in graph.tasks.values()}
    pipes = {row["name"] for row in _query(project, f"SHOW PIPES IN SCHEMA {db}.RAW")}
    assert pipes == {"API_A_EVENTS_PIPE", "API_B_EVENTS_PIPE", "API_C_CAMERAS_PIPE", "REJECTED_RECORDS_PIPE"}
    procedures = {row["name"] for row in _query(project, f"SHOW USER PROCEDURES IN SCHEMA {db}.OPS")}
    assert procedures == set(project.procedures())
    secrets = {row["name"] for row in _query(project, f"SHOW SECRETS IN SCHEMA {db}.OPS")}
    assert secrets == {"API_A_CLIENT_SECRET", "API_B_KEY_SECRET", "API_C_LOGIN_SECRET", "AWS_S3_SECRET"}
    states = {row["name"]: row["state"] for row in _query(project, f"SHOW TASKS IN SCHEMA {db}.PIPELINE")}
    assert states[graph.root.short_name] == "started", "deploy did not resume the graph"


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


def test_one_graph_run_succeeds_and_fills_every_layer(project, graph):
    db = project.env["database"]
    started = datetime.now(UTC) - timedelta(seconds=30)
    _query(project, f"EXECUTE TASK {db}.PIPELINE.ROOT")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        rows = remote_latest_run_rows(project, CONNECTION)
        status = graph_run_status(rows, graph)
        ours = bool(rows) and _aware(rows[0]["SCHEDULED_TIME"]) >= started
        finalizer = next((t for t in status.tasks if t.name == graph.finalizer.short_name), None)
        if ours and finalizer is not None and finalizer.state in TERMINAL:
            break
        time.sleep(min(20.0, max(0.0, deadline - time.monotonic())))
    else:
        pytest.fail(f"the graph run did not finish within {RUN_TIMEOUT_S} s: {status and status.to_dict()}")
    failed = {t.name: (t.state, t.error) for t in status.tasks if t.state != "SUCCEEDED"}
    assert not failed, f"graph run {status.run_id}: tasks that did not succeed: {failed}"
    for task in status.tasks:
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


def test_a_second_deploy_keeps_pipes_and_tables(project):
    db = project.env["database"]
    before = {row["name"]: row["created_on"] for row in _query(project, f"SHOW PIPES IN SCHEMA {db}.RAW")}
    rows_before = _row_count(project, f"{db}.RAW.API_A_EVENTS")
    run_plan(
        build_plan(project, "dev", CONNECTION, skip_admin=SKIP_ADMIN, secrets_from_env=True),
        dry_run=False,
        echo=print,
    )
    after = {row["name"]: row["created_on"] for row in _query(project, f"SHOW PIPES IN SCHEMA {db}.RAW")}
    assert after == before, "a redeploy recreated a pipe (its load history is gone)"
    assert _row_count(project, f"{db}.RAW.API_A_EVENTS") == rows_before
