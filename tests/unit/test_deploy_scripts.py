"""scripts/deploy.sh and scripts/admin_bootstrap.sh against a fake `snow` on PATH: they run the steps of
deploy/steps.txt exactly as `api2snow deploy` plans them (same files, parts, statements, roles and order,
checked by rendering what each `snow` call would send the way `snow sql` renders it), stop at the first
failing step naming it, and never print a secret. Offline and quick: every `snow` call is a tiny script.
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
import yaml
from api2snow.sources import SOURCES

from api2snow_cli.deploy import SECRET_ENV, Step, build_plan, env_overrides, load_project, load_steps
from api2snow_cli.project import (
    HOST_VARIABLES,
    PROJECT_ROOT,
    SECRET_VARIABLES,
    ProjectError,
    render,
    secret_variables,
    split_sql,
    sql_string_body,
)
from api2snow_cli.s3_notification import queue_configurations, split_by_channel

try:  # the same distinctive fake values as the plan tests, so a leak reads the same in both
    from .test_deploy_plan import SECRET_VALUES
except ImportError:
    from test_deploy_plan import SECRET_VALUES

DEPLOY_SH = PROJECT_ROOT / "scripts" / "deploy.sh"
BOOTSTRAP_SH = PROJECT_ROOT / "scripts" / "admin_bootstrap.sh"
DECLARATIONS = tuple(source.declaration for source in SOURCES.values())  # type: ignore[attr-defined]
OAUTH = tuple(d for d in DECLARATIONS if d.auth.kind == "oauth2_client_credentials")
FAKE_SNOW = """#!{python}
import json, os, sys
from pathlib import Path
home = Path(os.environ["FAKE_SNOW_DIR"])
calls = home / "calls"
n = int(calls.read_text()) + 1 if calls.exists() else 1
calls.write_text(str(n))
stdin = sys.stdin.read() if "--stdin" in sys.argv else None
with open(home / "log.jsonl", "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "stdin": stdin}}) + "\\n")
if n == int(os.environ.get("FAKE_SNOW_FAIL_ON", "0")):
    sys.stderr.write("002003 (02000): SQL compilation error: Schema 'DB.OPS' does not exist. "
                     + os.environ.get("FAKE_SNOW_ECHO", "") + "\\n")
    sys.exit(1)
if any(arg.startswith("SHOW PIPES") for arg in sys.argv):
    sys.stdout.write((home / "pipes.json").read_text() if (home / "pipes.json").exists() else "[]")
elif stdin is not None:
    sys.stdout.write(stdin)  # snow echoes each statement it runs: the secrets are in there
else:
    sys.stdout.write("status ok\\n")
"""


def _pipe_rows(database: str, without_channel: str | None = None) -> list[dict]:
    names = [*(d.pipe.rsplit(".", 1)[-1] for d in DECLARATIONS), "REJECTED_RECORDS_PIPE"]
    return [  # SHOW PIPES as `snow sql --format json` prints it: lower-case keys
        {
            "name": name,
            "database_name": database,
            "schema_name": "RAW",
            "notification_channel": None
            if name == without_channel
            else "arn:aws:sqs:us-east-1:123456789012:sf-snowpipe-AIDAEXAMPLE",
        }
        for name in names
    ]


@pytest.fixture
def fake(tmp_path):
    """A directory holding a fake `snow`; `run` runs a script with it first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "snow"
    script.write_text(FAKE_SNOW.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)

    class Fake:
        home = tmp_path

        @staticmethod
        def run(script: Path, *args: str, secrets: bool = True, **env: str) -> subprocess.CompletedProcess:
            environ = {k: v for k, v in os.environ.items() if not k.startswith(("API2SNOW_", "FAKE_SNOW"))}
            environ.update(SECRET_VALUES if secrets else {})
            environ.update(
                env, FAKE_SNOW_DIR=str(tmp_path), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
            )
            return subprocess.run(
                ["sh", str(script), *args],
                capture_output=True,
                text=True,
                env=environ,
                cwd=tmp_path,
                timeout=60,
            )

        @staticmethod
        def log() -> list[dict]:
            path = tmp_path / "log.jsonl"
            return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    return Fake


def _python_plan(env_name: str, skip_admin: bool, monkeypatch) -> list[Step]:
    for var, value in SECRET_VALUES.items():
        monkeypatch.setenv(var, value)
    project = load_project(env_name)
    return [s for s in build_plan(project, env_name, "any", skip_admin=skip_admin) if not s.skipped]


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _pairs(argv: list[str], flag: str) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == flag)


