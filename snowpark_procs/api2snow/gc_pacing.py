"""Fewer passes of Python's cyclic garbage collector while a batch is extracted.

The record path allocates several containers per record (the decoded page, the normalised dict, the dedupe
entry), and by default the collector runs a pass every 700 net new containers, re-scanning every record
still alive in the pages in flight; about a tenth of an extract's time went to those passes. The records
are acyclic, so reference counting frees them, and the passes find nothing. Raising the first threshold
keeps the collector on (a cycle made meanwhile, say by an exception's traceback, is still freed at the
next pass) while it runs a few times per batch instead of hundreds.

The thresholds are per process; the local stack runs several ingests at once in threads, so the first to
enter sets them and the last to leave restores them.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["EXTRACT_GC_THRESHOLD", "fewer_collections"]

# Net new containers between two passes of the youngest generation while extracting (the default is 700).
EXTRACT_GC_THRESHOLD = 50_000

_lock = threading.Lock()
_holders = 0
_restore: tuple[int, ...] = ()


@contextmanager
def fewer_collections(threshold: int = EXTRACT_GC_THRESHOLD) -> Iterator[None]:
    """Run the block with the youngest generation's threshold at least `threshold`, then restore it."""
    global _holders, _restore
    with _lock:
        if _holders == 0:
            _restore = gc.get_threshold()
            gc.set_threshold(max(threshold, _restore[0]), *_restore[1:])
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                gc.set_threshold(*_restore)
