"""The local warehouse: fakesnow in server mode, reached through a real Snowpark Session.

fakesnow keeps one DuckDB cursor per connection, and one Snowpark Session must serve the parallel tasks
of a graph run, so queries are serialised at the server (an ASGI wrapper with one lock). The database
file persists in the project's `.api2snow/warehouse` folder between runs.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class SerializedQueries:
    """ASGI middleware: one query at a time, because concurrent queries on one DuckDB cursor fail."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock: asyncio.Lock | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/queries/v1/query-request"):
            await self.app(scope, receive, send)
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self.app(scope, receive, send)


def _free_port(host: str) -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalWarehouse:
    """A running fakesnow server plus one Snowpark Session on it."""

    def __init__(self, db_path: Path, database: str, host: str = "127.0.0.1") -> None:
        self.db_path = db_path
        self.database = database
        self.host = host
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.session: Any = None

    def start(self) -> LocalWarehouse:
        import fakesnow.server
        import uvicorn
        from snowflake.snowpark import Session

        for name in ("fakesnow", "fakesnow.server", "uvicorn", "uvicorn.error"):
            logging.getLogger(name).setLevel(logging.WARNING)  # fakesnow logs every login and failed query
        self.db_path.mkdir(parents=True, exist_ok=True)
        self.port = _free_port(self.host)
        config = uvicorn.Config(
            SerializedQueries(fakesnow.server.app),
            host=self.host,
            port=self.port,
            log_level="error",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fakesnow", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the local warehouse (fakesnow) did not start on {self.host}:{self.port}")
            time.sleep(0.05)
        self.session = Session.builder.configs(self.connection_parameters()).create()
        return self

    def connection_parameters(self) -> dict[str, Any]:
        return {
            "user": "fake",
            "password": "snow",
            "account": "fakesnow",
            "host": self.host,
            "port": self.port,
            "protocol": "http",
            "database": self.database,
            "schema": "OPS",
            "network_timeout": 30,
            "session_parameters": {
                "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
                "FAKESNOW_DB_PATH": str(self.db_path),
                # one cursor per thread: sibling tasks share this session and must not read each other's rows
                "PYTHON_SNOWPARK_ENABLE_THREAD_SAFE_SESSION": True,
            },
        }

    def sql(self, statement: str, params: list[Any] | None = None) -> list[Any]:
        return self.session.sql(statement, params=params).collect()

    def _release_database_file(self) -> None:
        """Detach the DuckDB file so a later warehouse in this process can attach it again.

        fakesnow keeps a closed session's DuckDB instance alive until garbage collection, and DuckDB
        refuses to attach one file twice in a process; detaching explicitly makes stop() final.
        """
        import fakesnow.server

        for token, conn in list(fakesnow.server.sessions.items()):
            if getattr(conn, "db_path", None) != self.db_path:
                continue
            with contextlib.suppress(Exception):
                conn._duck_conn.execute("USE memory")
                conn._duck_conn.execute(f"DETACH DATABASE IF EXISTS {self.database}")
            fakesnow.server.sessions.pop(token, None)

    def stop(self) -> None:
        if self.session is not None:
            # Close the connector's connection directly: Snowpark's close() first runs
            # SYSTEM$CANCEL_ALL_QUERIES, which fakesnow lacks. The server then releases the database file.
            atexit.unregister(self.session._close_at_exit)  # it would call the stopped server at exit
            with contextlib.suppress(Exception):
                self.session.connection.close()
            self.session = None
        self._release_database_file()
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._server = None
