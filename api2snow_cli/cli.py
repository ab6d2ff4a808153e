"""`api2snow`: run the pipeline on the local stack, inspect it, and query the local warehouse."""

from __future__ import annotations

import atexit
import difflib
import logging
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.markup import escape

from .console import console, err_console, fail, print_graph, print_json, print_rows, print_sources
from .history import (
    GraphRunStatus,
    graph_run_status,
    graph_runs,
    iso_utc,
    latest_run_rows,
    with_running_tasks,
)
from .interrupts import Interrupted, Interrupts
from .local.abandoned_runs import repair_abandoned_run
from .local.tasks import project_task_graph
from .local.webhook_receiver import alert_lines
from .lock import WarehouseLock, publish_running_tasks, running_tasks, wait_for_stack_or_lock
from .output import CLI, print_result, print_run_summary, run_report, source_outcomes
from .project import PROJECT_ROOT, Project
from .source_progress import SourceProgress, source_progress, source_progress_query

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="api2snow: HTTP APIs -> S3 -> Snowpipe -> RAW -> CLEAN -> ANALYTICS, with DQ gates.",
)
LOG_FILE = "logs/api2snow.log"
EXIT_FAILED = 1  # the run (or the latest one, for `status`) did not succeed
EXIT_USAGE = 2  # bad arguments or input, or the local warehouse is busy
FormatOption = Annotated[
    str, typer.Option("--format", help="table or json", click_type=click.Choice(["table", "json"]))
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="print each task as it starts and ends, and the full tree")
]


class UsageProblem(click.UsageError):
    """Input refused before anything runs: one line, exit code 2."""


