"""Offline proofs of `api2snow deploy`: the plan's order and content, that every statement parses, that no
deploy statement recreates data-holding objects, that external access matches snowflake.yml, that secrets
never leak, and that a failing `snow` call stops the deploy with the step's name.

After an intended change, regenerate the golden plan and review its diff:
    API2SNOW_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_deploy_plan.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlfluff
import sqlglot
import yaml
from api2snow.sources import SOURCES
from api2snow.sources.declaration import SourceDeclaration
from sqlglot import tokens
from sqlglot.dialects.snowflake import Snowflake
from typer.testing import CliRunner

from api2snow_cli.cli import app
from api2snow_cli.deploy import (
    ADMIN_ROLE,
    SECRET_ENV,
    DeployError,
    SnowRow,
    Step,
    build_plan,
    env_overrides,
    host_port,
    load_project,
    load_steps,
    plan_summary,
    run_plan,
    task_history_query,
    teardown_plan,
)
from api2snow_cli.history import graph_run_status
from api2snow_cli.local.tasks import graph_from_statements, is_task_statement, parse_task, task_graphs
from api2snow_cli.project import (
    HOST_VARIABLES,
    PROJECT_ROOT,
    Project,
    ProjectError,
    secret_variables,
    sql_string_body,
)

# The declared sources (snowpark_procs/api2snow/sources/): every expectation about a source's objects is
# derived from these, so a new source is checked like the others; A, B and C keep their specific checks.
DECLARATIONS: tuple[SourceDeclaration, ...] = tuple(
    source.declaration  # type: ignore[attr-defined]
    for source in SOURCES.values()
)
OAUTH = tuple(d for d in DECLARATIONS if d.auth.kind == "oauth2_client_credentials")
# The Snowflake SECRET type each auth kind needs (AuthSpec's docstring): this test's own table, not derive's.
SECRET_TYPE = {
    "oauth2_client_credentials": "OAUTH2",
    "api_key": "GENERIC_STRING",
    "bearer": "GENERIC_STRING",
    "basic": "PASSWORD",
}
# The RAW pipes and the S3 prefix each loads: one per source, and the rejects pipe.
PIPE_PREFIXES = {
    **{d.pipe.rsplit(".", 1)[-1]: f"source={d.name}/" for d in DECLARATIONS},
    "REJECTED_RECORDS_PIPE": "_rejects/",
}
GOLDEN = Path(__file__).parent / "golden" / "deploy_plan_dev.txt"
# The fixed environment of the golden plan: every value pinned, so only a change to the project's SQL,
# external access or plan logic changes the golden text.
FIXED_DEV = {
    "env_name": "dev",
    "database": "VIDEO_ANALYTICS_DEV",
    "warehouse": "API2SNOW_DEV_WH",
    "owner_role": "API2SNOW_OWNER",
    "operator_role": "API2SNOW_OPERATOR",
    "analyst_role": "API2SNOW_ANALYST",
    "bucket": "api2snow-landing-dev",
    "region": "us-east-1",
    "s3_endpoint_url": "",
    "storage_integration": "API2SNOW_S3_INT_DEV",
    "storage_aws_role_arn": "arn:aws:iam::000000000000:role/api2snow-snowflake-storage-dev",
    # every source's base URL, from its name alone (api_a: https://sandbox.api-a.example.com)
    **{d.base_url_setting: f"https://sandbox.{d.name.replace('_', '-')}.example.com" for d in DECLARATIONS},
    "task_schedule": "USING CRON 0 6 * * * UTC",
    "part_max_mb": "64",
}
# Fake values for the tests that run the plan, one per secret variable (SECRET_ENV, from the declarations);
# long and distinctive so a leak is visible, with quotes, a backslash and template marks on purpose.
SECRET_VALUES = {
    **{
        var: f"{name.replace('_', '-')}-'quoted'-\\backslash-<% not_this %>-{index:02d}f3"
        for index, (name, var) in enumerate(SECRET_ENV.items())
    },
    "API2SNOW_API_A_CLIENT_ID": "client-id-4f1e2d",
    "API2SNOW_API_A_CLIENT_SECRET": "s3cr3t-'quoted'-\\backslash-9c8b",
    "API2SNOW_API_B_KEY": "api-key-7a6b5c4d",
    "API2SNOW_API_C_USER": "soap-user-31x",
    "API2SNOW_API_C_PASSWORD": "soap-pass-&{not_a_template}-<% nor_this %>",
    "API2SNOW_AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/api2snow-writer",
}
# Statements sqlfluff's snowflake dialect cannot parse: each must parse with sqlglot and have the shape of
# the verified DDL (reference/snowflake.md and Snowflake's reference pages), checked on normalised text.
NAME = r"[A-Z0-9_$]+(?:\.[A-Z0-9_$]+){0,2}"
SQLFLUFF_GAPS = {
    "CREATE EXTERNAL ACCESS INTEGRATION": re.compile(
        rf"CREATE EXTERNAL ACCESS INTEGRATION IF NOT EXISTS {NAME} "
        rf"ALLOWED_NETWORK_RULES = \({NAME}(, {NAME})*\) "
        rf"(ALLOWED_API_AUTHENTICATION_INTEGRATIONS = \({NAME}(, {NAME})*\) )?"
        rf"ALLOWED_AUTHENTICATION_SECRETS = \({NAME}(, {NAME})*\) ENABLED = TRUE( COMMENT = '[^']*')?"
    ),
    "ALTER EXTERNAL ACCESS INTEGRATION": re.compile(
        rf"ALTER EXTERNAL ACCESS INTEGRATION {NAME} SET ALLOWED_NETWORK_RULES = \({NAME}(, {NAME})*\) "
        rf"(ALLOWED_API_AUTHENTICATION_INTEGRATIONS = \({NAME}(, {NAME})*\) )?"
        rf"ALLOWED_AUTHENTICATION_SECRETS = \({NAME}(, {NAME})*\) ENABLED = TRUE"
    ),
    "CREATE SECURITY INTEGRATION": re.compile(
        rf"CREATE SECURITY INTEGRATION IF NOT EXISTS {NAME} TYPE = API_AUTHENTICATION ("
        r"AUTH_TYPE = AWS_IAM AWS_ROLE_ARN = '[^']+' ENABLED = TRUE"
        r"|AUTH_TYPE = OAUTH2 ENABLED = TRUE OAUTH_TOKEN_ENDPOINT = 'https?://[^']+' "
        r"OAUTH_CLIENT_AUTH_METHOD = CLIENT_SECRET_(POST|BASIC) OAUTH_CLIENT_ID = '[^']+' "
        r"OAUTH_CLIENT_SECRET = '[^']+' OAUTH_GRANT = 'CLIENT_CREDENTIALS' OAUTH_ALLOWED_SCOPES = \('[^']+'\)"
        r")( COMMENT = '[^']*')?"
    ),
    "ALTER SECURITY INTEGRATION": re.compile(
        rf"ALTER SECURITY INTEGRATION {NAME} SET ENABLED = TRUE OAUTH_TOKEN_ENDPOINT = 'https?://[^']+' "
        r"OAUTH_CLIENT_ID = '[^']+' OAUTH_CLIENT_SECRET = '[^']+' OAUTH_ALLOWED_SCOPES = \('[^']+'\)"
    ),
    "ALTER NETWORK RULE": re.compile(
        rf"ALTER NETWORK RULE {NAME} SET VALUE_LIST = \('[^']+'(, '[^']+')*\)( COMMENT = '[^']*')?"
    ),
    # The alert integrations (CREATE NOTIFICATION INTEGRATION, webhooks and email, and its ALTER).
    "CREATE NOTIFICATION INTEGRATION": re.compile(
        rf"CREATE NOTIFICATION INTEGRATION IF NOT EXISTS {NAME} ("
        rf"TYPE = WEBHOOK ENABLED = TRUE WEBHOOK_URL = 'https://[^']+' WEBHOOK_SECRET = {NAME} "
        r"WEBHOOK_BODY_TEMPLATE = '[^']*SNOWFLAKE_WEBHOOK_MESSAGE[^']*' "
        r"WEBHOOK_HEADERS = \('Content-Type' = 'application/json'\)"
        r"|TYPE = EMAIL ENABLED = TRUE)( COMMENT = '[^']*')?"
    ),
    "ALTER NOTIFICATION INTEGRATION": re.compile(
        rf"ALTER NOTIFICATION INTEGRATION {NAME} SET ENABLED = TRUE WEBHOOK_URL = 'https://[^']+' "
        rf"WEBHOOK_SECRET = {NAME} WEBHOOK_BODY_TEMPLATE = '[^']*SNOWFLAKE_WEBHOOK_MESSAGE[^']*' "
        r"WEBHOOK_HEADERS = \('Content-Type' = 'application/json'\)"
    ),
}
OWNED_SQL = [
    "external_access/01_network_rules_and_secrets.sql",
    "external_access/02_admin_integrations.sql",
    "sql/07_grants.sql",
]


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project("dev", FIXED_DEV)


@pytest.fixture(scope="module")
def plan(project) -> list[Step]:
    return build_plan(project, "dev", "any", skip_admin=False, secrets_from_env=False)


@pytest.fixture(scope="module")
def teardown(project) -> list[Step]:
    return teardown_plan(project, "dev", "any", include_admin=True)


def _statements(steps: list[Step]) -> list[str]:
    return [s for step in steps for s in step.shown_statements()]


def _flat(statement: str) -> str:
    return re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", " ".join(statement.split())))


def _step(plan: list[Step], fragment: str) -> Step:
    matches = [s for s in plan if fragment in s.name]
    assert len(matches) == 1, (fragment, [s.name for s in plan])
    return matches[0]


# ---- order and content ----------------------------------------------------------------------------------
def test_the_plan_matches_the_golden_file(plan):
    text = plan_summary(plan)
    if os.environ.get("API2SNOW_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), (
        "the deploy plan changed; if that is intended, regenerate the golden file with "
        "API2SNOW_UPDATE_GOLDEN=1 pytest tests/unit/test_deploy_plan.py and review the diff"
    )


def test_steps_come_in_dependency_order(plan):
    names = [s.name for s in plan]
    expected = [
        "external access admin: roles",
        "setup (sql/01",
        "network rules and secrets",
        "external access admin: external access integrations",
        "snowpark build",
        "snowpark deploy",
        "raw + pipes (sql/02",
        "s3 event notification for Snowpipe auto-ingest (sql/02",
        "clean (sql/03",
        "analytics (sql/04",
        "dq (sql/05",
        "tasks: suspend the root",
        "tasks: suspend the daily reconciliation",
        "tasks (sql/06",
        "tasks: resume the graph",
        "tasks: resume the daily reconciliation",
        "dashboard: streamlit deploy",
        "grants (sql/07",
    ]
    assert len(names) == len(expected)
    for name, fragment in zip(names, expected, strict=True):
        assert fragment in name, (name, fragment)


def test_every_sql_file_is_deployed_once(plan):
    deployed = [s.spec.target for s in plan if s.spec.kind == "file" and s.spec.target.startswith("sql/")]
    assert deployed == [f"sql/{p.name}" for p in sorted((PROJECT_ROOT / "sql").glob("*.sql"))]


def test_tasks_are_altered_only_between_suspending_and_resuming_every_root(plan, project):
    names = [s.name for s in plan]
    tasks = names.index(_step(plan, "tasks (sql/06").name)
    roots = [f"{project.env['database']}.PIPELINE.{name}" for name in ("ROOT", "RECONCILE")]
    assert [plan[tasks - 2 + i].statements for i in range(2)] == [
        [f"ALTER TASK IF EXISTS {root} SUSPEND"] for root in roots
    ]
    assert [plan[tasks + 1 + i].statements for i in range(2)] == [
        [f"SELECT SYSTEM$TASK_DEPENDENTS_ENABLE('{root}')"] for root in roots
    ]
    graphs = task_graphs([parse_task(s) for s in plan[tasks].statements])
    assert [g.root.name for g in graphs] == roots
    assert graphs[0].finalizer is not None and list(graphs[1].tasks) == [roots[1]]  # a standalone daily task
    assert not any(is_task_statement(s) for i, step in enumerate(plan) if i != tasks for s in step.statements)


def test_snow_commands_carry_the_connection_role_and_env_overrides(plan, project):
    build, deploy = _step(plan, "snowpark build"), _step(plan, "snowpark deploy")
    assert build.argv[:2] == ["snowpark", "build"] and deploy.argv[:3] == ["snowpark", "deploy", "--replace"]
    for step in (build, deploy):
        argv = " ".join(step.argv)
        assert "--connection any" in argv and f"--role {project.env['owner_role']}" in argv
        overrides = [step.argv[i + 1] for i, a in enumerate(step.argv) if a == "--env"]
        assert f"database={project.env['database']}" in overrides
        assert f"task_schedule={project.env['task_schedule']}" in overrides
    for step in plan:
        if step.kind == "sql":
            assert step.argv[:3] == ["sql", "--connection", "any"] and step.argv[-1] == "--stdin"
            role = step.argv[step.argv.index("--role") + 1]
            assert role == (ADMIN_ROLE if "admin" in step.name else project.env["owner_role"]), step.name


def test_skip_admin_leaves_out_only_the_admin_steps_and_says_what_to_run(project):
    steps = build_plan(project, "dev", "any", skip_admin=True, secrets_from_env=False)
    skipped = [s for s in steps if s.skipped]
    assert [s.name for s in skipped] == [s.name for s in steps if "admin" in s.name] and len(skipped) == 2
    out: list[str] = []
    run_plan(steps, dry_run=True, echo=out.append)
    text = "\n".join(out)
    assert text.count("(skipped)") == 2 and "--role ACCOUNTADMIN --stdin" in text
    assert "CREATE EXTERNAL ACCESS INTEGRATION IF NOT EXISTS API2SNOW_S3_EAI" in text  # what the admin runs


def test_prod_differs_from_dev_by_envs_yml():
    dev, prod = env_overrides("dev"), env_overrides("prod")
    assert dev["database"] == "VIDEO_ANALYTICS_DEV" and prod["database"] == "VIDEO_ANALYTICS"
    for key in ("database", "bucket", "warehouse", "api_a_base_url", "task_schedule"):
        assert key in dev and key in prod
    defaults = yaml.safe_load((PROJECT_ROOT / "snowflake.yml").read_text())["env"]
    envs = yaml.safe_load((PROJECT_ROOT / "deploy" / "envs.yml").read_text())
    for name, values in envs.items():
        assert set(values) <= set(defaults), f"envs.yml [{name}] sets keys snowflake.yml env lacks"
    steps = build_plan(load_project("prod"), "prod", "ci", secrets_from_env=False)
    assert "CREATE DATABASE IF NOT EXISTS VIDEO_ANALYTICS" in _statements(steps)
    with pytest.raises(Exception, match="unknown --env"):
        env_overrides("staging")
    with pytest.raises(Exception, match="loaded for env"):
        build_plan(load_project("dev"), "prod", "ci")


def test_teardown_drops_what_deploy_created(teardown, project, plan):
    db = project.env["database"]
    text = "\n".join(_statements(teardown))
    assert teardown[0].statements == [
        f"ALTER TASK IF EXISTS {db}.PIPELINE.ROOT SUSPEND",
        f"ALTER TASK IF EXISTS {db}.PIPELINE.RECONCILE SUSPEND",
    ]
    tasks = graph_from_statements(_step(plan, "tasks (sql/06").statements)
    drops = _step(teardown, "drop tasks").statements
    assert len(drops) == len(tasks.tasks) + 1 and drops[-2] == f"DROP TASK IF EXISTS {tasks.root.name}"
    assert drops[0] == f"DROP TASK IF EXISTS {tasks.finalizer.name}"
    assert drops[-1] == f"DROP TASK IF EXISTS {db}.PIPELINE.RECONCILE"
    assert sorted(_step(teardown, "drop pipes").statements) == sorted(
        f"DROP PIPE IF EXISTS {db}.RAW.{pipe}" for pipe in PIPE_PREFIXES
    )
    for d in DECLARATIONS:
        assert f"DROP PROCEDURE IF EXISTS {db}.OPS.INGEST_{d.upper}()" in text
    assert f"DROP PROCEDURE IF EXISTS {db}.OPS.WAIT_FOR_LOAD(INT)" in text
    assert f"DROP PROCEDURE IF EXISTS {db}.OPS.REFRESH_PIPE(STRING)" in text
    assert len(_step(teardown, "drop procedures").statements) == len(project.procedures())
    assert f"DROP DATABASE IF EXISTS {db}" in text
    admin = _step(teardown, "integrations and roles")
    assert admin.argv[admin.argv.index("--role") + 1] == ADMIN_ROLE
    for name in (
        "API2SNOW_API_A_EAI_DEV",
        "API2SNOW_API_A_OAUTH_INT_DEV",
        "API2SNOW_S3_EAI_DEV",
        "API2SNOW_AWS_IAM_INT",
        "API2SNOW_S3_INT_DEV",
        "API2SNOW_OWNER",
    ):
        assert name in text
    for d in DECLARATIONS:  # every source's integrations
        assert f"DROP INTEGRATION IF EXISTS API2SNOW_{d.upper}_EAI_DEV" in admin.statements, d.name
        if d in OAUTH:
            assert f"DROP INTEGRATION IF EXISTS API2SNOW_{d.upper}_OAUTH_INT_DEV" in admin.statements, d.name
    assert "WAREHOUSE" not in text
    without_admin = teardown_plan(project, "dev", "any", include_admin=False)
    assert "DROP INTEGRATION" not in "\n".join(_statements(without_admin))


# ---- every statement parses -----------------------------------------------------------------------------
def test_every_rendered_statement_parses_as_snowflake_sql(plan, teardown, project):
    statements = _statements(plan) + _statements(teardown) + [task_history_query(project)]
    gaps = {head: 0 for head in SQLFLUFF_GAPS}
    for statement in statements:
        head = next((h for h in SQLFLUFF_GAPS if _flat(statement).startswith(h)), None)
        if head is None:
            sqlfluff.parse(statement + ";", dialect="snowflake")  # raises on anything unparsable
            continue
        gaps[head] += 1
        sqlglot.parse_one(statement, read="snowflake")
        kinds = [t.token_type for t in Snowflake().tokenize(statement)]  # raises on unbalanced quotes
        assert kinds.count(tokens.TokenType.L_PAREN) == kinds.count(tokens.TokenType.R_PAREN), statement
        assert SQLFLUFF_GAPS[head].fullmatch(_flat(statement)), statement
    # one external access integration and network rule per source, and S3's; an OAuth2 integration per
    # OAuth2 source (API A's), and the AWS_IAM one
    assert gaps["CREATE EXTERNAL ACCESS INTEGRATION"] == gaps["ALTER EXTERNAL ACCESS INTEGRATION"]
    assert gaps["CREATE EXTERNAL ACCESS INTEGRATION"] == len(DECLARATIONS) + 1
    assert gaps["ALTER NETWORK RULE"] == len(DECLARATIONS) + 1
    assert gaps["CREATE SECURITY INTEGRATION"] == len(OAUTH) + 1
    assert gaps["ALTER SECURITY INTEGRATION"] == len(OAUTH)
    assert any(d.name == "api_a" for d in OAUTH)
    assert gaps["CREATE NOTIFICATION INTEGRATION"] == 2 and gaps["ALTER NOTIFICATION INTEGRATION"] == 1


def test_owned_sql_has_a_comment_above_every_statement_and_upper_case_keywords():
    for relative in OWNED_SQL:
        lines = (PROJECT_ROOT / relative).read_text().splitlines()
        in_statement, previous = False, ""
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text:
                continue
            if not text.startswith("--"):
                if not in_statement:
                    assert previous.startswith("--"), f"{relative}:{number} has no comment above it"
                in_statement = not text.endswith(";")
            previous = text
        code = "\n".join(line for line in lines if not line.strip().startswith("--"))
        code = re.sub(r"<%.*?%>", "X", code)
        for token in Snowflake().tokenize(code):
            if (
                token.token_type
                not in (tokens.TokenType.VAR, tokens.TokenType.STRING, tokens.TokenType.IDENTIFIER)
                and token.text.isalpha()
            ):
                assert token.text == token.text.upper(), f"{relative}: keyword {token.text!r} in lower case"


# ---- nothing that holds data is recreated ---------------------------------------------------------------
def test_no_create_or_replace_on_pipes_stages_tables_or_external_access(plan):
    replaced = re.compile(
        r"^CREATE\s+OR\s+REPLACE\s+(?:(?:TRANSIENT|TEMPORARY|TEMP)\s+)?"
        r"(PIPE|STAGE|TABLE|FILE\s+FORMAT|DATABASE|SCHEMA|SECRET|NETWORK\s+RULE|"
        r"(?:\w+\s+)*INTEGRATION|ROLE|WAREHOUSE)\b",
        re.IGNORECASE,
    )
    for statement in _statements(plan):
        assert not replaced.search(statement), statement
    creates = [
        s
        for s in _statements(plan)
        if re.match(r"^CREATE\s+(PIPE|STAGE|TABLE|FILE\s+FORMAT)\s+(?!IF\s+NOT\s+EXISTS\b)", s, re.I)
    ]
    assert not creates, "pipes, stages and tables are created only IF NOT EXISTS"
    pipes = [s for s in _statements(plan) if re.match(r"^CREATE\s+PIPE", s, re.I)]
    assert len(pipes) == len(PIPE_PREFIXES) and all(
        re.match(r"^CREATE\s+PIPE\s+IF\s+NOT\s+EXISTS\b", p, re.I) for p in pipes
    )


# ---- external access matches snowflake.yml --------------------------------------------------------------
def _created(statements: list[str], kind: str) -> dict[str, str]:
    found = {}
    for statement in statements:
        match = re.match(rf"^CREATE\s+{kind}\s+IF\s+NOT\s+EXISTS\s+({NAME})\b", statement)
        if match:
            found[match.group(1)] = statement
    return found


def _names_in(clause: str, statement: str) -> list[str]:
    match = re.search(rf"{clause}\s*=\s*\(([^)]*)\)", statement)
    return [n.strip().strip("'") for n in match.group(1).split(",")] if match else []


def test_every_secret_and_eai_of_snowflake_yml_is_created_in_external_access(plan, project):
    statements = _statements([s for s in plan if "external_access/" in s.name])
    secrets = _created(statements, "SECRET")
    eais = _created(statements, "EXTERNAL ACCESS INTEGRATION")
    for proc in project.procedures().values():
        for key, secret in proc.secrets.items():
            assert secret.upper() in secrets, f"{proc.name}: secret {secret} ({key}) is not created"
            allowed = {
                s
                for eai in proc.external_access_integrations
                for s in _names_in("ALLOWED_AUTHENTICATION_SECRETS", eais.get(eai.upper(), ""))
            }
            assert secret.upper() in allowed, f"{proc.name}: no EAI of it allows {secret}"
        for eai in proc.external_access_integrations:
            assert eai.upper() in eais, f"{proc.name}: external access integration {eai} is not created"
    # each source's secret (OPS.<auth.secret>_SECRET), of the type its auth kind needs, and AWS's
    kinds = {name.rsplit(".", 1)[-1]: re.search(r"TYPE = (\w+)", s).group(1) for name, s in secrets.items()}
    assert kinds == {
        **{f"{d.auth.secret.upper()}_SECRET": SECRET_TYPE[d.auth.kind] for d in DECLARATIONS},
        "AWS_S3_SECRET": "CLOUD_PROVIDER_TOKEN",
        "ALERT_WEBHOOK_SECRET": "GENERIC_STRING",  # read by the webhook notification integration only
    }
    assert {
        "API_A_CLIENT_SECRET": "OAUTH2",
        "API_B_KEY_SECRET": "GENERIC_STRING",
        "API_C_LOGIN_SECRET": "PASSWORD",
    }.items() <= kinds.items()
    for d in DECLARATIONS:  # the procedure reads its source's secret under the declared key, through its EAI
        proc = project.procedures()[f"INGEST_{d.upper}"]
        assert (
            proc.secrets[d.auth.secret].upper()
            == f"{project.env['database']}.OPS.{d.auth.secret.upper()}_SECRET"
        )
        assert (
            proc.external_access_integrations[0].upper()
            == f"API2SNOW_{d.upper}_EAI{project.env['eai_suffix']}"
        )
    integrations = _created(statements, "SECURITY INTEGRATION")
    for name, secret in secrets.items():  # OAUTH2 and CLOUD_PROVIDER_TOKEN secrets
        used = re.search(r"API_AUTHENTICATION = '?([A-Z0-9_$]+)", secret)
        if used:
            assert used.group(1) in integrations, f"{name} names {used.group(1)}, which is not created"
    api_a_eai = eais[project.procedures()["INGEST_API_A"].external_access_integrations[0].upper()]
    api_a_secret = secrets[project.procedures()["INGEST_API_A"].secrets["api_a_client"].upper()]
    oauth = re.search(r"API_AUTHENTICATION = ([A-Z0-9_$]+)", api_a_secret)
    assert _names_in("ALLOWED_API_AUTHENTICATION_INTEGRATIONS", api_a_eai) == [oauth.group(1)]
    for d in DECLARATIONS:  # only an OAuth2 source's EAI allows an API authentication integration: its own
        proc = project.procedures()[f"INGEST_{d.upper}"]
        eai = eais[proc.external_access_integrations[0].upper()]
        secret = secrets[proc.secrets[d.auth.secret].upper()]
        assert _names_in("ALLOWED_AUTHENTICATION_SECRETS", eai) == [proc.secrets[d.auth.secret].upper()]
        used = re.search(r"API_AUTHENTICATION = ([A-Z0-9_$]+)", secret)
        expected = [used.group(1)] if d in OAUTH else []
        assert _names_in("ALLOWED_API_AUTHENTICATION_INTEGRATIONS", eai) == expected, d.name
    admin = _statements([s for s in plan if "admin" in s.name])
    assert all(re.match(r"^(USE ROLE|CREATE|ALTER|GRANT)\b", s) for s in admin)
    assert not any(
        "INTEGRATION" in s and s.startswith("CREATE")
        for s in _statements([_step(plan, "network rules and secrets")])
    ), "integrations are admin-only"


def _rule_hosts(statements: list[str]) -> dict[str, set[str]]:
    hosts: dict[str, set[str]] = {}
    for statement in statements:
        match = re.match(rf"^(?:CREATE NETWORK RULE IF NOT EXISTS|ALTER NETWORK RULE) ({NAME})", statement)
        if match:
            values = set(_names_in("VALUE_LIST", statement))
            assert hosts.setdefault(match.group(1), values) == values, "CREATE and ALTER disagree"
    return hosts


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "api_a_base_url": "http://203.0.113.7:8080",
            "api_c_base_url": "http://mock-c.example.net",
            "bucket": "other-bucket",
            "region": "eu-west-1",
        },
    ],
)
def test_every_network_rule_host_is_a_configured_api_or_the_buckets_own_s3_host(overrides):
    project = load_project("dev", {**FIXED_DEV, **overrides})
    plan = build_plan(project, "dev", "any", secrets_from_env=False)
    env = project.env
    apis = {d.name: host_port(env[d.base_url_setting]) for d in DECLARATIONS}
    assert {f"{name}_host": f"{name}_base_url" for name in apis} == HOST_VARIABLES
    aws = {
        f"{env['bucket']}.s3.{env['region']}.amazonaws.com",
        f"{env['bucket']}.s3.amazonaws.com",
    }
    statements = _statements(plan)
    rules = _rule_hosts(statements)
    for rule, hosts in rules.items():
        assert hosts <= set(apis.values()) | aws, (rule, hosts)
    eais = _created(statements, "EXTERNAL ACCESS INTEGRATION")
    by_eai = {
        name: set().union(*(rules[r] for r in _names_in("ALLOWED_NETWORK_RULES", s)))
        for name, s in eais.items()
    }
    suffix = env["eai_suffix"]
    assert suffix == "_DEV"  # dev and prod may share an account: the integrations are named per env
    assert by_eai == {
        **{f"API2SNOW_{d.upper}_EAI{suffix}": {apis[d.name]} for d in DECLARATIONS},
        f"API2SNOW_S3_EAI{suffix}": aws,
    }
    db = env["database"]
    assert rules == {
        **{f"{db}.OPS.{d.upper}_NETWORK_RULE": {apis[d.name]} for d in DECLARATIONS},
        f"{db}.OPS.S3_NETWORK_RULE": aws,
    }
    if overrides:
        assert apis["api_a"] == "203.0.113.7:8080" and apis["api_c"] == "mock-c.example.net:80"


# ---- secrets --------------------------------------------------------------------------------------------
def test_dry_run_masks_secret_values_and_names_missing_ones(project, monkeypatch):
    assert set(SECRET_VALUES) == set(SECRET_ENV.values())  # a fake value for every secret variable
    for var in SECRET_ENV.values():
        monkeypatch.delenv(var, raising=False)
    out: list[str] = []
    run_plan(build_plan(project, "dev", "any", secrets_from_env=True), dry_run=True, echo=out.append)
    assert "'<from env API2SNOW_API_B_KEY>'" in "\n".join(out)
    for var in SECRET_ENV.values():
        assert f"'<from env {var}>'" in "\n".join(out), var
    for var, value in SECRET_VALUES.items():
        monkeypatch.setenv(var, value)
    out.clear()
    run_plan(build_plan(project, "dev", "any", secrets_from_env=True), dry_run=True, echo=out.append)
    text = "\n".join(out)
    assert "SECRET_STRING = '***'" in text and "AWS_ROLE_ARN = '***'" in text and "<from env" not in text
    assert (
        text.count("SECRET_STRING = '***'")
        == 2 * sum(SECRET_TYPE[d.auth.kind] == "GENERIC_STRING" for d in DECLARATIONS) + 2
    )  # and the alert webhook's secret (created, then rotated)
    for value in SECRET_VALUES.values():
        assert value not in text


def test_a_real_run_without_secrets_stops_before_calling_snow(project, monkeypatch, tmp_path):
    for var in SECRET_ENV.values():
        monkeypatch.delenv(var, raising=False)
    fake = _fake_snow(tmp_path, monkeypatch, fail_on_call=0)
    with pytest.raises(DeployError, match="API2SNOW_API_A_CLIENT_ID") as error:
        run_plan(build_plan(project, "dev", "any"), dry_run=False, echo=lambda line: None)
    assert "API2SNOW_AWS_ROLE_ARN" in str(error.value) and len(str(error.value).splitlines()) == 1
    assert all(var in str(error.value) for var in SECRET_ENV.values()), str(error.value)
    assert not fake["calls"].exists()
    steps = build_plan(project, "dev", "any", skip_admin=True)  # the admin's ARN is not needed then
    with pytest.raises(DeployError) as error:
        run_plan(steps, dry_run=False, echo=lambda line: None)
    assert "API2SNOW_AWS_ROLE_ARN" not in str(error.value)
    # an OAuth2 source's client is the admin's (its integration's); every other source's secret is the owner's
    for d in DECLARATIONS:
        for name in secret_variables(d):
            assert (SECRET_ENV[name] in str(error.value)) is (d not in OAUTH), (name, str(error.value))


# ---- running: a fake `snow` -----------------------------------------------------------------------------
FAKE_SNOW = """#!{python}
import json, os, sys
from pathlib import Path
calls = Path(os.environ["FAKE_SNOW_DIR"]) / "calls"
n = int(calls.read_text()) + 1 if calls.exists() else 1
calls.write_text(str(n))
stdin = sys.stdin.read() if "--stdin" in sys.argv else None
record = {{"argv": sys.argv[1:], "cwd": os.getcwd(), "stdin": stdin}}
with open(Path(os.environ["FAKE_SNOW_DIR"]) / "log.jsonl", "a") as log:
    log.write(json.dumps(record) + "\\n")
