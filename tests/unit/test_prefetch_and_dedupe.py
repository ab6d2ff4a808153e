"""Page prefetching keeps order, bounds read-ahead and surfaces errors; the deduper stays bounded."""

from __future__ import annotations

import threading
import time

import pytest
from api2snow.http.prefetch import prefetched
from api2snow.transform import BatchDeduper


def test_prefetched_yields_everything_in_order():
    assert list(prefetched(iter(range(100)), depth=2)) == list(range(100))


def test_prefetched_reads_at_most_depth_plus_one_ahead():
    produced = []

    def pages():
        for n in range(20):
            produced.append(n)
            yield n

    consumer = prefetched(pages(), depth=2)
    assert next(consumer) == 0
    time.sleep(0.3)  # give the worker every chance to run ahead
    assert len(produced) <= 1 + 2 + 1  # the one consumed, two queued, one blocked in the hand-over
    consumer.close()


def test_prefetched_reraises_the_producers_error_after_the_good_pages():
    def pages():
        yield 1
        yield 2
        raise RuntimeError("HTTP 500 after retries")

    seen = []
    with pytest.raises(RuntimeError, match="HTTP 500 after retries"):
        for page in prefetched(pages()):
            seen.append(page)
    assert seen == [1, 2]


def test_prefetched_stops_the_worker_when_the_consumer_stops():
    def endless():
        n = 0
        while True:
            yield n
            n += 1

    before = threading.active_count()
    for page in prefetched(endless()):
        if page == 3:
            break
    time.sleep(0.3)
    assert threading.active_count() == before


def test_deduper_drops_nearby_repeats_and_keeps_newer_versions():
    deduper = BatchDeduper(window=100)
    assert deduper.offer("a", "2026-01-01T00:00:00.000000")
    assert not deduper.offer("a", "2026-01-01T00:00:00.000000")
    assert not deduper.offer("a", "2025-12-31T00:00:00.000000")
    assert deduper.offer("a", "2026-01-02T00:00:00.000000")


def test_deduper_memory_is_bounded_by_its_window():
    deduper = BatchDeduper(window=1000)
    for n in range(50_000):
        assert deduper.offer(f"id-{n}", "2026-01-01T00:00:00.000000")
    assert len(deduper) == 1000
    assert not deduper.offer("id-49999", "2026-01-01T00:00:00.000000")  # recent: still a duplicate
    assert deduper.offer("id-0", "2026-01-01T00:00:00.000000")  # far back: staged, the MERGE keeps one row
