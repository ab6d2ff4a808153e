"""`api2snow status` draws the run as a timeline: bars on one time axis, so tasks that ran side by side
overlap and the long ones are long."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.console import Console

from api2snow_cli.console import timeline
from api2snow_cli.history import graph_run_status
from api2snow_cli.local.tasks import TaskGraph, parse_task

T0 = datetime(2026, 11, 30, 12, 0, 0)


def _graph() -> TaskGraph:
    statements = [
        "CREATE OR ALTER TASK DB.P.ROOT SCHEDULE = '60 MINUTE' AS SELECT 1",
        "CREATE OR ALTER TASK DB.P.A AFTER DB.P.ROOT AS SELECT 1",
        "CREATE OR ALTER TASK DB.P.B AFTER DB.P.ROOT AS SELECT 1",
        "CREATE OR ALTER TASK DB.P.C AFTER DB.P.A, DB.P.B AS SELECT 1",
    ]
    return TaskGraph([parse_task(s) for s in statements])


def _row(name: str, start: float, seconds: float | None, state: str = "SUCCEEDED") -> dict:
    return {
        "NAME": name,
        "STATE": state,
        "SCHEDULED_TIME": T0,
        "QUERY_START_TIME": T0 + timedelta(seconds=start),
        "COMPLETED_TIME": None if seconds is None else T0 + timedelta(seconds=start + seconds),
        "RETURN_VALUE": None,
        "ERROR_MESSAGE": None,
        "GRAPH_RUN_GROUP_ID": "g-1",
        "ATTEMPT_NUMBER": 1,
    }


def _lines(status) -> list[str]:
    console = Console(width=120, record=True, color_system=None)
    console.print(timeline(status, width=40))
    return console.export_text().splitlines()


def test_tasks_side_by_side_overlap_and_bars_scale_with_duration():
    rows = [_row("ROOT", 0, 1), _row("A", 1, 20), _row("B", 1, 5), _row("C", 21, 19)]
    status = graph_run_status(rows, _graph())
    assert [t.started_s for t in status.tasks] == [0.0, 1.0, 1.0, 21.0]
    lines = {line.split()[0]: line for line in _lines(status)[2:]}
    a, b, c = (lines[name] for name in ("A", "B", "C"))
    assert a.index("█") == b.index("█")  # A and B started together
    assert a.count("█") == 20 and b.count("█") == 5 and c.count("█") == 19  # 40 columns for 40 s
    assert c.index("█") == a.index("█") + a.count("█")  # C starts where A, the longer, ended
    assert "timeline (40.0 s)" in _lines(status)[0]


def test_a_running_task_is_an_open_bar_and_a_task_not_run_has_none():
    rows = [_row("ROOT", 0, 1), _row("A", 1, None, "EXECUTING")]
    status = graph_run_status(rows, _graph())
    lines = {line.split()[0]: line for line in _lines(status)[2:]}
    assert "▶" in lines["A"] and "…" in lines["A"]
    assert lines["C"].split()[-2:] == ["not", "run"] and "█" not in lines["C"]