if n == int(os.environ.get("FAKE_SNOW_FAIL_ON", "0")):
    sys.stderr.write("/x/requests/__init__.py:113: RequestsDependencyWarning: urllib3\\n  warnings.warn(\\n")
    sys.stderr.write("\u256d\u2500 Error \u2500\u2500\u256e\\n\u2502 002003 (02000): SQL compilation error: "
                     "Schema 'DB.OPS' does not exist or not authorized. "
                     + os.environ.get("FAKE_SNOW_ECHO", "") + " \u2502\\n\u2570\u2500\u2500\u256f\\n")
    sys.exit(1)
per_call = Path(os.environ["FAKE_SNOW_DIR"]) / f"rows.{{n}}.json"
pipes = Path(os.environ["FAKE_SNOW_DIR"]) / "pipes.json"
if any(arg.startswith("SHOW PIPES") for arg in sys.argv):
    sys.stdout.write(pipes.read_text() if pipes.exists() else "[]")
elif per_call.exists():
    sys.stdout.write(per_call.read_text())
elif os.environ.get("FAKE_SNOW_JSON"):
    sys.stdout.write(Path(os.environ["FAKE_SNOW_JSON"]).read_text())
else:
    sys.stdout.write("+------+\\n| status |\\n| ok |\\n+------+\\n")
