"""Which warehouse the dashboard reads: the session of Streamlit in Snowflake, or the local stack's.

`api2snow dashboard` serves this same app on localhost and says where the local warehouse is through two
environment variables; without them the app is in Snowflake and takes the session Snowflake gives it. The one
difference, where task runs are recorded, is named by the local launcher, not decided here.
"""

from __future__ import annotations

import json
import os
from typing import Any

from dashboard_queries import DashboardError, Target

CONNECTION_ENV = "API2SNOW_DASHBOARD_CONNECTION"  # JSON connection parameters of the local warehouse
TASK_HISTORY_ENV = "API2SNOW_DASHBOARD_TASK_HISTORY"  # the local stack's TASK_HISTORY table


def local_connection() -> str | None:
    """The local warehouse's connection parameters (JSON text) when served by `api2snow dashboard`."""
    return os.environ.get(CONNECTION_ENV) or None


def open_local(connection_json: str) -> tuple[Any, Target]:
    """A Snowpark session on the local warehouse, and where the pipeline's objects are there."""
    from snowflake.snowpark import Session

    try:
        parameters = json.loads(connection_json)
        database = parameters["database"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DashboardError(f"{CONNECTION_ENV} is not a JSON object with a database: {exc}") from None
    history = os.environ.get(TASK_HISTORY_ENV) or f"{database}.OPS.TASK_HISTORY"
    return Session.builder.configs(parameters).create(), Target.local(database, history)


def open_snowflake() -> tuple[Any, Target]:
    """The session of the app in Streamlit in Snowflake; its current database is the app's."""
    from snowflake.snowpark.context import get_active_session

    try:
        session = get_active_session()
    except Exception as exc:  # SnowparkSessionException: not inside Snowflake and not served locally
        raise DashboardError(
            "no Snowflake session: deploy the app with `api2snow deploy`, or serve it on the local stack "
            f"with `api2snow dashboard` ({exc})"
        ) from None
    database = session.get_current_database()
    if not database:
        raise DashboardError("the app's session has no current database")
    return session, Target.snowflake(database)