def _as_snow_renders(call: dict) -> list[str]:
    """The statements a `snow sql` call of the script sends: its SQL rendered with snowflake.yml's env, the
    call's `--env` overrides and its `-D` variables (how `snow sql` renders, reference/snowflake.md)."""
    argv = call["argv"]
    if "-f" in argv:
        text = (PROJECT_ROOT / _option(argv, "-f")).read_text()
    elif "--stdin" in argv:
        text = call["stdin"]
    else:
        text = _option(argv, "-q")
    assert _option(argv, "--enable-templating") == "STANDARD", argv
    env = {
        k: "" if v is None else str(v)
        for k, v in yaml.safe_load((PROJECT_ROOT / "snowflake.yml").read_text())["env"].items()
    }
    return split_sql(render(text, {**env, **_pairs(argv, "--env"), **_pairs(argv, "-D")}))


def _assert_same_steps(calls: list[dict], plan: list[Step]) -> None:
    assert len(calls) == len(plan), ([c["argv"][:2] for c in calls], [s.name for s in plan])
    for call, step in zip(calls, plan, strict=True):
        argv = call["argv"]
        assert call["cwd"] == str(PROJECT_ROOT)
        for option in ("--connection", "--role", "--warehouse"):
            assert _option(argv, option) == _option(step.argv, option), (step.name, option)
        if step.kind == "snow":
            assert argv == step.argv, step.name
        elif step.kind == "notify":
            assert _option(argv, "--format") == "json" and _as_snow_renders(call) == step.statements
        else:
            assert argv[0] == "sql", step.name
            assert _as_snow_renders(call) == split_sql(step.sql_text()), step.name


# ---- the same steps as api2snow deploy -----------------------------------------------------------------
@pytest.mark.parametrize("skip_admin", [False, True])
def test_deploy_sh_runs_the_steps_api2snow_deploy_plans(fake, monkeypatch, skip_admin):
    (fake.home / "pipes.json").write_text(json.dumps(_pipe_rows("VIDEO_ANALYTICS_DEV")))
    args = ["--connection", "any", "--env", "dev"] + (["--skip-admin"] if skip_admin else [])
    result = fake.run(DEPLOY_SH, *args)
    assert result.returncode == 0, result.stderr
    plan = _python_plan("dev", skip_admin, monkeypatch)
    _assert_same_steps(fake.log(), plan)
    out = result.stdout + result.stderr
    assert out.count("(skipped)") == (2 if skip_admin else 0)
    assert "[18/18] grants (sql/07_grants.sql) ok" in out and "deployed VIDEO_ANALYTICS_DEV" in out
    for value in SECRET_VALUES.values():
        assert value not in out


def test_the_notification_step_prints_what_api2snow_computes(fake, monkeypatch):
    rows = _pipe_rows("VIDEO_ANALYTICS_DEV", without_channel="API_C_CAMERAS_PIPE")
    (fake.home / "pipes.json").write_text(json.dumps(rows))
    result = fake.run(DEPLOY_SH, "-c", "any", "--env", "dev", "--skip-admin")
    assert result.returncode == 0, result.stderr
    step = next(s for s in _python_plan("dev", True, monkeypatch) if s.kind == "notify")
    sources = step.notification.sources
    channels, missing = split_by_channel(rows, sources[0].bucket, {s.pipe: s.prefix for s in sources})
    assert missing == ["VIDEO_ANALYTICS_DEV.RAW.API_C_CAMERAS_PIPE"]
    block = re.search(r"^    (\{\n.*?^    \})$", result.stdout, re.MULTILINE | re.DOTALL).group(1)
    assert json.loads(block) == {"QueueConfigurations": queue_configurations(channels)}
    assert (
        "warning: pipe VIDEO_ANALYTICS_DEV.RAW.API_C_CAMERAS_PIPE has no notification_channel"
        in result.stdout
    )
    assert (
        "aws s3api put-bucket-notification-configuration --bucket api2snow-landing-dev --region us-east-1"
        in (result.stdout)
    )


