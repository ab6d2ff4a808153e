"""Running the `api2snow` console script as a user would, for the CLI tests: a subprocess, its own home."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from api2snow.sources import SOURCES

CLI = Path(sys.executable).parent / "api2snow"
TASKS = 8 + 2 * len(SOURCES)  # INGEST_ and REFRESH_PIPE_ per source


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "API2SNOW_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("API2SNOW_DEBUG", None)
    return env


def api2snow(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, env=_env(home), timeout=300, input=stdin
    )


def start(home: Path, *args: str) -> subprocess.Popen:
    """The command in the background, with Ctrl-C's default meaning even if this process ignores SIGINT (as
    a shell's background job does), so a test can interrupt it."""
    return subprocess.Popen(
        [str(CLI), *args],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def read_until(process: subprocess.Popen, text: str, timeout_s: float = 120) -> str:
    """The process's stdout up to the first line containing `text`."""
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    process.kill()
    raise AssertionError(f"{text!r} never came; stdout: {''.join(seen)} stderr: {process.stderr.read()}")


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """stderr is one `error:` line and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0, text
    return moment
