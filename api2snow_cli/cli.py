"""`api2snow`: run the pipeline on the local stack, inspect it, and query the local warehouse."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from .console import console, fail, print_graph, print_json, print_rows, print_sources, rows_as_dicts
from .history import GraphRunStatus, graph_run_status, latest_run_rows
from .local.tasks import project_task_graph
from .project import PROJECT_ROOT, Project
from .source_progress import SourceProgress, source_progress, source_progress_query

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="api2snow: HTTP APIs -> S3 -> Snowpipe -> RAW -> CLEAN -> ANALYTICS, with DQ gates.",
)
STACK_FILE = "stack.json"
FormatOption = Annotated[
    str, typer.Option("--format", "-f", help="table or json", click_type=click.Choice(["table", "json"]))
]


def _quiet() -> None:
    """Keep the stand-ins' own logging and warnings out of the user's terminal."""
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("fakesnow", "uvicorn", "snowflake", "botocore", "urllib3", "werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _home() -> Path:
    from .local.stack import default_home

    return default_home()


def _running_stack() -> dict[str, Any] | None:
    """The stack started by `api2snow up` in another process, if it is still alive."""
    path = _home() / STACK_FILE
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    try:
        os.kill(info["pid"], 0)
    except (OSError, KeyError):
        path.unlink(missing_ok=True)
        return None
    return info


@contextmanager
def _warehouse_session() -> Iterator[Any]:
    """A session on the local warehouse: the running `up` stack's, or a warehouse started just for this."""
    from snowflake.snowpark import Session

    from .local.warehouse import LocalWarehouse

    running = _running_stack()
    if running is not None:
        session = Session.builder.configs(running["connection"]).create()
        yield session
        return
    database = Project.load().env["database"].upper()
    warehouse = LocalWarehouse(_home() / "warehouse", database).start()
    try:
        yield warehouse.session
    finally:
        warehouse.stop()


def _refuse_if_running(command: str) -> None:
    running = _running_stack()
    if running is not None:
        raise RuntimeError(
            f"the local stack is already running (api2snow up, pid {running['pid']}); "
            f"stop it before `api2snow {command}`"
        )


def _start_stack():
    from .local.stack import LocalStack

    stack = LocalStack()
    with console.status("starting the local stack") as status:
        stack.start(progress=lambda message: status.update(message))
    return stack


def _run_graph(stack: Any) -> GraphRunStatus:
    started = time.monotonic()

    def on_event(run: Any) -> None:
        name = run.name.rsplit(".", 1)[-1]
        if run.state == "EXECUTING":
            console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {name} started", highlight=False)
        else:
            console.print(
                f"[dim]{time.monotonic() - started:6.1f}s[/dim] {name} [bold]{run.state}[/bold]"
                + (f": {run.error}" if run.error else ""),
                highlight=False,
            )

    stack.run_graph(on_event=on_event)
    rows = latest_run_rows(stack.session, f"{stack.database}.OPS.TASK_HISTORY", stack.graph)
    return graph_run_status(rows, stack.graph)


def _summary(stack: Any) -> None:
    from api2snow.loading import REJECTS_TABLE
    from api2snow.sources import SOURCES

    db = stack.database
    tables = [("RAW", name, source.raw_table) for name, source in SOURCES.items()]
    tables += [("RAW", "rejects", REJECTS_TABLE)]
    tables += [("CLEAN", name, source.clean_table) for name, source in SOURCES.items()]
    tables += [("ANALYTICS", "daily_summary", "ANALYTICS.ANL_DAILY_SUMMARY")]
    layers = stack.session.sql(
        " UNION ALL ".join(
            f"SELECT '{layer}' AS layer, '{label}' AS source, COUNT(*) AS row_count FROM {db}.{table}"
            for layer, label, table in tables
        )
    ).collect()
    print_rows(layers, "rows per layer")
    dq = stack.session.sql(f"""
        SELECT check_name, source, severity, passed, observed_value FROM {db}.ANALYTICS.DQ_CHECK_RESULTS
        WHERE run_id = (SELECT run_id FROM {db}.ANALYTICS.DQ_CHECK_RESULTS ORDER BY checked_at DESC LIMIT 1)
        ORDER BY passed, severity, check_name, source""").collect()
    print_rows(dq, "data-quality checks (latest run)")
    top = stack.session.sql(
        f"SELECT category, event_count, camera_count, ROUND(avg_confidence, 3) AS "
        f"avg_confidence, category_rank FROM {db}.ANALYTICS.VW_TOP_CATEGORIES "
        "ORDER BY category_rank"
    ).collect()
    print_rows(top, "top categories (last 7 days)")


