"""Ctrl-C and SIGTERM for the commands that run the local stack.

During a graph run a signal cancels the run the way Snowflake cancels one (the runner marks the running tasks
CANCELLED and still runs the finalizer), so TASK_HISTORY never keeps a run EXECUTING that nobody executes.
Outside a graph run (starting the stack, `up` between runs) it stops the command at once (KeyboardInterrupt),
and a second signal during a cancellation does too.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from .console import err_console

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """A graph run was cancelled by a signal; the message says which run and how to resume."""

    def __init__(self, message: str, signal_name: str, status: Any = None) -> None:
        super().__init__(message)
        self.exit_code = 128 + signal.Signals[signal_name].value
        self.status = status  # the cancelled run (history.GraphRunStatus), for --format json


class Interrupts:
    """`with Interrupts() as interrupts:` installs the handlers; `with interrupts.graph_run():` around a run
    makes a signal cancel it (`interrupts.cancel` is the event to give the runner)."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.signal_name: str | None = None
        self._in_run = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        for number in HANDLED:
            if signal.getsignal(number) is signal.SIG_IGN:
                continue  # ignored on purpose (a background job of a shell): stays so, as in Python
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)

    @contextmanager
    def graph_run(self) -> Iterator[threading.Event]:
        self.cancel.clear()
        self._in_run = True
        try:
            yield self.cancel
        finally:
            self._in_run = False

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(number).name
        if self._in_run and not self.cancel.is_set():
            self.cancel.set()
            err_console.print(
                f"{self.signal_name}: cancelling the graph run (running tasks CANCELLED, then the "
                "finalizer); send it again to stop at once",
                highlight=False,
            )
            return
        raise KeyboardInterrupt(self.signal_name)
