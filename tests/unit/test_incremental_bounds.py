"""The bounds that keep an hourly run's reads to what is new: each must hold for every row a statement needs.

- RAW by load time: a batch's rows load after the batch started, so `loaded_at >= started_at - 1 h`.
- The ledger by start: an update of some batches reads the ledger from the oldest one's start.
- The summary by day: one run of consecutive days of one source per statement.
- The clustering key the local stack emulates, read from the same statements Snowflake runs.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
from api2snow.layers import MAX_DAY_RUNS, _day_runs, _runs_or_all, summary_days_predicate
from api2snow.ledger import BatchRecord, by_id
from api2snow.sqltime import LOAD_CLOCK_MARGIN, loaded_since

from api2snow_cli.local.clustering import clustering_key


def _batch(batch_id: str, started_at: datetime | None) -> BatchRecord:
    return BatchRecord(batch_id, "api_a", "LOADED", 1, 0, None, {}, started_at=started_at)


def test_the_load_time_bound_is_a_utc_instant_an_hour_before_the_batch_started():
    started = datetime(2026, 11, 30, 12, 0, 5, 123456)
    assert loaded_since(started) == "loaded_at >= '2026-11-30 11:00:05.123456+00:00'::TIMESTAMP_TZ"
    assert loaded_since(started, "stg").startswith("stg.loaded_at >= ")
    assert LOAD_CLOCK_MARGIN.total_seconds() == 3600
    # a batch whose start is unknown reads every load: no bound, rather than a wrong one
    assert loaded_since(None) == "loaded_at >= '1969-12-31 23:00:00+00:00'::TIMESTAMP_TZ"


def test_an_update_by_batch_id_reads_the_ledger_from_the_oldest_batch_on():
    where, params = by_id(
        [_batch("b2", datetime(2026, 11, 30, 12)), _batch("b1", datetime(2026, 11, 29, 23))]
    )
    assert where == "started_at >= CAST(? AS TIMESTAMP_NTZ) AND batch_id IN (?, ?)"
    assert params == ["2026-11-29 23:00:00", "b2", "b1"]
    # one batch of unknown start: the ids alone (exact, just not pruned)
    assert by_id([_batch("b1", None), _batch("b2", datetime(2026, 11, 30))]) == (
        "batch_id IN (?, ?)",
        ["b1", "b2"],
    )


def test_the_queued_days_become_runs_of_consecutive_days_one_statement_each():
    days = [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 30), date(2026, 9, 5)]
    assert _day_runs(sorted(days)) == [
        (date(2026, 9, 5), date(2026, 9, 5)),
        (date(2026, 11, 1), date(2026, 11, 3)),
        (date(2026, 11, 30), date(2026, 11, 30)),
    ]
    predicate = summary_days_predicate("api_a", date(2026, 11, 1), date(2026, 11, 3), "fresh")
    assert predicate == (
        "fresh.source = 'api_a' AND fresh.event_date BETWEEN '2026-11-01'::DATE AND '2026-11-03'::DATE"
    )
    assert summary_days_predicate(None) == "TRUE"  # every day of every source (a camera changed site)
    assert summary_days_predicate("api_b", alias="summary") == "summary.source = 'api_b'"
    scattered = [
        date(2026, 1, 1) + (date(2026, 1, 3) - date(2026, 1, 1)) * n for n in range(MAX_DAY_RUNS + 1)
    ]
    assert _runs_or_all(scattered) == [(None, None)]  # one statement for the source, not one per day
    assert len(_runs_or_all(scattered[:MAX_DAY_RUNS])) == MAX_DAY_RUNS
    with pytest.raises(KeyError):
        summary_days_predicate("not_a_source", date(2026, 11, 1), date(2026, 11, 1))


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            "CREATE TABLE IF NOT EXISTS DB.CLEAN.CLN_API_A_EVENTS (\n    EVENT_ID STRING NOT NULL,\n"
            "    DURATION_MS NUMBER(18, 0),\n    EVENT_DATE DATE\n) CLUSTER BY (EVENT_DATE)",
            ("DB.CLEAN.CLN_API_A_EVENTS", ["EVENT_DATE"], False),
        ),
        ("ALTER TABLE DB.CLEAN.T CLUSTER BY (A, b)", ("DB.CLEAN.T", ["A", "B"], True)),
        ("CREATE TABLE IF NOT EXISTS DB.OPS.T (A STRING)", None),
        ("ALTER TABLE DB.OPS.T ADD COLUMN IF NOT EXISTS A STRING", None),
    ],
)
def test_the_local_stack_reads_the_clustering_key_from_the_statements_snowflake_runs(statement, expected):
    assert clustering_key(statement) == expected
