"""The collector's pacing during an extract: raised while any extract runs, restored after the last one,
and never lowered below what the process had set."""

from __future__ import annotations

import gc
import threading
import weakref

from api2snow.gc_pacing import EXTRACT_GC_THRESHOLD, fewer_collections


def test_threshold_is_raised_inside_and_restored_after_overlapping_extracts():
    before = gc.get_threshold()
    first_in, second_out = threading.Event(), threading.Event()
    seen: list[tuple[int, ...]] = []

    def second() -> None:
        first_in.wait(5)
        with fewer_collections():
            seen.append(gc.get_threshold())
        second_out.set()

    thread = threading.Thread(target=second)
    thread.start()
    with fewer_collections():
        first_in.set()
        assert second_out.wait(5)
        assert gc.get_threshold() == (EXTRACT_GC_THRESHOLD, *before[1:])  # the other one left: still raised
    thread.join(5)
    assert seen == [(EXTRACT_GC_THRESHOLD, *before[1:])]
    assert gc.get_threshold() == before


def test_a_higher_threshold_of_the_process_is_kept_and_an_error_still_restores():
    before = gc.get_threshold()
    gc.set_threshold(EXTRACT_GC_THRESHOLD * 2, *before[1:])
    try:
        try:
            with fewer_collections():
                assert gc.get_threshold()[0] == EXTRACT_GC_THRESHOLD * 2
                raise RuntimeError("page failed")
        except RuntimeError:
            pass
        assert gc.get_threshold()[0] == EXTRACT_GC_THRESHOLD * 2
    finally:
        gc.set_threshold(*before)


def test_a_cycle_made_while_extracting_is_still_freed_by_the_collector_on_its_own():
    class Node:
        pass

    with fewer_collections():
        assert gc.isenabled()
        node = Node()
        node.self = node  # a cycle: reference counting alone never frees it
        freed = weakref.ref(node)
        del node
        alive = [[] for _ in range(EXTRACT_GC_THRESHOLD * 2)]  # net new containers: a pass is due
        assert freed() is None
        del alive
