"""`api2snow deploy | teardown | status --connection`: the project, applied to a Snowflake account.

A plan is a list of steps built offline from the files the local stack reads too (snowflake.yml, sql/,
external_access/), rendered for one environment of deploy/envs.yml. `run_plan` prints it (dry run, nothing
connects) or runs each step with the Snowflake CLI and stops at the first failure, naming the step and
quoting `snow`'s error.

Secret values are read from environment variables only (SECRET_ENV). Inside a plan they stand as markers;
they are substituted just before a statement is piped to `snow sql --stdin`, and shown as `***` (or as a
`<from env ...>` placeholder when unset) everywhere else. Nothing here writes them to a file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from .history import latest_run_query
from .local.pipes import PipeDefinition, is_pipe_statement
from .local.tasks import is_task_statement, project_task_graph
from .project import (
    ADMIN_SQL,
    EXTERNAL_ACCESS_SQL,
    PROJECT_ROOT,
    SECRET_VARIABLES,
    Project,
    ProjectError,
    host_port,
    split_sql,
    sql_string_body,
)

ENVS_FILE = Path("deploy") / "envs.yml"
ADMIN_PART_2 = "-- PART 2:"  # the line in ADMIN_SQL where the part that needs external_access/01 starts
ADMIN_ROLE = "ACCOUNTADMIN"
SNOW_BIN_ENV = "API2SNOW_SNOW_BIN"  # a `snow` executable to use instead of the installed one (tests)

# Secret template variable of external_access/ -> the environment variable its value comes from.
SECRET_ENV = {name: f"API2SNOW_{name.upper()}" for name in SECRET_VARIABLES}
# A few sql/ files get a friendlier step name; any other file is deployed too, under its own name.
LAYER_NAMES = {
    "01": "setup",
    "02": "raw + pipes",
    "03": "clean",
    "04": "analytics",
    "05": "dq",
    "06": "tasks",
    "07": "grants",
}
MASK = "***"
_MARKER = "@@api2snow-secret:{}@@"
_SECRET_MARKERS = {name: _MARKER.format(name) for name in SECRET_VARIABLES}  # stand-ins until piped to snow
_MARKER_RE = re.compile(r"@@api2snow-secret:([a-z0-9_]+)@@")
_CREATE_INTEGRATION = re.compile(
    r"^CREATE\s+(?:STORAGE\s+|SECURITY\s+|EXTERNAL\s+ACCESS\s+)?INTEGRATION\s+IF\s+NOT\s+EXISTS\s+(\S+)",
    re.IGNORECASE,
)
_PY_WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning:|^\s*warnings\.warn\(")


class DeployError(RuntimeError):
    """A deploy or teardown step failed, or could not start."""


# ---- environments -------------------------------------------------------------------------------------
def env_overrides(env_name: str, root: Path = PROJECT_ROOT) -> dict[str, str]:
    """deploy/envs.yml's values for one environment; every key must exist in snowflake.yml's env block."""
    envs = yaml.safe_load((root / ENVS_FILE).read_text()) or {}
    if env_name not in envs:
        raise ProjectError(f"unknown --env {env_name!r}: {ENVS_FILE} defines {', '.join(envs) or 'nothing'}")
    values = {key: "" if value is None else str(value) for key, value in (envs[env_name] or {}).items()}
    defaults = (yaml.safe_load((root / "snowflake.yml").read_text()) or {}).get("env", {})
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ProjectError(f"{ENVS_FILE} [{env_name}] sets {', '.join(unknown)}: not in snowflake.yml env")
    return values


def load_project(
    env_name: str, overrides: Mapping[str, str] | None = None, root: Path = PROJECT_ROOT
) -> Project:
    """The project rendered for `env_name`: snowflake.yml env, then deploy/envs.yml, then `overrides`."""
    project = Project.load(root, {**env_overrides(env_name, root), **dict(overrides or {})})
    unknown = sorted(set(overrides or {}) - set(project.definition.get("env", {})))
    if unknown:
        raise ProjectError(f"cannot override {', '.join(unknown)}: not in snowflake.yml env")
    return project


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """`KEY=VALUE` strings (`--set`/`-D`) as a dict; the value may be empty or contain `=`."""
    values: dict[str, str] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise ProjectError(f"--set expects KEY=VALUE, got {assignment!r}")
        values[key.strip()] = value
    return values


def _check_env(project: Project, env_name: str) -> None:
    if project.env.get("env_name") != env_name:
        loaded = project.env.get("env_name")
        raise ProjectError(
            f"the project is loaded for env {loaded!r}, not {env_name!r}: "
            "load it with api2snow_cli.deploy.load_project(env_name)"
        )


def snow_env_args(project: Project) -> list[str]:
    """`--env key=value` for each env value that differs from snowflake.yml, as `snow snowpark` takes them."""
    defaults = {k: "" if v is None else str(v) for k, v in project.definition.get("env", {}).items()}
    args: list[str] = []
    for key, default in defaults.items():
        if project.env.get(key, default) != default:
            args += ["--env", f"{key}={project.env[key]}"]
    return args


def secrets_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {name: environ[var] for name, var in SECRET_ENV.items() if environ.get(var)}


# ---- steps --------------------------------------------------------------------------------------------
@dataclass
class Step:
    """One thing deploy or teardown does: SQL piped to `snow sql --stdin`, or another `snow` command."""

    name: str
    kind: str  # "sql" | "snow"
    argv: list[str]  # the `snow` arguments, without the executable
    statements: list[str] = field(default_factory=list)  # rendered; secrets stand as markers
    skipped: str | None = None  # why it does not run (--skip-admin) and who must run it instead
    cwd: Path | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def secret_names(self) -> list[str]:
        return sorted({m for s in self.statements for m in _MARKER_RE.findall(s)})

    def missing_secrets(self) -> list[str]:
        return [SECRET_ENV[name] for name in self.secret_names() if name not in self.secrets]

    def shown_statements(self) -> list[str]:
        """The statements as they may be printed: secret values are `***` or a placeholder."""

        def shown(match: re.Match[str]) -> str:
            name = match.group(1)
            return MASK if name in self.secrets else f"<from env {SECRET_ENV[name]}>"

        return [_MARKER_RE.sub(shown, s) for s in self.statements]

    def sql_text(self) -> str:
        """The script for `snow sql --stdin`, with the secret values in; never print or store it."""
        missing = self.missing_secrets()
        if missing:
            raise DeployError(f"step {self.name!r} needs {', '.join(missing)} in the environment")
        return "".join(
            _MARKER_RE.sub(lambda m: sql_string_body(self.secrets[m.group(1)]), s) + ";\n"
            for s in self.statements
        )

    def command(self) -> str:
        return shlex.join(["snow", *self.argv])


def _sql_argv(connection: str, role: str, warehouse: str | None) -> list[str]:
    argv = ["sql", "--connection", connection, "--role", role]
    if warehouse:
        argv += ["--warehouse", warehouse]
    # The SQL is rendered already; a secret containing `&{` or `<%` must reach Snowflake as it is.
    return [*argv, "--enable-templating", "NONE", "--stdin"]


class _Planner:
    def __init__(self, project: Project, connection: str, secrets: Mapping[str, str]) -> None:
        self.project = project
        self.connection = connection
        self.secrets = dict(secrets)
        self.env = project.env
        self.owner = self.env["owner_role"]
        self.warehouse = self.env.get("warehouse") or None

    def sql(self, name: str, statements: list[str], admin: bool = False, skipped: str | None = None) -> Step:
        argv = (
            _sql_argv(self.connection, ADMIN_ROLE, None)
            if admin
            else _sql_argv(self.connection, self.owner, self.warehouse)
        )
        step = Step(name, "sql", argv, list(statements), skipped=skipped, cwd=self.project.root)
        step.secrets = {k: v for k, v in self.secrets.items() if k in step.secret_names()}
        return step

    def snow(self, name: str, argv: list[str]) -> Step:
        connection = ["--connection", self.connection, "--role", self.owner]
        if self.warehouse:
            connection += ["--warehouse", self.warehouse]
        return Step(name, "snow", [*argv, *connection, *snow_env_args(self.project)], cwd=self.project.root)

    def render_file(self, relative: Path) -> str:
        return self.project.render_external_access(relative, _SECRET_MARKERS)

    def layer_files(self) -> list[Path]:
        return self.project.sql_files("sql")


def _admin_parts(planner: _Planner) -> tuple[list[str], list[str]]:
    text = planner.render_file(ADMIN_SQL)
    lines = text.splitlines(keepends=True)
    try:
        cut = next(i for i, line in enumerate(lines) if line.startswith(ADMIN_PART_2))
    except StopIteration:
        raise ProjectError(f"{ADMIN_SQL} has no {ADMIN_PART_2!r} line") from None
    return split_sql("".join(lines[:cut])), split_sql("".join(lines[cut:]))


def _skip_admin_note(env_name: str, part: str) -> str:
    return (
        f"--skip-admin: an account admin runs {part} of {ADMIN_SQL} as {ADMIN_ROLE} once, and again "
        "when hosts, bucket, roles or API A's client credentials change: "
        f"`api2snow deploy --connection <admin connection> --env {env_name}`, "
        "or the statements below with "
        f"`snow sql --connection <admin connection> --role {ADMIN_ROLE} --stdin`"
    )


def build_plan(
    project: Project, env_name: str, connection: str, skip_admin: bool = False, secrets_from_env: bool = True
) -> list[Step]:
    """Every step of a deploy, in order, rendered for the project's environment; nothing connects.

    Order: admin part 1 (roles, warehouse, storage, AWS_IAM and OAuth2 integrations), sql/01 setup,
    external_access/01 (network rules, secrets), admin part 2 (external access integrations), snow snowpark
    build + deploy, then sql/02 onward; sql/06's tasks are wrapped in suspend-root /
    SYSTEM$TASK_DEPENDENTS_ENABLE.
    """
    _check_env(project, env_name)
    planner = _Planner(project, connection, secrets_from_environment() if secrets_from_env else {})
    admin_1, admin_2 = _admin_parts(planner)
    files = planner.layer_files()
    setup, layers = files[0], files[1:]
    graph = project_task_graph(project)
    root = graph.root.name

    skip_1 = _skip_admin_note(env_name, "part 1") if skip_admin else None
    skip_2 = _skip_admin_note(env_name, "part 2") if skip_admin else None
    steps = [
        planner.sql(
            f"external access admin: roles, warehouse, integrations ({ADMIN_SQL} part 1)",
            admin_1,
            admin=True,
            skipped=skip_1,
        ),
        planner.sql(f"{_layer_name(setup)} (sql/{setup.name})", project.statements(setup)),
        planner.sql(
            f"external access: network rules and secrets ({EXTERNAL_ACCESS_SQL})",
            split_sql(planner.render_file(EXTERNAL_ACCESS_SQL)),
        ),
        planner.sql(
            f"external access admin: external access integrations ({ADMIN_SQL} part 2)",
            admin_2,
            admin=True,
            skipped=skip_2,
        ),
        planner.snow("snowpark build", ["snowpark", "build"]),
        planner.snow("snowpark deploy", ["snowpark", "deploy", "--replace"]),
    ]
    for path in layers:
        statements = project.statements(path)
        if any(is_task_statement(s) for s in statements):
            steps.append(
                planner.sql(
                    "tasks: suspend the root before altering the graph",
                    [f"ALTER TASK IF EXISTS {root} SUSPEND"],
                )
            )
            steps.append(planner.sql(f"{_layer_name(path)} (sql/{path.name})", statements))
            steps.append(
                planner.sql("tasks: resume the graph", [f"SELECT SYSTEM$TASK_DEPENDENTS_ENABLE('{root}')"])
            )
        else:
            steps.append(planner.sql(f"{_layer_name(path)} (sql/{path.name})", statements))
    return steps


def _layer_name(path: Path) -> str:
    prefix, _, rest = path.stem.partition("_")
    return LAYER_NAMES.get(prefix, rest or path.stem)


def teardown_plan(
    project: Project, env_name: str, connection: str, include_admin: bool = False
) -> list[Step]:
    """Drop what deploy created: tasks, pipes, procedures, then the database; integrations and roles only
    with include_admin (the warehouse stays: it may serve more than api2snow)."""
    _check_env(project, env_name)
    planner = _Planner(project, connection, {})
    admin_1, admin_2 = _admin_parts(planner)
    graph = project_task_graph(project)
    tasks = ([graph.finalizer] if graph.finalizer else []) + list(reversed(graph.order()))
    pipes = [
        PipeDefinition.parse(s).name
        for p in planner.layer_files()
        for s in project.statements(p)
        if is_pipe_statement(s)
    ]
    procedures = project.procedures().values()
    database = project.env["database"].upper()
    steps = [
        planner.sql("suspend the task graph", [f"ALTER TASK IF EXISTS {graph.root.name} SUSPEND"]),
        planner.sql("drop tasks", [f"DROP TASK IF EXISTS {t.name}" for t in tasks]),
        planner.sql("drop pipes", [f"DROP PIPE IF EXISTS {name}" for name in pipes]),
        planner.sql(
            "drop procedures",
            [
                f"DROP PROCEDURE IF EXISTS {p.fqn}({', '.join(a.type.upper() for a in p.arguments)})"
                for p in procedures
            ],
        ),
        planner.sql(
            "drop the database (tables, views, stages, network rules, secrets)",
            [f"DROP DATABASE IF EXISTS {database}"],
        ),
    ]
    if include_admin:
        created = [m.group(1).upper() for s in [*admin_1, *admin_2] if (m := _CREATE_INTEGRATION.match(s))]
        integrations = list(reversed(created))  # external access integrations before what they name
        roles = [project.env[key].upper() for key in ("analyst_role", "operator_role", "owner_role")]
        steps.append(
            planner.sql(
                "drop integrations and roles (admin)",
                [f"DROP INTEGRATION IF EXISTS {name}" for name in integrations]
                + [f"DROP ROLE IF EXISTS {role}" for role in roles],
                admin=True,
            )
        )
    return steps


# ---- showing and running ------------------------------------------------------------------------------
def plan_header(project: Project, env_name: str, connection: str, dry_run: bool, what: str = "deploy") -> str:
    mode = "dry run: nothing connects, nothing runs" if dry_run else "running"
    return (
        f"api2snow {what}: env {env_name}, database {project.env['database'].upper()}, "
        f"connection {connection} ({mode}); every `snow` command runs in the project root"
    )


def _show_step(index: int, total: int, step: Step, echo: Callable[[str], None]) -> None:
    echo(f"[{index}/{total}] {step.name}" + (" (skipped)" if step.skipped else ""))
    if step.skipped:
        echo(f"    {step.skipped}")
    stdin = "  # the statements below, on standard input" if step.kind == "sql" else ""
    echo(f"    $ {step.command()}{stdin}")
    for statement in step.shown_statements():
        for line in (statement + ";").splitlines():
            echo(f"    {line}")
    echo("")


def plan_summary(steps: list[Step], width: int = 150) -> str:
    """A compact, stable text of a plan (names, commands, each statement on one line): the golden test's."""
    out = []
    for index, step in enumerate(steps, 1):
        out.append(f"[{index:02d}] {step.name}" + (" (skipped: --skip-admin)" if step.skipped else ""))
        out.append(f"     $ {step.command()}")
        for statement in step.shown_statements():
            line = " ".join(statement.split())
            out.append(f"     - {line if len(line) <= width else line[: width - 3] + '...'}")
    return "\n".join(out) + "\n"


