"""The one seam between procedure code and Snowflake-only features.

Secrets, pipe refresh, task return values and the task-graph context exist only inside Snowflake.
Procedure code reaches them through `get_platform()`: inside Snowflake that is
`SnowflakePlatform` (SQL and `_snowflake`); the local stack installs its own implementation with
`set_platform` before it calls a handler. Nothing else in the package knows where it runs.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from . import redaction
from .http.prefetch import on_consumer_thread

MANUAL_RUN_PREFIX = "manual-"


def manual_run_id() -> str:
    """A fresh run id for a CALL made outside a graph run; `is_graph_run` tells the two kinds apart."""
    return f"{MANUAL_RUN_PREFIX}{uuid.uuid4()}"


def is_graph_run(run_id: str) -> bool:
    """Whether `run_id` is a graph run group's id rather than a manual CALL's."""
    return not run_id.startswith(MANUAL_RUN_PREFIX)


# Each task's latest attempt among TASK_HISTORY rows of one graph run group (a retry is attempt + 1).
LATEST_ATTEMPT = "QUALIFY ROW_NUMBER() OVER (PARTITION BY name ORDER BY attempt_number DESC) = 1"


def task_runs(rows: list[Any]) -> list[dict[str, Any]]:
    """TASK_HISTORY rows in the shape `graph_run_tasks` returns."""
    keys = ("NAME", "STATE", "ERROR_MESSAGE", "ATTEMPT_NUMBER")
    return [{key: row[key] for key in keys} for row in rows]


_COPY_FROM_PATH = re.compile(r"\bFROM\s*\(?.*?\bFROM\s+@[\w.$\"]+(/[^\s)']*)?", re.IGNORECASE | re.DOTALL)
_PATTERN_OPTION = re.compile(r"\bPATTERN\s*=\s*'(?:[^']|'')*'", re.IGNORECASE)


def bulk_copy_statement(pipe_definition: str, file_names: list[str]) -> str:
    """A pipe's COPY statement limited to `file_names` (stage-relative), for a bulk COPY of exactly them."""
    match = _COPY_FROM_PATH.search(pipe_definition)
    if match is None:
        raise PlatformError(f"cannot find the stage path in the pipe definition: {pipe_definition[:120]!r}")
    root = (match.group(1) or "/").lstrip("/")
    outside = [f for f in file_names if not f.startswith(root)]
    if outside:
        raise PlatformError(f"{outside[0]} is not under the pipe's path {root!r}")
    files = ", ".join("'" + f[len(root) :].replace("'", "''") + "'" for f in file_names)
    definition = pipe_definition.strip().rstrip(";")
    end_of_from = definition.index(")", match.end()) + 1  # FILES goes where the syntax puts it: after FROM
    head, options = definition[:end_of_from], _PATTERN_OPTION.sub("", definition[end_of_from:]).strip()
    return f"{head} FILES = ({files}) {options} ON_ERROR = SKIP_FILE LOAD_UNCERTAIN_FILES = TRUE"


class PlatformError(RuntimeError):
    """A Snowflake-only feature failed or is unavailable where the code runs."""


class TokenRefreshError(PlatformError):
    """A forced OAuth token refresh could not produce a token other than the one the API refused."""