def test_admin_bootstrap_runs_the_steps_up_to_the_last_admin_step_or_the_admin_steps_alone(fake, monkeypatch):
    plan = _python_plan("prod", False, monkeypatch)
    last_admin = max(i for i, s in enumerate(plan) if s.spec.role == "admin")
    result = fake.run(BOOTSTRAP_SH, "--connection", "adm", "--env", "prod")
    assert result.returncode == 0, result.stderr
    _assert_same_steps(fake.log(), [replace_connection(s, "adm") for s in plan[: last_admin + 1]])
    assert "[4/4]" in result.stdout and "routine deploys run as API2SNOW_OWNER" in result.stdout
    (fake.home / "log.jsonl").unlink()
    result = fake.run(BOOTSTRAP_SH, "--admin-only", "-c", "adm", "--env", "prod")
    assert result.returncode == 0, result.stderr
    admin = [replace_connection(s, "adm") for s in plan if s.spec.role == "admin"]
    _assert_same_steps(fake.log(), admin)
    assert all(_option(c["argv"], "--role") == "ACCOUNTADMIN" for c in fake.log()) and len(admin) == 2


def replace_connection(step: Step, connection: str) -> Step:
    step.argv = [
        connection if i and step.argv[i - 1] == "--connection" else a for i, a in enumerate(step.argv)
    ]
    return step


# ---- failures and secrets ----------------------------------------------------------------------------------
def test_a_failing_step_stops_the_script_naming_it_without_printing_secrets(fake):
    echoed = (
        SECRET_VALUES["API2SNOW_API_B_KEY"]
        + " "
        + sql_string_body(SECRET_VALUES["API2SNOW_API_A_CLIENT_SECRET"])  # as it stands in SQL
    )
    others = [f for v in SECRET_VALUES.values() for f in (v, sql_string_body(v))]  # every secret, both forms
    echoed += " " + " ".join(others)
    result = fake.run(DEPLOY_SH, "-c", "any", "--env", "dev", FAKE_SNOW_FAIL_ON="3", FAKE_SNOW_ECHO=echoed)
    assert result.returncode != 0
    assert (fake.home / "calls").read_text() == "3", "the script went on after a failing step"
    assert (
        "step [3/18] external access: network rules and secrets "
        "(external_access/01_network_rules_and_secrets.sql) failed (snow exited 1)" in result.stderr
    )
    assert "SQL compilation error: Schema 'DB.OPS' does not exist. *** ***" in result.stderr
    assert f"does not exist. {' '.join(['***'] * (2 + len(others)))}" in result.stderr
    shown = result.stdout + result.stderr
    for value in SECRET_VALUES.values():
        assert value not in shown and sql_string_body(value) not in shown
    assert "-D 'api_b_key=***'" in result.stderr  # the failing command, as it may be shown


def test_a_run_without_secrets_stops_before_calling_snow(fake):
    result = fake.run(DEPLOY_SH, "-c", "any", "--env", "dev", secrets=False)
    assert result.returncode != 0 and not fake.log()
    message = result.stderr.strip()
    assert (
        len(message.splitlines()) == 1
        and "API2SNOW_API_B_KEY" in message
        and "API2SNOW_AWS_ROLE_ARN" in message
    )
    assert set(re.findall(r"\bAPI2SNOW_\w+", message)) == set(SECRET_ENV.values()), message
    result = fake.run(DEPLOY_SH, "-c", "any", "--skip-admin", secrets=False, API2SNOW_API_B_KEY="k" * 8)
    assert (
        result.returncode != 0 and "API2SNOW_AWS_ROLE_ARN" not in result.stderr
    )  # the admin's are not needed
    # what is still missing: every source's secret but B's (set) and the OAuth2 clients (the admin's), and
    # the alert webhook's
    assert set(re.findall(r"\bAPI2SNOW_\w+", result.stderr)) == {
        SECRET_ENV[name]
        for d in DECLARATIONS
        if d not in OAUTH
        for name in secret_variables(d)
        if name != "api_b_key"
    } | {SECRET_ENV["alert_webhook_secret"]}, result.stderr