def snow_executable(explicit: str | None = None) -> str:
    candidate = explicit or os.environ.get(SNOW_BIN_ENV)
    if candidate:
        return candidate
    beside = Path(sys.executable).parent / "snow"
    if beside.exists():
        return str(beside)
    found = shutil.which("snow")
    if found:
        return found
    raise DeployError(
        f"the Snowflake CLI `snow` is not installed (pip install snowflake-cli), "
        f"or point {SNOW_BIN_ENV} at it"
    )


def _mask(text: str, secrets: Mapping[str, str]) -> str:
    for value in sorted(secrets.values(), key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, MASK)
    return text


def snow_error(text: str) -> str:
    """`snow`'s error output on one line: without the box drawing and Python's dependency warnings."""
    lines = []
    for line in text.splitlines():
        if _PY_WARNING.search(line):
            continue
        cleaned = line.translate(str.maketrans("", "", "╭╮╰╯│─")).strip()
        if cleaned and cleaned != "Error":
            lines.append(cleaned)
    return " ".join(lines) or "(no output)"


def missing_secrets(steps: list[Step]) -> list[str]:
    """The environment variables that the steps which will run need and do not have."""
    return sorted({var for step in steps if not step.skipped for var in step.missing_secrets()})


def run_plan(
    steps: list[Step], dry_run: bool, echo: Callable[[str], None], snow_bin: str | None = None
) -> None:
    """Print every step (dry run) or run them in order; the first failure raises DeployError naming it."""
    total = len(steps)
    if dry_run:
        for index, step in enumerate(steps, 1):
            _show_step(index, total, step, echo)
        return
    missing = missing_secrets(steps)
    if missing:
        raise DeployError(
            f"set {', '.join(missing)} in the environment: secret values are read from there "
            "only (docs/DEPLOY.md)"
        )
    snow = snow_executable(snow_bin)
    for index, step in enumerate(steps, 1):
        label = f"[{index}/{total}] {step.name}"
        if step.skipped:
            _show_step(index, total, step, echo)
            continue
        echo(f"{label} ...")
        started = time.monotonic()
        try:
            result = subprocess.run(
                [snow, *step.argv],
                input=step.sql_text() if step.kind == "sql" else None,
                capture_output=True,
                text=True,
                cwd=step.cwd,
            )
        except OSError as exc:
            raise DeployError(f"step {label} could not start `{snow}`: {exc}") from None
        if result.returncode != 0:
            output = _mask(result.stderr if result.stderr.strip() else result.stdout, step.secrets)
            detail = "\n".join(line for line in output.splitlines() if not _PY_WARNING.search(line)).strip()
            raise DeployError(
                f"step {label} failed (snow exited {result.returncode}): {snow_error(output)}\n"
                f"command: {step.command()}\n{detail}"
            )
        echo(f"{label} ok ({time.monotonic() - started:.1f} s)")


