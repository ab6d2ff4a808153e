"""ANL_DAILY_SUMMARY always equals a fresh GROUP BY over CLEAN, a day that lost all its events included."""

from __future__ import annotations

from datetime import timedelta

import pytest

from .helpers import load_batch, scalar

pytestmark = pytest.mark.integration
COLUMNS = "source, event_date, event_count, camera_count, site_count, ROUND(avg_confidence, 9), top_category"


def _rows(stack, relation: str) -> set[tuple]:
    rows = stack.session.sql(f"SELECT {COLUMNS} FROM {stack.database}.ANALYTICS.{relation}").collect()
    return {tuple(row) for row in rows}


def test_a_day_whose_events_all_moved_leaves_the_summary(stack):
    db = stack.database
    run_id, runs = stack.run_graph()
    assert {r.state for r in runs} == {"SUCCEEDED"}, [(r.name, r.error) for r in runs if r.error]
    clean = f"{db}.CLEAN.CLN_API_A_EVENTS"
    first_day = scalar(stack, f"SELECT MIN(occurred_at::DATE) FROM {clean}")
    moved = scalar(stack, f"SELECT COUNT(*) FROM {clean} WHERE occurred_at::DATE = ?", [first_day])
    next_day = scalar(
        stack, f"SELECT COUNT(*) FROM {clean} WHERE occurred_at::DATE = DATEADD('day', 1, ?)", [first_day]
    )
    assert moved > 0
    summary = f"{db}.ANALYTICS.ANL_DAILY_SUMMARY"
    assert scalar(
        stack, f"SELECT COUNT(*) FROM {summary} WHERE source = 'api_a' AND event_date = ?", [first_day]
    )

    # Updates move every event of the first day to the next one (what a corrected OCCURRED_AT does): a new
    # version of each, loaded like any batch, then the hourly CLEAN and ANALYTICS builds.
    load_batch(stack, "api_a", [_moved_a_day(row) for row in _events_of_day(stack, clean, first_day)])
    stack.call(f"CALL {db}.OPS.BUILD_CLEAN()")
    stack.call(f"CALL {db}.OPS.BUILD_ANALYTICS()")

    assert _rows(stack, "ANL_DAILY_SUMMARY") == _rows(
        stack, "VW_DAILY_SUMMARY"
    )  # a fresh GROUP BY over CLEAN
    assert not scalar(
        stack, f"SELECT COUNT(*) FROM {summary} WHERE source = 'api_a' AND event_date = ?", [first_day]
    )
    counted = scalar(
        stack,
        f"SELECT event_count FROM {summary} WHERE source = 'api_a' AND event_date = DATEADD('day', 1, ?)",
        [first_day],
    )
    assert counted == moved + next_day


def _events_of_day(stack, clean: str, day) -> list:
    return stack.session.sql(f"SELECT * FROM {clean} WHERE occurred_at::DATE = ?", params=[day]).collect()


def _moved_a_day(row) -> dict:
    """The event's next version: a day later, updated a second after the version CLEAN holds."""
    fields = ("event_id", "event_type", "camera_id", "category", "confidence", "duration_ms")
    payload = {name: row[name.upper()] for name in fields}
    payload["occurred_at"] = (row["OCCURRED_AT"] + timedelta(days=1)).isoformat(timespec="microseconds")
    payload["updated_at"] = (row["UPDATED_AT"] + timedelta(seconds=1)).isoformat(timespec="microseconds")
    return payload