def _run_once(command: str, summary: bool) -> GraphRunStatus:
    """Start the stack, run the graph once, print its tree (and the summary), stop; fail unless SUCCEEDED."""
    _refuse_if_running(command)
    stack = _start_stack()
    try:
        status = _run_graph(stack)
        print_graph(status)
        if summary:
            _summary(stack)
    finally:
        stack.stop()
    if status.state != "SUCCEEDED":
        raise RuntimeError(f"graph run {status.run_id} {status.state}; see the tree above")
    return status


@app.command()
def demo() -> None:
    """Start the local stack, run the task graph once over the mock APIs and print a summary."""
    status = _run_once("demo", summary=True)
    console.print(
        f"[green]demo graph run {status.run_id} SUCCEEDED[/green]; query it with: "
        'api2snow sql -q "SELECT * FROM VIDEO_ANALYTICS.ANALYTICS.VW_DAILY_EVENT_COUNTS"'
    )


@app.command()
def run() -> None:
    """Run the task graph once on the local stack (like EXECUTE TASK on the root)."""
    _run_once("run", summary=False)


RECONCILE_EVERY_SECONDS = 86_400


@app.command()
def reconcile() -> None:
    """Run the daily full-history reconciliation once on the local stack (PIPELINE.RECONCILE)."""
    _refuse_if_running("reconcile")
    stack = _start_stack()
    try:
        passed = _reconcile(stack)
    finally:
        stack.stop()
    if not passed:
        raise RuntimeError("reconciliation failed: see ANALYTICS.DQ_CHECK_RESULTS (api2snow sql)")


def _reconcile(stack: Any) -> bool:
    """One run of the RECONCILE task (merge what the hourly lookback misses, then the full checks)."""
    run_id, runs = stack.run_graph(root="RECONCILE")
    last = runs[-1]
    if last.state == "SUCCEEDED":
        console.print(f"reconciliation {run_id}: every full-history check passed")
        return True
    console.print(f"[red]reconciliation {run_id} {last.state}[/red]: {last.error}", highlight=False)
    return False


@app.command()
def up(
    every_minutes: Annotated[
        float, typer.Option("--every", help="minutes between graph runs; 0: never")
    ] = 60,
) -> None:
    """Start the local stack in the foreground until Ctrl-C, running the graph on a schedule."""
    _refuse_if_running("up")
    stack = _start_stack()
    stack_file = _home() / STACK_FILE
    connection = stack.warehouse.connection_parameters()
    stack_file.write_text(json.dumps({"pid": os.getpid(), "connection": connection}))
    try:
        console.print(f"mock APIs: {stack.mock_apis.urls}")
        console.print(f"local S3:  {stack.s3.endpoint_url} (bucket {stack.project.env['bucket']})")
        console.print(
            f"warehouse: fakesnow on {stack.warehouse.host}:{stack.warehouse.port}, "
            f"files in {stack.warehouse.db_path}"
        )
        console.print("api2snow sql / status work from another terminal; Ctrl-C stops the stack")
        reconciled = -math.inf
        while True:
            if every_minutes > 0:
                print_graph(_run_graph(stack))
                if time.monotonic() - reconciled >= RECONCILE_EVERY_SECONDS:  # daily, as the task is
                    _reconcile(stack)
                    reconciled = time.monotonic()
                time.sleep(every_minutes * 60)
            else:
                time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        stack_file.unlink(missing_ok=True)
        stack.stop()


