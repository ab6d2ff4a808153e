"""The local warehouse: fakesnow in server mode, reached through a real Snowpark Session.

fakesnow keeps one DuckDB cursor per connection, and one Snowpark Session must serve the parallel tasks
of a graph run, so queries are serialised at the server (an ASGI wrapper with one lock). The database
file persists in the project's `.api2snow/warehouse` folder between runs.

The session runs in America/Los_Angeles, the TIMEZONE of a fresh Snowflake account, not in fakesnow's UTC:
an expression that depends on the session's time zone (`CURRENT_TIMESTAMP()::TIMESTAMP_NTZ` is wall time
there) is as wrong locally as in Snowflake, while CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP()) is UTC in
both. (SYSDATE() is UTC here too, except inside a MERGE, which fakesnow rewrites without it.)
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
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

# The TIMEZONE parameter of a new Snowflake account; every timestamp the pipeline stores is naive UTC, so a
# value computed in the session's time zone shows up locally as 7-8 hours off.
SESSION_TIME_ZONE = "America/Los_Angeles"


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


_shared_instances: dict[str, Any] = {}
_shared_lock = threading.Lock()
_databases: dict[str, str] = {}  # database folder -> the database a LocalWarehouse serves from it

# Snowflake writes each load (a pipe's file, a DML statement's new rows) into micro-partitions of its own, so
# an hour's rows are pruned apart from the history, and a table clustered by day keeps a day in a few
# partitions. DuckDB appends to the table's last row group instead (122,880 rows by default), so a read
# bounded to the newest rows, or to one day, would still scan up to that many rows of history. Row groups of
# 4,096 rows (two DuckDB vectors) keep the local warehouse's pruning close to Snowflake's at the sizes the
# tests and benchmarks use (an hour or a day of events is a few thousand rows there).
ROW_GROUP_SIZE = 4_096


def _share_instances_per_database_folder() -> None:
    """Make every login with the same FAKESNOW_DB_PATH share one fakesnow instance (one DuckDB).

    fakesnow's server builds a new instance per login, and DuckDB refuses to attach a file that another
    instance in the process holds: a second session (`api2snow sql` while `api2snow up` runs) would fail.
    """
    import fakesnow.server

    if getattr(fakesnow.server.FakeSnow, "_api2snow_shared", False):
        return
    original = fakesnow.server.FakeSnow

    def shared(*args: Any, db_path: Any = None, **kwargs: Any) -> Any:
        if db_path is None or args:
            return original(*args, db_path=db_path, **kwargs)
        with _shared_lock:
            key = str(db_path)
            if key not in _shared_instances:
                _shared_instances[key] = instance = original(db_path=db_path, **kwargs)
                if key in _databases:
                    _attach_with_small_row_groups(instance, Path(db_path), _databases[key])
            return _shared_instances[key]

    shared._api2snow_shared = True  # type: ignore[attr-defined]
    fakesnow.server.FakeSnow = shared


def _attach_with_small_row_groups(instance: Any, folder: Path, database: str) -> None:
    """Attach the database file as fakesnow does on the first login (fakesnow.conn), with ROW_GROUP_SIZE."""
    import fakesnow.info_schema as info_schema
    import fakesnow.macros as macros

    conn = instance.duck_conn
    conn.execute(f"ATTACH DATABASE '{folder / database}.db' AS {database} (ROW_GROUP_SIZE {ROW_GROUP_SIZE})")
    conn.execute(info_schema.per_db_creation_sql(database))
    conn.execute(macros.creation_sql(database))


def _faithful_time_zones() -> None:
    """Let fakesnow serve a session whose DuckDB time zone is not UTC, as Snowflake's does.

    - Results: fakesnow turns a TIMESTAMPTZ column into Snowflake's wire struct only when its Arrow time zone
      is UTC (DuckDB labels it with the session's); the instant is the same, so relabel it as UTC.
    - NULLs: fakesnow's timestamp struct has no validity mask, so NULL read back as 1970-01-01; now None.
    - Bindings: fakesnow reads a TIMESTAMP_NTZ binding (a naive datetime) as an aware UTC datetime, which
      DuckDB would then shift into the session's time zone; Snowflake keeps an NTZ value's wall time.
    """
    import fakesnow.arrow
    import fakesnow.server
    import pyarrow as pa

    if getattr(fakesnow.arrow.timestamp_to_sf_struct, "_api2snow", False):
        return
    to_struct = fakesnow.arrow.timestamp_to_sf_struct
    from_binding = fakesnow.server.from_binding

    def utc_labelled(ts: Any) -> Any:
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        if isinstance(ts.type, pa.TimestampType) and ts.type.tz and ts.type.tz != "UTC":
            ts = ts.cast(pa.timestamp(ts.type.unit, tz="UTC"))  # same instants, other label
        struct = to_struct(ts)
        if not ts.null_count:
            return struct
        # fakesnow's struct has no validity mask, so a NULL timestamp would reach the client as 1970-01-01
        return pa.StructArray.from_arrays(struct.flatten(), fields=list(struct.type), mask=ts.is_null())

    def wall_time_ntz(binding: dict[str, str]) -> Any:
        value = from_binding(binding)
        if binding["type"] == "TIMESTAMP_NTZ" and getattr(value, "tzinfo", None) is not None:
            return value.replace(tzinfo=None)  # the epoch of an NTZ binding is its wall time read as UTC
        return value

    utc_labelled._api2snow = True  # type: ignore[attr-defined]
    fakesnow.arrow.timestamp_to_sf_struct = utc_labelled
    fakesnow.server.from_binding = wall_time_ntz


def _merge_reads_only_matching_target_rows() -> None:
    """Let a MERGE read only the target rows it can match, as Snowflake's does.

    fakesnow computes a MERGE's candidates with `target FULL OUTER JOIN source`, which reads every target row
    even when the ON clause bounds the target (`tgt.id BETWEEN ...`); a Snowflake MERGE never acts on a target
    row without a source match (there is no WHEN NOT MATCHED BY SOURCE), so it prunes the target by such a
    predicate. A RIGHT JOIN keeps exactly the candidates the full join produced and lets DuckDB push the
    bound into the target's scan, so the local warehouse scans what Snowflake would.
    """
    import importlib

    from sqlglot import exp

    # the package re-exports its `merge` function under the submodule's name, so import the module itself
    merge = importlib.import_module("fakesnow.transforms.merge")

    if getattr(merge._create_merge_candidates, "_api2snow", False):
        return
    candidates = merge._create_merge_candidates

    def source_preserving(merge_expr: Any) -> Any:
        created = candidates(merge_expr)
        for join in created.find_all(exp.Join):
            if join.side.upper() == "FULL":
                join.set("side", "RIGHT")
        return created

    source_preserving._api2snow = True  # type: ignore[attr-defined]
    merge._create_merge_candidates = source_preserving


def duckdb_connection(warehouse: LocalWarehouse | None) -> Any:
    """The DuckDB connection behind a started warehouse, for what the local stack emulates beside SQL
    (Snowflake's background services); procedures and tests go through the Session."""
    if warehouse is None:
        raise RuntimeError("the local warehouse is not started")
    with _shared_lock:
        instance = _shared_instances.get(str(warehouse.db_path))
    if instance is None:
        raise RuntimeError(f"no local warehouse instance for {warehouse.db_path}")
    return instance.duck_conn


def _free_port(host: str) -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalWarehouse:
    """A running fakesnow server plus one Snowpark Session on it."""

    def __init__(
        self, db_path: Path, database: str, host: str = "127.0.0.1", time_zone: str = SESSION_TIME_ZONE
    ) -> None:
        self.db_path = db_path
        self.database = database
        self.host = host
        self.time_zone = ZoneInfo(time_zone).key  # refuses an unknown name before anything starts
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
        logging.getLogger("sqlglot").setLevel(logging.ERROR)  # "Unsupported property": CLUSTER BY, emulated
        self.db_path.mkdir(parents=True, exist_ok=True)
        _share_instances_per_database_folder()
        _databases[str(self.db_path)] = self.database.upper()
        _faithful_time_zones()
        _merge_reads_only_matching_target_rows()
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
        self._set_time_zone()
        return self

    def _set_time_zone(self) -> None:
        """The session's TIMEZONE: DuckDB's TimeZone setting, for every connection to this database (the
        loader's own included). Snowflake SQL has no way to set it here (ALTER SESSION is not emulated)."""
        duckdb_connection(self).execute(f"SET GLOBAL TimeZone = '{self.time_zone}'")

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
        """Close the shared DuckDB of this folder so a later warehouse in this process can open it again
        (DuckDB refuses to attach one file twice in a process; closing checkpoints it to disk)."""
        import fakesnow.server

        for token, conn in list(fakesnow.server.sessions.items()):
            if getattr(conn, "db_path", None) == self.db_path:
                fakesnow.server.sessions.pop(token, None)
        with _shared_lock:
            instance = _shared_instances.pop(str(self.db_path), None)
        if instance is not None:
            with contextlib.suppress(Exception):
                instance.duck_conn.close()

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
