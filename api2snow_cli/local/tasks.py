"""Local task graph: interprets the CREATE OR ALTER TASK statements of sql/ and runs one graph run.

Like Snowflake: the root runs first; a task runs once all its predecessors succeeded, siblings in
parallel; a failed task is retried up to the root's TASK_AUTO_RETRY_ATTEMPTS; tasks downstream of a
failure do not run; the finalizer runs last, whatever happened. Every attempt is a row in a local
TASK_HISTORY table with Snowflake's columns, so `api2snow status` reads the same shape in both places.
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
    name: str
    state: str
    attempt: int
    return_value: str | None = None
    error: str | None = None
    started: datetime | None = None
    completed: datetime | None = None


class TaskGraph:
    """The declared tasks, checked: one root, known predecessors, no cycle, at most one finalizer."""

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

    run_id: str
    config: dict[str, Any]


class TaskGraphRunner:
    """Runs one graph run with `execute(task, context)` and records it in TASK_HISTORY."""

    def __init__(
        self,
        graph: TaskGraph,
        session: Any,
        database: str,
        execute: Execute,
        max_parallel: int = 4,
        on_event: Callable[[TaskRun], None] | None = None,
    ) -> None:
        self.graph = graph
        self.session = session
        self.database = database
        self.execute = execute
        self.max_parallel = max_parallel
        self.on_event = on_event or (lambda run: None)
        self._history_lock = threading.Lock()

    def run(self) -> tuple[str, list[TaskRun]]:
        run_id = str(uuid.uuid4())
        scheduled = datetime.now(UTC)
        states: dict[str, TaskRun] = {}
        with ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="task") as pool:
            running: dict[Future[TaskRun], str] = {}
            pending = self.graph.order()
            while pending or running:
                for task in list(pending):
                    parents = [states.get(p) for p in task.after]
                    if any(p is not None and p.state != "SUCCEEDED" for p in parents):
                        states[task.name] = self._skip(task, run_id, scheduled, parents)
                        pending.remove(task)
                    elif all(p is not None for p in parents):
                        running[pool.submit(self._run_task, task, run_id, scheduled)] = task.name
                        pending.remove(task)
                if not running:
                    continue
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    states[running.pop(future)] = future.result()
        if self.graph.finalizer is not None:
            states[self.graph.finalizer.name] = self._run_task(self.graph.finalizer, run_id, scheduled)
        return run_id, list(states.values())

    def _skip(self, task: TaskDefinition, run_id: str, scheduled: datetime, parents: list[Any]) -> TaskRun:
        failed = next(p for p in parents if p is not None and p.state != "SUCCEEDED")
        run = TaskRun(task.name, "CANCELLED", 1, error=f"predecessor {failed.name} did not succeed")
        self._record(task, run, run_id, scheduled)
        return run

    def _run_task(self, task: TaskDefinition, run_id: str, scheduled: datetime) -> TaskRun:
        attempts = 1 + self.graph.root.retry_attempts
        context = RunContext(run_id, self.graph.root.config)
        run = TaskRun(task.name, "EXECUTING", 0)
        for attempt in range(1, attempts + 1):
            run = TaskRun(task.name, "EXECUTING", attempt, started=datetime.now(UTC))
            self.on_event(run)
            try:
                run.return_value = self.execute(task, context)
                run.state = "SUCCEEDED"
            except Exception as exc:  # a task failure is data for TASK_HISTORY, not a crash of the runner
                run.state, run.error = "FAILED", f"{type(exc).__name__}: {exc}"
                log.debug("task %s attempt %d failed", task.name, attempt, exc_info=True)
            run.completed = datetime.now(UTC)
            self._record(task, run, run_id, scheduled)
            self.on_event(run)
            if run.state == "SUCCEEDED":
                break
        return run

    def _record(self, task: TaskDefinition, run: TaskRun, run_id: str, scheduled: datetime) -> None:
        database, schema, name = task.name.split(".")
        with self._history_lock:
            self.session.sql(
                f"INSERT INTO {self.database}.OPS.TASK_HISTORY (name, database_name, schema_name, state, "
                "scheduled_time, query_start_time, completed_time, return_value, error_code, error_message, "
                "graph_run_group_id, root_task_name, attempt_number) "
                "SELECT ?, ?, ?, ?, CAST(? AS TIMESTAMP_LTZ), CAST(? AS TIMESTAMP_LTZ), "
                "CAST(? AS TIMESTAMP_LTZ), ?, ?, ?, ?, ?, ?",
                params=[
                    name,
                    database,
                    schema,
                    run.state,
                    scheduled.isoformat(),
                    run.started.isoformat() if run.started else None,
                    run.completed.isoformat() if run.completed else None,
                    run.return_value,
                    "100500" if run.state == "FAILED" else None,
                    run.error,
                    run_id,
                    self.graph.root.short_name,
                    run.attempt,
                ],
            ).collect()


def graph_from_statements(statements: list[str]) -> TaskGraph:
    return TaskGraph([parse_task(s) for s in statements if is_task_statement(s)])


def project_task_graph(project: Project) -> TaskGraph:
    """The task graph that the project's sql/ declares."""
    return graph_from_statements([s for path in project.sql_files("sql") for s in project.statements(path)])
