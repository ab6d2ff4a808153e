"""Local Snowpipe: interprets the CREATE PIPE statements of sql/ and loads staged files from local S3.

fakesnow cannot parse CREATE PIPE or COPY with METADATA$ columns, so the local stack reads each pipe's
COPY statement itself: the target table and columns, the stage path, the PATTERN and the SELECT list.
On REFRESH it lists the stage path under the prefix, skips files in its load history (as Snowpipe does),
and runs the pipe's own SELECT list over the file's rows, with $1 and METADATA$ columns bound to them.
An AUTO_INGEST pipe also loads a file when its queue says S3 created it (`load_notified`, fed by
auto_ingest.py), and `copy_files` is a bulk COPY of named files through a pipe's SELECT (the recovery of
files older than REFRESH's 7-day window), with its own load history as a table's COPY has.

A file's rows and its load-history row commit together, as Snowpipe's do: a kill or an error between the
two leaves neither, and the next REFRESH loads the file once. The transaction runs on a connection of the
loader's own (Snowpipe is not the user's session either): fakesnow gives each login one DuckDB
connection, and the stack's one Session is shared by the graph's parallel tasks, so a BEGIN there would
take their statements into this transaction (rolled back with it) and make their own BEGIN fail.
Rows that reached RAW without a history row (a crash under an older loader, which wrote them apart) are
recorded as loaded, by file name, at a pipe's first refresh, so they are not loaded twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from api2snow.sqltime import UTC_NOW

LOAD_HISTORY_DDL = """CREATE TABLE IF NOT EXISTS {database}.OPS.LOCAL_PIPE_LOAD_HISTORY (
    PIPE_NAME STRING NOT NULL,
    FILE_NAME STRING NOT NULL,
    ROW_COUNT NUMBER,
    STATUS STRING,
    FIRST_ERROR_MESSAGE STRING,
    LAST_LOAD_TIME TIMESTAMP_NTZ
)"""
# Lines of the file being loaded; the load into RAW is then one INSERT ... SELECT: a file loads whole or not.
LANDING_DDL = """CREATE TABLE IF NOT EXISTS {database}.OPS.LOCAL_PIPE_LANDING (
    LINE STRING,
    FILE_NAME STRING,
    FILE_ROW_NUMBER NUMBER
)"""
INSERT_CHUNK_ROWS = 400
# ALTER PIPE ... REFRESH queues only files staged in the last 7 days (Snowflake's alter-pipe page).
REFRESH_WINDOW_SECONDS = 7 * 86_400


def copy_history_name(table: str) -> str:
    """Where the local load history keeps a bulk COPY's loads: the table's own load metadata."""
    return f"COPY INTO {table.upper()}"


_PIPE = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?PIPE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w.$\"]+).*?\bAS\s+"
    r"COPY\s+INTO\s+(?P<table>[\w.$\"]+)\s*\((?P<columns>[^)]*)\)\s*FROM\s*\(\s*SELECT\s+(?P<select>.*?)"
    r"\s+FROM\s+@(?P<stage>[\w.$\"]+)(?P<path>/[^\s)]*)?\s*\)(?P<options>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_AUTO_INGEST = re.compile(r"\bAUTO_INGEST\s*=\s*TRUE\b", re.IGNORECASE)
_PATTERN = re.compile(r"PATTERN\s*=\s*'((?:[^']|'')*)'", re.IGNORECASE)
_METADATA = {
    r"\$1\b": "landing.payload",
    r"(?i)metadata\$filename\b": "landing.file_name",
    r"(?i)metadata\$file_row_number\b": "landing.file_row_number",
    r"(?i)metadata\$start_scan_time\b": "landing.start_scan_time",
}


class PipeError(RuntimeError):
    """A pipe statement the local loader cannot interpret, or a failed local load."""


class FileLoadError(PipeError):
    """The file itself does not load (unreadable, invalid JSON, refused by the pipe's SELECT): recorded
    as `Load failed` like Snowpipe records it, and not retried. Other errors fail the REFRESH instead."""

    @classmethod
    def of(cls, exc: Exception) -> FileLoadError:
        return exc if isinstance(exc, FileLoadError) else cls(f"{type(exc).__name__}: {exc}"[:1000])


@dataclass(frozen=True)
class PipeDefinition:
    name: str
    table: str
    columns: tuple[str, ...]
    select_sql: str
    stage: str
    path: str
    pattern: str | None
    auto_ingest: bool = False

    @classmethod
    def parse(cls, statement: str) -> PipeDefinition:
        match = _PIPE.match(statement.strip())
        if not match:
            raise PipeError(f"cannot interpret pipe statement: {statement[:120]!r}")
        pattern = _PATTERN.search(match.group("options"))
        return cls(
            name=match.group("name").upper(),
            table=match.group("table").upper(),
            columns=tuple(c.strip().upper() for c in match.group("columns").split(",") if c.strip()),
            select_sql=match.group("select").strip(),
            stage=match.group("stage").upper(),
            path=(match.group("path") or "/").lstrip("/"),
            pattern=pattern.group(1).replace("''", "'") if pattern else None,
            auto_ingest=bool(_AUTO_INGEST.search(statement[: match.start("table")])),
        )

    @property
    def file_name_column(self) -> str | None:
        """The target column that receives METADATA$FILENAME, by which a file's rows are found."""
        for column, item in zip(self.columns, _select_items(self.select_sql), strict=False):
            if re.fullmatch(r"(?i)metadata\$filename", item):
                return column
        return None

    def covers(self, file_name: str) -> bool:
        """Whether a stage-relative file name is one this pipe loads (its path and PATTERN)."""
        return file_name.startswith(self.path) and (
            not self.pattern or re.fullmatch(self.pattern, file_name) is not None
        )

    def select_over_landing(self) -> str:
        """The pipe's SELECT list with $1 and METADATA$ columns bound to the landing rows."""
        select = self.select_sql
        for pattern, replacement in _METADATA.items():
            select = re.sub(pattern, replacement, select)
        return select


def _select_items(select_sql: str) -> list[str]:
    """The SELECT list split at its top-level commas (not inside parentheses or quotes)."""
    items: list[str] = []
    depth, quoted, start = 0, False, 0
    for at, char in enumerate(select_sql):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and char == ",":
            items.append(select_sql[start:at].strip())
            start = at + 1
    return [*items, select_sql[start:].strip()]


def is_pipe_statement(statement: str) -> bool:
    return bool(re.match(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?PIPE\b", statement, re.IGNORECASE))


class LocalPipeLoader:
    """Pipes by name, and REFRESH that loads new files from the local S3 into the warehouse.

    `connection_parameters` open the loader's own connection (its loads are transactions); the shared
    `session` serves the rest: DDL, stage lookups and the load-error reads of WAIT_FOR_LOAD.
    """

    def __init__(self, session: Any, s3: Any, database: str, connection_parameters: dict[str, Any]) -> None:
        self.session = session
        self.s3 = s3
        self.database = database
        self.pipes: dict[str, PipeDefinition] = {}
        self._stages: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._connection_parameters = connection_parameters
        self._connection: Any = None
        self._checked_pipes: set[str] = set()
        self.refresh_window_seconds = REFRESH_WINDOW_SECONDS

    def register(self, statement: str) -> PipeDefinition:
        """CREATE PIPE IF NOT EXISTS semantics: an existing pipe keeps its definition and history."""
        pipe = PipeDefinition.parse(statement)
        self.pipes.setdefault(pipe.name, pipe)
        if pipe.stage not in self._stages:  # resolved once, while sql/ is applied (stages come first)
            self._stages[pipe.stage] = self._stage_location(pipe.stage)
        return self.pipes[pipe.name]

    def auto_ingest_pipes(self) -> list[tuple[PipeDefinition, str, str]]:
        """The AUTO_INGEST pipes with the bucket and key prefix of their stage."""
        return [(p, *self._stages[p.stage]) for p in self.pipes.values() if p.auto_ingest]

    def ensure_history_table(self) -> None:
        self.session.sql(LOAD_HISTORY_DDL.format(database=self.database)).collect()
        self.session.sql(  # homes created before the column existed
            f"ALTER TABLE {self.database}.OPS.LOCAL_PIPE_LOAD_HISTORY "
            "ADD COLUMN IF NOT EXISTS FIRST_ERROR_MESSAGE STRING"
        ).collect()
        self.session.sql(LANDING_DDL.format(database=self.database)).collect()

    def close(self) -> None:
        """Log the loader's connection out; call before the warehouse stops."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def load_errors(self, table: str, file_names: list[str]) -> dict[str, str]:
        """Files among `file_names` whose load into `table` failed, with the error (like COPY_HISTORY)."""
        pipes = [p.name for p in self.pipes.values() if p.table == table.upper()]
        pipes.append(copy_history_name(table.upper()))  # COPY_HISTORY holds bulk COPY loads too
        if not pipes or not file_names:
            return {}
        rows = self.session.sql(
            f"SELECT file_name, first_error_message FROM {self.database}.OPS.LOCAL_PIPE_LOAD_HISTORY "
            f"WHERE status = 'Load failed' AND pipe_name IN ({', '.join('?' for _ in pipes)})",
            params=pipes,
        ).collect()
        wanted = set(file_names)
        return {r["FILE_NAME"]: r["FIRST_ERROR_MESSAGE"] for r in rows if r["FILE_NAME"] in wanted}

    def _stage_location(self, stage: str) -> tuple[str, str]:
        database, schema, name = stage.split(".")
        rows = self.session.sql(f"SHOW STAGES IN SCHEMA {database}.{schema}").collect()
        for row in rows:
            if row["name"].upper() == name:
                url = urlparse(row["url"])
                return url.netloc, url.path.lstrip("/")
        raise PipeError(f"stage {stage} does not exist")

    # ---- the loader's own connection --------------------------------------------------------------
    def _run(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        if self._connection is None:
            import snowflake.connector

            self._connection = snowflake.connector.connect(**self._connection_parameters, paramstyle="qmark")
        with contextlib.closing(self._connection.cursor()) as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT; ROLLBACK on any error. A connection whose transaction state is unknown (its
        ROLLBACK or COMMIT failed) is closed, so the next load starts on a fresh one."""
        self._run("BEGIN")
        try:
            yield
        except BaseException:
            try:
                self._run("ROLLBACK")
            except Exception:
                self.close()
            raise
        try:
            self._run("COMMIT")
        except Exception:
            self.close()
            raise

    # ---- REFRESH ----------------------------------------------------------------------------------
    def _loaded_files(self, pipe: PipeDefinition) -> set[str]:
        rows = self._run(
            f"SELECT file_name FROM {self.database}.OPS.LOCAL_PIPE_LOAD_HISTORY WHERE pipe_name = ?",
            [pipe.name],
        )
        return {row[0] for row in rows}

    def _record_unrecorded_loads(self, pipe: PipeDefinition) -> None:
        """Files whose rows are in the pipe's table without a history row count as loaded: record them.
        Only a loader from before loads were transactions leaves that, so once per pipe is enough."""
        column = pipe.file_name_column
        if pipe.name in self._checked_pipes or column is None:
            return
        rows = self._run(
            f"SELECT {column}, COUNT(*) FROM {pipe.table} WHERE {column} IS NOT NULL AND {column} NOT IN "
            f"(SELECT file_name FROM {self.database}.OPS.LOCAL_PIPE_LOAD_HISTORY WHERE pipe_name = ?) "
            f"GROUP BY {column}",
            [pipe.name],
        )
        for file_name, count in rows:
            if pipe.covers(file_name):
                self._record(pipe, file_name, int(count), "Loaded", None)
        self._checked_pipes.add(pipe.name)

    def _pipe(self, pipe_name: str) -> PipeDefinition:
        pipe = self.pipes.get(pipe_name.upper())
        if pipe is None:
            raise PipeError(f"pipe {pipe_name} does not exist (no CREATE PIPE for it in sql/)")
        return pipe

    def _load_or_note(self, pipe: PipeDefinition, bucket: str, key: str, file_name: str) -> int | None:
        """Load one file; a file that does not load is recorded `Load failed` (as Snowpipe records it) and
        gives None. Other errors propagate, and the file stays unrecorded for a later attempt."""
        try:
            return self._load_file(pipe, bucket, key, file_name)
        except FileLoadError as exc:
            self._record(pipe, file_name, 0, "Load failed", str(exc))
            return None

    def refresh(self, pipe_name: str, prefix: str = "") -> dict[str, Any]:
        """ALTER PIPE ... REFRESH PREFIX = prefix: load every matching file staged within the refresh window
        (7 days, like Snowpipe's) and not loaded before."""
        pipe = self._pipe(pipe_name)
        with self._lock:  # one load at a time per loader, as Snowpipe serialises a pipe's loads
            bucket, stage_root = self._stages[pipe.stage]
            self._record_unrecorded_loads(pipe)
            done = self._loaded_files(pipe)
            oldest = datetime.now(UTC) - timedelta(seconds=self.refresh_window_seconds)
            loaded: list[dict[str, Any]] = []
            failed: list[str] = []
            for key, modified in self._list(bucket, stage_root + pipe.path + prefix):
                file_name = key[len(stage_root) :]  # METADATA$FILENAME is relative to the stage
                if file_name in done or not pipe.covers(file_name) or modified < oldest:
                    continue
                rows = self._load_or_note(pipe, bucket, key, file_name)
                if rows is None:
                    failed.append(file_name)
                else:
                    loaded.append({"file": file_name, "rows": rows})
        return {
            "pipe": pipe.name,
            "prefix": prefix,
            "files_loaded": len(loaded),
            "rows_loaded": sum(f["rows"] for f in loaded),
            "files_failed": failed,
        }

    def load_notified(self, bucket: str, key: str) -> int:
        """An S3 ObjectCreated event from the pipes' queue: load the object into each AUTO_INGEST pipe
        whose path and PATTERN cover it, unless that pipe loaded it before. Returns the pipes it loaded."""
        loaded = 0
        with self._lock:
            for pipe in [p for p in self.pipes.values() if p.auto_ingest]:
                pipe_bucket, stage_root = self._stages[pipe.stage]
                file_name = key[len(stage_root) :]
                if pipe_bucket != bucket or not key.startswith(stage_root) or not pipe.covers(file_name):
                    continue
                self._record_unrecorded_loads(pipe)
                if file_name not in self._loaded_files(pipe):
                    loaded += self._load_or_note(pipe, bucket, key, file_name) is not None
        return loaded

    def unloaded_files(self, pipe: PipeDefinition, since: datetime) -> list[str]:
        """Keys of the files `pipe` covers, created after `since`, that it has not loaded (nor failed)."""
        with self._lock:
            bucket, stage_root = self._stages[pipe.stage]
            self._record_unrecorded_loads(pipe)
            done = self._loaded_files(pipe)
            return [
                key
                for key, modified in self._list(bucket, stage_root + pipe.path)
                if modified >= since
                and key[len(stage_root) :] not in done
                and pipe.covers(key[len(stage_root) :])
            ]

    def copy_files(self, pipe_name: str, file_names: list[str]) -> dict[str, Any]:
        """COPY INTO the pipe's table through the pipe's SELECT, FILES = exactly `file_names` (relative to
        the stage). Like a bulk COPY it skips only files in the table's own COPY load metadata, which does
        not include the pipe's loads: the caller must know the files are not in the table."""
        pipe = self._pipe(pipe_name)
        bulk = dataclasses.replace(pipe, name=copy_history_name(pipe.table))
        with self._lock:
            bucket, stage_root = self._stages[pipe.stage]
            done = self._loaded_files(bulk)
            loaded: list[str] = []
            failed: list[str] = []
            for file_name in file_names:
                if file_name in done:
                    continue
                rows = self._load_or_note(bulk, bucket, stage_root + file_name, file_name)
                (failed if rows is None else loaded).append(file_name)
        return {"pipe": pipe.name, "files_loaded": len(loaded), "files_failed": failed}

    def _list(self, bucket: str, prefix: str) -> list[tuple[str, datetime]]:
        """(key, LastModified) of the objects under `prefix`, in key order."""
        found: list[tuple[str, datetime]] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [(obj["Key"], obj["LastModified"]) for obj in page.get("Contents", [])]
        return sorted(found)

    def _load_file(self, pipe: PipeDefinition, bucket: str, key: str, file_name: str) -> int:
        """The file's rows into the pipe's table and its history row, in one transaction."""
        lines = self._read_lines(bucket, key, file_name)
        with self._transaction():
            try:
                self._insert_rows(pipe, lines, file_name)
            except Exception as exc:
                raise FileLoadError.of(exc) from exc
            self._record(pipe, file_name, len(lines), "Loaded", None)
        return len(lines)

    def _read_lines(self, bucket: str, key: str, file_name: str) -> list[str]:
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            text = gzip.decompress(body).decode("utf-8") if key.endswith(".gz") else body.decode("utf-8")
        except Exception as exc:
            raise FileLoadError.of(exc) from exc
        lines = [line for line in text.splitlines() if line.strip()]
        for number, line in enumerate(lines, start=1):  # checked here: fakesnow answers a bad line with HTTP
            try:  # 500, which the connector retries for about 40 s before giving up
                json.loads(line)
            except ValueError as exc:
                raise FileLoadError.of(PipeError(f"{file_name} line {number}: invalid JSON: {exc}")) from None
        return lines

    def _insert_rows(self, pipe: PipeDefinition, lines: list[str], file_name: str) -> None:
        """Land the lines, then one INSERT ... SELECT of the pipe's SELECT list over them.

        METADATA$START_SCAN_TIME is TIMESTAMP_LTZ in Snowflake, an instant: CURRENT_TIMESTAMP() here too."""
        landing = f"{self.database}.OPS.LOCAL_PIPE_LANDING"
        self._run(f"DELETE FROM {landing}")
        for start in range(0, len(lines), INSERT_CHUNK_ROWS):
            chunk = lines[start : start + INSERT_CHUNK_ROWS]
            params: list[Any] = []
            for offset, line in enumerate(chunk, start=start + 1):
                params += [line, file_name, offset]
            values = ", ".join("(?, ?, ?)" for _ in chunk)
            self._run(f"INSERT INTO {landing} VALUES {values}", params)
        self._run(
            f"INSERT INTO {pipe.table} ({', '.join(pipe.columns)}) SELECT {pipe.select_over_landing()} FROM ("
            "SELECT PARSE_JSON(line) AS payload, file_name, file_row_number, "
            f"CURRENT_TIMESTAMP() AS start_scan_time FROM {landing}) AS landing"
        )

    def _record(
        self, pipe: PipeDefinition, file_name: str, rows: int, status: str, error: str | None
    ) -> None:
        self._run(
            f"INSERT INTO {self.database}.OPS.LOCAL_PIPE_LOAD_HISTORY "
            "(pipe_name, file_name, row_count, status, first_error_message, last_load_time) "
            f"SELECT ?, ?, ?, ?, ?, {UTC_NOW}",
            [pipe.name, file_name, rows, status, error],
        )
