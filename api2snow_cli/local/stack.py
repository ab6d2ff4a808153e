"""The local stack: mock APIs, local S3, the fakesnow warehouse, pipes, procedures and the task graph.

It renders the project's own sql/ with the local endpoints filled in, applies it, and interprets what
fakesnow cannot run (pipes, tasks, CALL) from those same statements. Nothing here keeps a second copy
of the graph, the pipes or the procedure list.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api2snow import platform as platform_seam
from api2snow.platform import AwsCredentials

from ..project import DECLARATIONS, PROJECT_ROOT, Project, host_port, secret_variables
from . import egress
from .auto_ingest import LocalSnowpipeQueue
from .clustering import AutomaticClustering, clustering_key
from .mock_apis.context import AUTH_CREDENTIALS, Credentials
from .mock_apis.server import MockApiConfig, MockApis
from .notifications import LocalNotifications
from .pipes import LocalPipeLoader, is_pipe_statement
from .platform import LocalPlatform, set_run_context
from .procedures import ProcedureDispatcher, is_call_statement
from .s3 import LOCAL_AWS_KEY, LOCAL_AWS_ROLE_ARN, LOCAL_AWS_SECRET, LocalS3
from .secrets import LocalSecrets, external_access_statements
from .tasks import (
    TASK_HISTORY_DDL,
    RunContext,
    TaskDefinition,
    TaskGraph,
    TaskGraphRunner,
    TaskRun,
    is_task_statement,
    parse_task,
    task_graphs,
)
from .warehouse import LocalWarehouse, duckdb_connection
from .webhook_receiver import WebhookReceiver

log = logging.getLogger(__name__)

# Statements of account-level objects that the local warehouse does not emulate (validated by parsing).
NOT_EMULATED = (
    "GRANT",
    "REVOKE",
    "CREATE ROLE",
    "CREATE WAREHOUSE",
    "CREATE OR REPLACE WAREHOUSE",
    "CREATE SECRET",
    "CREATE OR REPLACE SECRET",
    "CREATE NETWORK RULE",
    "CREATE OR REPLACE NETWORK RULE",
    "CREATE SECURITY",
    "CREATE OR REPLACE SECURITY",
    "CREATE EXTERNAL ACCESS",
    "CREATE OR REPLACE EXTERNAL ACCESS",
    "CREATE STORAGE INTEGRATION",
    "CREATE OR REPLACE STORAGE INTEGRATION",
    "USE ROLE",
    "ALTER DATABASE",  # log and trace levels: the local stack logs to the console
    "ALTER TASK",
    "SELECT SYSTEM$TASK_DEPENDENTS_ENABLE",
)


def default_home() -> Path:
    return Path(os.environ.get("API2SNOW_HOME", PROJECT_ROOT / ".api2snow"))


@dataclass
class StackOptions:
    home: Path = field(default_factory=default_home)
    project_root: Path = PROJECT_ROOT
    seed: int = 42
    mock: MockApiConfig | None = None
    credentials: Credentials = field(default_factory=Credentials)
    env_overrides: dict[str, str] = field(default_factory=dict)


class LocalStack:
    """Start with `start()` (or `with LocalStack() as stack:`), then `run_graph()` or `call(...)`."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.mock_apis: MockApis | None = None
        self.s3 = LocalS3()
        self.warehouse: LocalWarehouse | None = None
        self.project: Project | None = None
        self.loader: LocalPipeLoader | None = None
        self.snowpipe_queue: LocalSnowpipeQueue | None = None
        self.dispatcher: ProcedureDispatcher | None = None
        self.graph: TaskGraph | None = None  # the hourly pipeline's
        self.graphs: dict[str, TaskGraph] = {}  # every declared graph, by root task name
        self.clustering = AutomaticClustering(lambda: duckdb_connection(self.warehouse))
        self.webhook_receiver = WebhookReceiver()  # where the alerts go (external_access/02's integrations)

    # ---- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, progress: Callable[[str], None] = lambda message: None) -> LocalStack:
        home = self.options.home
        home.mkdir(parents=True, exist_ok=True)
        progress("starting mock APIs")
        self.mock_apis = MockApis(self._mock_config())
        urls = self.mock_apis.start()
        progress("starting local S3 (moto)")
        self.s3.start()
        self.webhook_receiver.start()
        self.project = Project.load(
            self.options.project_root,
            {
                "env_name": "local",
                "s3_endpoint_url": self.s3.endpoint_url,
                "alert_webhook_url": self.webhook_receiver.webhook_url_template,
                **{d.base_url_setting: urls[d.name] for d in DECLARATIONS if d.name in urls},
                **self.options.env_overrides,
            },
        )
        self.s3.ensure_bucket(self.project.env["bucket"])
        self.s3.restore(self.project.env["bucket"], home / "s3")
        progress("starting local warehouse (fakesnow)")
        database = self.project.env["database"].upper()
        self.warehouse = LocalWarehouse(home / "warehouse", database).start()
        session = self.warehouse.session
        self.loader = LocalPipeLoader(
            session, self.s3.client(), database, self.warehouse.connection_parameters()
        )
        access = external_access_statements(self.project, self._secret_values())
        procedures = self.project.procedures()
        egress.install()
        allowed = egress.allowances(access, procedures, self._egress_stand_ins())
        self.dispatcher = ProcedureDispatcher(procedures, session, allowed)
        progress("applying sql/")
        self.apply_sql()
        self._start_auto_ingest()
        secrets = LocalSecrets(access, AwsCredentials(LOCAL_AWS_KEY, LOCAL_AWS_SECRET))
        notifications = LocalNotifications(access, secrets, self.webhook_receiver.email_url)
        platform_seam.set_platform(LocalPlatform(secrets, self.loader, database, notifications))
        return self

    def _start_auto_ingest(self) -> None:
        """The pipes' queue, the bucket's notification to it (as deploy puts it), the events a durable
        queue would still hold from an earlier process, and Snowpipe's consumer."""
        assert self.loader is not None
        self.snowpipe_queue = LocalSnowpipeQueue(
            self.loader, self.s3.endpoint_url, self.s3.region, (LOCAL_AWS_KEY, LOCAL_AWS_SECRET)
        )
        self.snowpipe_queue.subscribe(self.s3.client())
        self.snowpipe_queue.redeliver()
        self.snowpipe_queue.start()

    def stop(self) -> None:
        platform_seam.set_platform(None)
        if self.snowpipe_queue is not None:
            self.snowpipe_queue.stop()
        if self.loader is not None:
            self.loader.close()
        if self.warehouse is not None:
            self.warehouse.stop()
        self.s3.stop()  # nothing to save: every object change is on disk before S3 answers it
        if self.mock_apis is not None:
            self.mock_apis.stop()
        self.webhook_receiver.stop()

    # ---- configuration -----------------------------------------------------------------------------
    def _mock_config(self) -> MockApiConfig:
        if self.options.mock is not None:
            return self.options.mock
        state_file = self.options.home / "mock_state.json"
        if state_file.exists():
            anchor = datetime.fromisoformat(json.loads(state_file.read_text())["anchor"])
        else:  # the data set is anchored once per local home, so it stays the same across runs
            anchor = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            state_file.write_text(json.dumps({"anchor": anchor.isoformat(), "seed": self.options.seed}))
        return MockApiConfig(
            seed=self.options.seed,
            anchor=anchor,
            clock_start=datetime.now(UTC),
            credentials=self.options.credentials,
        )

    def _secret_values(self) -> dict[str, str]:
        """What external_access/'s secret variables are rendered with locally: the mock APIs' credentials,
        by each source's auth kind (project.secret_variables names them in this order)."""
        creds = self.options.credentials
        values = {"aws_role_arn": LOCAL_AWS_ROLE_ARN, "alert_webhook_secret": self.webhook_receiver.secret}
        for declaration in DECLARATIONS:
            fields = AUTH_CREDENTIALS[declaration.auth.kind]
            names = secret_variables(declaration)
            values.update({name: getattr(creds, f) for name, f in zip(names, fields, strict=True)})
        return values

    def _egress_stand_ins(self) -> dict[str, str]:
        """Network-rule hosts served here by a stand-in: the S3 rule's AWS hosts (bucket, S3, STS) mean
        moto on loopback, which boto3 reaches through s3_endpoint_url. Other hosts are taken as written."""
        return {".amazonaws.com": host_port(self.s3.endpoint_url)}

    @property
    def database(self) -> str:
        assert self.project is not None, "stack not started"
        return self.project.env["database"].upper()

    @property
    def session(self) -> Any:
        assert self.warehouse is not None, "stack not started"
        return self.warehouse.session

    # ---- SQL ---------------------------------------------------------------------------------------
    def apply_sql(self) -> None:
        """Apply sql/ in order; pipes, tasks and CALLs are interpreted, account objects skipped."""
        assert self.project is not None and self.loader is not None
        tasks: list[TaskDefinition] = []
        for path in self.project.sql_files("sql"):
            for statement in self.project.statements(path):
                task = self.execute(statement)
                if task is not None:
                    tasks.append(task)
        self.loader.ensure_history_table()
        self.session.sql(TASK_HISTORY_DDL.format(database=self.database)).collect()
        self.graphs = {graph.root.short_name: graph for graph in task_graphs(tasks)}
        self.graph = next(iter(self.graphs.values()))  # the hourly pipeline, declared first

    def execute(self, statement: str) -> TaskDefinition | None:
        """Run one rendered statement the way the local stack emulates it; returns a parsed task."""
        assert self.loader is not None and self.dispatcher is not None
        head = " ".join(statement.split()[:5]).upper()
        if is_task_statement(statement):
            return parse_task(statement)
        declared = clustering_key(statement)
        if declared is not None:
            table, columns, only_declares = declared
            self.clustering.declare(table, columns)
            if only_declares:
                return None  # fakesnow has no ALTER TABLE ... CLUSTER BY; the declaration is all it does
        if is_pipe_statement(statement):
            self.loader.register(statement)
        elif is_call_statement(statement):
            self.dispatcher.call(statement)
        elif head.startswith(NOT_EMULATED):
            log.debug("not emulated locally: %s", head)
        else:
            self.session.sql(statement).collect()
        return None

    # ---- running -----------------------------------------------------------------------------------
    def _execute_task(self, task: TaskDefinition, context: RunContext) -> str | None:
        assert self.dispatcher is not None
        set_run_context(context)
        try:
            if is_call_statement(task.body):
                return self.dispatcher.call(task.body)
            self.session.sql(task.body).collect()
            return None
        finally:
            set_run_context(None)

    def run_graph(
        self,
        on_event: Callable[[TaskRun], None] | None = None,
        root: str | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[str, list[TaskRun]]:
        """One run of a task graph, like EXECUTE TASK on its root: the hourly pipeline's, or `root`'s (the
        unqualified root task name, RECONCILE for the daily reconciliation). Setting `cancel` cancels the run
        as Snowflake cancels one: running tasks CANCELLED, the rest not started, the finalizer run."""
        assert self.graph is not None, "stack not started"
        graph = self.graph if root is None else self.graphs[root.upper()]
        runner = TaskGraphRunner(
            graph, self.session, self.database, self._execute_task, on_event=on_event, cancel=cancel
        )
        outcome = runner.run()
        self.clustering.maintain()  # between runs, as Snowflake's service reclusters in the background
        return outcome

    def call(self, statement: str) -> str:
        """CALL a procedure outside a graph run, as an analyst would."""
        assert self.dispatcher is not None
        return self.dispatcher.call(statement)


def start_frozen_stack(
    home: Path, env_overrides: dict[str, str] | None = None, history_hours: int = 12, **mock_overrides: Any
) -> LocalStack:
    """A started LocalStack in `home` whose mock clock is frozen half an hour after the data set's anchor
    (the top of the current hour): what the tests and the benchmarks run on."""
    anchor = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    mock = MockApiConfig(
        seed=7,
        anchor=anchor,
        clock_start=anchor + timedelta(minutes=30),
        follow_real_time=False,
        history_hours=history_hours,
        **mock_overrides,
    )
    return LocalStack(StackOptions(home=home, mock=mock, env_overrides=dict(env_overrides or {}))).start()
