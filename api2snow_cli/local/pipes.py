"""Local Snowpipe: interprets the CREATE PIPE statements of sql/ and loads staged files from local S3.

fakesnow cannot parse CREATE PIPE or COPY with METADATA$ columns, so the local stack reads each pipe's
COPY statement itself: the target table and columns, the stage path, the PATTERN and the SELECT list.
On REFRESH it lists the stage path under the prefix, skips files in its load history (as Snowpipe does),
and runs the pipe's own SELECT list over the file's rows, with $1 and METADATA$ columns bound to them.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

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

_PIPE = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?PIPE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w.$\"]+).*?\bAS\s+"
    r"COPY\s+INTO\s+(?P<table>[\w.$\"]+)\s*\((?P<columns>[^)]*)\)\s*FROM\s*\(\s*SELECT\s+(?P<select>.*?)"
    r"\s+FROM\s+@(?P<stage>[\w.$\"]+)(?P<path>/[^\s)]*)?\s*\)(?P<options>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_PATTERN = re.compile(r"PATTERN\s*=\s*'((?:[^']|'')*)'", re.IGNORECASE)
_METADATA = {
    r"\$1\b": "landing.payload",
    r"(?i)metadata\$filename\b": "landing.file_name",
    r"(?i)metadata\$file_row_number\b": "landing.file_row_number",
    r"(?i)metadata\$start_scan_time\b": "landing.start_scan_time",
}


class PipeError(RuntimeError):
    """A pipe statement the local loader cannot interpret, or a failed local load."""


@dataclass(frozen=True)
class PipeDefinition:
    name: str
    table: str
    columns: tuple[str, ...]
    select_sql: str
    stage: str
    path: str
    pattern: str | None

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
        )

    def select_over_landing(self) -> str:
        """The pipe's SELECT list with $1 and METADATA$ columns bound to the landing rows."""
        select = self.select_sql
        for pattern, replacement in _METADATA.items():
            select = re.sub(pattern, replacement, select)
        return select


