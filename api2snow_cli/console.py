"""Terminal output: tables, the graph tree, JSON, and one-line errors."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from .history import GraphRunStatus, parsed_return_value

console = Console()
err_console = Console(stderr=True)
STATE_STYLE = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "CANCELLED": "yellow",
    "EXECUTING": "cyan",
    "NOT_RUN": "dim",
}


def to_jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def rows_as_dicts(rows: list[Any]) -> list[dict[str, Any]]:
    return [{k: to_jsonable(v) for k, v in row.as_dict().items()} for row in rows]


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=to_jsonable))


def print_rows(rows: list[Any], title: str | None = None) -> None:
    dicts = rows_as_dicts(rows)
    table = Table(title=title, show_lines=False)
    for column in dicts[0].keys() if dicts else []:
        table.add_column(column)
    for row in dicts:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table if dicts else f"[dim]{title + ': ' if title else ''}no rows[/dim]")


def _label(task: Any) -> str:
    style = STATE_STYLE.get(task.state, "white")
    duration = f" {task.duration_s:.1f}s" if task.duration_s is not None else ""
    attempt = f" (attempt {task.attempt})" if task.attempt > 1 else ""
    text = f"[bold]{task.name}[/bold] [{style}]{task.state}[/{style}]{duration}{attempt}"
    if task.error:
        text += f"\n  [red]{escape(task.error)}[/red]"
    elif task.return_value:
        text += f"\n  [dim]{escape(describe_value(task.return_value))}[/dim]"
    return text


def describe_value(value: Any) -> str:
    """A task's return value for people: `key value` pairs (nested keys joined with a dot, lists counted),
    so the counts that matter are not lost in ids and quotes."""
    parsed = parsed_return_value(value) if isinstance(value, str) else value
    if not isinstance(parsed, dict):
        return str(parsed)
    return " · ".join(f"{key} {text}" for key, text in _pairs(parsed, "") if text != "")


def _pairs(value: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, item in value.items():
        name = f"{prefix}{key}"
        if key in ("run_id", "batch_id") or item is None:
            continue
        if isinstance(item, dict):
            pairs += _pairs(item, f"{name}.") if item else []
        elif isinstance(item, list) and item:
            short = all(isinstance(x, str) and len(x) < 40 for x in item) and len(item) <= 3
            pairs.append((name, ", ".join(item) if short else f"{len(item)} items"))
        else:
            pairs.append((name, str(item)))
    return pairs


def print_graph(status: GraphRunStatus) -> None:
    """The graph as a tree: each task under its first predecessor; the finalizer under the root."""
    if status.run_id is None:
        console.print("No graph run yet: run `.venv/bin/api2snow run`")
        return
    style = STATE_STYLE.get(status.state, "white")
    note = f"scheduled {status.scheduled_time}"
    note += "; in progress" if status.state == "EXECUTING" else ""
    tree = Tree(f"graph run {status.run_id} [{style}]{status.state}[/{style}] ({note})", highlight=False)
    nodes: dict[str, Tree] = {}
    for task in status.tasks:
        parent = nodes.get(task.after[0]) if task.after else None
        extra = f" [dim](after {', '.join(task.after[1:])} too)[/dim]" if len(task.after) > 1 else ""
        nodes[task.name] = (parent or tree).add(_label(task) + extra)
    console.print(tree)
    console.print(timeline(status))


def timeline(status: GraphRunStatus, width: int = 48) -> Table:
    """The run as bars on one time axis: when each task started and how long it took, so the tasks that ran
    side by side and the ones the time went to stand out. A task still running gets an open bar."""
    ran = [t for t in status.tasks if t.started_s is not None]
    span = max((t.started_s + (t.duration_s or 0.0) for t in ran), default=0.0) or 1.0
    table = Table(title=f"timeline ({span:.1f} s)", show_lines=False, box=None, pad_edge=False)
    for column, justify in (("task", "left"), ("start", "right"), ("s", "right"), ("", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for task in status.tasks:
        table.add_row(task.name, *_timeline_cells(task, span, width))
    return table


def _timeline_cells(task: Any, span: float, width: int) -> tuple[str, str, str]:
    if task.started_s is None:
        return "", "", f"[dim]{task.state.lower().replace('_', ' ')}[/dim]"
    begin = min(round(task.started_s / span * width), width - 1)  # a task started last still gets a column
    length = min(max(1, round((task.duration_s or 0.0) / span * width)), width - begin)
    style = STATE_STYLE.get(task.state, "white")
    bar = " " * begin + f"[{style}]" + ("█" * length if task.duration_s is not None else "▶") + f"[/{style}]"
    duration = f"{task.duration_s:.1f}" if task.duration_s is not None else "…"
    return f"{task.started_s:.1f}", duration, bar


def print_sources(sources: list[Any]) -> None:
    """One line per source: current, catching up (how far, how much left), stuck or failed."""
    if not sources:
        return
    table = Table(title="sources", show_lines=False)
    for column in ("source", "state", "watermark", "detail"):
        table.add_column(column)
    for item in sources:
        style = {"current": "green", "catching up": "yellow"}.get(item.state, "red")
        table.add_row(item.source, f"[{style}]{item.state}[/{style}]", item.watermark or "", item.detail)
    console.print(table)


def fail(message: str) -> None:
    """One line on stderr (soft-wrapped: a script reads it whole)."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
