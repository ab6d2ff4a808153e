"""`api2snow dashboard`: the Streamlit in Snowflake app of streamlit/, on localhost over the local stack.

The app is the one `api2snow deploy` puts in Snowflake; here `streamlit run` serves it in a child process and
tells it where the local warehouse is (streamlit/dashboard_session.py reads the two variables). The warehouse
is the running `api2snow up` stack's when there is one (so the page follows its runs), else this command
opens the local warehouse itself, under the lock, for as long as it serves.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .project import PROJECT_ROOT

APP = PROJECT_ROOT / "streamlit" / "streamlit_app.py"
HOST = "127.0.0.1"
DEFAULT_PORT = 8501
CONNECTION_ENV = "API2SNOW_DASHBOARD_CONNECTION"  # the names streamlit/dashboard_session.py reads
TASK_HISTORY_ENV = "API2SNOW_DASHBOARD_TASK_HISTORY"
LOG_FILE = "logs/dashboard.log"
START_TIMEOUT_S = 60.0


class DashboardError(RuntimeError):
    """The dashboard could not be served (port taken, Streamlit failed to start); exit code 2 for a port."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def url(port: int) -> str:
    return f"http://{HOST}:{port}"


def check_port(port: int) -> None:
    """Refuse a port another program listens on, before starting anything."""
    with contextlib.closing(socket.socket()) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Streamlit binds: a listener fails it
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise DashboardError(
                f"port {port} on {HOST} is in use ({exc.strerror}): choose another with --port", 2
            ) from None


@contextmanager
def local_warehouse(home: Path, database: str, what: str) -> Iterator[dict[str, Any]]:
    """Connection parameters of the local warehouse: the running stack's, or one opened here, locked."""
    from .local.warehouse import LocalWarehouse
    from .lock import wait_for_stack_or_lock

    running, lock = wait_for_stack_or_lock(home, what)
    if running is not None:
        yield running["connection"]
        return
    try:
        warehouse = LocalWarehouse(home / "warehouse", database).start()
        try:
            yield warehouse.connection_parameters()
        finally:
            warehouse.stop()
    finally:
        lock.release()


def streamlit_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        HOST,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--logger.level",
        "error",
        "--client.toolbarMode",
        "viewer",
    ]


def app_environment(connection: dict[str, Any], database: str, environ: dict[str, str]) -> dict[str, str]:
    """The child's environment: where the local warehouse serves and where its task runs are recorded."""
    from .local.tasks import TASK_HISTORY_DDL

    history = re.search(r"CREATE TABLE IF NOT EXISTS (\S+)", TASK_HISTORY_DDL.format(database=database))
    assert history is not None, "TASK_HISTORY_DDL names its table"
    return {**environ, CONNECTION_ENV: json.dumps(connection), TASK_HISTORY_ENV: history.group(1)}


def wait_until_serving(
    process: subprocess.Popen, port: int, log: Path, timeout_s: float = START_TIMEOUT_S
) -> None:
    """Until Streamlit's health endpoint answers; a child that exits first is an error quoting its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
            raise DashboardError(
                f"streamlit exited with code {process.returncode} before serving"
                + (f": {' / '.join(tail)}" if tail else "")
                + f" (log: {log})"
            )
        try:
            with urllib.request.urlopen(f"{url(port)}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise DashboardError(f"streamlit did not answer on {url(port)} within {timeout_s:.0f} s (log: {log})")


def stop(process: subprocess.Popen) -> None:
    """Ask Streamlit to stop (SIGTERM), then make sure it did."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(
    home: Path, database: str, port: int, what: str, echo: Callable[[str], None], environ: dict[str, str]
) -> None:
    """Serve the dashboard until Ctrl-C (or SIGTERM), which stops Streamlit and the warehouse it opened."""
    from .interrupts import Interrupts

    check_port(port)
    log = home / LOG_FILE
    log.parent.mkdir(parents=True, exist_ok=True)
    with Interrupts(), local_warehouse(home, database, what) as connection, log.open("ab") as output:
        process = subprocess.Popen(
            streamlit_command(port),
            env=app_environment(connection, database, environ),
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches this process only, which stops the child in order
        )
        try:
            wait_until_serving(process, port, log)
            echo(f"dashboard: {url(port)} (database {database}); Ctrl-C stops it")
            process.wait()
            raise DashboardError(f"streamlit stopped by itself with code {process.returncode} (log: {log})")
        except KeyboardInterrupt:
            echo("stopping the dashboard")
        finally:
            stop(process)
