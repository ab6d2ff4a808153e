"""The analysts' procedures in pieces: declared columns, argument checks, the page window, masking."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from api2snow.analyst import PIPELINE_STATUS_COLUMNS, REJECTS_COLUMNS, shown_record
from api2snow.arguments import ArgumentError
from api2snow.window import PageWindow, TimeWindow, parse_utc

from api2snow_cli.local.procedures import call_statement, parse_call
from api2snow_cli.project import Project, table_return_columns

NOW = datetime(2024, 6, 1, 12, 0, 0)


@pytest.mark.parametrize(
    ("name", "columns"), [("PIPELINE_STATUS", PIPELINE_STATUS_COLUMNS), ("REJECTS", REJECTS_COLUMNS)]
)
def test_snowflake_yml_declares_the_columns_the_handler_returns(name, columns):
    proc = Project.load().procedures()[name]
    assert table_return_columns(proc.returns) == list(columns)
    assert proc.table_columns == tuple(c for c, _ in columns)


def test_table_return_columns_keep_types_with_commas():
    assert table_return_columns("table(A NUMBER(38, 0), B STRING)") == [
        ("A", "NUMBER(38, 0)"),
        ("B", "STRING"),
    ]
    assert table_return_columns("variant") == []


def test_timestamps_are_read_as_utc():
    assert parse_utc("x", "2024-05-01T02:00:00+02:00") == datetime(2024, 5, 1, 0, 0)
    assert parse_utc("x", "2024-05-01T00:00:00Z") == parse_utc("x", "2024-05-01 00:00:00")


@pytest.mark.parametrize(
    ("from_ts", "to_ts", "message"),
    [
        ("2024-06-01T10:00:00Z", "2024-06-01T10:00:00Z", "argument from_ts must be before to_ts"),
        ("2024-06-01T10:00:00Z", "2024-06-01T13:00:00Z", "argument to_ts is in the future"),
        ("noon", "2024-06-01T10:00:00Z", "argument from_ts must be an ISO 8601 timestamp"),
        (None, "2024-06-01T10:00:00Z", "got NULL"),
        (
            "2024-05-01T00:00:00Z",
            "2024-06-01T00:00:00Z",
            "spans 744 hours, more than backfill_max_window_hours = 168",
        ),
    ],
)
def test_a_bad_window_is_one_line(from_ts, to_ts, message):
    with pytest.raises(ArgumentError) as caught:
        TimeWindow.checked(from_ts, to_ts, max_hours=168, now=NOW)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_page_window_keeps_the_window_and_stops_after_its_end():
    requested: list[int] = []

    def pages():
        for number, page in enumerate(
            [
                [{"t": "2024-06-01T09:59:59Z"}, {"t": "2024-06-01T10:00:00Z"}],
                [{"t": 1717236000000}, {"t": "bad"}],  # epoch ms 10:40, and a version that is not a time
                [{"t": "2024-06-01T10:59:59.999Z"}, {"t": "2024-06-01T11:00:00Z"}],
                [{"t": "2024-06-01T11:30:00Z"}],
            ]
        ):
            requested.append(number)
            yield page

    window = PageWindow("t", datetime(2024, 6, 1, 10), datetime(2024, 6, 1, 11))
    kept = [raw["t"] for page in window.limit(pages()) for raw in page]
    assert kept == ["2024-06-01T10:00:00Z", 1717236000000, "bad", "2024-06-01T10:59:59.999Z"]
    assert (window.outside, window.reached_end, requested) == (2, True, [0, 1, 2])


def test_a_rejected_record_is_shown_without_secret_looking_values():
    record = json.dumps({"id": 1, "Authorization": "Basic abc", "text": "Bearer tok123 and api_key=k9"})
    shown = json.loads(shown_record(record, None))
    assert shown == {"id": 1, "Authorization": "***", "text": "Bearer *** and api_key=***"}
    assert shown_record(None, "excerpt password=p1") == "excerpt password=***"


def test_a_nested_call_statement_round_trips():
    statement = call_statement("DB.OPS.BACKFILL_API_A", ["2024-01-01T00:00:00", "it's", None])
    assert parse_call(statement) == ("DB.OPS.BACKFILL_API_A", ["2024-01-01T00:00:00", "it's", None])