def test_dry_run_prints_every_snow_command_with_secrets_masked_and_calls_nothing(fake):
    result = fake.run(DEPLOY_SH, "-c", "any", "--env", "dev", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not fake.log()
    out = result.stdout
    assert out.count("    $ snow ") == 18 and "dry run: nothing connects" in out
    assert "-D 'api_b_key=***'" in out and "-f sql/06_tasks.sql" in out
    for name in SECRET_VARIABLES:  # every secret, masked, in the step that uses it
        assert f"-D '{name}=***'" in out, name
    assert "--stdin  # part 2 of external_access/02_admin_integrations.sql, on standard input" in out
    assert "-q 'SHOW PIPES IN SCHEMA <% ctx.env.database %>.RAW'" in out
    for value in SECRET_VALUES.values():
        assert value not in out
    unset = fake.run(DEPLOY_SH, "-c", "any", "--dry-run", secrets=False)
    assert "-D 'api_c_password=<from env API2SNOW_API_C_PASSWORD>'" in unset.stdout
    for name, var in SECRET_ENV.items():
        assert f"-D '{name}=<from env {var}>'" in unset.stdout, name


# ---- environment values ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env_name", sorted(yaml.safe_load((PROJECT_ROOT / "deploy" / "envs.yml").read_text()))
)
def test_the_script_reads_each_environment_as_api2snow_does(fake, env_name):
    result = fake.run(DEPLOY_SH, "--env", env_name, "--print-env", "--set", "part_max_mb=96")
    assert result.returncode == 0, result.stderr
    shown = dict(line.split("=", 1) for line in result.stdout.splitlines())
    project = load_project(env_name, {"part_max_mb": "96"})
    assert shown == {
        **project.env,
        **{k: v for k, v in project.external_access_variables({}).items() if k.endswith("_host")},
    }


def test_env_file_and_set_override_on_top_and_unknown_keys_are_refused(fake, tmp_path):
    env_file = tmp_path / "ci.env"
    env_file.write_text("# CI values\napi_a_base_url=http://203.0.113.7:08080/v1\ndatabase = SCRATCH\n\n")
    result = fake.run(
        DEPLOY_SH, "--env", "prod", "--env-file", str(env_file), "-D", "bucket=b2", "--print-env"
    )
    assert result.returncode == 0, result.stderr
    shown = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert (
        shown["database"] == "SCRATCH"
        and shown["bucket"] == "b2"
        and shown["api_a_host"] == "203.0.113.7:8080"
    )
    assert shown["api_b_host"] == "api-b.example.com" and shown["region"] == "us-east-1"
    result = fake.run(DEPLOY_SH, "--env", "prod", "--set", "nope=1", "--print-env")
    assert result.returncode != 0 and "--set sets nope: not in snowflake.yml env" in result.stderr


def _project_copy(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for name in ("scripts", "deploy", "sql", "external_access"):
        shutil.copytree(PROJECT_ROOT / name, root / name)
    shutil.copy(PROJECT_ROOT / "snowflake.yml", root / "snowflake.yml")
    return root


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("  api_a_auth: off", "quote off: YAML reads it as a boolean or null"),
        ("  part_max_mb: 1.50", "quote 1.50: YAML may read it as a number or date"),
        ("  bucket: {a: 1}", "quote this value: YAML reads it as syntax"),
        ("    bucket: deeper", "indented unlike the lines above it"),
    ],
)
def test_yaml_the_scripts_cannot_read_as_api2snow_does_is_refused_by_line(fake, tmp_path, line, refused):
    root = _project_copy(tmp_path)
    envs = root / "deploy" / "envs.yml"
    envs.write_text(envs.read_text().replace("  env_name: dev\n", f"  env_name: dev\n{line}\n", 1))
    result = fake.run(root / "scripts" / "deploy.sh", "--env", "dev", "--print-env")
    assert result.returncode != 0 and refused in result.stderr, result.stderr
    number = envs.read_text().splitlines().index(line) + 1
    assert f"deploy/envs.yml:{number}: " in result.stderr
    if "off" in line:  # api2snow refuses a typed value too, rather than deploying "False"
        with pytest.raises(ProjectError, match="api_a_auth: quote the value"):
            env_overrides("dev", root)