WATCH_SECONDS = 2.0


@app.command()
def status(
    fmt: FormatOption = "table",
    connection: Annotated[
        str | None,
        typer.Option(
            "--connection",
            "-c",
            help="a `snow` connection: read the latest run from Snowflake's "
            "TASK_HISTORY instead of the local stack",
        ),
    ] = None,
    env: Annotated[str, typer.Option("--env", help="with --connection: dev or prod, see deploy/envs.yml")] = (
        "dev"
    ),
    assignments: SetOption = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help=f"follow a running graph: redraw every {WATCH_SECONDS:g} s until it ends"
        ),
    ] = False,
) -> None:
    """The latest graph run as the graph's tree (state, duration, return value and error per task) and as a
    timeline (which tasks ran side by side, where the time went), and where each source stands: current, or
    catching up a backlog (how far it got, how much is left)."""
    while True:
        result, sources = _snowflake_status(connection, env, assignments) if connection else _local_status()
        if watch and fmt != "json":
            console.clear()
        if fmt == "json":
            print_json({**result.to_dict(), "sources": [s.to_dict() for s in sources]})
        else:
            print_graph(result)
            print_sources(sources)
        if not watch or result.state != "EXECUTING":
            return
        time.sleep(WATCH_SECONDS)


def _local_status() -> tuple[GraphRunStatus, list[Any]]:
    """The latest hourly graph run and the sources' progress, from the local warehouse."""
    project = Project.load()
    graph = project_task_graph(project)
    database = project.env["database"].upper()
    with _warehouse_session() as session:
        rows = latest_run_rows(session, f"{database}.OPS.TASK_HISTORY", graph)
        sources = source_progress(session.sql(source_progress_query(database)).collect())
    return graph_run_status(rows, graph), sources


@app.command()
def sql(
    query: Annotated[str, typer.Option("--query", "-q", help="SQL to run on the local warehouse")],
    fmt: FormatOption = "table",
) -> None:
    """Query the local warehouse, like `snow sql -q`."""
    with _warehouse_session() as session:
        rows = session.sql(query).collect()
    if fmt == "json":
        print_json(rows_as_dicts(rows))
    else:
        print_rows(rows)


@app.command("mock-apis", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def mock_apis(ctx: typer.Context) -> None:
    """Run the mock APIs alone in the foreground (options: see `api2snow mock-apis --help-mock`)."""
    from .local.mock_apis.server import main as mock_main

    args = ["--help" if a == "--help-mock" else a for a in ctx.args]
    raise typer.Exit(mock_main(args))


# ---- Snowflake: deploy, teardown, status --connection (api2snow_cli/deploy.py) ---------------------------
ConnectionOption = Annotated[str, typer.Option("--connection", "-c", help="a `snow` connection name")]
EnvOption = Annotated[str, typer.Option("--env", help="dev or prod: the overrides in deploy/envs.yml")]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="print every command and rendered statement; connect to nothing")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-D",
        metavar="KEY=VALUE",
        help="override one snowflake.yml env value on top of deploy/envs.yml (repeatable)",
    ),
]


def _load_project(env: str, assignments: list[str] | None) -> Project:
    from .deploy import load_project, parse_assignments

    return load_project(env, parse_assignments(assignments or []))


def _snowflake_status(
    connection: str, env: str, assignments: list[str] | None = None
) -> tuple[GraphRunStatus, list[SourceProgress]]:
    from .deploy import SnowRow, remote_latest_run_rows, snow_query

    project = _load_project(env, assignments)
    graph = graph_run_status(remote_latest_run_rows(project, connection), project_task_graph(project))
    query = source_progress_query(project.env["database"].upper())
    rows = [SnowRow(row) for row in snow_query(connection, query, cwd=project.root)]
    return graph, source_progress(rows)