# ---- reading Snowflake back ---------------------------------------------------------------------------
def snow_query(
    connection: str, query: str, snow_bin: str | None = None, role: str | None = None, cwd: Path | None = None
) -> list[dict[str, Any]]:
    """Rows of one query, through `snow sql --format json`."""
    argv = [
        snow_executable(snow_bin),
        "sql",
        "--connection",
        connection,
        "--format",
        "json",
        "--enable-templating",
        "NONE",
        "-q",
        query,
    ]
    if role:
        argv[4:4] = ["--role", role]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise DeployError(
            f"snow sql failed (exit {result.returncode}): {snow_error(result.stderr or result.stdout)}"
        )
    data = json.loads(result.stdout or "[]")
    if data and isinstance(data[0], list):  # several statements: the last one's rows
        data = data[-1]
    return data


def task_history_query(project: Project) -> str:
    """`latest_run_query` over this database's tasks in INFORMATION_SCHEMA.TASK_HISTORY() (last 7 days)."""
    database = project.env["database"].upper()
    return latest_run_query(
        f"TABLE({database}.INFORMATION_SCHEMA.TASK_HISTORY(\n"
        "        SCHEDULED_TIME_RANGE_START => DATEADD('day', -7, CURRENT_TIMESTAMP()),\n"
        "        RESULT_LIMIT => 10000\n    ))",
        f"database_name = '{database}' AND schema_name = 'PIPELINE'",
    )


class SnowRow(Mapping[str, Any]):
    """A row of `snow sql --format json` shaped like a Snowpark Row for history.graph_run_status:
    upper-case keys, and datetimes for the *_TIME columns (snow prints them as ISO strings)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = {key.upper(): value for key, value in data.items()}

    def __getitem__(self, key: str) -> Any:
        value = self._data[key.upper()]
        if key.upper().endswith("_TIME") and isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                return value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def remote_latest_run_rows(project: Project, connection: str, snow_bin: str | None = None) -> list[SnowRow]:
    return [
        SnowRow(row)
        for row in snow_query(connection, task_history_query(project), snow_bin, cwd=project.root)
    ]


__all__ = [
    "ADMIN_ROLE",
    "DeployError",
    "SECRET_ENV",
    "SnowRow",
    "Step",
    "build_plan",
    "env_overrides",
    "host_port",
    "load_project",
    "missing_secrets",
    "plan_header",
    "plan_summary",
    "remote_latest_run_rows",
    "run_plan",
    "snow_executable",
    "snow_query",
    "task_history_query",
    "teardown_plan",
]
