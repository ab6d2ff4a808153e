"""`api2snow sql -q "CALL OPS.PIPELINE_STATUS()"`: a CALL runs the procedure on the local stack.

fakesnow has no procedures, so a CALL cannot go to the warehouse like other SQL. It goes to the local
ProcedureDispatcher, which runs the handler snowflake.yml names with the stack's platform (secrets, network
rules, pipes), as the task runner does for a task's CALL:

- while a process runs the stack (`api2snow up`, `run`, `demo`), the CALL runs in that process: the stack
  serves CALLs on loopback (`CallServer`, its URL in `calls.json` beside `stack.json`), so the procedure
  shares that stack's warehouse, S3, Snowpipe consumer and mock APIs, and runs beside its graph like an
  analyst's CALL beside the hourly graph in Snowflake;
- otherwise this process starts the stack under the warehouse lock (as `run` does), runs the CALL, stops it.

A table procedure's rows come back with its declared columns; a scalar procedure's value in one column
named after it (as `snow sql` shows a CALL).
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .procedures import CallResult, ProcedureCallError, is_call_statement

CALLS_FILE = "calls.json"
CALL_PATH = "/call"
CALL_TIMEOUT_S = 3_600.0  # a BACKFILL waits for its load (at most backfill_load_timeout_seconds, 1 h)

__all__ = ["CallServer", "ProcedureCallError", "is_call_statement", "run_call"]


class CallRow:
    """One result row with the `as_dict()` the CLI's printers read (like a Snowpark Row)."""

    def __init__(self, columns: list[str], values: tuple[Any, ...]) -> None:
        self._pairs = dict(zip(columns, values, strict=True))

    def as_dict(self) -> dict[str, Any]:
        return dict(self._pairs)


def as_rows(result: CallResult) -> list[CallRow]:
    return [CallRow(result.columns, row) for row in result.rows]


def run_call(statement: str, home: Path, what: str) -> list[CallRow]:
    """Run one CALL on the local stack: the running one's (through its CallServer), or one started here."""
    from ..lock import WarehouseLock, running_stack

    running = running_stack(home)
    if running is not None:
        return as_rows(call_running_stack(home, running, statement))
    lock = WarehouseLock(home).acquire(what)
    try:
        from .stack import LocalStack, StackOptions

        stack = LocalStack(StackOptions(home=home)).start()
        try:
            return as_rows(stack.dispatcher.execute(statement))
        finally:
            stack.stop()
    finally:
        lock.release()


def call_running_stack(home: Path, running: dict[str, Any], statement: str) -> CallResult:
    """POST the CALL to the running stack's CallServer; its error comes back as ProcedureCallError."""
    try:
        served = json.loads((home / CALLS_FILE).read_text())
    except (OSError, ValueError):
        served = {}
    if served.get("pid") != running.get("pid") or "url" not in served:
        raise ProcedureCallError(
            f"the running local stack (pid {running.get('pid')}) does not serve CALL statements; "
            "restart it with this version of api2snow"
        )
    request = urllib.request.Request(
        served["url"],
        data=json.dumps({"statement": statement}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as response:  # noqa: S310 - loopback
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        answer = json.loads(exc.read() or b"{}")
        raise ProcedureCallError(answer.get("error") or f"the local stack answered HTTP {exc.code}") from None
    except OSError as exc:
        raise ProcedureCallError(f"cannot reach the running local stack at {served['url']}: {exc}") from None
    return CallResult(answer["columns"], [tuple(row) for row in answer["rows"]], answer.get("value"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


class CallServer:
    """Runs CALLs for other processes on the stack that this process started: POST /call {"statement"}
    -> {"columns", "rows", "value"}, or 400 {"error"} with the procedure's one-line error. Loopback only."""

    def __init__(self, execute: Callable[[str], CallResult], home: Path) -> None:
        self.execute = execute
        self.home = home
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                if self.path != CALL_PATH:
                    self._answer(404, {"error": f"no such path {self.path}"})
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    statement = json.loads(self.rfile.read(length))["statement"]
                    if not is_call_statement(statement):
                        raise ProcedureCallError(f"not a CALL statement: {statement[:80]!r}")
                    result = server.execute(statement)
                except Exception as exc:  # noqa: BLE001 - the caller's error, as one line
                    self._answer(400, {"error": " ".join(str(exc).split()) or type(exc).__name__})
                    return
                self._answer(200, {"columns": result.columns, "rows": result.rows, "value": result.value})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, default=_jsonable).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # quiet: the CLI prints what matters
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="api2snow-calls", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{CALL_PATH}"

    def start(self) -> CallServer:
        self._thread.start()
        tmp = self.home / (CALLS_FILE + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "url": self.url}))
        tmp.replace(self.home / CALLS_FILE)
        return self

    def stop(self) -> None:
        (self.home / CALLS_FILE).unlink(missing_ok=True)
        self._server.shutdown()
        self._server.server_close()
