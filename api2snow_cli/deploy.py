"""`api2snow deploy | teardown | status --connection`: the project, applied to a Snowflake account.

A plan is a list of steps built offline, in the order of deploy/steps.txt (which scripts/deploy.sh runs too),
from the files the local stack reads (snowflake.yml, sql/, external_access/), rendered for one environment of
deploy/envs.yml. `run_plan` prints it (dry run, nothing connects) or runs each step with the Snowflake CLI and
stops at the first failure, naming the step and quoting `snow`'s error.

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

from .history import latest_run_query, of_graph
from .local.pipes import PipeDefinition, is_pipe_statement
from .local.tasks import is_task_statement, project_task_graph, project_task_graphs
from .project import (
    ADMIN_SQL,
    PROJECT_ROOT,
    SECRET_VARIABLES,
    Project,
    ProjectError,
    host_port,
    render,
    split_sql,
    sql_string_body,
)
from .s3_notification import (
    FILE_SUFFIX,
    NotificationError,
    PipeChannel,
    PipeSource,
    apply,
    aws_cli_commands,
    missing_channel_message,
    pipe_sources,
    queue_configurations,
    split_by_channel,
)

ENVS_FILE = Path("deploy") / "envs.yml"
STEPS_FILE = Path("deploy") / "steps.txt"
STEP_ROLES = ("admin", "owner")
STEP_KINDS = ("file", "part", "sql", "snow", "notify")
PART_2 = "-- PART 2:"  # where part 2 of a file starts (ADMIN_SQL: the part that needs external_access/01)
ADMIN_ROLE = "ACCOUNTADMIN"
SNOW_BIN_ENV = "API2SNOW_SNOW_BIN"  # a `snow` executable to use instead of the installed one (tests)

# Secret template variable of external_access/ -> the environment variable its value comes from.
SECRET_ENV = {name: f"API2SNOW_{name.upper()}" for name in SECRET_VARIABLES}
MASK = "***"
_MARKER = "@@api2snow-secret:{}@@"
_SECRET_MARKERS = {name: _MARKER.format(name) for name in SECRET_VARIABLES}  # stand-ins until piped to snow
_MARKER_RE = re.compile(r"@@api2snow-secret:([a-z0-9_]+)@@")
_CREATE_INTEGRATION = re.compile(
    r"^CREATE\s+(?:STORAGE\s+|SECURITY\s+|EXTERNAL\s+ACCESS\s+|NOTIFICATION\s+)?INTEGRATION\s+IF\s+NOT\s+EXISTS\s+(\S+)",
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
    section = envs[env_name] or {}
    typed = sorted(key for key, value in section.items() if isinstance(value, bool | list | dict))
    if (
        typed
    ):  # `eai_suffix: no` would be "False"; scripts/deploy.sh reads the file as text and refuses it too
        raise ProjectError(f"{ENVS_FILE} [{env_name}] {', '.join(typed)}: quote the value, it must be text")
    values = {key: "" if value is None else str(value) for key, value in section.items()}
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


# ---- the steps file ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepSpec:
    """One line of deploy/steps.txt: who runs what (docs in the file's header)."""

    role: str  # "admin" | "owner"
    kind: str  # "file" | "part" | "sql" | "snow" | "notify"
    name: str
    target: str
    line: int

    @property
    def path(self) -> Path:
        """The SQL file of a file, part or notify step, relative to the project root."""
        return Path(self.target.rsplit(" ", 1)[0] if self.kind == "part" else self.target)

    @property
    def part(self) -> int:
        return int(self.target.rsplit(" ", 1)[1])

    @property
    def title(self) -> str:
        if self.kind == "part":
            return f"{self.name} ({self.path.as_posix()} part {self.part})"
        if self.kind in ("file", "notify"):
            return f"{self.name} ({self.path.as_posix()})"
        return self.name


def _spec(line: str, number: int, root: Path) -> StepSpec:
    where = f"{STEPS_FILE}:{number}"
    fields = [value.strip() for value in line.split("|", 3)]
    if len(fields) != 4 or not all(fields):
        raise ProjectError(f"{where}: expected `ROLE | KIND | NAME | TARGET`, got {line.strip()!r}")
    spec = StepSpec(*fields, line=number)
    if spec.role not in STEP_ROLES:
        raise ProjectError(f"{where}: role {spec.role!r} is not one of {', '.join(STEP_ROLES)}")
    if spec.kind not in STEP_KINDS:
        raise ProjectError(f"{where}: kind {spec.kind!r} is not one of {', '.join(STEP_KINDS)}")
    if spec.kind == "part" and not re.fullmatch(r"\S+ [12]", spec.target):
        raise ProjectError(f"{where}: a part step's target is `FILE 1` or `FILE 2`, got {spec.target!r}")
    if spec.kind in ("file", "part", "notify") and not (root / spec.path).is_file():
        raise ProjectError(f"{where}: no file {spec.path}")
    if spec.role == "admin" and spec.kind in ("snow", "notify"):
        raise ProjectError(f"{where}: a {spec.kind} step runs as owner")
    if spec.kind == "snow" and re.search(r"[\"'\\$`]", spec.target):
        raise ProjectError(f"{where}: a snow step's arguments are plain words (the scripts split them too)")
    return spec


def load_steps(root: Path = PROJECT_ROOT) -> list[StepSpec]:
    """deploy/steps.txt, checked: every sql/*.sql file is deployed exactly once, by a file step."""
    specs = [
        _spec(line, number, root)
        for number, line in enumerate((root / STEPS_FILE).read_text().splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    deployed = [spec.path.as_posix() for spec in specs if spec.kind == "file"]
    for path in sorted((root / "sql").glob("*.sql")):
        relative = path.relative_to(root).as_posix()
        if deployed.count(relative) != 1:
            raise ProjectError(
                f"{STEPS_FILE} must run {relative} exactly once (a file step); it runs it "
                f"{deployed.count(relative)} times"
            )
    return specs


def file_part(text: str, part: int, origin: str) -> str:
    """Part 1 (before the line starting `-- PART 2:`) or part 2 (from that line) of a file's text."""
    lines = text.splitlines(keepends=True)
    try:
        cut = next(i for i, line in enumerate(lines) if line.startswith(PART_2))
    except StopIteration:
        raise ProjectError(f"{origin} has no line starting {PART_2!r}") from None
    return "".join(lines[:cut] if part == 1 else lines[cut:])


# ---- steps --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notification:
    """What the auto-ingest notification step reads (SHOW PIPES) and sets up (the bucket's queues)."""

    connection: str
    role: str
    query: str
    sources: tuple[PipeSource, ...]
    region: str
    endpoint_url: str | None
    apply: bool


@dataclass
class Step:
    """One thing deploy or teardown does: SQL piped to `snow sql --stdin`, or another `snow` command."""

    name: str
    kind: str  # "sql" | "snow" | "notify"
    argv: list[str]  # the `snow` arguments, without the executable
    statements: list[str] = field(default_factory=list)  # rendered; secrets stand as markers
    skipped: str | None = None  # why it does not run (--skip-admin) and who must run it instead
    cwd: Path | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    spec: StepSpec | None = None  # the line of deploy/steps.txt it comes from (deploy only)
    notes: list[str] = field(default_factory=list)  # what else the step does, for the printed plan
    notification: Notification | None = None

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

    def render(self, text: str, origin: str) -> str:
        """A template as `snow sql -f` renders it: env, API hosts, and secrets as markers (`-D` values)."""
        return render(text, self.project.external_access_variables(_SECRET_MARKERS), origin=origin)

    def file_statements(self, relative: Path, part: int | None = None) -> list[str]:
        text = (self.project.root / relative).read_text()
        if part is not None:
            text = file_part(text, part, str(relative))
        return split_sql(self.render(text, str(relative)))

    def notification(self, name: str, relative: Path, apply: bool) -> Step:
        sources = tuple(pipe_sources(self.file_statements(relative)))
        schemas = sorted({source.schema for source in sources})
        if len(schemas) != 1:
            raise ProjectError(
                f"{relative}: expected auto-ingest pipes in one schema, found {schemas or 'none'}"
            )
        query = f"SHOW PIPES IN SCHEMA {schemas[0]}"
        notes = [f"{s.pipe} loads s3://{s.bucket}/{s.prefix}*{FILE_SUFFIX}" for s in sources]
        notes.append(
            "then applies the bucket's queue configurations for their notification_channel with boto3 "
            f"(region {self.env.get('region') or 'from the AWS config'})"
            if apply
            else "then prints each notification_channel, and the AWS CLI commands for the bucket's queue "
            "configurations (--apply-s3-notification applies them)"
        )
        notice = Notification(
            self.connection,
            self.owner,
            query,
            sources,
            self.env.get("region", ""),
            self.env.get("s3_endpoint_url") or None,
            apply,
        )
        # What snow_query runs, shown as the step's command.
        argv = ["sql", "--connection", self.connection, "--role", self.owner, "--format", "json"]
        argv += ["--enable-templating", "NONE", "-q", query]
        return Step(name, "notify", argv, [query], cwd=self.project.root, notes=notes, notification=notice)


def _skip_admin_note(env_name: str) -> str:
    return (
        f"--skip-admin: an account admin runs this step as {ADMIN_ROLE} once, and again when hosts, bucket, "
        "roles or API A's client credentials change: "
        f"`api2snow deploy --connection <admin connection> --env {env_name}` or "
        f"`scripts/admin_bootstrap.sh --connection <admin connection> --env {env_name}`, or the statements "
        f"below with `snow sql --connection <admin connection> --role {ADMIN_ROLE} --stdin`"
    )


def _plan_step(
    planner: _Planner, spec: StepSpec, env_name: str, skip_admin: bool, apply_s3_notification: bool
) -> Step:
    origin = f"{STEPS_FILE}:{spec.line}"
    if spec.kind == "snow":
        step = planner.snow(spec.title, spec.target.split())
    elif spec.kind == "notify":
        step = planner.notification(spec.title, spec.path, apply_s3_notification)
    else:
        if spec.kind == "sql":
            statements = split_sql(planner.render(spec.target, origin))
        else:
            statements = planner.file_statements(spec.path, spec.part if spec.kind == "part" else None)
        admin = spec.role == "admin"
        skipped = _skip_admin_note(env_name) if admin and skip_admin else None
        step = planner.sql(spec.title, statements, admin=admin, skipped=skipped)
    step.spec = spec
    return step


def _check_task_steps(steps: list[Step], root_tasks: list[str]) -> None:
    """A step that creates tasks runs only between suspending every graph's root and re-enabling every
    graph (each in a step of its own, in the order the roots are declared)."""
    suspends = [[f"ALTER TASK IF EXISTS {root} SUSPEND"] for root in root_tasks]
    resumes = [[f"SELECT SYSTEM$TASK_DEPENDENTS_ENABLE('{root}')"] for root in root_tasks]
    count = len(root_tasks)
    for index, step in enumerate(steps):
        if not any(is_task_statement(s) for s in step.statements):
            continue
        before = [s.statements for s in steps[max(0, index - count) : index]]
        after = [s.statements for s in steps[index + 1 : index + 1 + count]]
        if before != suspends or after != resumes:
            raise ProjectError(
                f"{STEPS_FILE}: step {step.name!r} creates tasks: put "
                f"{', '.join(f'`{s[0]}`' for s in suspends)} right before it and "
                f"{', '.join(f'`{r[0]}`' for r in resumes)} right after it, one step each"
            )


def build_plan(
    project: Project,
    env_name: str,
    connection: str,
    skip_admin: bool = False,
    secrets_from_env: bool = True,
    apply_s3_notification: bool = False,
) -> list[Step]:
    """Every step of a deploy, in the order of deploy/steps.txt, rendered for the project's environment;
    nothing connects. The scripts of scripts/ run the same file, so the two cannot drift apart."""
    _check_env(project, env_name)
    planner = _Planner(project, connection, secrets_from_environment() if secrets_from_env else {})
    steps = [
        _plan_step(planner, spec, env_name, skip_admin, apply_s3_notification)
        for spec in load_steps(project.root)
    ]
    _check_task_steps(steps, [graph.root.name for graph in project_task_graphs(project)])
    return steps


def teardown_plan(
    project: Project, env_name: str, connection: str, include_admin: bool = False
) -> list[Step]:
    """Drop what deploy created: tasks, pipes, procedures, then the database; integrations and roles only
    with include_admin (the warehouse stays: it may serve more than api2snow)."""
    _check_env(project, env_name)
    planner = _Planner(project, connection, {})
    graphs = project_task_graphs(project)
    tasks = [
        task
        for graph in graphs
        for task in ([graph.finalizer] if graph.finalizer else []) + list(reversed(graph.order()))
    ]
    pipes = [
        PipeDefinition.parse(s).name
        for p in project.sql_files("sql")
        for s in project.statements(p)
        if is_pipe_statement(s)
    ]
    procedures = project.procedures().values()
    database = project.env["database"].upper()
    steps = [
        planner.sql(
            "suspend the task graphs", [f"ALTER TASK IF EXISTS {graph.root.name} SUSPEND" for graph in graphs]
        ),
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
        admin = planner.file_statements(ADMIN_SQL)
        created = [m.group(1).upper() for s in admin if (m := _CREATE_INTEGRATION.match(s))]
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
    if step.kind == "sql":
        for statement in step.shown_statements():
            for line in (statement + ";").splitlines():
                echo(f"    {line}")
    for note in step.notes:
        echo(f"    # {note}")
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
        out.extend(f"     # {note}" for note in step.notes)
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
    """`text` without the secret values, as given and as quoted in SQL (snow may echo the statement)."""
    values = {form for value in secrets.values() for form in (value, sql_string_body(value))}
    for value in sorted(values, key=len, reverse=True):
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
        if step.notification:
            _run_notification(step, step.notification, label, snow, echo)
        else:
            _run_snow(step, label, snow)
        echo(f"{label} ok ({time.monotonic() - started:.1f} s)")


def _run_snow(step: Step, label: str, snow: str) -> None:
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


def _run_notification(
    step: Step, notice: Notification, label: str, snow: str, echo: Callable[[str], None]
) -> None:
    """SHOW PIPES, then the bucket's queue configurations for the pipes' channels: printed, or applied.

    A pipe without a channel (created before AUTO_INGEST) is reported, not fatal: the REFRESH safety net
    still loads its files, and recreating it must wait until every staged batch is loaded."""
    try:
        rows = snow_query(notice.connection, notice.query, snow, role=notice.role, cwd=step.cwd)
    except (DeployError, ValueError) as exc:
        raise DeployError(f"step {label} failed: {exc}") from None
    listed = {str(row.get("name", row.get("NAME", ""))).upper() for row in rows}
    bucket = notice.sources[0].bucket
    channels, missing = split_by_channel(rows, bucket, {s.pipe: s.prefix for s in notice.sources})
    for pipe in missing:
        if pipe.rsplit(".", 1)[-1] in listed:
            echo(f"    warning: {missing_channel_message(pipe)}")
        else:
            echo(f"    warning: pipe {pipe} is not in `{notice.query}`: the deploy role cannot see it")
    for channel in channels:
        echo(f"    {channel.pipe}: {channel.queue_arn} <- s3://{bucket}/{channel.prefix}*{FILE_SUFFIX}")
    if not channels:
        echo("    no pipe has a notification_channel: the bucket's event notification is left as it is")
    elif notice.apply:
        _apply_notification(channels, notice, label, echo)
    else:
        echo(
            "    the bucket's event notification is not changed by deploy; to set it up, run "
            "`api2snow deploy --apply-s3-notification`, or with the AWS CLI:"
        )
        for line in aws_cli_commands(channels, notice.region or None).splitlines():
            echo(f"    {line}")


def _apply_notification(
    channels: list[PipeChannel], notice: Notification, label: str, echo: Callable[[str], None]
) -> None:
    """Merge the queue configurations into the bucket's, with the operator's default AWS credentials."""
    import boto3  # only here: the rest of deploy needs no AWS
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("s3", region_name=notice.region or None, endpoint_url=notice.endpoint_url)
    try:
        config = apply(client, channels)
    except (BotoCoreError, ClientError, NotificationError) as exc:
        raise DeployError(f"step {label} failed: {exc}") from None
    ours = {q["Id"] for q in queue_configurations(channels)}
    kept = [
        c for value in config.values() if isinstance(value, list) for c in value if c.get("Id") not in ours
    ]
    echo(
        f"    applied to s3://{channels[0].bucket}: {len(ours)} api2snow queue configuration(s), "
        f"{len(kept)} other configuration(s) of the bucket kept"
    )


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
        f"database_name = '{database}' AND schema_name = 'PIPELINE' "
        f"AND {of_graph(project_task_graph(project))}",
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
    "STEPS_FILE",
    "SnowRow",
    "Step",
    "StepSpec",
    "build_plan",
    "env_overrides",
    "host_port",
    "load_project",
    "load_steps",
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
