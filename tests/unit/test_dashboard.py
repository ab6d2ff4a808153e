"""The dashboard (streamlit/) offline: it reads only what the analyst role may read, its queries parse as
Snowflake SQL, snowflake.yml ships every file of it at the version Snowflake runs, deploy grants it after it
exists, and the run shaping (states, timeline) is right. The rendered page is tested over a real stack in
tests/integration/test_dashboard.py and in a browser in tests/browser/."""

from __future__ import annotations

import re
import socket
import sys
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlfluff
import yaml

from api2snow_cli.dashboard import APP, DashboardError, check_port
from api2snow_cli.deploy import Step, build_plan, load_project
from api2snow_cli.project import PROJECT_ROOT

sys.path.insert(0, str(APP.parent))  # the app's modules import each other by name, as Streamlit runs them
import dashboard_queries as queries  # noqa: E402

APP_DIR = APP.parent
GRANT = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<target>.+?) TO ROLE (?P<role>\S+)$")


@pytest.fixture(scope="module")
def project():
    return load_project("dev")


@pytest.fixture(scope="module")
def plan(project) -> list[Step]:
    return build_plan(project, "dev", "any", secrets_from_env=False)


def analyst_grants(plan: list[Step], role: str) -> set[tuple[str, str]]:
    grants = set()
    for step in plan:
        for statement in step.statements:
            match = GRANT.match(" ".join(statement.split()))
            if match and match.group("role") == role:
                grants.add((match.group("privileges"), match.group("target")))
    return grants


def created_in_analytics(project) -> set[str]:
    """Every table and view that sql/ creates in ANALYTICS."""
    created = set()
    for path in project.sql_files("sql"):
        for statement in project.statements(path):
            match = re.match(r"CREATE (?:OR REPLACE )?(?:VIEW|TABLE)(?: IF NOT EXISTS)? (\S+)", statement)
            if match and ".ANALYTICS." in match.group(1).upper():
                created.add(match.group(1).upper().rsplit(".", 1)[-1])
    return created


def test_every_query_reads_only_what_the_analyst_may_read(plan, project):
    db = project.env["database"].upper()
    grants = analyst_grants(plan, project.env["analyst_role"])
    may_read_analytics = {
        ("SELECT", f"ALL VIEWS IN SCHEMA {db}.ANALYTICS"),
        ("SELECT", f"ALL TABLES IN SCHEMA {db}.ANALYTICS"),
    } <= grants
    may_read_task_history = {
        ("USAGE", f"SCHEMA {db}.PIPELINE"),
        ("MONITOR", f"ALL TASKS IN SCHEMA {db}.PIPELINE"),
    } <= grants
    assert may_read_analytics and may_read_task_history, grants
    analytics = created_in_analytics(project)
    target = queries.Target.snowflake(db)
    for name, sql in queries.all_queries(target, days=14, runs=10).items():
        objects = set(re.findall(rf"\b{db}\.(\w+)\.(\w+)", sql))
        assert objects, name
        for schema, obj in objects:
            if schema == "INFORMATION_SCHEMA":  # TASK_HISTORY(): the rows of tasks the role may MONITOR
                assert obj == "TASK_HISTORY" and "schema_name = 'PIPELINE'" in sql, (name, obj)
            else:
                assert schema == "ANALYTICS" and obj in analytics, (name, schema, obj)
        assert not re.search(r"\b(RAW|CLEAN|OPS)\.", sql), name


@pytest.mark.parametrize("target", ["snowflake", "local"])
def test_every_query_parses_as_snowflake_sql(target):
    where = (
        queries.Target.snowflake("VIDEO_ANALYTICS")
        if target == "snowflake"
        else queries.Target.local("VIDEO_ANALYTICS", "VIDEO_ANALYTICS.OPS.TASK_HISTORY")
    )
    for name, sql in queries.all_queries(where, days=14, runs=10).items():
        assert sqlfluff.parse(sql + ";", dialect="snowflake"), name  # raises on anything unparsable


def test_a_name_that_is_not_a_plain_identifier_is_refused():
    assert queries.identifier('"video_analytics"') == "VIDEO_ANALYTICS"
    for bad in ("DB; DROP TABLE X", "A.B", "", "1DB", "DB'--"):
        with pytest.raises(queries.DashboardError, match="not a plain Snowflake identifier"):
            queries.identifier(bad)


