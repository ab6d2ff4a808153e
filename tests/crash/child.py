"""Graph runs on a local home, in a process of their own, optionally SIGKILLed at a named point.

    python -m tests.crash.child --home DIR --anchor ISO --clock ISO [--clock ISO ...]
        [--kill-at POINT [--nth N]] [--dump FILE]

Each --clock is one graph run with the mock APIs' clock (and ingest's "now") at that time. A kill point
wraps a production function where its callers look it up (a module or class attribute), so production
code carries no test hook. On the Nth call whose arguments match, the process SIGKILLs itself before or
after the wrapped call: no `finally`, no stack.stop(), no flush, exactly like a crash.
Exit status: 0 every task SUCCEEDED, 1 a task failed (listed on stderr), -9 (SIGKILL) the kill fired.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from api2snow.sources import SOURCES

Args = dict[str, Any]

SEED = 7
HISTORY_HOURS = 1
PART_BYTES = 2 * 1024  # small parts, so a batch has several and a kill can land between two of them
PAGE_RECORDS = 100  # a part rolls over after a page: an hour of API A (120 events) must be several pages
WAIT_TIMEOUT_S = 10.0  # local auto-ingest lands a part within a second or two of its PUT, even under load
WAIT_POLL_S = 0.5

CLEAN_KEYS = {source.clean_table: source.clean_key for source in SOURCES.values()}
ANALYTICS = ("ANALYTICS.ANL_DAILY_SUMMARY", "ANALYTICS.VW_DAILY_EVENT_COUNTS", "ANALYTICS.VW_TOP_CATEGORIES")
RUN_COLUMNS = {"BATCH_ID", "MERGED_AT", "REFRESHED_AT"}  # say when or by which batch, not what
LEDGER_TIMES = ("STARTED_AT", "STAGED_AT", "LOADED_AT", "MERGED_AT")  # stamped by the warehouse clock
CLOCK_FILE = "crash_sweep_clock.json"  # the mock time of the last run in a home (the harness's own file)
RAW_TABLES = (*(source.raw_table for source in SOURCES.values()), "RAW.REJECTED_RECORDS")


# ---- kill points -----------------------------------------------------------------------------------


def _always(args: Args) -> bool:
    return True


def _source_is(name: str) -> Callable[[Args], bool]:
    return lambda args: args["source"] == name


def _key_has(*parts: str) -> Callable[[Args], bool]:
    return lambda args: all(part in args["key"] for part in parts)


def _pipe_is(name: str) -> Callable[[Args], bool]:
    return lambda args: args["pipe"].name.endswith(name)


@dataclass(frozen=True)
class KillPoint:
    """`target` is "module:attribute[.attribute]"; `when` is "before" or "after" the wrapped call."""

    target: str
    when: str
    match: Callable[[Args], bool] = _always
    why: str = ""


KILL_POINTS: dict[str, KillPoint] = {
    "ingest_after_started": KillPoint(
        "api2snow.ledger:start_batch", "after", _source_is("api_a"), "ledger row STARTED, nothing on S3"
    ),
    "ingest_after_first_part": KillPoint(
        "api2snow.staging:S3BatchWriter._put",
        "after",
        _key_has("source=api_a/", "part-0001"),
        "one part of a STARTED batch on S3",
    ),
    "ingest_before_staged": KillPoint(
        "api2snow.ledger:finish_staging",
        "before",
        lambda args: args["manifest"]["source"] == "api_a",
        "manifest on S3, ledger still STARTED",
    ),
    "ingest_after_staged": KillPoint(
        "api2snow.ledger:finish_staging",
        "after",
        lambda args: args["manifest"]["source"] == "api_a",
        "ledger STAGED, pipe not refreshed",
    ),
    "pipe_after_first_file": KillPoint(
        "api2snow_cli.local.pipes:LocalPipeLoader._load_file",
        "after",
        _pipe_is("API_A_EVENTS_PIPE"),
        "mid-batch: the first file of the batch loaded, the others not",
    ),
    "pipe_rows_in_raw_before_history": KillPoint(
        "api2snow_cli.local.pipes:LocalPipeLoader._record",
        "before",
        lambda args: args["pipe"].name.endswith("API_A_EVENTS_PIPE") and args["status"] == "Loaded",
        "a file's rows inserted, its load history row not yet written",
    ),
    "loaded_before_watermark": KillPoint(
        "api2snow.ledger:advance_watermark",
        "before",
        _source_is("api_a"),
        "batch LOADED, watermark not advanced",
    ),
    "clean_merged_before_status": KillPoint(
        "api2snow.layers:merge_delta",
        "after",
        lambda args: args["delta"].target.source == "api_a",
        "api_a MERGEd into CLEAN, its batches still LOADED",
    ),
    "clean_between_sources": KillPoint(
        "api2snow.layers:merge_delta",
        "before",
        lambda args: args["delta"].target.source == "api_b",
        "api_a MERGED, api_b not merged",
    ),
    "analytics_before_summary": KillPoint(
        "api2snow.layers:refresh_daily_summary", "before", why="CLEAN built, ANL_DAILY_SUMMARY stale"
    ),
    "dq_after_checks": KillPoint(
        "api2snow.quality:run_checks", "after", why="DQ results recorded, gate not run"
    ),
    "finalizer_before_record": KillPoint(
        "api2snow.reporting:record_run", "before", why="every task done, run not recorded"
    ),
}


def _resolve(target: str) -> tuple[Any, str]:
    """The object holding the attribute to patch, and the attribute's name."""
    module_name, _, path = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    if not hasattr(owner, name):
        raise SystemExit(f"kill point target {target} does not exist (renamed?): update tests/crash/child.py")
    return owner, name