def is_pipe_statement(statement: str) -> bool:
    return bool(re.match(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?PIPE\b", statement, re.IGNORECASE))


class LocalPipeLoader:
    """Pipes by name, and REFRESH that loads new files from the local S3 through the warehouse session."""

    def __init__(self, session: Any, s3: Any, database: str) -> None:
        self.session = session
        self.s3 = s3
        self.database = database
        self.pipes: dict[str, PipeDefinition] = {}
        self._stages: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def register(self, statement: str) -> PipeDefinition:
        """CREATE PIPE IF NOT EXISTS semantics: an existing pipe keeps its definition and history."""
        pipe = PipeDefinition.parse(statement)
        self.pipes.setdefault(pipe.name, pipe)
        if pipe.stage not in self._stages:  # resolved once, while sql/ is applied (stages come first)
            self._stages[pipe.stage] = self._stage_location(pipe.stage)
        return self.pipes[pipe.name]

    def ensure_history_table(self) -> None:
        self.session.sql(LOAD_HISTORY_DDL.format(database=self.database)).collect()
        self.session.sql(  # homes created before the column existed
            f"ALTER TABLE {self.database}.OPS.LOCAL_PIPE_LOAD_HISTORY "
            "ADD COLUMN IF NOT EXISTS FIRST_ERROR_MESSAGE STRING"
        ).collect()
        self.session.sql(LANDING_DDL.format(database=self.database)).collect()

    def load_errors(self, table: str, file_names: list[str]) -> dict[str, str]:
        """Files among `file_names` whose load into `table` failed, with the error (like COPY_HISTORY)."""
        pipes = [p.name for p in self.pipes.values() if p.table == table.upper()]
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

    def _loaded_files(self, pipe: PipeDefinition) -> set[str]:
        rows = self.session.sql(
            f"SELECT file_name FROM {self.database}.OPS.LOCAL_PIPE_LOAD_HISTORY WHERE pipe_name = ?",
            params=[pipe.name],
        ).collect()
        return {row["FILE_NAME"] for row in rows}

    def refresh(self, pipe_name: str, prefix: str = "") -> dict[str, Any]:
        """ALTER PIPE ... REFRESH PREFIX = prefix: load every matching file not loaded before."""
        pipe = self.pipes.get(pipe_name.upper())
        if pipe is None:
            raise PipeError(f"pipe {pipe_name} does not exist (no CREATE PIPE for it in sql/)")
        with self._lock:  # one refresh at a time per loader, as Snowpipe serialises a pipe's loads
            bucket, stage_root = self._stages[pipe.stage]
            base = stage_root + pipe.path
            done = self._loaded_files(pipe)
            loaded: list[dict[str, Any]] = []
            failed: list[str] = []
            for key in self._list(bucket, base + prefix):
                file_name = key[len(stage_root) :]  # METADATA$FILENAME is relative to the stage
                if file_name in done or (pipe.pattern and not re.fullmatch(pipe.pattern, file_name)):
                    continue
                try:
                    rows = self._load_file(pipe, bucket, key, file_name)
                except Exception as exc:  # like Snowpipe: the file is marked failed, the refresh goes on
                    self._record(pipe, file_name, 0, "Load failed", f"{type(exc).__name__}: {exc}"[:1000])
                    failed.append(file_name)
                    continue
                loaded.append({"file": file_name, "rows": rows})
        return {
            "pipe": pipe.name,
            "prefix": prefix,
            "files_loaded": len(loaded),
            "rows_loaded": sum(f["rows"] for f in loaded),
            "files_failed": failed,
        }

    def _list(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        return sorted(keys)

    def _load_file(self, pipe: PipeDefinition, bucket: str, key: str, file_name: str) -> int:
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        text = gzip.decompress(body).decode("utf-8") if key.endswith(".gz") else body.decode("utf-8")
        lines = [line for line in text.splitlines() if line.strip()]
        for number, line in enumerate(lines, start=1):  # checked here: fakesnow answers a bad line with HTTP
            try:  # 500, which the connector retries for about 40 s before giving up
                json.loads(line)
            except ValueError as exc:
                raise PipeError(f"{file_name} line {number}: invalid JSON: {exc}") from None
        landing = f"{self.database}.OPS.LOCAL_PIPE_LANDING"
        self.session.sql(f"DELETE FROM {landing}").collect()
        for start in range(0, len(lines), INSERT_CHUNK_ROWS):
            chunk = lines[start : start + INSERT_CHUNK_ROWS]
            params: list[Any] = []
            for offset, line in enumerate(chunk, start=start + 1):
                params += [line, file_name, offset]
            values = ", ".join("(?, ?, ?)" for _ in chunk)
            self.session.sql(f"INSERT INTO {landing} VALUES {values}", params=params).collect()
        self.session.sql(
            f"INSERT INTO {pipe.table} ({', '.join(pipe.columns)}) SELECT {pipe.select_over_landing()} FROM ("
            "SELECT PARSE_JSON(line) AS payload, file_name, file_row_number, "
            f"CURRENT_TIMESTAMP() AS start_scan_time FROM {landing}) AS landing"
        ).collect()
        self._record(pipe, file_name, len(lines), "Loaded", None)
        return len(lines)

    def _record(
        self, pipe: PipeDefinition, file_name: str, rows: int, status: str, error: str | None
    ) -> None:
        self.session.sql(
            f"INSERT INTO {self.database}.OPS.LOCAL_PIPE_LOAD_HISTORY "
            "(pipe_name, file_name, row_count, status, first_error_message, last_load_time) "
            "SELECT ?, ?, ?, ?, ?, CURRENT_TIMESTAMP()::TIMESTAMP_NTZ",
            params=[pipe.name, file_name, rows, status, error],
        ).collect()