"""


def _fake_snow(
    tmp_path: Path, monkeypatch, fail_on_call: int, json_rows: list | None = None
) -> dict[str, Path]:
    script = tmp_path / "snow"
    script.write_text(FAKE_SNOW.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("API2SNOW_SNOW_BIN", str(script))
    monkeypatch.setenv("FAKE_SNOW_DIR", str(tmp_path))
    monkeypatch.setenv("FAKE_SNOW_FAIL_ON", str(fail_on_call))
    if json_rows is not None:
        (tmp_path / "rows.json").write_text(json.dumps(json_rows))
        monkeypatch.setenv("FAKE_SNOW_JSON", str(tmp_path / "rows.json"))
    return {"calls": tmp_path / "calls", "log": tmp_path / "log.jsonl"}


def _log(fake: dict[str, Path]) -> list[dict]:
    return [json.loads(line) for line in fake["log"].read_text().splitlines()]


def test_a_failing_step_stops_the_deploy_and_names_the_step(project, monkeypatch, tmp_path):
    for var, value in SECRET_VALUES.items():
        monkeypatch.setenv(var, value)
    steps = build_plan(project, "dev", "any", secrets_from_env=True)
    # the failing step sends every source's secret but the OAuth2 clients' (the admin's part 1 has those),
    # and the alert webhook's
    sent_secrets = [SECRET_ENV[name] for name in steps[2].secret_names()]
    assert sorted(sent_secrets) == sorted(
        [SECRET_ENV[name] for d in DECLARATIONS if d not in OAUTH for name in secret_variables(d)]
        + [SECRET_ENV["alert_webhook_secret"]]
    )
    # snow quoting each of them back, as given and as it stands in SQL
    echoed = [
        form for var in sent_secrets for form in (SECRET_VALUES[var], sql_string_body(SECRET_VALUES[var]))
    ]
    monkeypatch.setenv("FAKE_SNOW_ECHO", " ".join(echoed))
    fake = _fake_snow(tmp_path, monkeypatch, fail_on_call=3)
    out: list[str] = []
    with pytest.raises(DeployError) as error:
        run_plan(steps, dry_run=False, echo=out.append)
    message = str(error.value)
    first = message.splitlines()[0]
    assert "[3/18] external access: network rules and secrets" in first
    assert "snow exited 1" in first and "SQL compilation error: Schema 'DB.OPS' does not exist" in first
    assert f"does not exist or not authorized. {' '.join(['***'] * len(echoed))}" in first
    assert "RequestsDependencyWarning" not in first
    assert fake["calls"].read_text() == "3", "the deploy went on after a failing step"
    log = _log(fake)
    assert [entry["argv"][0] for entry in log] == ["sql", "sql", "sql"]
    assert all(entry["cwd"] == str(PROJECT_ROOT) for entry in log)
    sent = log[2]["stdin"]
    assert "OAUTH_CLIENT_SECRET = 's3cr3t-''quoted''-\\\\backslash-9c8b'" in log[0]["stdin"]
    assert "'soap-pass-&{not_a_template}-<% nor_this %>'" in sent and "--enable-templating" in log[2]["argv"]
    shown = message + "\n".join(out) + json.dumps([e["argv"] for e in log])
    for value in SECRET_VALUES.values():
        assert value not in shown, "a secret value was printed or passed on the command line"
    assert "[1/18] external access admin" in out[0] and out[1].endswith(" s)")


def test_a_full_run_calls_snow_once_per_step_and_skips_admin_steps(project, monkeypatch, tmp_path):
    for var, value in SECRET_VALUES.items():
        monkeypatch.setenv(var, value)
    fake = _fake_snow(tmp_path, monkeypatch, fail_on_call=0)
    steps = build_plan(project, "dev", "any", skip_admin=True, secrets_from_env=True)
    out: list[str] = []
    run_plan(steps, dry_run=False, echo=out.append)
    log = _log(fake)
    assert len(log) == len(steps) - 2
    assert all("ACCOUNTADMIN" not in entry["argv"] for entry in log)
    assert [e["argv"][:2] for e in log if e["argv"][0] == "snowpark"] == [
        ["snowpark", "build"],
        ["snowpark", "deploy"],
    ]
    assert sum("(skipped)" in line for line in out) == 2


def test_deploy_dry_run_through_the_cli(monkeypatch):
    for var in SECRET_ENV.values():
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(app, ["deploy", "--connection", "any", "--env", "dev", "--dry-run"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "dry run" in out and "database VIDEO_ANALYTICS_DEV" in out
    for fragment in (
        "[1/18] external access admin",
        "[5/18] snowpark build",
        "[8/18] s3 event notification for Snowpipe auto-ingest (sql/02_raw.sql)",
        "$ snow sql --connection any --role API2SNOW_OWNER --format json --enable-templating NONE -q "
        "'SHOW PIPES IN SCHEMA VIDEO_ANALYTICS_DEV.RAW'",
        "[17/18] dashboard: streamlit deploy",
        "$ snow streamlit deploy --replace --connection any",
        "[18/18] grants (sql/07_grants.sql)",
        "$ snow snowpark deploy --replace --connection any",
        "CREATE PIPE IF NOT EXISTS",
        "SELECT SYSTEM$TASK_DEPENDENTS_ENABLE('VIDEO_ANALYTICS_DEV.PIPELINE.ROOT');",
        "OAUTH_CLIENT_SECRET = '<from env API2SNOW_API_A_CLIENT_SECRET>'",
    ):
        assert fragment in out, fragment


def test_set_overrides_one_env_value_everywhere_and_rejects_what_it_cannot_set():
    args = ["deploy", "--connection", "any", "--env", "prod", "--dry-run"]
    result = CliRunner().invoke(app, [*args, "-D", "database=SCRATCH_DB", "--set", "code_stage=CODE2"])
    assert result.exit_code == 0, result.output
    assert "CREATE DATABASE IF NOT EXISTS SCRATCH_DB;" in result.output
    assert "--env database=SCRATCH_DB" in result.output and "--env code_stage=CODE2" in result.output
    assert "VIDEO_ANALYTICS." not in result.output
    for bad, message in (
        ("nope=1", "cannot override nope: not in snowflake.yml env"),
        ("database", "--set expects KEY=VALUE, got 'database'"),
    ):
        with pytest.raises(ProjectError, match=message):
            CliRunner().invoke(app, [*args, "-D", bad], catch_exceptions=False)


def test_teardown_dry_run_through_the_cli_asks_nothing():
    result = CliRunner().invoke(
        app, ["teardown", "--connection", "any", "--env", "prod", "--dry-run", "--include-admin"]
    )
    assert result.exit_code == 0, result.output
    assert "DROP DATABASE IF EXISTS VIDEO_ANALYTICS;" in result.output
    assert "Drop database" not in result.output


def test_teardown_without_yes_asks_first(monkeypatch, tmp_path):
    fake = _fake_snow(tmp_path, monkeypatch, fail_on_call=0)
    result = CliRunner().invoke(app, ["teardown", "--connection", "any"], input="n\n")
    assert result.exit_code != 0 and "Drop database VIDEO_ANALYTICS_DEV" in result.output
    assert not fake["calls"].exists()
    result = CliRunner().invoke(app, ["teardown", "--connection", "any", "--yes"])
    assert result.exit_code == 0, result.output
    assert fake["calls"].read_text() == "5"


# ---- status --connection --------------------------------------------------------------------------------
def test_status_reads_the_latest_graph_run_from_task_history(project, monkeypatch, tmp_path):
    rows = [
        {
            "NAME": name,
            "STATE": "SUCCEEDED",
            "SCHEDULED_TIME": "2026-11-26T10:00:00-08:00",
            "QUERY_START_TIME": "2026-11-26T10:00:01.500000-08:00",
            "COMPLETED_TIME": "2026-11-26T10:00:04-08:00",
            "RETURN_VALUE": '{"rows": 3}',
            "ERROR_MESSAGE": None,
            "GRAPH_RUN_GROUP_ID": "run-1",
            "ATTEMPT_NUMBER": "1",
        }
        for name in ("ROOT", "INGEST_API_A", "FINALIZE")
    ]
    fake = _fake_snow(tmp_path, monkeypatch, fail_on_call=0, json_rows=rows)
    progress = {
        "SOURCE": "api_b",
        "WATERMARK": "2026-11-20T10:00:00",
        "BATCH_ID": "b-1",
        "STATUS": "MERGED",
        "COMPLETE": False,
        "REMAINING": 4200,
        "FETCHED": 5000,
        "MAX_UPDATED_AT": "2026-11-20T10:00:00",
        "ERROR_MESSAGE": None,
    }
    (tmp_path / "rows.2.json").write_text(json.dumps([progress]))  # the second query: source progress
    result = CliRunner().invoke(app, ["status", "--connection", "any", "--env", "dev", "--format", "json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    [source] = status["sources"]
    assert (source["source"], source["state"], source["remaining"]) == ("api_b", "catching up", 4200)
    assert source["detail"] == "read up to 2026-11-20T10:00:00; 4200 records to go"
    progress_query = _log(fake)[1]["argv"][-1]
    assert "FROM VIDEO_ANALYTICS_DEV.OPS.BATCH_LEDGER AS batches" in progress_query
    assert status["run_id"] == "run-1" and status["state"] == "EXECUTING"  # some tasks have no row yet
    by_name = {t["name"]: t for t in status["tasks"]}
    assert by_name["INGEST_API_A"]["duration_s"] == 2.5 and by_name["INGEST_API_B"]["state"] == "NOT_RUN"
    argv = _log(fake)[0]["argv"]
    assert argv[:5] == ["sql", "--connection", "any", "--format", "json"]
    query = argv[argv.index("-q") + 1]
    assert "TABLE(VIDEO_ANALYTICS_DEV.INFORMATION_SCHEMA.TASK_HISTORY(" in query
    row = SnowRow(rows[0])
    assert row["name"] == "ROOT" and row["COMPLETED_TIME"].year == 2026 and row["ERROR_MESSAGE"] is None
    graph = graph_from_statements(
        _step(build_plan(project, "dev", "any", secrets_from_env=False), "tasks (sql/06").statements
    )
    done = graph_run_status(
        [SnowRow({**r, "NAME": t.short_name}) for r in rows[:1] for t in [*graph.order(), graph.finalizer]],
        graph,
    )
    assert done.state == "SUCCEEDED"


def test_the_live_suite_fails_loudly_when_the_account_shows_nothing_deployed(tmp_path):
    """The live suite against a `snow` that accepts every command and shows nothing: every test fails."""
    script = tmp_path / "snow"
    script.write_text(FAKE_SNOW.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "rows.json").write_text("[]")
    env = {
        **os.environ,
        **SECRET_VALUES,
        "API2SNOW_SNOW_BIN": str(script),
        "FAKE_SNOW_DIR": str(tmp_path),
        "FAKE_SNOW_JSON": str(tmp_path / "rows.json"),
        "API2SNOW_LIVE_CONNECTION": "nothing-deployed",
        "API2SNOW_LIVE_RUN_TIMEOUT_S": "1",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "snowflake",
            "-p",
            "no:cacheprovider",
            str(PROJECT_ROOT / "tests" / "test_live_snowflake.py"),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=240,
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 1, result.stdout[-3000:]
    assert "4 failed" in summary and "skipped" not in summary, summary
    assert "did not finish within 1 s" in result.stdout
    assert int((tmp_path / "calls").read_text()) > 14, "the suite did not run the deploy plan"


_GRANT = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<target>.+?) TO ROLE (?P<role>\S+)$")


def _grants_to(plan: list[Step], role: str) -> list[tuple[str, str]]:
    grants = []
    for statement in _statements(plan):
        match = _GRANT.match(_flat(statement))
        if match and match.group("role") == role:
            grants.append((match.group("privileges"), match.group("target")))
    return grants


def test_the_analyst_reads_analytics_and_calls_its_procedures_but_sees_no_raw_secret_or_integration(
    plan, project
):
    db = project.env["database"]
    grants = _grants_to(plan, project.env["analyst_role"])
    allowed = re.compile(
        rf"^(USAGE ON (DATABASE {db}|WAREHOUSE {project.env['warehouse']}"
        rf"|SCHEMA {db}\.(ANALYTICS|OPS|PIPELINE)"
        rf"|PROCEDURE {db}\.OPS\.\w+\((STRING(, STRING)*)?\)"
        rf"|STREAMLIT {db}\.ANALYTICS\.API2SNOW_DASHBOARD)"
        rf"|SELECT ON (ALL|FUTURE) (VIEWS|TABLES) IN SCHEMA {db}\.ANALYTICS"
        rf"|MONITOR ON ALL TASKS IN SCHEMA {db}\.PIPELINE)$"  # the graph's run history (the dashboard's)
    )
    assert grants and all(allowed.match(f"{p} ON {t}") for p, t in grants), grants
    called = {re.search(r"OPS\.(\w+)\(", t).group(1) for p, t in grants if t.startswith("PROCEDURE")}
    # docs/ANALYSTS.md's; BACKFILL calls the owner-only BACKFILL_<SOURCE>, which holds the source's secret
    assert called == {"BUILD_ANALYTICS", "RUN_DQ", "RECONCILE", "PIPELINE_STATUS", "BACKFILL", "REJECTS"}
    assert not any(project.procedures()[name].secrets for name in called), called
    flat = " ".join(t for _, t in grants)
    assert not re.search(r"\.(RAW|CLEAN)\b|SECRET|INTEGRATION", flat)


def test_the_operator_runs_and_watches_the_graph_without_secrets_or_integrations(plan, project):
    db = project.env["database"]
    grants = _grants_to(plan, project.env["operator_role"])
    assert ("MONITOR, OPERATE", f"ALL TASKS IN SCHEMA {db}.PIPELINE") in grants
    assert ("EXECUTE TASK", "ACCOUNT") in grants
    assert {t for p, t in grants if p == "MONITOR" and t.startswith("PIPE")} == {
        f"PIPE {db}.RAW.{name}" for name in PIPE_PREFIXES
    }
    assert not any(
        "SECRET" in t or "INTEGRATION" in t or p.startswith("SELECT") and ".RAW." in t for p, t in grants
    ), grants


def test_procedures_run_as_their_owner(project):
    mixins = project.definition["mixins"]
    for entity in project.definition["entities"].values():
        if entity["type"] != "procedure":
            continue
        merged = {**{k: v for m in entity["meta"]["use_mixins"] for k, v in mixins[m].items()}, **entity}
        assert merged["execute_as_caller"] is False


# ---- Snowpipe auto-ingest: the bucket's event notification ------------------------------------------------
QUEUE = "arn:aws:sqs:us-east-1:123456789012:sf-snowpipe-AIDAEXAMPLE"


def _show_pipes(database: str, without_channel: tuple[str, ...] = ()) -> list[dict]:
    """SHOW PIPES as `snow sql --format json` prints it (lower-case keys)."""
    return [
        {
            "created_on": "2026-11-30T10:00:00.000-08:00",
            "name": name,
            "database_name": database,
            "schema_name": "RAW",
            "notification_channel": None if name in without_channel else QUEUE,
            "comment": "api2snow",
        }
        for name in PIPE_PREFIXES
    ]


def _notification_step(project: Project, apply: bool = False) -> Step:
    plan = build_plan(project, "dev", "any", secrets_from_env=False, apply_s3_notification=apply)
    return _step(plan, "s3 event notification for Snowpipe auto-ingest")


def _ours(database: str) -> list[dict]:
    return [
        {
            "Id": f"api2snow-{name.lower()}",
            "QueueArn": QUEUE,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {
                "Key": {
                    "FilterRules": [
                        {"Name": "prefix", "Value": prefix},
                        {"Name": "suffix", "Value": ".jsonl.gz"},
                    ]
                }
            },
        }
        for name, prefix in sorted(PIPE_PREFIXES.items())
    ]


def test_the_notification_step_reads_the_pipes_and_their_stage_from_sql_02_and_dry_run_connects_nothing(
    project, monkeypatch, tmp_path
):
    db = project.env["database"]
    step = _notification_step(project)
    assert step.spec.kind == "notify" and step.statements == [f"SHOW PIPES IN SCHEMA {db}.RAW"]
    assert {s.pipe: (s.bucket, s.prefix) for s in step.notification.sources} == {
        f"{db}.RAW.{name}": ("api2snow-landing-dev", prefix) for name, prefix in PIPE_PREFIXES.items()
    }
    assert not step.notification.apply and step.notification.region == "us-east-1"
    fake = _fake_snow(tmp_path, monkeypatch, fail_on_call=0)
    out: list[str] = []
    run_plan([step, _notification_step(project, apply=True)], dry_run=True, echo=out.append)
    text = "\n".join(out)
    assert f"# {db}.RAW.API_A_EVENTS_PIPE loads s3://api2snow-landing-dev/source=api_a/*.jsonl.gz" in text
    assert "(--apply-s3-notification applies them)" in text and "with boto3 (region us-east-1)" in text
    assert not fake["calls"].exists()


def test_without_apply_the_step_prints_each_channel_and_the_aws_cli_commands(project, monkeypatch, tmp_path):
    db = project.env["database"]
    fake = _fake_snow(tmp_path, monkeypatch, fail_on_call=0)
    (tmp_path / "pipes.json").write_text(json.dumps(_show_pipes(db, without_channel=("API_C_CAMERAS_PIPE",))))
    out: list[str] = []
    run_plan([_notification_step(project)], dry_run=False, echo=out.append)
    [call] = _log(fake)
    assert call["argv"] == [
        *("sql", "--connection", "any", "--role", "API2SNOW_OWNER", "--format", "json"),
        *("--enable-templating", "NONE", "-q", f"SHOW PIPES IN SCHEMA {db}.RAW"),
    ]
    text = "\n".join(out)
    assert (
        f"    {db}.RAW.API_A_EVENTS_PIPE: {QUEUE} <- s3://api2snow-landing-dev/source=api_a/*.jsonl.gz" in out
    )
    assert f"warning: pipe {db}.RAW.API_C_CAMERAS_PIPE has no notification_channel" in text
    assert "recreate it once, after every staged batch is LOADED" in text
    block = re.search(r"^    (\{\n.*?^    \})$", text, re.MULTILINE | re.DOTALL).group(1)
    expected = [q for q in _ours(db) if q["Id"] != "api2snow-api_c_cameras_pipe"]
    assert json.loads(block) == {"QueueConfigurations": expected}
    assert (
        "aws s3api put-bucket-notification-configuration --bucket api2snow-landing-dev --region us-east-1"
        in text
    )
    assert out[-1].startswith("[1/1] s3 event notification") and out[-1].endswith(" s)")


def test_apply_merges_the_queue_configurations_into_the_buckets_own_configuration(
    project, monkeypatch, tmp_path
):
    import boto3
    from moto import mock_aws

    db, bucket = project.env["database"], project.env["bucket"]
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    _fake_snow(tmp_path, monkeypatch, fail_on_call=0)
    (tmp_path / "pipes.json").write_text(json.dumps(_show_pipes(db)))
    topics = [
        {
            "Id": "audit",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:audit",
            "Events": ["s3:ObjectRemoved:*"],
        }
    ]
    exports = {
        "Id": "exports",
        "QueueArn": "arn:aws:sqs:us-east-1:123456789012:exports",
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "exports/"}]}},
    }
    stale = {
        **_ours(db)[0],
        "Id": "api2snow-dropped_pipe",
        "QueueArn": "arn:aws:sqs:us-east-1:123456789012:old",
    }
    out: list[str] = []
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "TopicConfigurations": topics,
                "QueueConfigurations": [exports, stale],
            },
        )
        for _ in range(2):  # applying again changes nothing
            run_plan([_notification_step(project, apply=True)], dry_run=False, echo=out.append)
            config = s3.get_bucket_notification_configuration(Bucket=bucket)
            config.pop("ResponseMetadata")
            assert config == {"TopicConfigurations": topics, "QueueConfigurations": [exports, *_ours(db)]}
    assert (
        f"    applied to s3://{bucket}: {len(PIPE_PREFIXES)} api2snow queue configuration(s), "
        "2 other configuration(s) of the " in ("\n".join(out))
    )


def test_a_failing_apply_stops_the_deploy_naming_the_step(project, monkeypatch, tmp_path):
    from moto import mock_aws

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    _fake_snow(tmp_path, monkeypatch, fail_on_call=0)
    (tmp_path / "pipes.json").write_text(json.dumps(_show_pipes(project.env["database"])))
    with (
        mock_aws(),
        pytest.raises(DeployError, match=r"^step \[1/1\] s3 event notification .* failed: .*NoSuchBucket"),
    ):
        run_plan([_notification_step(project, apply=True)], dry_run=False, echo=lambda line: None)


def test_steps_file_lines_are_checked_with_their_line_number(tmp_path):
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "sql", root / "sql")
    (root / "deploy").mkdir()
    for line, message in (
        ("owner | file | setup", "deploy/steps.txt:1: expected `ROLE | KIND | NAME | TARGET`"),
        (
            "root | file | setup | sql/01_setup.sql",
            "deploy/steps.txt:1: role 'root' is not one of admin, owner",
        ),
        ("owner | copy | setup | sql/01_setup.sql", "deploy/steps.txt:1: kind 'copy' is not one of"),
        ("owner | part | setup | sql/01_setup.sql 3", "a part step's target is `FILE 1` or `FILE 2`"),
        ("owner | file | setup | sql/99_none.sql", "deploy/steps.txt:1: no file sql/99_none.sql"),
        ("admin | snow | build | snowpark build", "deploy/steps.txt:1: a snow step runs as owner"),
        ("owner | snow | build | snowpark build '$x'", "a snow step's arguments are plain words"),
    ):
        (root / "deploy" / "steps.txt").write_text(line + "\n")
        with pytest.raises(ProjectError, match=re.escape(message)):
            load_steps(root)