@dataclass(frozen=True)
class AwsCredentials:
    """What boto3 needs; session_token is set for temporary (STS) credentials."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return f"AwsCredentials(access_key_id={self.access_key_id[:4]}..., secret=***)"


class Platform(Protocol):
    """Snowflake-only features, as the procedures need them."""

    def secret_string(self, key: str) -> str:
        """A GENERIC_STRING secret, by the key the procedure's SECRETS clause gives it."""

    def username_password(self, key: str) -> tuple[str, str]:
        """A PASSWORD secret as (username, password)."""

    def oauth_access_token(self, key: str, force_refresh: bool = False) -> str:
        """A bearer token from an OAUTH2 secret, obtained and refreshed by Snowflake.

        `force_refresh`: the API refused the token last returned (HTTP 401); return a different one or
        raise, never the refused token again.
        """

    def aws_credentials(self, key: str) -> AwsCredentials:
        """Credentials for boto3 from a CLOUD_PROVIDER_TOKEN (or PASSWORD) secret."""

    def refresh_pipe(self, session: Any, pipe: str, prefix: str) -> dict[str, Any]:
        """Queue the files under `prefix` (relative to the pipe's stage path) for loading."""

    def copy_files(self, session: Any, pipe: str, file_names: list[str]) -> dict[str, Any]:
        """COPY exactly `file_names` (relative to the stage) into the pipe's table through the pipe's own
        SELECT: the recovery of files older than REFRESH's window. The caller checked they are not loaded."""

    def load_errors(self, session: Any, table: str, file_names: list[str]) -> dict[str, str]:
        """Of `file_names` (relative to the stage), those whose load into `table` failed: file -> error."""

    def set_return_value(self, session: Any, value: str) -> None:
        """Show `value` as the current task's return value; a no-op outside a task."""

    def run_id(self, session: Any) -> str:
        """The current graph run group's id (shared by its auto-retries), or `manual_run_id()` outside one."""

    def graph_config(self, session: Any) -> dict[str, Any]:
        """The root task's CONFIG, or {} outside a task graph."""

    def graph_run_tasks(self, session: Any, run_id: str) -> list[dict[str, Any]]:
        """The latest attempt of every other task of graph run group `run_id` so far (the calling task
        is left out): dicts with NAME, STATE, ERROR_MESSAGE, ATTEMPT_NUMBER."""

    def run_history_query(self, database: str, run_id: str) -> str:
        """A query a person can run to see every task run of graph run group `run_id` (for an alert)."""

    def send_notification(
        self,
        session: Any,
        integration: str,
        message: str,
        subject: str = "",
        recipients: tuple[str, ...] = (),
    ) -> None:
        """Send `message` through notification integration `integration` (SYSTEM$SEND_SNOWFLAKE_NOTIFICATION):
        a WEBHOOK one puts it where its body template says SNOWFLAKE_WEBHOOK_MESSAGE; an EMAIL one mails it
        with `subject` to `recipients`. Raises when Snowflake refuses or fails the send."""

    def call_procedure(self, session: Any, procedure: str, args: list[Any]) -> Any:
        """CALL another procedure of the pipeline (`<db>.OPS.BACKFILL_API_A`) with `args`; its VARIANT result
        as a Python value. It runs with its own secrets and integrations, not the caller's."""