def test_snowflake_yml_ships_every_file_of_the_app_at_the_version_snowflake_runs(tmp_path):
    """As the Snowflake CLI reads snowflake.yml and bundles the app (what `snow streamlit deploy` uploads)."""
    import streamlit
    from snowflake.cli._plugins.streamlit.streamlit_entity import _main_file_covered_by_artifacts
    from snowflake.cli.api.artifacts.bundle_map import BundleMap
    from snowflake.cli.api.project.definition_manager import DefinitionManager

    definition = DefinitionManager(PROJECT_ROOT).project_definition
    [model] = [e for e in definition.entities.values() if e.type == "streamlit"]
    bundle = BundleMap(project_root=PROJECT_ROOT, deploy_root=tmp_path)
    for artifact in model.artifacts:
        bundle.add(artifact)
    shipped = {str(dest) for _, dest in bundle.all_mappings()}
    files = {f"streamlit/{p.name}" for p in APP_DIR.iterdir() if p.suffix in (".py", ".yml") and p.is_file()}
    assert shipped == files  # a new module of the app must be listed in snowflake.yml
    assert model.main_file == "streamlit/streamlit_app.py" == APP.relative_to(PROJECT_ROOT).as_posix()
    assert _main_file_covered_by_artifacts(model.main_file, list(model.artifacts), PROJECT_ROOT)
    assert str(model.fqn) == "VIDEO_ANALYTICS.ANALYTICS.API2SNOW_DASHBOARD"
    environment = yaml.safe_load((APP_DIR / "environment.yml").read_text())
    assert environment["channels"] == ["snowflake"]  # Streamlit in Snowflake's warehouse runtime: no other
    pinned = [d for d in environment["dependencies"] if d.startswith("streamlit=")]
    version = pinned[0].split("=", 1)[1]
    assert version == streamlit.__version__
    assert f'"streamlit=={version}"' in (PROJECT_ROOT / "pyproject.toml").read_text()
    assert f"\nstreamlit=={version}\n" in (PROJECT_ROOT / "constraints.txt").read_text()


def test_deploy_creates_the_app_then_grants_it_to_the_analyst_and_the_operator(plan, project):
    names = [step.name for step in plan]
    deploy_app = names.index("dashboard: streamlit deploy")
    grants = next(i for i, name in enumerate(names) if name.startswith("grants (sql/07"))
    assert deploy_app < grants
    assert plan[deploy_app].argv[:3] == ["streamlit", "deploy", "--replace"]
    app = f"STREAMLIT {project.env['database'].upper()}.ANALYTICS.API2SNOW_DASHBOARD"
    for role in ("analyst_role", "operator_role"):
        assert ("USAGE", app) in analyst_grants(plan, project.env[role]), role


def _task(run: str, task: str, state: str, start: float | None, end: float | None) -> dict:
    origin = datetime(2026, 1, 1, 10, 0, 0)
    return {
        "run_id": run,
        "task": task,
        "state": state,
        "attempt": 1,
        "started_at": None if start is None else origin + timedelta(seconds=start),
        "completed_at": None if end is None else origin + timedelta(seconds=end),
        "error": "boom" if state == "FAILED" else None,
    }


def test_runs_are_judged_on_their_tasks_and_drawn_from_the_first_start():
    tasks = pd.DataFrame(
        [
            _task("r1", "ROOT", "SUCCEEDED", 0, 1),
            _task("r1", "INGEST", "FAILED", 1, 4),
            _task("r1", "FINALIZE", "SUCCEEDED", 4, 5),
            _task("r2", "ROOT", "SUCCEEDED", 3600, 3601),
            _task("r2", "INGEST", "EXECUTING", 3601, None),
        ]
    )
    runs = queries.graph_runs(tasks)
    assert list(runs["run_id"]) == ["r2", "r1"]  # newest first
    assert list(runs["state"]) == ["EXECUTING", "FAILED"]
    assert list(runs["graph"]) == ["ROOT", "ROOT"]
    assert runs.set_index("run_id").loc["r1", ["duration_s", "tasks", "succeeded", "failed"]].tolist() == [
        5.0,
        3,
        2,
        1,
    ]
    now = datetime(2026, 1, 1, 11, 0, 10)
    timeline = queries.timeline(tasks, "r2", now)
    drawn = timeline[["task", "start_s", "end_s"]].values.tolist()
    assert drawn == [["ROOT", 0.0, 1.0], ["INGEST", 1.0, 10.0]]
    assert pd.isna(timeline["duration_s"].iloc[1])  # still running: no duration yet, an open bar to now
    assert queries.run_state([]) == "EXECUTING" and queries.run_state(["SUCCEEDED", "CANCELLED"]) == "FAILED"
    daily = pd.DataFrame([_task("r3", "RECONCILE", "SUCCEEDED", 7200, 7210)])
    assert queries.graphs(queries.graph_runs(pd.concat([tasks, daily]))) == ["ROOT", "RECONCILE"]


def test_a_taken_port_is_refused_before_anything_starts():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(DashboardError, match=f"port {port} on 127.0.0.1 is in use") as caught:
            check_port(port)
    assert caught.value.exit_code == 2
