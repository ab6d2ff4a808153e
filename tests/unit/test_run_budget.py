"""One ingest run's budget: it stops at a page boundary and never requests the page after the last one."""

from __future__ import annotations

import pytest
from api2snow.budget import RunBudget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_page_cap_stops_after_that_many_pages_without_requesting_more():
    requested: list[int] = []

    def pages():
        for n in range(1, 100):
            requested.append(n)
            yield [n]

    budget = RunBudget(60, max_pages=3)
    assert list(budget.limit(pages())) == [[1], [2], [3]]
    assert requested == [1, 2, 3] and budget.stopped_by == "page cap of 3 pages"


def test_the_time_budget_stops_at_the_first_page_boundary_past_it():
    clock = Clock()

    def pages():
        for n in range(10):
            clock.now += 4.0  # each page takes four seconds
            yield n

    budget = RunBudget(10, clock=clock)
    assert list(budget.limit(pages())) == [0, 1, 2]
    assert budget.stopped_by == "time budget of 10 s"


def test_a_source_that_ends_first_leaves_the_budget_unspent():
    budget = RunBudget(10, max_pages=5)
    assert list(budget.limit(iter([[1], [2]]))) == [[1], [2]] and budget.stopped_by is None


def test_nonsense_budgets_are_refused():
    with pytest.raises(ValueError):
        RunBudget(0)
    with pytest.raises(ValueError):
        RunBudget(5, max_pages=-1)
