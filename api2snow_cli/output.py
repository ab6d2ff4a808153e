"""What `run`, `demo`, `up` and `sql` print: a short run summary people read, the same facts as JSON for
scripts, and query results that fit the terminal (a table, wrapped; or one record per block when too wide).

The summary is read from the run's TASK_HISTORY return values (the ingest, CLEAN and DQ procedures report
their counts there), so it shows what the run itself recorded, and the same code serves every command.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import asdict, dataclass
from typing import Any

from rich.markup import escape
from rich.table import Table

from .console import STATE_STYLE, console, rows_as_dicts
from .history import GraphRunStatus, parsed_return_value

CLI = ".venv/bin/api2snow"
INGEST_PREFIX = "INGEST_"


@dataclass
class SourceOutcome:
    """One source in one run: what its ingest fetched, staged and rejected, and what CLEAN merged."""

    source: str
    state: str
    fetched: int | None = None
    staged: int | None = None
    rejected: int | None = None
    duplicates: int | None = None
    merged: int | None = None
    requests: int | None = None
    retries: int | None = None
    throttled_429: int | None = None
    error: str | None = None


@dataclass
class DqOutcome:
    checks: int | None
    passed: int | None
    failed_error: list[str]
    failed_warn: list[str]
    error: str | None = None


def source_outcomes(status: GraphRunStatus) -> list[SourceOutcome]:
    clean = status.task("CLEAN")
    merged = _object(clean.return_value if clean else None).get("merged", {})
    outcomes = []
    for task in status.tasks:
        if not task.name.startswith(INGEST_PREFIX):
            continue
        value = _object(task.return_value)
        source = value.get("source") or task.name[len(INGEST_PREFIX) :].lower()
        counts = {k: value.get(k) for k in ("fetched", "staged", "rejected", "duplicates")}
        counts |= {k: value.get(k) for k in ("requests", "retries", "throttled_429")}
        rows_merged = merged.get(source, {}).get("rows_merged") if isinstance(merged, dict) else None
        outcomes.append(SourceOutcome(source, task.state, merged=rows_merged, error=task.error, **counts))
    return outcomes


def dq_outcome(status: GraphRunStatus) -> DqOutcome:
    dq, validate = status.task("DQ"), status.task("VALIDATE_DQ")
    value = _object(dq.return_value if dq else None)
    error = next((t.error for t in (dq, validate) if t is not None and t.state == "FAILED"), None)
    return DqOutcome(
        checks=value.get("checks"),
        passed=value.get("passed"),
        failed_error=list(value.get("failed_error") or []),
        failed_warn=list(value.get("failed_warn") or []),
        error=error,
    )


def run_report(status: GraphRunStatus) -> dict[str, Any]:
    """`run --format json`: the run (tasks with their return values as objects) plus the summary."""
    return {
        **status.to_dict(),
        "sources": [asdict(s) for s in source_outcomes(status)],
        "dq": asdict(dq_outcome(status)),
    }


def print_run_summary(status: GraphRunStatus) -> None:
    """The run in a few lines: its state and duration, one line per source, the DQ result (failures only),
    the tasks that did not succeed, and where to look next."""
    style = STATE_STYLE.get(status.state, "white")
    took = f" in {status.duration_s:.1f} s" if status.duration_s is not None else ""
    console.print(f"graph run {status.run_id} [{style}]{status.state}[/{style}]{took}", highlight=False)
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("source", "fetched", "staged", "rejected", "merged", "requests", "retries", "429s"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for item in source_outcomes(status):
        if item.state != "SUCCEEDED":
            state = f"[{STATE_STYLE.get(item.state, 'red')}]{item.state}[/]"
            table.add_row(item.source, state, *[""] * 6)
            continue
        numbers = (item.fetched, item.staged, item.rejected, item.merged, item.requests, item.retries)
        table.add_row(item.source, *(_n(v) for v in (*numbers, item.throttled_429)))
    console.print(table)
    dq = dq_outcome(status)
    if dq.checks is not None:
        failures = dq.failed_error + dq.failed_warn
        verdict = f", [red]{len(failures)} failed:[/red]" if failures else ""
        console.print(f"data quality: {dq.passed}/{dq.checks} checks passed{verdict}", highlight=False)
        for name in dq.failed_error:
            console.print(f"  [red]error[/red] {escape(name)}", highlight=False)
        for name in dq.failed_warn:
            console.print(f"  [yellow]warn[/yellow]  {escape(name)}", highlight=False)
    for task in status.tasks:
        if task.state in ("FAILED", "CANCELLED") and task.error:
            console.print(f"[red]{task.name} {task.state}[/red]: {escape(task.error)}", highlight=False)
    console.print(f"[dim]details: {CLI} status · {CLI} history[/dim]", highlight=False)


def _n(value: Any) -> str:
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _object(value: Any) -> dict[str, Any]:
    parsed = parsed_return_value(value) if isinstance(value, str) else value
    return parsed if isinstance(parsed, dict) else {}


# ---- sql results ---------------------------------------------------------------------------------------
MIN_COLUMN = 8  # narrowest a wrapped column gets before the result is shown one record per block


def print_result(rows: list[Any], fmt: str) -> None:
    dicts = rows_as_dicts(rows)
    if fmt == "json":
        from .console import print_json

        print_json(dicts)
    elif fmt == "csv":
        write_csv(dicts)
    elif not dicts:
        console.print("[dim]no rows[/dim]")
    else:
        print_fitted(dicts)
        console.print(f"[dim]{len(dicts)} row{'s' if len(dicts) != 1 else ''}[/dim]")


def write_csv(dicts: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    if dicts:
        writer = csv.DictWriter(buffer, fieldnames=list(dicts[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in dicts)
    sys.stdout.write(buffer.getvalue())


def print_fitted(dicts: list[dict[str, Any]]) -> None:
    """A table when the columns fit the terminal at MIN_COLUMN characters or more (long values wrap),
    otherwise one block per record, `column  value`, each value elided to the line."""
    columns = list(dicts[0])
    width = console.width
    needed = sum(min(MIN_COLUMN, max(len(c), 1)) + 3 for c in columns) + 1
    if needed <= width:
        table = Table(show_lines=False)
        for column in columns:
            table.add_column(escape(column), overflow="fold", min_width=min(MIN_COLUMN, len(column)))
        for row in dicts:
            table.add_row(*(escape(_cell(v)) for v in row.values()))
        console.print(table)
        return
    label = max(len(c) for c in columns)
    room = max(10, width - label - 2)
    for number, row in enumerate(dicts, 1):
        console.print(f"[dim]── record {number} ──[/dim]", highlight=False)
        for column, value in row.items():
            text = _cell(value).replace("\n", " ")
            if len(text) > room:
                text = text[: room - 1] + "…"
            console.print(f"[bold]{escape(column.ljust(label))}[/bold]  {escape(text)}", highlight=False)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