def _die(point: str) -> None:
    print(f"crash-sweep: SIGKILL at {point}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def arm(name: str, nth: int) -> None:
    """Wrap the kill point's target so that its Nth matching call SIGKILLs this process."""
    point = KILL_POINTS[name]
    owner, attribute = _resolve(point.target)
    original = getattr(owner, attribute)
    signature = inspect.signature(original)
    lock = threading.Lock()
    seen = [0]

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fire = False
        if point.match(signature.bind_partial(*args, **kwargs).arguments):
            with lock:
                seen[0] += 1
                fire = seen[0] == nth
        if fire and point.when == "before":
            _die(name)
        result = original(*args, **kwargs)
        if fire:
            _die(name)
        return result

    setattr(owner, attribute, wrapper)


# ---- harness settings (the same in every child, the reference included) ------------------------------


def follow_mock_clock(read: Callable[[], datetime]) -> None:
    """Ingest's window hour follows the mock APIs' clock, so "the same hour" and "an hour later" are exact
    and a sweep that straddles a real hour boundary behaves like one that does not."""
    import api2snow.ingest as ingest

    class MockNow(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            now = read()
            return now.astimezone(tz) if tz is not None else now.replace(tzinfo=None)

    if getattr(ingest, "datetime", None) is not datetime:
        raise SystemExit("api2snow.ingest no longer reads datetime.now: update follow_mock_clock")
    ingest.datetime = MockNow  # type: ignore[misc]


def bound_wait_for_load() -> None:
    """WAIT_FOR_LOAD(900) with three attempts would take 45 min to fail on a part that is gone for good."""
    import api2snow.loading as loading

    original = loading.wait_for_load

    @functools.wraps(original)
    def bounded(session: Any, platform: Any, settings: Any, timeout_s: float, **kwargs: Any) -> Any:
        kwargs["poll_s"] = min(kwargs.get("poll_s", WAIT_POLL_S), WAIT_POLL_S)
        return original(session, platform, settings, min(timeout_s, WAIT_TIMEOUT_S), **kwargs)

    loading.wait_for_load = bounded


def small_parts(max_bytes: int) -> None:
    """Cap the part size below the 1 MiB minimum of part_max_mb, so a small batch has several parts."""
    from api2snow.staging import S3BatchWriter

    original = S3BatchWriter.__init__
    signature = inspect.signature(original)

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        bound.arguments["max_part_bytes"] = min(bound.arguments["max_part_bytes"], max_bytes)
        original(*bound.args, **bound.kwargs)

    S3BatchWriter.__init__ = init  # type: ignore[method-assign]


def small_pages(records: int) -> None:
    """Cap the page size a source asks for (the largest its API allows, 500, by default), so that a small
    batch still spans several pages and so several parts."""
    from api2snow.sources.base import Source

    original = Source.page_size_for

    @functools.wraps(original)
    def capped(self: Any, settings: Any) -> int:
        return min(original(self, settings), records)

    Source.page_size_for = capped  # type: ignore[method-assign]


def quiet() -> None:
    warnings.filterwarnings("ignore")
    for name in ("fakesnow", "uvicorn", "snowflake", "werkzeug", "moto", "botocore", "api2snow"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


# ---- the run -----------------------------------------------------------------------------------------


def start_stack(home: Path, anchor: datetime, clock: datetime) -> Any:
    from api2snow_cli.local.mock_apis.server import MockApiConfig
    from api2snow_cli.local.stack import LocalStack, StackOptions

    mock = MockApiConfig(
        seed=SEED, anchor=anchor, clock_start=clock, follow_real_time=False, history_hours=HISTORY_HOURS
    )
    return LocalStack(StackOptions(home=home, mock=mock)).start()


def let_time_pass(stack: Any, home: Path, moment: datetime) -> None:
    """Age the ledger by the mock time since the previous run in this home, then remember `moment`.

    The warehouse's clock (now in UTC, which stamps STARTED_AT and against which the age of a batch
    is measured) is real time: it does not jump an hour with the mock clock. Shifting the ledger's own
    timestamps back makes a batch left by a killed run as old as it would be at the next hourly run.
    """
    state = home / CLOCK_FILE
    if state.exists():
        previous = datetime.fromisoformat(json.loads(state.read_text())["mock_now"])
        seconds = int((moment - previous).total_seconds())
        if seconds > 0:
            shifts = ", ".join(f"{c} = DATEADD('second', -{seconds}, {c})" for c in LEDGER_TIMES)
            stack.session.sql(f"UPDATE {stack.database}.OPS.BATCH_LEDGER SET {shifts}").collect()
    scratch = state.with_suffix(".tmp")
    scratch.write_text(json.dumps({"mock_now": moment.isoformat()}))
    os.replace(scratch, state)


def run_at(stack: Any, moment: datetime) -> list[str]:
    """One graph run with the mock clock at `moment`; what went wrong, the failed tasks first."""
    stack.mock_apis.clock.set(moment)
    _, runs = stack.run_graph()
    failed = [f"{r.name}: {r.error}" for r in runs if r.state == "FAILED"]
    other = [r.name.rsplit(".", 1)[-1] for r in runs if r.state not in ("FAILED", "SUCCEEDED")]
    return failed + ([f"not run: {', '.join(other)}"] if other else [])


# ---- the snapshot the parent compares ----------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-comparable: timestamps as ISO text, numbers rounded past float summation-order noise."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else _plain(float(value))
    if isinstance(value, float):
        return float(f"{value:.12g}")
    return value


def _rows(stack: Any, query: str, drop: Collection[str] = ()) -> list[dict[str, Any]]:
    rows = stack.session.sql(query).collect()
    plain = [{k: _plain(v) for k, v in r.as_dict().items() if k not in drop} for r in rows]
    return sorted(plain, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def snapshot(stack: Any) -> dict[str, Any]:
    """What the sweep asserts on: CLEAN and ANALYTICS content, watermarks, ledger, RAW files, S3 keys."""
    db = stack.database
    tables = {t: _rows(stack, f"SELECT * FROM {db}.{t}", RUN_COLUMNS) for t in (*CLEAN_KEYS, *ANALYTICS)}
    watermarks = _rows(stack, f"SELECT source, watermark FROM {db}.OPS.WATERMARKS")
    ledger = _rows(
        stack,
        "SELECT batch_id, source, status, max_updated_at, manifest::STRING AS manifest "
        f"FROM {db}.OPS.BATCH_LEDGER",
    )
    for row in ledger:
        row["MANIFEST"] = json.loads(row["MANIFEST"]) if row["MANIFEST"] else None
    per_file = "GROUP BY file_name, batch_id"
    raw_files = {
        table: _rows(stack, f"SELECT file_name, batch_id, COUNT(*) AS n FROM {db}.{table} {per_file}")
        for table in RAW_TABLES
    }
    return {
        "tables": tables,
        "watermarks": {r["SOURCE"]: r["WATERMARK"] for r in watermarks},
        "ledger": ledger,
        "raw_files": raw_files,
        "s3_keys": s3_keys(stack),
    }


def s3_keys(stack: Any) -> list[str]:
    client, bucket = stack.s3.client(), stack.project.env["bucket"]
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


# ---- entry point -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--anchor", type=datetime.fromisoformat, required=True)
    parser.add_argument(
        "--clock", type=datetime.fromisoformat, action="append", required=True, help="one graph run each"
    )
    parser.add_argument("--kill-at", choices=sorted(KILL_POINTS))
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--dump", type=Path, help="write a snapshot after each run here (a JSON list)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Graph runs at each --clock in turn, stopping at the first that fails; 1 when one failed."""
    args = parse_args(argv)
    quiet()
    bound_wait_for_load()
    small_parts(PART_BYTES)
    small_pages(PAGE_RECORDS)
    if args.kill_at:
        arm(args.kill_at, args.nth)
    stack = start_stack(args.home, args.anchor, args.clock[0])
    failed: list[str] = []
    try:
        follow_mock_clock(stack.mock_apis.clock.now)
        snapshots = []
        for moment in args.clock:
            let_time_pass(stack, args.home, moment)
            failed = [f"run at {moment.isoformat()}: {line}" for line in run_at(stack, moment)]
            if failed:
                break
            if args.dump:
                snapshots.append(snapshot(stack))
        if args.dump:
            args.dump.write_text(json.dumps(snapshots, indent=1, sort_keys=True))
    finally:
        stack.stop()
    for line in failed:
        print(f"crash-sweep: task failed: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
