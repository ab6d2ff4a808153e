"""One process owns the local warehouse at a time: a lock file in the home folder, held with flock.

DuckDB lets one process open the warehouse file, so two commands that start the local stack cannot share it.
The command that starts the stack holds `warehouse.lock` (pid, command line, start time inside) for as long as
it runs; the kernel drops the lock when the process ends, however it ends, so a lock is never stale. Once the
stack serves, the holder publishes its connection in `stack.json`, and read-only commands (`status`, `sql`)
connect to it instead of opening the file themselves.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOCK_FILE = "warehouse.lock"
STACK_FILE = "stack.json"
RUNNING_FILE = "running_tasks.json"
EXIT_LOCKED = 2


class WarehouseBusy(RuntimeError):
    """Another process owns the local warehouse; the message names it (pid and command)."""

    exit_code = EXIT_LOCKED


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    started_at: str
    role: str = "writer"

    def describe(self) -> str:
        return f"pid {self.pid} (`{self.command}`, since {self.started_at})"


def command_line() -> str:
    """This process's command as the user typed it, with the console script's name only."""
    args = [Path(sys.argv[0]).name, *sys.argv[1:]]
    return shlex.join(args)


class WarehouseLock:
    """`acquire()` or fail with WarehouseBusy; `release()` (or the process's end) frees it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / LOCK_FILE
        self._fd: int | None = None

    def try_acquire(self, role: str = "writer") -> bool:
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        info = {"pid": os.getpid(), "command": command_line(), "started_at": _now(), "role": role}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return True

    def acquire(self, what: str, reader_wait_s: float = 60.0) -> WarehouseLock:
        """Take the lock for a command that starts the stack. A read-only command holds it only for a
        query or two, so that is waited for; another writer is refused at once."""
        deadline = time.monotonic() + reader_wait_s
        while not self.try_acquire():
            found = holder(self.home)
            writer = found is not None and found.role != "reader"
            if writer or time.monotonic() > deadline:
                raise WarehouseBusy(busy_message(self.home, what))
            time.sleep(0.2)
        return self

    def release(self) -> None:
        if self._fd is not None:
            (self.home / STACK_FILE).unlink(missing_ok=True)
            (self.home / RUNNING_FILE).unlink(missing_ok=True)
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def publish(self, connection: dict[str, Any]) -> None:
        """Tell read-only commands where the running stack's warehouse serves."""
        info = {"pid": os.getpid(), "command": command_line(), "connection": connection}
        tmp = self.home / (STACK_FILE + ".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(self.home / STACK_FILE)

    def __enter__(self) -> WarehouseLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def publish_running_tasks(home: Path, started: dict[str, datetime]) -> None:
    """The tasks the holder's graph run is executing now, with their start (TASK_HISTORY has a task's row
    only once it ends), for `status` from another process."""
    tmp = home / (RUNNING_FILE + ".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "tasks": {k: v.isoformat() for k, v in started.items()}}))
    tmp.replace(home / RUNNING_FILE)


def running_tasks(home: Path) -> dict[str, datetime]:
    """What publish_running_tasks last wrote, if its process still runs the stack."""
    stack = running_stack(home)
    try:
        info = json.loads((home / RUNNING_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if stack is None or info.get("pid") != stack.get("pid"):
        return {}
    return {name: datetime.fromisoformat(moment) for name, moment in info.get("tasks", {}).items()}


def holder(home: Path) -> Holder | None:
    """Who holds the lock (as it wrote itself down), if anyone."""
    try:
        info = json.loads((home / LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return None
    if "pid" not in info or not _alive(info["pid"]):
        return None
    return Holder(
        int(info["pid"]),
        str(info.get("command", "?")),
        str(info.get("started_at", "?")),
        str(info.get("role", "writer")),
    )


def busy_message(home: Path, what: str) -> str:
    found = holder(home)
    who = found.describe() if found is not None else "another process"
    return (
        f"the local warehouse in {home} is in use by {who}: one process owns it at a time; "
        f"wait for it to finish (or stop it: Ctrl-C in its terminal, "
        f"kill -INT {found.pid if found else 'PID'}) "
        f"before `{what}`"
    )


def running_stack(home: Path) -> dict[str, Any] | None:
    """The connection a running stack published, if its process still holds the lock (a file left by a
    killed process is stale: its pid may even belong to another process by now)."""
    path = home / STACK_FILE
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    found = holder(home)
    if found is None or found.pid != info.get("pid") or not _locked(home):
        path.unlink(missing_ok=True)
        return None
    return info


def _locked(home: Path) -> bool:
    """Whether some process holds the lock (this one included, through another descriptor)."""
    try:
        fd = os.open(home / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken just now
    return False


def wait_for_stack_or_lock(
    home: Path, what: str, timeout_s: float = 30.0
) -> tuple[dict | None, WarehouseLock]:
    """For a read-only command: the running stack's connection, or the lock to open the warehouse itself.

    While the holder is still starting its stack (locked, nothing published yet) this waits up to `timeout_s`.
    Returns (stack info, an unheld lock) or (None, the held lock).
    """
    lock = WarehouseLock(home)
    deadline = time.monotonic() + timeout_s
    while True:
        stack = running_stack(home)
        if stack is not None:
            return stack, lock
        if lock.try_acquire(role="reader"):
            return None, lock
        if time.monotonic() > deadline:
            raise WarehouseBusy(busy_message(home, what) + " (it has not started serving yet)")
        time.sleep(0.2)


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
