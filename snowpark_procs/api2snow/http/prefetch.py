"""Fetch the next page while the current one is being processed.

Ingest alternates network waits (fetching a page) with CPU work (normalising and compressing it). Running
the page iterator in one background thread overlaps the two; a bounded queue keeps at most `depth` pages
waiting, so memory stays at a few pages however long the extract. The worker runs in a copy of the caller's
context, so whatever the platform keeps per procedure call is the same in both threads.

Some work may not run in the worker: Snowflake lets only the handler's main thread read secrets, and a 401
makes the worker ask for a fresh token. `on_consumer_thread` hands such a call to the consumer, which is
waiting on the hand-over queue anyway and runs it between two pages.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
_ITEM, _DONE, _ERROR, _CALL = "item", "done", "error", "call"
_POLL_S = 0.1


class ConsumerGone(RuntimeError):
    """The consumer stopped reading (it broke out of its loop or failed): nothing runs on its thread now."""


class _Call:
    """A call the worker hands to the consumer, and its outcome once the consumer has run it."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.done = threading.Event()
        self.result: Any = None
        self.error: Exception | None = None

    def run(self) -> None:
        """On the consumer's thread; forwarded further up when the consumer is itself a worker."""
        try:
            self.result = on_consumer_thread(self.fn, *self.args, **self.kwargs)
        except Exception as exc:  # the worker re-raises it
            self.error = exc
        self.done.set()


class _Channel:
    """The hand-over between one worker and its consumer: pages one way, calls to run the other."""

    def __init__(self, depth: int) -> None:
        self.handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()  # set when the consumer stops reading

    def put(self, message: tuple[str, Any]) -> bool:
        """Queue a message for the consumer; False once the consumer has stopped."""
        while not self.stop.is_set():
            try:
                self.handoff.put(message, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def call(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """Run `fn` on the consumer's thread and wait; what it raises is raised here, unchanged."""
        request = _Call(fn, args, kwargs)
        if not self.put((_CALL, request)):
            raise ConsumerGone(f"cannot run {_name(fn)} on the consumer's thread: it stopped reading pages")
        while not request.done.wait(_POLL_S):
            if self.stop.is_set() and not request.done.is_set():
                raise ConsumerGone(f"the consumer stopped reading pages before it ran {_name(fn)}")
        if request.error is not None:
            raise request.error
        return request.result


_channel: contextvars.ContextVar[_Channel | None] = contextvars.ContextVar("api2snow_prefetch", default=None)


def on_consumer_thread(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """`fn(*args, **kwargs)`, run on the thread that consumes the prefetch this code runs in (through any
    nesting: the handler's main thread); outside a prefetch worker it is simply a call of `fn`.

    Raises what `fn` raised, or `ConsumerGone` when the consumer stopped reading before running it.
    """
    channel = _channel.get()
    return fn(*args, **kwargs) if channel is None else channel.call(fn, args, kwargs)


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield what `items` yields, in order, producing up to `depth` items ahead in a worker thread.

    An exception raised by `items` is re-raised here, at the point the consumer would have reached it.
    When the consumer stops early, the worker stops at its next hand-over. While the consumer waits for
    the next item it runs the calls the worker passes it with `on_consumer_thread`.
    """
    if depth < 1:
        raise ValueError("depth must be >= 1")
    channel = _Channel(depth)

    def produce() -> None:
        try:
            for item in items:
                if not channel.put((_ITEM, item)):
                    return
            channel.put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            channel.put((_ERROR, exc))

    context = contextvars.copy_context()
    context.run(_channel.set, channel)  # only the worker's copy sees the channel
    worker = threading.Thread(target=context.run, args=(produce,), name="page-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = channel.handoff.get()
            if kind == _ITEM:
                yield value
            elif kind == _CALL:
                value.run()
            elif kind == _DONE:
                return
            else:
                raise value
    finally:
        channel.stop.set()
        worker.join(timeout=5)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__