def _log_to_file() -> Path:
    """Send every log record (the stand-ins' servers, the connector, the pipeline) to a file under the home
    folder, never to the terminal; warnings and errors of background threads go there too."""
    path = _home() / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in ("fakesnow", "uvicorn", "snowflake", "botocore", "urllib3", "werkzeug", "moto", "sqlglot"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings.simplefilter("default")

    def thread_failed(args: threading.ExceptHookArgs) -> None:
        logging.getLogger("api2snow.thread").error(
            "thread %s failed",
            args.thread.name if args.thread else "?",
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    def unraisable(args: Any) -> None:  # "Exception ignored in ...": a close at exit, say
        logging.getLogger("api2snow.unraisable").warning(
            "%s: %s", args.err_msg or "exception ignored", args.object, exc_info=args.exc_value
        )

    threading.excepthook = thread_failed
    sys.unraisablehook = unraisable
    return path


def _home() -> Path:
    from .local.stack import default_home

    return default_home()


def _database() -> str:
    return Project.load().env["database"].upper()


@contextmanager
def _warehouse_session(what: str) -> Iterator[tuple[Any, bool]]:
    """A session on the local warehouse for a read-only command, and whether this process owns the warehouse:
    the running stack's (another process publishes its connection in stack.json), or a warehouse opened just
    for this, under the lock (one process opens the file at a time)."""
    from snowflake.snowpark import Session

    from .local.warehouse import LocalWarehouse

    running, lock = wait_for_stack_or_lock(_home(), what)
    if running is not None:
        session = Session.builder.configs(running["connection"]).create()
        try:
            yield session, False
        finally:
            atexit.unregister(session._close_at_exit)  # it would ask fakesnow for SYSTEM$CANCEL_ALL_QUERIES
            session.connection.close()
        return
    try:
        with err_console.status("opening the local warehouse"):
            warehouse = LocalWarehouse(_home() / "warehouse", _database()).start()
        try:
            yield warehouse.session, True
        finally:
            warehouse.stop()
    finally:
        lock.release()


@contextmanager
def _running_stack(command: str, interrupts: Interrupts) -> Iterator[Any]:
    """The local stack, started by this command under the warehouse lock (a second writer is refused, exit
    2) and published for `status`/`sql` from other terminals; a run an earlier process left unfinished is
    closed first. Stops the stack and frees the lock however the command ends."""
    from .local.sql_calls import CallServer
    from .local.stack import LocalStack

    lock = WarehouseLock(_home()).acquire(f"{CLI} {command}")
    try:
        stack = LocalStack()
        calls: CallServer | None = None
        try:
            with err_console.status("starting the local stack") as status:
                stack.start(progress=lambda message: status.update(message))
            repaired = repair_abandoned_run(stack.session, _task_history(stack.database), stack.graph)
            if repaired is not None:
                err_console.print(
                    f"graph run {repaired.run_id} had been left unfinished by a process that ended mid-run: "
                    "recorded as CANCELLED",
                    highlight=False,
                )
            calls = CallServer(stack.dispatcher.execute, _home()).start()  # `sql -q "CALL ..."` elsewhere
            lock.publish(stack.warehouse.connection_parameters())  # last: readers find a stack that serves
            yield stack
        finally:
            if calls is not None:
                calls.stop()
            stack.stop()
    finally:
        lock.release()


def _task_history(database: str) -> str:
    return f"{database}.OPS.TASK_HISTORY"


def _run_graph(stack: Any, interrupts: Interrupts, verbose: bool, fmt: str = "table") -> GraphRunStatus:
    """One graph run with progress on stderr (`--verbose`: each task on stdout as it starts and ends). A
    signal cancels it (Interrupted, after the finalizer ran)."""
    started = time.monotonic()
    running: list[str] = []
    running_since: dict[str, datetime] = {}  # published for `status` in other processes
    done: set[str] = set()
    total = len(stack.graph.tasks)
    lock = threading.Lock()  # events come from the task threads

    with err_console.status("graph run: starting") as progress, interrupts.graph_run() as cancel:

        def on_event(run: Any) -> None:
            name = run.name.rsplit(".", 1)[-1]
            with lock:
                if run.state == "EXECUTING":
                    running.append(name)
                    running_since[name] = run.started or datetime.now(UTC)
                    done.discard(name)  # an auto-retry runs it again
                else:
                    done.add(name)
                    running_since.pop(name, None)
                    if name in running:
                        running.remove(name)
                publish_running_tasks(_home(), running_since)
                progress.update(
                    f"graph run: {len(done)}/{total} tasks done, {time.monotonic() - started:.0f} s"
                    + (f"; running {', '.join(running)}" if running else "")
                )
                if verbose and fmt == "table":
                    state = "started" if run.state == "EXECUTING" else f"[bold]{run.state}[/bold]"
                    error = f": {escape(run.error)}" if run.error else ""
                    elapsed = time.monotonic() - started
                    console.print(f"[dim]{elapsed:6.1f}s[/dim] {name} {state}{error}", highlight=False)

        run_id, _ = stack.run_graph(on_event=on_event, cancel=cancel)
    publish_running_tasks(_home(), {})
    rows = latest_run_rows(stack.session, _task_history(stack.database), stack.graph, run_id)
    status = graph_run_status(rows, stack.graph)
    if interrupts.cancelled:
        raise Interrupted(
            f"graph run {run_id} interrupted by {interrupts.signal_name}: its running tasks were CANCELLED "
            f"and the finalizer ran; resume with `{CLI} run` (each source continues from its watermark)",
            interrupts.signal_name or "SIGINT",
            status,
        )
    return status


def _top_categories(stack: Any) -> list[Any]:
    return stack.session.sql(
        f"SELECT category, event_count, camera_count, ROUND(avg_confidence, 3) AS avg_confidence, "
        f"category_rank FROM {stack.database}.ANALYTICS.VW_TOP_CATEGORIES ORDER BY category_rank"
    ).collect()


def _run_once(command: str, fmt: str, verbose: bool, demo: bool = False) -> GraphRunStatus:
    """Start the stack, run the graph once, print its summary (or JSON), stop; fail unless SUCCEEDED."""
    with Interrupts() as interrupts, _running_stack(command, interrupts) as stack:
        try:
            status = _run_graph(stack, interrupts, verbose, fmt)
        except Interrupted as interrupted:
            if fmt == "json" and interrupted.status is not None:
                print_json(run_report(interrupted.status))
            raise
        top = _top_categories(stack) if demo else []
        alerts = alert_lines(stack.webhook_receiver.received(), stack.webhook_receiver.url) if demo else []
    if fmt == "json":
        report = run_report(status)
        if demo:
            from .console import rows_as_dicts

            report["top_categories"] = rows_as_dicts(top)
        print_json(report)
    else:
        if verbose:
            print_graph(status)
        print_run_summary(status)
        if demo:
            print_rows(top, "top categories (last 7 days)")
            for line in alerts:  # the local alert webhook: nothing when the run passed
                console.print(line, highlight=False, soft_wrap=True, markup=False)
    if status.state != "SUCCEEDED":
        raise RunFailed(
            f"graph run {status.run_id} {status.state}: see `{CLI} status --run-id {status.run_id}`"
        )
    return status


class RunFailed(RuntimeError):
    """The graph run ended, but not SUCCEEDED (exit code 1)."""


@app.command()
def demo(fmt: FormatOption = "table", verbose: VerboseOption = False) -> None:
    """Start the local stack, run the task graph once over the mock APIs and print a summary."""
    status = _run_once("demo", fmt, verbose, demo=True)
    if fmt != "json":
        console.print(
            f"[green]demo graph run {status.run_id} SUCCEEDED[/green]; query it with:\n"
            f'  {CLI} sql -q "SELECT * FROM {_database()}.ANALYTICS.VW_DAILY_EVENT_COUNTS"\n'
            f"see it on a page (freshness, runs, data quality, volumes, rejects): {CLI} dashboard",
            highlight=False,
            soft_wrap=True,  # commands stay whole, to copy
        )


@app.command()
def run(fmt: FormatOption = "table", verbose: VerboseOption = False) -> None:
    """Run the task graph once on the local stack (like EXECUTE TASK on the root) and print a summary."""
    _run_once("run", fmt, verbose)


RECONCILE_EVERY_SECONDS = 86_400


@app.command()
def reconcile() -> None:
    """Run the daily full-history reconciliation once on the local stack (PIPELINE.RECONCILE)."""
    with Interrupts() as interrupts, _running_stack("reconcile", interrupts) as stack:
        passed = _reconcile(stack, interrupts)
    if not passed:
        raise RunFailed(f"reconciliation failed: see ANALYTICS.DQ_CHECK_RESULTS ({CLI} sql)")


def _reconcile(stack: Any, interrupts: Interrupts) -> bool:
    """One run of the RECONCILE task (merge what the hourly lookback misses, then the full checks)."""
    with err_console.status("reconciling the full history"), interrupts.graph_run() as cancel:
        run_id, runs = stack.run_graph(root="RECONCILE", cancel=cancel)
    last = runs[-1]
    if interrupts.cancelled:
        raise Interrupted(
            f"reconciliation {run_id} interrupted by {interrupts.signal_name}; "
            f"run it again with `{CLI} reconcile`",
            interrupts.signal_name or "SIGINT",
        )
    if last.state == "SUCCEEDED":
        console.print(
            f"reconciliation {run_id}: every full-history check passed", highlight=False, soft_wrap=True
        )
        return True
    console.print(
        f"[red]reconciliation {run_id} {last.state}[/red]: {escape(last.error or '')}",
        highlight=False,
        soft_wrap=True,
    )
    return False


def _positive_minutes(value: float) -> float:
    if not value > 0 or math.isinf(value):
        raise typer.BadParameter(
            f"must be a number of minutes above 0 (got {value:g}); e.g. --every 60 for hourly"
        )
    return value


@app.command()
def up(
    every_minutes: Annotated[
        float,
        typer.Option(
            "--every",
            metavar="MINUTES",
            help="minutes between graph runs (the first runs at once; fractions allowed, e.g. 0.5)",
            callback=_positive_minutes,
        ),
    ] = 60,
) -> None:
    """Start the local stack in the foreground until Ctrl-C, running the graph every MINUTES (and RECONCILE
    daily). One line per run; `status`, `history` and `sql` work from another terminal meanwhile."""
    with Interrupts() as interrupts, _running_stack("up", interrupts) as stack:
        _print_endpoints(stack)
        reconciled, alerts_shown = -math.inf, 0
        try:
            while True:
                next_run = datetime.now(UTC) + timedelta(minutes=every_minutes)  # start to start
                status = _run_graph(stack, interrupts, verbose=False)
                line = _run_line(status) + f" · next run at {next_run:%H:%M:%S} UTC"
                console.print(line, highlight=False, soft_wrap=True, markup=False)
                for alert in stack.webhook_receiver.received()[alerts_shown:]:  # this run's, if it failed
                    console.print(f"  alert ({alert.kind}): {alert.text}", highlight=False, markup=False)
                alerts_shown = len(stack.webhook_receiver.received())
                if time.monotonic() - reconciled >= RECONCILE_EVERY_SECONDS:  # daily, as the task is
                    _reconcile(stack, interrupts)
                    reconciled = time.monotonic()
                time.sleep(max(0.0, (next_run - datetime.now(UTC)).total_seconds()))
        except KeyboardInterrupt:
            console.print("stopping the local stack")


def _print_endpoints(stack: Any) -> None:
    """Where each stand-in serves, and what to run from another terminal."""
    from .local.mock_apis.server import endpoint_lines

    warehouse = stack.warehouse
    lines = [
        f"local stack up (pid {os.getpid()}); Ctrl-C stops it",
        *(f"  mock {line}" for line in endpoint_lines(stack.mock_apis.urls, stack.options.credentials)),
        f"  local S3: {stack.s3.endpoint_url} (bucket {stack.project.env['bucket']})",
        f"  alerts: webhook receiver {stack.webhook_receiver.url} (GET /alerts lists what arrived)",
        f"  warehouse: fakesnow on {warehouse.host}:{warehouse.port}, files in {warehouse.db_path}",
        f"  logs: {_home() / LOG_FILE}",
        f'from another terminal: {CLI} status | history | sql -q "..."',
    ]
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True, markup=False)


def _run_line(status: GraphRunStatus) -> str:
    """A graph run in one line: when, state, duration, rows fetched and merged, DQ."""
    sources = source_outcomes(status)
    fetched = sum(s.fetched or 0 for s in sources)
    merged = sum(s.merged or 0 for s in sources)
    rejected = sum(s.rejected or 0 for s in sources)
    took = f" in {status.duration_s:.1f} s" if status.duration_s is not None else ""
    line = (
        f"{datetime.now(UTC):%H:%M:%S} UTC graph run {status.run_id} {status.state}{took} · "
        f"fetched {fetched:,} · rejected {rejected:,} · merged {merged:,}"
    )
    from .output import dq_outcome

    dq = dq_outcome(status)
    if dq.checks is not None:
        line += f" · DQ {dq.passed}/{dq.checks} passed"
    failed = next((t for t in status.tasks if t.state == "FAILED"), None)
    if failed is not None:
        line += f" · {failed.name} FAILED: {failed.error}"
    return line


WATCH_SECONDS = 2.0


@app.command()
def status(
    fmt: FormatOption = "table",
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="show this graph run (see `history`) instead of the latest")
    ] = None,
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
    catching up a backlog (how far it got, how much is left).

    Exit code 0 when the run SUCCEEDED (or is still running), 1 when it FAILED or was CANCELLED or a source
    is stuck or failed, or when there is no run yet."""
    if connection and run_id:
        raise UsageProblem(
            "--run-id reads the local warehouse; with --connection, status shows the latest run"
        )
    while True:
        if connection:
            result, sources = _snowflake_status(connection, env, assignments)
        else:
            result, sources = _local_status(run_id)
        if result.run_id is None:
            raise NoRunYet(
                f"No graph run {run_id} in TASK_HISTORY: see `{CLI} history`"
                if run_id
                else f"No graph run yet: run `{CLI} run`"
            )
        if watch and fmt != "json":
            console.clear()
        if fmt == "json":
            print_json({**result.to_dict(), "sources": [s.to_dict() for s in sources]})
        else:
            print_graph(result)
            print_sources(sources)
        if not watch or result.state != "EXECUTING":
            break
        time.sleep(WATCH_SECONDS)
    troubled = [s.source for s in sources if s.state in ("stuck", "failed")] if run_id is None else []
    if result.state in ("FAILED", "CANCELLED") or troubled:
        raise typer.Exit(EXIT_FAILED)


class NoRunYet(RuntimeError):
    """TASK_HISTORY has no run (of this id): exit code 1."""


def _local_status(run_id: str | None = None) -> tuple[GraphRunStatus, list[Any]]:
    """A graph run (the latest hourly one, or `run_id`) and the sources' progress, from the local warehouse.
    When no process runs the stack, a run left unfinished by a process that ended is closed first."""
    project = Project.load()
    graph = project_task_graph(project)
    database = project.env["database"].upper()
    with _warehouse_session(f"{CLI} status") as (session, owned):
        if not _has_task_history(session, database):
            return graph_run_status([], graph), []
        if owned:
            repair_abandoned_run(session, _task_history(database), graph)
        rows = latest_run_rows(session, _task_history(database), graph, run_id)
        sources = source_progress(session.sql(source_progress_query(database)).collect()) if rows else []
    status = graph_run_status(rows, graph)
    return (status if owned else with_running_tasks(status, running_tasks(_home()))), sources


def _has_task_history(session: Any, database: str) -> bool:
    """Whether the local warehouse has been set up by a run (a fresh home has no tables yet)."""
    rows = session.sql(
        f"SELECT COUNT(*) AS n FROM {database}.INFORMATION_SCHEMA.TABLES "
        "WHERE table_schema = 'OPS' AND table_name = 'TASK_HISTORY'"
    ).collect()
    return bool(rows and rows[0][0])


@app.command()
def history(
    fmt: FormatOption = "table",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="how many runs, newest first")] = 10,
) -> None:
    """The latest graph runs of the hourly graph, newest first: state, duration, tasks by outcome, the first
    error. `status --run-id ID` shows one of them in full."""
    project = Project.load()
    graph = project_task_graph(project)
    database = project.env["database"].upper()
    with _warehouse_session(f"{CLI} history") as (session, owned):
        if not _has_task_history(session, database):
            raise NoRunYet(f"No graph run yet: run `{CLI} run`")
        if owned:
            repair_abandoned_run(session, _task_history(database), graph)
        runs = graph_runs(session, _task_history(database), graph, limit)
    if not runs:
        raise NoRunYet(f"No graph run yet: run `{CLI} run`")
    if fmt == "json":
        print_json([r.to_dict() for r in runs])
        return
    from .console import STATE_STYLE

    for item in runs:
        style = STATE_STYLE.get(item.state, "white")
        scheduled = (iso_utc(item.scheduled_at) or "")[:19].replace("T", " ")
        duration = f"{item.duration_s:6.1f} s" if item.duration_s is not None else " " * 8
        counts = " · ".join(f"{n} {k.replace('_', ' ')}" for k, n in item.tasks.items() if n)
        console.print(
            f"{item.run_id}  [{style}]{item.state:<9}[/{style}]  {scheduled}  {duration}  {counts}",
            highlight=False,
            soft_wrap=True,
        )
        if item.first_error:
            console.print(f"    [red]{escape(item.first_error)}[/red]", highlight=False)


SQL_FORMATS = ["table", "json", "csv"]


@app.command()
def sql(
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="SQL to run on the local warehouse")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="read the SQL from this file (- for stdin)", dir_okay=False),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="table (fits the terminal), json or csv", click_type=click.Choice(SQL_FORMATS)
        ),
    ] = "table",
) -> None:
    """Run one SQL statement on the local warehouse, like `snow sql`: -q "SQL", -f FILE, or the SQL piped on
    stdin. Works while `run`/`up` runs (through its warehouse)."""
    statement = _one_statement(_sql_text(query, file))
    from .local.sql_calls import is_call_statement, run_call

    if is_call_statement(statement):  # a procedure: run on the local stack (local/sql_calls.py)
        print_result(run_call(statement, _home(), f"{CLI} sql"), fmt)
        return
    with _warehouse_session(f"{CLI} sql") as (session, _owned):
        rows = session.sql(statement).collect()
    print_result(rows, fmt)


def _sql_text(query: str | None, file: Path | None) -> str:
    if query is not None and file is not None:
        raise UsageProblem("give the SQL once: -q or -f, not both")
    if query is not None:
        return query
    if file is not None and str(file) != "-":
        try:
            return file.read_text()
        except OSError as exc:
            raise UsageProblem(f"cannot read {file}: {exc.strerror}") from None
    if file is None and sys.stdin.isatty():
        raise UsageProblem(f'no SQL given: {CLI} sql -q "SELECT ...", -f FILE, or pipe it on stdin')
    return sys.stdin.read()


def _one_statement(text: str) -> str:
    """The one statement in `text`, refused up front when there is none or more than one (the warehouse
    would answer those with errors that do not say so)."""
    from sqlglot import tokens
    from sqlglot.dialects.snowflake import Snowflake
    from sqlglot.errors import TokenError

    try:
        toks = Snowflake().tokenize(text)
    except TokenError as exc:
        raise UsageProblem(f"cannot read the SQL: {exc}") from None
    statements = 0
    in_statement = False
    for tok in toks:
        if tok.token_type == tokens.TokenType.SEMICOLON:
            in_statement = False
        elif not in_statement:
            statements += 1
            in_statement = True
    if statements == 0:
        raise UsageProblem("no SQL statement given (empty, or only comments)")
    if statements > 1:
        raise UsageProblem(f"{statements} statements given; `sql` runs one at a time (run each separately)")
    return text.strip().rstrip(";").strip()


@app.command()
def dashboard(
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="the localhost port to serve the dashboard on")
    ] = 8501,
) -> None:
    """Serve the dashboard (streamlit/, the app `deploy` puts in Snowflake) on localhost, over the running
    `up` stack's warehouse, or over the local warehouse opened just for it. Ctrl-C stops it."""
    from .dashboard import serve

    serve(_home(), _database(), port, f"{CLI} dashboard", echo=console.print, environ=dict(os.environ))


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
    """Run the CLI: every error is one line on stderr with a non-zero exit code (API2SNOW_DEBUG=1: the
    traceback instead); 2 for bad input or a busy warehouse, 128 + the signal for an interrupted run."""
    debug = os.environ.get("API2SNOW_DEBUG") == "1"
    code = 0
    logging.getLogger().addHandler(logging.NullHandler())  # nothing logs to the terminal, even early
    try:
        _log_to_file()
        result = app(standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.UsageError as exc:
        fail(_usage_message(exc))
        code = EXIT_USAGE
    except click.ClickException as exc:
        fail(exc.format_message())
        code = exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:
        name = _signal_name(exc)
        fail(f"interrupted by {name}; nothing was left running (`{CLI} status` shows the latest run)")
        code = 143 if name == "SIGTERM" else 130
    except Exception as exc:  # one clear line, not a traceback (API2SNOW_DEBUG=1 shows it)
        if debug:
            raise
        logging.getLogger("api2snow.cli").error("command failed", exc_info=True)
        lines = str(exc).strip().splitlines()
        fail(lines[0] if lines else type(exc).__name__)
        code = getattr(exc, "exit_code", EXIT_FAILED)
    _exit(code)


def _usage_message(exc: click.UsageError) -> str:
    """Click's message, with the closest command for a mistyped one, and where the help is."""
    message = exc.format_message()
    if isinstance(exc, UsageProblem):
        return message
    ctx = exc.ctx
    typed = (
        message.split("'")[1] if message.startswith("No such command") and message.count("'") >= 2 else None
    )
    if typed is not None and ctx is not None and isinstance(ctx.command, click.Group):
        close = difflib.get_close_matches(typed, ctx.command.list_commands(ctx), n=1, cutoff=0.5)
        if close:
            return f"{message} Did you mean `{close[0]}`? ({CLI} --help lists the commands)"
    where = " ".join([CLI, *(ctx.command_path.split()[1:] if ctx is not None else [])])
    return f"{message} (see `{where} --help`)"


def _signal_name(exc: BaseException) -> str:
    for candidate in (exc, exc.__cause__, exc.__context__):
        if isinstance(candidate, KeyboardInterrupt) and candidate.args:
            return str(candidate.args[0])
    return "SIGINT"


def _exit(code: int) -> None:
    """Exit with `code`. Tasks of a cancelled run may still be inside a procedure (a thread cannot be stopped
    from outside); the stack they used is stopped, so the process ends without waiting for them."""
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t.name.startswith("task") and t.is_alive() for t in threading.enumerate()):
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


__all__ = ["app", "main", "PROJECT_ROOT"]
