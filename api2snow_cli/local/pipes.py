"""Local Snowpipe: interprets the CREATE PIPE statements of sql/ and loads staged files from local S3.

fakesnow cannot parse CREATE PIPE or COPY with METADATA$ columns, so the local stack reads each pipe's
COPY statement itself: the target table and columns, the stage path, the PATTERN and the SELECT list.
On REFRESH it lists the stage path under the prefix, skips files in its load history (as Snowpipe does),
and runs the pipe's own SELECT list over the file's rows, with $1 and METADATA$ columns bound to them.
"""

from __future__ import annotations

import gzip
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
    LAST_LOAD_TIME TIMESTAMP_NTZ
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
            loaded = []
            for key in self._list(bucket, base + prefix):
                file_name = key[len(stage_root) :]  # METADATA$FILENAME is relative to the stage
                if file_name in done or (pipe.pattern and not re.fullmatch(pipe.pattern, file_name)):
                    continue
                rows = self._load_file(pipe, bucket, key, file_name)
                loaded.append({"file": file_name, "rows": rows})
        return {
            "pipe": pipe.name,
            "prefix": prefix,
            "files_loaded": len(loaded),
            "rows_loaded": sum(f["rows"] for f in loaded),
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
        columns = ", ".join(pipe.columns)
        select = pipe.select_over_landing()
        for start in range(0, len(lines), INSERT_CHUNK_ROWS):
            chunk = lines[start : start + INSERT_CHUNK_ROWS]
            values = ", ".join("(?, ?, ?)" for _ in chunk)
            params: list[Any] = []
            for offset, line in enumerate(chunk, start=start + 1):
                params += [line, file_name, offset]
            self.session.sql(
                f"INSERT INTO {pipe.table} ({columns}) SELECT {select} FROM ("
                f"SELECT PARSE_JSON(column1) AS payload, column2 AS file_name, column3 AS file_row_number, "
                f"CURRENT_TIMESTAMP() AS start_scan_time FROM VALUES {values}) AS landing",
                params=params,
            ).collect()
        self.session.sql(
            f"INSERT INTO {self.database}.OPS.LOCAL_PIPE_LOAD_HISTORY "
            "(pipe_name, file_name, row_count, status, last_load_time) "
            "SELECT ?, ?, ?, 'Loaded', CURRENT_TIMESTAMP()::TIMESTAMP_NTZ",
            params=[pipe.name, file_name, len(lines)],
        ).collect()
        return len(lines)
