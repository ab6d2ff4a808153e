"""Fetch the next page while the current one is being processed.

Ingest alternates network waits (fetching a page) with CPU work (normalising and compressing it). Running
the page iterator in one background thread overlaps the two; a bounded queue keeps at most `depth` pages
waiting, so memory stays at a few pages however long the extract. The worker runs in a copy of the caller's
context, so whatever the platform keeps per procedure call is the same in both threads.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_ITEM, _DONE, _ERROR = "item", "done", "error"
_POLL_S = 0.1


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield what `items` yields, in order, producing up to `depth` items ahead in a worker thread.

    An exception raised by `items` is re-raised here, at the point the consumer would have reached it.
    When the consumer stops early, the worker stops at its next hand-over.
    """
    if depth < 1:
        raise ValueError("depth must be >= 1")
    handoff: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(message, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((_ITEM, item)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put((_ERROR, exc))

    worker = threading.Thread(
        target=contextvars.copy_context().run, args=(produce,), name="page-prefetch", daemon=True
    )
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == _ITEM:
                yield value  # type: ignore[misc]
            elif kind == _DONE:
                return
            else:
                raise value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5)
