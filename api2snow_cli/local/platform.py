"""The local implementation of the platform seam (api2snow.platform.Platform).

Secrets are the objects external_access/ creates, with the local stack's own values (local/secrets.py), found
by the secret object names that snowflake.yml gives each procedure; a procedure reading a secret it did not
declare, reading one in a way its type does not allow, or reading one from any thread but the one that
started the CALL (Snowflake: "Secrets can only be accessed from the main thread"), fails here just as it
would in Snowflake. An OAUTH2 secret's token is fetched once per procedure call and refreshed before it
expires, as Snowflake does; a forced refresh (after the API answered 401) discards it and fetches a new one.
Pipe refresh goes to the local pipe loader; task return values, the run id and the graph config come from
the local task runner. Notifications go through the notification integrations of external_access/
(local/notifications.py), over real HTTP on loopback.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from api2snow.platform import LATEST_ATTEMPT, AwsCredentials, PlatformError, manual_run_id, task_runs

from .egress import platform_side
from .notifications import LocalNotifications
from .pipes import LocalPipeLoader
from .procedures import CallContext, call_statement, current_call
from .secrets import LocalSecrets
from .tasks import RunContext

_run_context = threading.local()
MAIN_THREAD_ONLY = "Secrets can only be accessed from the main thread"  # Snowflake's own message


def set_run_context(context: RunContext | None) -> None:
    _run_context.value = context


def run_context() -> RunContext | None:
    return getattr(_run_context, "value", None)


class LocalPlatform:
    def __init__(
        self,
        secrets: LocalSecrets,
        loader: LocalPipeLoader,
        database: str,
        notifications: LocalNotifications | None = None,
    ) -> None:
        self.secrets = secrets
        self.loader = loader
        self.database = database
        self.notifications = notifications or LocalNotifications([], secrets, None)

    def _secret_object(self, key: str) -> tuple[CallContext, str]:
        """The call and the secret object behind `key`, refusing what Snowflake refuses."""
        call = current_call()
        if call is None:
            raise PlatformError(f"secret {key!r} read outside a procedure call")
        if threading.current_thread() is not call.main_thread:
            raise PlatformError(MAIN_THREAD_ONLY)
        object_name = call.procedure.secrets.get(key)
        if object_name is None:
            raise PlatformError(
                f"procedure {call.procedure.name} does not declare secret {key!r} in snowflake.yml"
            )
        return call, object_name

    def secret_string(self, key: str) -> str:
        return self.secrets.secret_string(self._secret_object(key)[1])

    def username_password(self, key: str) -> tuple[str, str]:
        return self.secrets.username_password(self._secret_object(key)[1])

    def oauth_access_token(self, key: str, force_refresh: bool = False) -> str:
        """The call's cached token; `force_refresh` discards it and asks the token endpoint for a new one."""
        call, object_name = self._secret_object(key)
        if force_refresh:
            call.token_sources.pop(object_name, None)
        source = call.token_sources.get(object_name)
        if source is None:
            source = call.token_sources[object_name] = self.secrets.oauth_client(object_name)
        with platform_side():  # Snowflake runs this exchange, outside the procedure's network rules
            return source.token()

    def aws_credentials(self, key: str) -> AwsCredentials:
        return self.secrets.aws_credentials(self._secret_object(key)[1])

    def refresh_pipe(self, session: Any, pipe: str, prefix: str) -> dict[str, Any]:
        with platform_side():  # Snowpipe reads the stage, not the procedure
            return self.loader.refresh(pipe, prefix)

    def copy_files(self, session: Any, pipe: str, file_names: list[str]) -> dict[str, Any]:
        with platform_side():  # the warehouse reads the stage, not the procedure
            return self.loader.copy_files(pipe, file_names)

    def load_errors(self, session: Any, table: str, file_names: list[str]) -> dict[str, str]:
        with platform_side():
            return self.loader.load_errors(table, file_names)

    def set_return_value(self, session: Any, value: str) -> None:
        call = current_call()
        if call is not None and run_context() is not None:
            call.return_value = value[:10000]

    def run_id(self, session: Any) -> str:
        context = run_context()
        return context.run_id if context else manual_run_id()

    def graph_config(self, session: Any) -> dict[str, Any]:
        context = run_context()
        return dict(context.config) if context else {}

    def graph_run_tasks(self, session: Any, run_id: str) -> list[dict[str, Any]]:
        context = run_context()
        rows = session.sql(
            f"SELECT name, state, error_message, attempt_number FROM {self.database}.OPS.TASK_HISTORY "
            # the day TASK_HISTORY() is asked for in Snowflake (SnowflakePlatform.graph_run_tasks)
            "WHERE scheduled_time >= DATEADD('day', -1, CURRENT_TIMESTAMP()) "
            f"AND graph_run_group_id = ? AND name <> ? {LATEST_ATTEMPT}",
            params=[run_id, context.task if context else ""],
        ).collect()
        return task_runs(rows)

    def run_history_query(self, database: str, run_id: str) -> str:
        return (
            f"SELECT name, state, attempt_number, error_message FROM {database}.OPS.TASK_HISTORY "
            f"WHERE graph_run_group_id = '{run_id}' ORDER BY query_start_time"
        )

    def send_notification(
        self,
        session: Any,
        integration: str,
        message: str,
        subject: str = "",
        recipients: tuple[str, ...] = (),
    ) -> None:
        self.notifications.send(integration, message, subject, recipients)

    def call_procedure(self, session: Any, procedure: str, args: list[Any]) -> Any:
        """A CALL from inside a procedure, dispatched like any CALL (its own secrets and network rules)."""
        call = current_call()
        if call is None or call.dispatcher is None:
            raise PlatformError(f"CALL {procedure} outside a procedure call")
        return json.loads(call.dispatcher.call(call_statement(procedure, args)))