# ---- the steps file ----------------------------------------------------------------------------------------
def test_both_readers_refuse_a_steps_file_that_leaves_out_a_sql_file(fake, tmp_path):
    root = _project_copy(tmp_path)
    steps = root / "deploy" / "steps.txt"
    steps.write_text(
        "".join(line for line in steps.read_text().splitlines(keepends=True) if "sql/03" not in line)
    )
    message = "deploy/steps.txt must run sql/03_clean.sql exactly once (a file step); it runs it 0 times"
    with pytest.raises(ProjectError, match=re.escape(message)):
        load_steps(root)
    result = fake.run(root / "scripts" / "deploy.sh", "-c", "any", "--dry-run")
    assert result.returncode != 0 and message in result.stderr


def test_api2snow_refuses_tasks_outside_the_suspend_resume_pair(tmp_path):
    root = _project_copy(tmp_path)
    steps = root / "deploy" / "steps.txt"
    steps.write_text(
        "".join(line for line in steps.read_text().splitlines(keepends=True) if "tasks: resume" not in line)
    )
    project = load_project("dev", {}, root)
    with pytest.raises(ProjectError, match="creates tasks: put `ALTER TASK IF EXISTS"):
        build_plan(project, "dev", "any", secrets_from_env=False)


def _template_names(root: Path) -> tuple[list[str], list[str]]:
    """SECRET_NAMES and HOST_NAMES as scripts/deploy.sh's load_template_names reads them in `root`."""
    function = re.search(
        r"^load_template_names\(\) \{.*?^\}$", DEPLOY_SH.read_text(), re.MULTILINE | re.DOTALL
    ).group(0)
    shown = subprocess.run(
        [
            "sh",
            "-c",
            f'set -eu\n{function}\nload_template_names\nprintf "%s\\n%s\\n" "$SECRET_NAMES" "$HOST_NAMES"',
        ],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    ).stdout.splitlines()
    return shown[0].split(), shown[1].split()


def test_scripts_are_posix_sh_and_secret_variables_match_api2snow(tmp_path):
    for script in (DEPLOY_SH, BOOTSTRAP_SH):
        assert script.read_text().startswith("#!/bin/sh\n") and os.access(script, os.X_OK)
        subprocess.run(["sh", "-n", str(script)], check=True)
    secrets, hosts = _template_names(PROJECT_ROOT)
    assert sorted(secrets) == sorted(SECRET_VARIABLES) and len(secrets) == len(set(secrets))
    assert {f"API2SNOW_{n.upper()}" for n in secrets} == set(SECRET_ENV.values())
    assert sorted(hosts) == sorted(HOST_VARIABLES) == sorted(f"{d.name}_host" for d in DECLARATIONS)
    assert {"api_d_token", "api_d_host"} <= {*secrets, *hosts}
    # read from the files, not listed: a variable added to external_access/ is a new secret (or host) there
    root = _project_copy(tmp_path)
    sql = root / "external_access" / "01_network_rules_and_secrets.sql"
    sql.write_text(
        sql.read_text()
        + "\n-- E's token.\nSELECT '<% api_e_token %>', '<%api_e_host%>', '<% ctx.env.bucket %>';\n"
    )
    secrets, hosts = _template_names(root)
    assert sorted(secrets) == sorted([*SECRET_VARIABLES, "api_e_token"])
    assert sorted(hosts) == sorted([*HOST_VARIABLES, "api_e_host"])
