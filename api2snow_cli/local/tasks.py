"""Local task graph: interprets the CREATE OR ALTER TASK statements of sql/ and runs one graph run.

Like Snowflake: the root runs first; a task runs once all its predecessors succeeded, siblings in
parallel; tasks downstream of a failure do not run (CANCELLED); the finalizer runs last, whatever happened.
Auto-retry is Snowflake's (TASK_AUTO_RETRY_ATTEMPTS = N on the root): a failed graph run is followed by
up to N new runs in the same graph run group (same GRAPH_RUN_GROUP_ID, ATTEMPT_NUMBER + 1), each starting
from the tasks that failed or were cancelled, never re-running a task that succeeded; the finalizer runs
after each run. Every task run is a row in a local TASK_HISTORY table with Snowflake's columns, so
`api2snow status` reads the same shape in both places.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlglot import tokens
from sqlglot.dialects.snowflake import Snowflake

if TYPE_CHECKING:
    from ..project import Project

log = logging.getLogger(__name__)

TASK_HISTORY_DDL = """CREATE TABLE IF NOT EXISTS {database}.OPS.TASK_HISTORY (
    NAME STRING NOT NULL,
    DATABASE_NAME STRING,
    SCHEMA_NAME STRING,
    STATE STRING NOT NULL,
    SCHEDULED_TIME TIMESTAMP_LTZ,
    QUERY_START_TIME TIMESTAMP_LTZ,
    COMPLETED_TIME TIMESTAMP_LTZ,
    RETURN_VALUE STRING,
    ERROR_CODE STRING,
    ERROR_MESSAGE STRING,
    GRAPH_RUN_GROUP_ID STRING,
    ROOT_TASK_NAME STRING,
    ATTEMPT_NUMBER NUMBER,
    RUN_ID NUMBER
)"""


# TASK_HISTORY.ERROR_MESSAGE of the tasks of a cancelled graph run
CANCELLED_WHILE_RUNNING = "cancelled while running: the graph run was cancelled"
CANCELLED_BEFORE_START = "not started: the graph run was cancelled"


class TaskGraphError(RuntimeError):
    """The declared graph is malformed (no root, unknown predecessor, cycle)."""


@dataclass
class TaskDefinition:
    """One CREATE OR ALTER TASK statement, as far as running it locally needs."""

    name: str
    after: list[str] = field(default_factory=list)
    finalize: str | None = None
    schedule: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    retry_attempts: int = 0
    body: str = ""

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def is_task_statement(statement: str) -> bool:
    head = " ".join(statement.split()[:4]).upper()
    return head.startswith(("CREATE OR ALTER TASK", "CREATE TASK", "CREATE OR REPLACE TASK"))


def parse_task(statement: str) -> TaskDefinition:
    """Read name, AFTER, FINALIZE, SCHEDULE, CONFIG, retries and the body of a CREATE TASK."""
    toks = [t for t in Snowflake().tokenize(statement) if t.token_type != tokens.TokenType.SEMICOLON]
    texts = [t.text for t in toks]
    upper = [t.upper() for t in texts]
    try:
        as_index = next(
            i for i, t in enumerate(toks) if upper[i] == "AS" and t.token_type == tokens.TokenType.ALIAS
        )
    except StopIteration:
        raise TaskGraphError(f"task statement has no AS <body>: {statement[:80]!r}") from None
    name, i = _qualified_name(texts, upper.index("TASK") + 1)
    task = TaskDefinition(name=name, body=statement[toks[as_index].end + 1 :].strip())
    while i < as_index:
        word = upper[i]
        if word == "AFTER":
            while i + 1 < as_index:
                parent, i = _qualified_name(texts, i + 1)
                task.after.append(parent)
                if i >= as_index or texts[i] != ",":
                    break
            continue
        if i + 2 < as_index and texts[i + 1] == "=":
            if word == "FINALIZE":
                task.finalize, i = _qualified_name(texts, i + 2)
                continue
            _set_property(task, word, texts[i + 2])
            i += 3
            continue
        i += 1
    return task


def _qualified_name(texts: list[str], i: int) -> tuple[str, int]:
    """Join `a . b . c` tokens from index i; returns the upper-case name and the index after it."""
    parts = [texts[i]]
    i += 1
    while i + 1 < len(texts) and texts[i] == ".":
        parts.append(texts[i + 1])
        i += 2
    return ".".join(parts).upper(), i


def _set_property(task: TaskDefinition, key: str, value: str) -> None:
    if key == "SCHEDULE":
        task.schedule = value
    elif key == "CONFIG":
        task.config = json.loads(value)
    elif key == "TASK_AUTO_RETRY_ATTEMPTS":
        task.retry_attempts = int(value)


@dataclass
class TaskRun:
    """A task's run within one graph run; `attempt` is that graph run's ATTEMPT_NUMBER."""

    name: str
    state: str
    attempt: int
    return_value: str | None = None
    error: str | None = None
    started: datetime | None = None
    completed: datetime | None = None


class TaskGraph:
    """The declared tasks of one graph, checked: one root, known predecessors, no cycle, at most one
    finalizer. A standalone scheduled task is a graph of one."""

    def __init__(self, definitions: list[TaskDefinition]) -> None:
        self.tasks = {t.name: t for t in definitions}
        roots = [t for t in definitions if not t.after and not t.finalize]
        if len(roots) != 1:
            raise TaskGraphError(f"expected exactly one root task, found {[t.name for t in roots]}")
        self.root = roots[0]
        finalizers = [t for t in definitions if t.finalize]
        self.finalizer = finalizers[0] if finalizers else None
        for task in definitions:
            for parent in task.after:
                if parent not in self.tasks:
                    raise TaskGraphError(f"task {task.name} runs AFTER unknown task {parent}")
        self.order()  # raises on a cycle

    def order(self) -> list[TaskDefinition]:
        """Tasks (without the finalizer) in a dependency order."""
        done: list[str] = []
        pending = [t for t in self.tasks.values() if not t.finalize]
        while pending:
            ready = [t for t in pending if all(p in done for p in t.after)]
            if not ready:
                raise TaskGraphError(f"cycle among tasks {[t.name for t in pending]}")
            done += [t.name for t in ready]
            pending = [t for t in pending if t.name not in done]
        return [self.tasks[n] for n in done]


Execute = Callable[[TaskDefinition, "RunContext"], str | None]


@dataclass(frozen=True)
class RunContext:
    """What a running task can ask of its graph run (the local platform reads it)."""

    run_id: str  # the graph run group's id, shared by its retries (CURRENT_TASK_GRAPH_RUN_GROUP_ID)
    config: dict[str, Any]
    task: str = ""  # the running task's unqualified name, as TASK_HISTORY.NAME has it


@dataclass(frozen=True)
class GraphAttempt:
    """One graph run of a run group; Snowflake tells them apart by GRAPH_RUN_GROUP_ID and ATTEMPT_NUMBER."""

    group_id: str
    number: int
    scheduled: datetime
    first_scheduled: datetime  # when the group's first run was scheduled: TASK_HISTORY.RUN_ID

    @property
    def run_id(self) -> int:
        """Snowflake's RUN_ID: the original scheduled time in epoch milliseconds, the same for every retry."""
        return int(self.first_scheduled.timestamp() * 1000)


