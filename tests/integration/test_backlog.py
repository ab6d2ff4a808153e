"""A backlog larger than one run's budget catches up over successive runs, exactly, within every budget."""

from __future__ import annotations

import json
import math

import pytest
from api2snow.sources import SOURCES

from api2snow_cli.source_progress import source_progress, source_progress_query

from .helpers import batches_of_run, expected_ids, scalar

pytestmark = pytest.mark.integration
EVENT_SOURCES = {"api_a": "CLN_API_A_EVENTS", "api_b": "CLN_API_B_EVENTS"}
PAGE = 100  # the page size this test sets (the sources ask for 500 by default): more pages, more runs


def _run_ok(stack) -> str:
    run_id, runs = stack.run_graph()
    failed = {r.name: r.error for r in runs if r.state != "SUCCEEDED"}
    assert not failed, failed
    return run_id


def test_a_backlog_five_times_the_budget_is_current_after_about_five_runs(stack):
    db = stack.database
    dataset, now = stack.mock_apis.dataset, stack.mock_apis.clock.now()
    truth = {source: expected_ids(stack, source, dataset.truth(source, now)) for source in EVENT_SOURCES}
    cap = max(1, math.ceil(len(truth["api_b"]) / PAGE) // 5)  # API B: about five runs of pages
    for key, value in (("ingest_max_pages", cap), ("api_a_page_size", PAGE), ("api_b_page_size", PAGE)):
        stack.session.sql(
            f"INSERT INTO {db}.OPS.PIPELINE_CONFIG (config_key, config_value) VALUES (?, ?)",
            params=[key, str(value)],
        ).collect()

    runs: list[dict] = []
    while len(runs) < 10 and not (runs and all(runs[-1][s]["COMPLETE"] for s in EVENT_SOURCES)):
        runs.append(batches_of_run(stack, _run_ok(stack)))
        if not runs[-1]["api_b"]["COMPLETE"]:
            [progress] = [p for p in _progress(stack) if p.source == "api_b"]
            assert progress.state == "catching up" and progress.remaining == runs[-1]["api_b"]["REMAINING"]

    b_runs = [run["api_b"] for run in runs if run["api_b"]["FETCHED"] > 0]
    assert 4 <= len(b_runs) <= 6, [b["FETCHED"] for b in b_runs]
    remaining = [b["REMAINING"] for b in b_runs]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0  # how far it has to go
    for run in runs:
        for source in EVENT_SOURCES:
            stats = json.loads(run[source]["HTTP_STATS"])
            assert stats["pages"] <= cap and stats["throttled_429"] == 0  # within budget, never a 429
            assert run[source]["FETCHED"] <= cap * PAGE  # pages of the size the setting asks for
            batch = run[source]
            assert batch["FETCHED"] == batch["STAGED"] + batch["REJECTED"] + batch["DUPLICATES"]
    for source, table in EVENT_SOURCES.items():
        rows = stack.session.sql(f"SELECT event_id, updated_at FROM {db}.CLEAN.{table}").collect()
        assert {r["EVENT_ID"]: r["UPDATED_AT"] for r in rows} == truth[source]
        staged = scalar(stack, f"SELECT SUM(staged) FROM {db}.OPS.BATCH_LEDGER WHERE source = ?", [source])
        assert scalar(stack, f"SELECT COUNT(*) FROM {db}.RAW.{source.upper()}_EVENTS") == staged
    assert {p.source: p.state for p in _progress(stack)} == dict.fromkeys(SOURCES, "current")


def _progress(stack) -> list:
    return source_progress(stack.session.sql(source_progress_query(stack.database)).collect())
