"""Procedure arguments: NULL or out of range fails before settings are read, naming the argument."""

from __future__ import annotations

import re
from typing import Any

import pytest
from api2snow import procedures
from api2snow.arguments import ArgumentError, int_in_range, one_of
from api2snow.sources import SOURCES

from api2snow_cli.local.procedures import (
    ProcedureCallError,
    ProcedureDispatcher,
    is_call_statement,
    parse_call,
)
from api2snow_cli.project import PROJECT_ROOT, Project

SNOWFLAKE_DEFAULT_TASK_TIMEOUT_MS = 3_600_000  # USER_TASK_TIMEOUT_MS when neither task nor root sets one


@pytest.fixture
def ran(monkeypatch) -> list[Any]:
    """Stands in for `_run`: records that a handler got past its argument checks, and touches nothing."""
    calls: list[Any] = []
    monkeypatch.setattr(procedures, "_run", lambda session, work: calls.append(work) or {"ran": True})
    return calls


def test_int_in_range_names_the_argument_the_value_and_the_range():
    assert int_in_range("n", 5, 1, 10) == 5
    for value, shown in [(None, "NULL"), (0, "0"), (11, "11"), (True, "True"), (2.0, "2.0"), ("5", "'5'")]:
        with pytest.raises(ArgumentError) as caught:
            int_in_range("n", value, 1, 10)
        assert str(caught.value) == f"argument n must be an integer from 1 to 10, got {shown}"


def test_one_of_is_exact_and_lists_the_choices_sorted():
    assert one_of("source", "api_b", {"api_b": 1, "api_a": 2}) == "api_b"
    for value, shown in [(None, "NULL"), ("API_A", "'API_A'"), ("", "''"), (1, "1")]:
        with pytest.raises(ArgumentError) as caught:
            one_of("source", value, ["api_b", "api_a"])
        assert str(caught.value) == f"argument source must be one of api_a, api_b, got {shown}"


@pytest.mark.parametrize("timeout", [None, -5, 0, 3601, True, 1.5])
def test_wait_for_load_refuses_a_bad_timeout_before_any_work(ran, timeout):
    with pytest.raises(
        ArgumentError, match=r"^argument timeout_seconds must be an integer from 1 to 3600, got "
    ):
        procedures.wait_for_load(None, timeout)
    assert ran == []


@pytest.mark.parametrize("source", [None, "nope", "API_A", " api_a"])
def test_refresh_pipe_refuses_an_unknown_source_before_any_work(ran, source):
    names = ", ".join(sorted(SOURCES))
    with pytest.raises(ArgumentError, match=rf"^argument source must be one of {names}, got "):
        procedures.refresh_pipe(None, source)
    assert ran == []


def test_good_arguments_reach_the_work(ran):
    procedures.wait_for_load(None, 1)
    procedures.wait_for_load(None, 3600)
    procedures.refresh_pipe(None, "api_c")
    assert len(ran) == 3


def _task_timeout_ms(statements: list[str], task: str) -> int:
    """USER_TASK_TIMEOUT_MS of `task`, else the root's, else Snowflake's default."""

    def timeout_of(name: str) -> int | None:
        statement = next(s for s in statements if re.search(rf"TASK \S+\.PIPELINE\.{name}\s", s))
        found = re.search(r"USER_TASK_TIMEOUT_MS\s*=\s*(\d+)", statement)
        return int(found.group(1)) if found else None

    return timeout_of(task) or timeout_of("ROOT") or SNOWFLAKE_DEFAULT_TASK_TIMEOUT_MS


def test_the_longest_wait_allowed_is_the_wait_task_timeout():
    statements = Project.load().statements(PROJECT_ROOT / "sql" / "06_tasks.sql")
    longest = _task_timeout_ms(statements, "WAIT_FOR_LOAD") // 1000
    int_in_range("timeout_seconds", longest, 1, 3600)
    with pytest.raises(ArgumentError):
        procedures.wait_for_load(None, longest + 1)


def test_every_call_in_the_task_graph_passes_the_argument_checks(ran):
    project = Project.load()
    dispatcher = ProcedureDispatcher(project.procedures(), session=None)
    calls = [s for s in project.statements(PROJECT_ROOT / "sql" / "06_tasks.sql") if "CALL " in s]
    bodies = [s[s.index("CALL ") :] for s in calls]
    assert all(is_call_statement(body) for body in bodies)
    assert len(bodies) == 8 + 2 * len(SOURCES)  # INGEST_ and REFRESH_PIPE_ per source
    for body in bodies:
        name, args = parse_call(body)
        proc = dispatcher.resolve(name)
        dispatcher.handler(proc)(None, *dispatcher.bind(proc, args))
    assert len(ran) == len(bodies)


# ---- how the local stack binds CALL arguments, as Snowflake does -------------------------------------------
@pytest.fixture
def dispatcher() -> ProcedureDispatcher:
    return ProcedureDispatcher(Project.load().procedures(), session=None)


def _bound(dispatcher: ProcedureDispatcher, statement: str) -> list[Any]:
    name, args = parse_call(statement)
    return dispatcher.bind(dispatcher.resolve(name), args)


@pytest.mark.parametrize(
    ("statement", "bound"),
    [
        ("CALL OPS.WAIT_FOR_LOAD(NULL)", [None]),
        ("CALL OPS.WAIT_FOR_LOAD(-5)", [-5]),
        ("CALL OPS.WAIT_FOR_LOAD()", [900]),
        ("CALL OPS.WAIT_FOR_LOAD('60')", [60]),
        ("CALL OPS.WAIT_FOR_LOAD(1.5)", [2]),  # NUMBER(38, 0) rounds half away from zero
        ("CALL OPS.WAIT_FOR_LOAD(-1.5)", [-2]),
        ("CALL OPS.REFRESH_PIPE(NULL)", [None]),
        ("CALL OPS.REFRESH_PIPE($$api_a$$)", ["api_a"]),
    ],
)
def test_call_arguments_bind_like_snowflake(dispatcher, statement, bound):
    assert _bound(dispatcher, statement) == bound


def test_an_argument_that_does_not_cast_fails_naming_it(dispatcher):
    with pytest.raises(
        ProcedureCallError, match=r"^WAIT_FOR_LOAD: argument timeout_seconds is INT, and 'abc' "
    ):
        _bound(dispatcher, "CALL OPS.WAIT_FOR_LOAD('abc')")


def test_a_started_batch_counts_as_dead_only_after_its_task_could_no_longer_run():
    """recovery.DEAD_AFTER_SECONDS is the ingest tasks' timeout: no live ingest is ever taken for dead."""
    from api2snow.recovery import DEAD_AFTER_SECONDS

    statements = Project.load().statements(PROJECT_ROOT / "sql" / "06_tasks.sql")
    timeouts = {_task_timeout_ms(statements, f"INGEST_API_{x}") // 1000 for x in "ABC"}
    assert timeouts == {DEAD_AFTER_SECONDS}