class TaskGraphRunner:
    """Runs one graph run group (a run and its auto-retries) with `execute(task, context)`, recording
    every task run in TASK_HISTORY."""

    def __init__(
        self,
        graph: TaskGraph,
        session: Any,
        database: str,
        execute: Execute,
        max_parallel: int = 4,
        on_event: Callable[[TaskRun], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.graph = graph
        self.session = session
        self.database = database
        self.execute = execute
        self.max_parallel = max_parallel
        self.on_event = on_event or (lambda run: None)
        self.cancel = cancel or threading.Event()  # set it to cancel the run, as Snowflake cancels one
        self._history_lock = threading.Lock()
        self._active: dict[str, TaskRun] = {}  # the task runs in progress, by task name
        self._abandoned: set[str] = set()  # cancelled while running: their late outcome is not recorded

    def run(self) -> tuple[str, list[TaskRun]]:
        """The first run, then a retry while a task did not succeed, at most TASK_AUTO_RETRY_ATTEMPTS times.

        Returns the graph run group id and the latest run of every task (the finalizer's last one included).
        """
        group_id, first = str(uuid.uuid4()), datetime.now(UTC)
        latest: dict[str, TaskRun] = {}
        for number in range(1, self.graph.root.retry_attempts + 2):
            attempt = GraphAttempt(group_id, number, datetime.now(UTC), first)
            latest.update(self._run_attempt(attempt, self._succeeded(latest)))
            if not self._unfinished(latest) or self.cancel.is_set():
                break  # a cancelled run is not retried
        return group_id, list(latest.values())

    def _succeeded(self, latest: dict[str, TaskRun]) -> set[str]:
        """Tasks a retry does not run again: those that succeeded in an earlier run of the group."""
        finalizer = self.graph.finalizer.name if self.graph.finalizer else None
        return {name for name, run in latest.items() if run.state == "SUCCEEDED" and name != finalizer}

    def _unfinished(self, latest: dict[str, TaskRun]) -> list[str]:
        """Graph tasks (not the finalizer) whose latest run failed or was cancelled: where a retry starts."""
        return [t.name for t in self.graph.order() if latest[t.name].state != "SUCCEEDED"]

    def _run_attempt(self, attempt: GraphAttempt, done: set[str]) -> dict[str, TaskRun]:
        """One graph run: each task not in `done` once its predecessors succeeded (in this run or, for those
        in `done`, an earlier one), siblings in parallel; then the finalizer. Returns this run's task runs."""
        runs: dict[str, TaskRun] = {}
        pool = ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="task")
        running: dict[Future[TaskRun], str] = {}
        pending = [t for t in self.graph.order() if t.name not in done]
        try:
            while (pending or running) and not self.cancel.is_set():
                for task in list(pending):
                    parents = [runs.get(p) for p in task.after if p not in done]
                    if any(p is not None and p.state != "SUCCEEDED" for p in parents):
                        runs[task.name] = self._skip(task, attempt, parents)
                        pending.remove(task)
                    elif all(p is not None for p in parents):
                        running[pool.submit(self._run_task, task, attempt)] = task.name
                        pending.remove(task)
                if running:  # a short wait, so a cancellation is noticed promptly
                    finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in finished:
                        runs[running.pop(future)] = future.result()
            if self.cancel.is_set():
                runs.update(self._cancel_rest(attempt, running, pending))
        finally:
            # Cancelled tasks may still be inside a procedure; they are not waited for (their outcome is
            # dropped), as Snowflake does not wait for a cancelled query to be acknowledged.
            pool.shutdown(wait=not self.cancel.is_set(), cancel_futures=True)
        if self.graph.finalizer is not None:
            runs[self.graph.finalizer.name] = self._run_task(self.graph.finalizer, attempt, finalizer=True)
        return runs

    def _cancel_rest(
        self, attempt: GraphAttempt, running: dict[Future[TaskRun], str], pending: list[TaskDefinition]
    ) -> dict[str, TaskRun]:
        """The graph run was cancelled: the tasks running now and those not started yet are CANCELLED; a task
        that was just finishing keeps its own outcome."""
        runs: dict[str, TaskRun] = {}
        now = datetime.now(UTC)
        with self._history_lock:
            active = {name: self._active[name] for name in running.values() if name in self._active}
            self._abandoned.update(active)
        for future, name in running.items():
            if name in active:
                run = TaskRun(name, "CANCELLED", attempt.number, error=CANCELLED_WHILE_RUNNING)
                run.started, run.completed = active[name].started, now
            elif future.cancel():
                run = TaskRun(name, "CANCELLED", attempt.number, error=CANCELLED_BEFORE_START)
            else:  # finished meanwhile, or saw the cancellation as it started: recorded by _run_task
                runs[name] = future.result()
                continue
            self._record(self.graph.tasks[name], run, attempt)
            self.on_event(run)
            runs[name] = run
        for task in pending:
            run = TaskRun(task.name, "CANCELLED", attempt.number, error=CANCELLED_BEFORE_START)
            self._record(task, run, attempt)
            self.on_event(run)
            runs[task.name] = run
        return runs

    def _skip(self, task: TaskDefinition, attempt: GraphAttempt, parents: list[TaskRun | None]) -> TaskRun:
        failed = next(p for p in parents if p is not None and p.state != "SUCCEEDED")
        error = f"predecessor {failed.name} did not succeed"
        run = TaskRun(task.name, "CANCELLED", attempt.number, error=error)
        self._record(task, run, attempt)
        return run

    def _run_task(self, task: TaskDefinition, attempt: GraphAttempt, finalizer: bool = False) -> TaskRun:
        """Run the task once; a failure is recorded, not raised: retrying is the graph's business. The
        finalizer runs even in a cancelled run; another task of a cancelled run does not start."""
        context = RunContext(attempt.group_id, self.graph.root.config, task.short_name)
        run = TaskRun(task.name, "EXECUTING", attempt.number, started=datetime.now(UTC))
        with self._history_lock:
            cancelled = self.cancel.is_set() and not finalizer
            if not cancelled:
                self._active[task.name] = run
        if cancelled:  # recorded here: the run loop may collect this future before it sees the cancellation
            run = TaskRun(task.name, "CANCELLED", attempt.number, error=CANCELLED_BEFORE_START)
            self._record(task, run, attempt)
            self.on_event(run)
            return run
        self.on_event(run)
        try:
            run.return_value = self.execute(task, context)
            run.state = "SUCCEEDED"
        except Exception as exc:  # a task failure is data for TASK_HISTORY, not a crash of the runner
            run.state, run.error = "FAILED", f"{type(exc).__name__}: {exc}"
            log.debug("task %s failed in run %d", task.name, attempt.number, exc_info=True)
        run.completed = datetime.now(UTC)
        with self._history_lock:
            self._active.pop(task.name, None)
            if task.name in self._abandoned and not finalizer:
                log.info(
                    "task %s of cancelled run %s ended %s (not recorded)",
                    task.name,
                    attempt.group_id,
                    run.state,
                )
                return run
        self._record(task, run, attempt)
        self.on_event(run)
        return run

    def _record(self, task: TaskDefinition, run: TaskRun, attempt: GraphAttempt) -> None:
        database, schema, name = task.name.split(".")
        with self._history_lock:
            self.session.sql(
                f"INSERT INTO {self.database}.OPS.TASK_HISTORY (name, database_name, schema_name, state, "
                "scheduled_time, query_start_time, completed_time, return_value, error_code, error_message, "
                "graph_run_group_id, root_task_name, attempt_number, run_id) "
                "SELECT ?, ?, ?, ?, CAST(? AS TIMESTAMP_LTZ), CAST(? AS TIMESTAMP_LTZ), "
                "CAST(? AS TIMESTAMP_LTZ), ?, ?, ?, ?, ?, ?, ?",
                params=[
                    name,
                    database,
                    schema,
                    run.state,
                    attempt.scheduled.isoformat(),
                    run.started.isoformat() if run.started else None,
                    run.completed.isoformat() if run.completed else None,
                    run.return_value,
                    "100500" if run.state == "FAILED" else None,
                    run.error,
                    attempt.group_id,
                    self.graph.root.short_name,
                    attempt.number,
                    attempt.run_id,
                ],
            ).collect()


def task_graphs(definitions: list[TaskDefinition]) -> list[TaskGraph]:
    """The declared tasks as graphs, one per root, in the order their roots are declared: each task joins
    the graph of its predecessors (a task AFTER tasks of two graphs is refused), a finalizer its root's."""
    by_name = {t.name: t for t in definitions}
    roots = [t for t in definitions if not t.after and not t.finalize]
    if not roots:
        raise TaskGraphError("no root task: every task runs AFTER another")
    root_of: dict[str, str] = {}

    def find(task: TaskDefinition, seen: tuple[str, ...] = ()) -> str:
        if task.name in root_of:
            return root_of[task.name]
        if task.name in seen:
            raise TaskGraphError(f"cycle among tasks {list(seen)}")
        parents = [task.finalize] if task.finalize else task.after
        if not parents:
            return task.name
        found = set()
        for parent in parents:
            if parent not in by_name:
                raise TaskGraphError(f"task {task.name} runs AFTER unknown task {parent}")
            found.add(find(by_name[parent], (*seen, task.name)))
        if len(found) > 1:
            raise TaskGraphError(
                f"task {task.name} runs after tasks of two graphs ({', '.join(sorted(found))})"
            )
        root_of[task.name] = found.pop()
        return root_of[task.name]

    members: dict[str, list[TaskDefinition]] = {root.name: [] for root in roots}
    for task in definitions:
        members[find(task)].append(task)
    return [TaskGraph(members[root.name]) for root in roots]


def graph_from_statements(statements: list[str]) -> TaskGraph:
    """The pipeline's hourly graph: the first declared root's."""
    return task_graphs([parse_task(s) for s in statements if is_task_statement(s)])[0]


def project_task_graphs(project: Project) -> list[TaskGraph]:
    """Every task graph the project's sql/ declares, the hourly pipeline's first."""
    statements = [s for path in project.sql_files("sql") for s in project.statements(path)]
    return task_graphs([parse_task(s) for s in statements if is_task_statement(s)])


def project_task_graph(project: Project) -> TaskGraph:
    """The hourly pipeline's task graph (the first root sql/ declares)."""
    return project_task_graphs(project)[0]