class SnowflakePlatform:
    """The platform inside a Snowflake stored procedure."""

    def secret_string(self, key: str) -> str:
        import _snowflake  # only importable inside Snowflake

        return _snowflake.get_generic_secret_string(key)

    def username_password(self, key: str) -> tuple[str, str]:
        import _snowflake

        creds = _snowflake.get_username_password(key)
        return creds.username, creds.password

    def __init__(self) -> None:
        self._issued_tokens: dict[str, str] = {}  # secret key -> the token last handed out (this call)

    def oauth_access_token(self, key: str, force_refresh: bool = False) -> str:
        """Snowflake documents no forced refresh: ask again, and refuse to hand back the refused token."""
        import _snowflake

        token = _snowflake.get_oauth_access_token(key)
        if force_refresh and token == self._issued_tokens.get(key):
            raise TokenRefreshError(
                f"OAuth secret {key!r}: the API refused the access token (HTTP 401) and Snowflake returned "
                "the same token again; check the API_AUTHENTICATION integration (client, scopes, token "
                "endpoint) and whether the API revoked the token"
            )
        self._issued_tokens[key] = token
        return token

    def aws_credentials(self, key: str) -> AwsCredentials:
        import _snowflake

        try:
            token = _snowflake.get_cloud_provider_token(key)
            return AwsCredentials(token.access_key_id, token.secret_access_key, token.token)
        except Exception:  # a PASSWORD secret holding an access key pair is the documented alternative
            creds = _snowflake.get_username_password(key)
            return AwsCredentials(creds.username, creds.password)

    def refresh_pipe(self, session: Any, pipe: str, prefix: str) -> dict[str, Any]:
        quoted = prefix.replace("'", "''")
        rows = session.sql(f"ALTER PIPE {pipe} REFRESH PREFIX = '{quoted}'").collect()
        return {"pipe": pipe, "prefix": prefix, "files_queued": len(rows)}

    def copy_files(self, session: Any, pipe: str, file_names: list[str]) -> dict[str, Any]:
        """The pipe's definition (SHOW PIPES) run as a bulk COPY with FILES = (...): PATTERN is dropped,
        FILES are relative to the COPY's FROM path, ON_ERROR = SKIP_FILE as Snowpipe's default. The
        table's own load metadata still refuses a file COPY loaded before; LOAD_UNCERTAIN_FILES lets a
        file older than its 64 days load, which the caller allows only for files absent from the table."""
        database, schema, name = pipe.split(".")
        rows = session.sql(f"SHOW PIPES LIKE '{name}' IN SCHEMA {database}.{schema}").collect()
        if not rows:
            raise PlatformError(f"pipe {pipe} does not exist")
        statement = bulk_copy_statement(str(rows[0].as_dict()["definition"]), file_names)
        loaded = session.sql(statement).collect()
        return {"pipe": pipe, "files_loaded": len(loaded), "files_failed": []}

    def load_errors(self, session: Any, table: str, file_names: list[str]) -> dict[str, str]:
        """COPY_HISTORY's failed files among `file_names`. START_TIME is an instant (TIMESTAMP_LTZ, so
        CURRENT_TIMESTAMP is right here) kept strictly inside the function's 14-day window. STAGE_LOCATION
        is read when COPY_HISTORY gives it (`SELECT *`), to tell the stage's path prefix."""
        database = table.split(".")[0]
        rows = session.sql(
            f"SELECT * FROM TABLE({database}.INFORMATION_SCHEMA.COPY_HISTORY("
            "TABLE_NAME => ?, START_TIME => DATEADD('day', -13, CURRENT_TIMESTAMP()))) "
            "WHERE status IN ('Load failed', 'Partially loaded')",
            params=[table],
        ).collect()
        failures = []
        for row in rows:
            values = row.as_dict()
            error = values.get("FIRST_ERROR_MESSAGE") or "load failed"
            failures.append((values["FILE_NAME"], values.get("STAGE_LOCATION"), error))
        return match_load_errors(file_names, failures)

    def _current_task(self, session: Any) -> str | None:
        return session.sql("SELECT SYSTEM$CURRENT_USER_TASK_NAME() AS name").collect()[0]["NAME"]

    def set_return_value(self, session: Any, value: str) -> None:
        if self._current_task(session):
            session.sql("CALL SYSTEM$SET_RETURN_VALUE(?)", params=[value[:10000]]).collect()

    def run_id(self, session: Any) -> str:
        if self._current_task(session):
            row = session.sql(
                "SELECT SYSTEM$TASK_RUNTIME_INFO('CURRENT_TASK_GRAPH_RUN_GROUP_ID') AS run_id"
            ).collect()[0]
            if row["RUN_ID"]:
                return str(row["RUN_ID"])
        return manual_run_id()

    def graph_config(self, session: Any) -> dict[str, Any]:
        if not self._current_task(session):
            return {}
        row = session.sql("SELECT SYSTEM$GET_TASK_GRAPH_CONFIG() AS config").collect()[0]
        return json.loads(row["CONFIG"]) if row["CONFIG"] else {}

    def graph_run_tasks(self, session: Any, run_id: str) -> list[dict[str, Any]]:
        """TASK_HISTORY() has a row per task per run of the group (and returns 100 rows unless RESULT_LIMIT
        says more); SYSTEM$CURRENT_USER_TASK_NAME() is qualified, TASK_HISTORY's NAME is not."""
        rows = session.sql(
            "SELECT name, state, error_message, attempt_number FROM TABLE(INFORMATION_SCHEMA.TASK_HISTORY("
            "SCHEDULED_TIME_RANGE_START => DATEADD('day', -1, CURRENT_TIMESTAMP()), RESULT_LIMIT => 10000)) "
            "WHERE graph_run_group_id = ? "
            "AND name <> SPLIT_PART(COALESCE(SYSTEM$CURRENT_USER_TASK_NAME(), ''), '.', -1) "
            f"{LATEST_ATTEMPT}",
            params=[run_id],
        ).collect()
        return task_runs(rows)

    def run_history_query(self, database: str, run_id: str) -> str:
        return (
            "SELECT name, state, attempt_number, error_message FROM TABLE("
            f"{database}.INFORMATION_SCHEMA.TASK_HISTORY(RESULT_LIMIT => 10000)) "
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
        """The documented forms: TEXT_PLAIN(SANITIZE_WEBHOOK_CONTENT(..)) with INTEGRATION(..) for a webhook
        (SANITIZE_WEBHOOK_CONTENT keeps a placeholder in the message from pulling in the webhook secret), and
        TEXT_PLAIN with EMAIL_INTEGRATION_CONFIG(integration, subject, ARRAY of recipients) for email."""
        if recipients:
            session.sql(
                "CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION(SNOWFLAKE.NOTIFICATION.TEXT_PLAIN(?), "
                "SNOWFLAKE.NOTIFICATION.EMAIL_INTEGRATION_CONFIG(?, ?, SPLIT(?, ',')))",
                params=[message, integration, subject[:256], ",".join(recipients)],
            ).collect()
            return
        session.sql(
            "CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION(SNOWFLAKE.NOTIFICATION.TEXT_PLAIN("
            "SNOWFLAKE.NOTIFICATION.SANITIZE_WEBHOOK_CONTENT(?)), SNOWFLAKE.NOTIFICATION.INTEGRATION(?))",
            params=[message, integration],
        ).collect()

    def call_procedure(self, session: Any, procedure: str, args: list[Any]) -> Any:
        """Session.call runs `CALL <procedure>(?, ...)`; a VARIANT comes back as its JSON text."""
        result = session.call(procedure, *args)
        return json.loads(result) if isinstance(result, str) else result


def _without_bucket(path: str) -> tuple[str, bool]:
    """`s3://bucket/a/b` -> (`a/b`, True): the key relative to the bucket; any other path as it is."""
    scheme, sep, rest = path.partition("://")
    if sep and scheme and "/" not in scheme:
        return rest.partition("/")[2], True
    return path.lstrip("/"), False


def copy_history_paths(file_name: str, stage_location: str | None) -> set[str]:
    """The names a COPY_HISTORY FILE_NAME may match: the key relative to the bucket and the path relative
    to the stage. FILE_NAME is a full URL (`s3://bucket/prefix/key`) or a path relative to the stage;
    STAGE_LOCATION (`s3://bucket/prefix/`) gives the stage's path prefix that separates the two."""
    prefix, stage_is_url = _without_bucket(stage_location or "")
    prefix = prefix if stage_is_url else ""  # an internal stage's name, not a path
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    path, is_url = _without_bucket(file_name)
    if is_url:  # relative to the bucket
        return {path, path[len(prefix) :]} if prefix and path.startswith(prefix) else {path}
    return {path, prefix + path}  # relative to the stage


def match_load_errors(file_names: list[str], failures: list[tuple[str, str | None, str]]) -> dict[str, str]:
    """Of `file_names` (keys relative to the bucket, or paths relative to the stage), those that a failure
    (FILE_NAME, STAGE_LOCATION, error) of COPY_HISTORY names, whichever way it spells the path."""
    wanted = {name.lstrip("/"): name for name in file_names}
    found: dict[str, str] = {}
    for file_name, stage_location, error in failures:
        for path in copy_history_paths(file_name, stage_location):
            if path in wanted:
                found.setdefault(wanted[path], error)
    return found


_installed: Platform | None = None


def set_platform(platform: Platform | None) -> None:
    """Install the platform the handlers use (the local stack does this; None restores Snowflake's)."""
    global _installed
    _installed = platform


def get_platform() -> Platform:
    """The installed platform (or Snowflake's), wrapped so every secret is read on the handler's main thread
    and registered for redaction (redaction.py): the one place where both happen."""
    return SecretRegisteringPlatform(_installed if _installed is not None else SnowflakePlatform())


class SecretRegisteringPlatform:
    """Delegates to a platform; each secret reader registers the values it returns with `redaction`.

    Snowflake lets only the handler's main thread read secrets ("Secrets can only be accessed from the main
    thread"), and a 401 makes the page-prefetch worker ask for a fresh token; so every read goes through
    `on_consumer_thread`, which runs it on the main thread when it is asked for from the worker.
    """

    def __init__(self, inner: Platform) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def secret_string(self, key: str) -> str:
        value = on_consumer_thread(self.inner.secret_string, key)
        redaction.register(value)
        return value

    def username_password(self, key: str) -> tuple[str, str]:
        user, password = on_consumer_thread(self.inner.username_password, key)
        redaction.register_login(user, password)
        return user, password

    def oauth_access_token(self, key: str, force_refresh: bool = False) -> str:
        token = on_consumer_thread(self.inner.oauth_access_token, key, force_refresh=force_refresh)
        redaction.register_token(token)
        return token

    def aws_credentials(self, key: str) -> AwsCredentials:
        creds = on_consumer_thread(self.inner.aws_credentials, key)
        redaction.register(creds.secret_access_key, creds.session_token)
        return creds