@app.command()
def deploy(
    connection: ConnectionOption,
    env: EnvOption = "dev",
    dry_run: DryRunOption = False,
    skip_admin: Annotated[
        bool, typer.Option("--skip-admin", help="skip the ACCOUNTADMIN part; print what an admin must run")
    ] = False,
    apply_s3_notification: Annotated[
        bool,
        typer.Option(
            "--apply-s3-notification",
            help="set the bucket's event notification for the auto-ingest pipes with boto3 (your default AWS "
            "credentials; s3:GetBucketNotification, s3:PutBucketNotification) instead of printing it",
        ),
    ] = False,
    assignments: SetOption = None,
) -> None:
    """Deploy to Snowflake with `snow`, in the order of deploy/steps.txt: setup, external access, procedures,
    layers, the bucket's notification for Snowpipe auto-ingest, task graph, grants."""
    from .deploy import build_plan, plan_header, run_plan

    project = _load_project(env, assignments)
    steps = build_plan(
        project,
        env,
        connection,
        skip_admin=skip_admin,
        secrets_from_env=True,
        apply_s3_notification=apply_s3_notification,
    )
    typer.echo(plan_header(project, env, connection, dry_run))
    run_plan(steps, dry_run=dry_run, echo=typer.echo)
    if not dry_run:
        database = project.env["database"].upper()
        typer.echo(
            f"deployed {database}; first run: snow sql --connection {connection} "
            f"-q 'EXECUTE TASK {database}.PIPELINE.ROOT', then "
            f"api2snow status --connection {connection} --env {env}"
        )


@app.command()
def teardown(
    connection: ConnectionOption,
    env: EnvOption = "dev",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    include_admin: Annotated[
        bool, typer.Option("--include-admin", help="also drop the integrations and roles (ACCOUNTADMIN)")
    ] = False,
    dry_run: DryRunOption = False,
    assignments: SetOption = None,
) -> None:
    """Remove what deploy created: tasks, pipes, procedures, the database (integrations: --include-admin)."""
    from .deploy import plan_header, run_plan, teardown_plan

    project = _load_project(env, assignments)
    steps = teardown_plan(project, env, connection, include_admin=include_admin)
    typer.echo(plan_header(project, env, connection, dry_run, what="teardown"))
    if not dry_run and not yes:
        extra = ", the integrations and the roles" if include_admin else ""
        typer.confirm(
            f"Drop database {project.env['database'].upper()} and everything in it{extra} "
            f"on connection {connection}?",
            abort=True,
        )
    run_plan(steps, dry_run=dry_run, echo=typer.echo)


@app.command()
def generate(
    check: Annotated[
        bool, typer.Option("--check", help="change nothing; exit 1 naming the files whose sections are stale")
    ] = False,
) -> None:
    """Rewrite the generated sections of sql/, external_access/ and snowflake.yml from the source
    declarations (snowpark_procs/api2snow/sources/): every per-source Snowflake object."""
    from . import derive

    stale = derive.generate(check=check)
    if check and stale:
        fail(f"stale generated sections in {', '.join(stale)}: run api2snow generate")
        raise typer.Exit(1)
    if check:
        typer.echo("generated sections are current")
    elif stale:
        typer.echo(f"rewrote the generated sections of {', '.join(stale)}")
    else:
        typer.echo("generated sections were current; nothing rewritten")


def main() -> None:
    _quiet()
    debug = os.environ.get("API2SNOW_DEBUG") == "1"
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        fail("interrupted")
        sys.exit(130)
    except Exception as exc:  # one clear line, not a traceback (API2SNOW_DEBUG=1 shows it)
        if debug:
            raise
        fail(f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc).splitlines()[0])
        sys.exit(1)


__all__ = ["app", "main", "PROJECT_ROOT"]
