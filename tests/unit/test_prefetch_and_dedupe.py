"""Page prefetching keeps order, bounds read-ahead and surfaces errors; the deduper stays bounded."""

from __future__ import annotations

import json
import threading
import time

import pytest
from api2snow.http.prefetch import ConsumerGone, on_consumer_thread, prefetched
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


def test_on_consumer_thread_outside_a_worker_just_calls():
    assert on_consumer_thread(lambda a, b=0: (threading.current_thread(), a + b), 1, b=2) == (
        threading.current_thread(),
        3,
    )


def test_the_worker_hands_calls_to_the_consumer_thread_between_pages():
    def pages():
        yield 1
        yield on_consumer_thread(lambda page: (page, threading.current_thread()), 2)
        yield 3

    got = list(prefetched(pages()))
    assert got == [1, (2, threading.current_thread()), 3]


def test_a_call_handed_to_the_consumer_raises_its_own_exception_in_the_worker():
    refused = PermissionError("Secrets can only be accessed from the main thread")
    caught = []

    def refuse():
        raise refused

    def pages():
        try:
            on_consumer_thread(refuse)
        except PermissionError as exc:
            caught.append(exc)
        yield 1

    assert list(prefetched(pages())) == [1]
    assert caught == [refused] and caught[0] is refused


def test_nested_prefetch_calls_reach_the_outermost_consumer():
    def inner():
        yield on_consumer_thread(threading.current_thread)

    def outer():
        yield from prefetched(inner())

    assert list(prefetched(outer())) == [threading.current_thread()]


def test_a_call_after_the_consumer_stopped_fails_instead_of_waiting_forever():
    outcome = []

    def pages():
        yield 1
        try:
            on_consumer_thread(lambda: "never run")
        except ConsumerGone as exc:
            outcome.append(exc)
        yield 2

    consumer = prefetched(pages())
    assert next(consumer) == 1
    started = time.monotonic()
    consumer.close()  # stops reading with the worker's call pending (or about to be)
    assert time.monotonic() - started < 2
    assert len(outcome) == 1 and isinstance(outcome[0], ConsumerGone)


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


@pytest.mark.parametrize("offset", range(0, 1000, 97))
def test_deduper_remembers_at_least_its_window_of_the_latest_ids_whatever_their_phase(offset):
    window, stamp = 100, "2026-01-01T00:00:00.000000"
    deduper = BatchDeduper(window=window)
    for n in range(offset):
        deduper.offer(f"filler-{n}", stamp)
    assert deduper.offer("a", stamp, fingerprint=1)
    for n in range(window - 1):  # `a` is among the last `window` distinct ids
        deduper.offer(f"other-{n}", stamp)
    assert not deduper.offer("a", stamp, fingerprint=1)  # identical repeat: dropped
    assert not deduper.offer("a", "2025-12-31T00:00:00.000000")  # older version: dropped
    assert deduper.offer("a", stamp, fingerprint=2)  # same time, other content: served last, staged
    assert not deduper.offer("a", stamp, fingerprint=2)
    assert window <= len(deduper) < 2 * window


@pytest.mark.parametrize("use_orjson", [True, False])
def test_dumps_lines_matches_per_record_dumps_on_both_paths(monkeypatch, use_orjson):
    from api2snow import jsonl

    if not use_orjson:
        monkeypatch.setattr(jsonl, "_orjson", None)
    records = [{"id": "a", "v": 1.5, "s": "ünïcode"}, {"id": "b", "v": float("nan"), "s": None}]
    assert jsonl.dumps_lines(records) == b"".join(jsonl.dumps(r) + b"\n" for r in records)
    assert jsonl.dumps_lines(records).splitlines()[1] == b'{"id":"b","v":null,"s":null}'


def test_process_page_splits_a_page_and_keeps_the_invariant():
    from api2snow.sources import get_source
    from api2snow.transform import RecordProcessor

    from tests.unit.entity_schemas import EVENT_SCHEMA

    source = get_source("api_b")
    processor = RecordProcessor(source.normalize, EVENT_SCHEMA, "event_id", "updated_at", "batch-1")
    good = {
        "eventId": 1,
        "eventKind": "MOTION",
        "cameraRef": "cam-001",
        "label": "Animal",
        "score": 50,
        "timestampMs": 1764150000000,
        "modifiedMs": 1764150000001,
        "durationSec": 0.5,
    }
    bad = {**good, "eventId": 2, "timestampMs": "not-a-date"}
    page = processor.process_page([good, bad, dict(good)])
    staged = [json.loads(line) for line in page.lines]
    assert [r["event_id"] for r in staged] == ["b-1"] and staged[0]["_batch_id"] == "batch-1"
    assert [raw["eventId"] for raw, _ in page.rejected] == [2]
    assert page.rejected[0][1] == "normalize: timestampMs: expected integer, got string"
    assert page.max_updated == "2025-11-26T09:40:00.001000"
    assert processor.counts == {"fetched": 3, "staged": 1, "rejected": 1, "duplicates": 1}
