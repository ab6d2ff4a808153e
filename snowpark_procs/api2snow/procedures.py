"""Stored procedure handlers, one per procedure entity in snowflake.yml (the ingest ones made per source).

Each handler is thin: it resolves settings and the platform, calls one module, sets the task's return
value to a short JSON summary (what Snowsight shows on the graph) and returns the same summary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, NoReturn

from . import analyst, arguments, layers, loading, quality, redaction, reporting
from .backfill import refuse_full_read, run_backfill
from .ingest import run_ingest
from .platform import Platform, get_platform
from .settings import Settings, load_settings
from .sources import SOURCES, get_source
from .window import TimeWindow

log = logging.getLogger(__name__)  # in Snowflake, records reach the event table (LOG_LEVEL on the database)


def _run(session: Any, work: Callable[[Platform, Settings], dict[str, Any]]) -> dict[str, Any]:
    """Run one handler's work with a fresh secret registry: whatever it returns or raises is redacted."""
    with redaction.call_scope():
        redaction.install_log_filter()
        try:
            platform = get_platform()
            settings = load_settings(session, platform)
            summary = redaction.redact_value(work(platform, settings))
            value = redaction.redact(json.dumps(summary, default=str, separators=(",", ":")))
            platform.set_return_value(session, value)
            log.info("done: %s", value[:4000])
            return summary
        except Exception as exc:
            _raise_scrubbed(exc)


def _run_table(
    session: Any, columns: tuple[tuple[str, str], ...], work: Callable[[Platform, Settings], list[tuple]]
) -> Any:
    """Run a table procedure's work: its rows, redacted, as the DataFrame of its declared columns."""
    with redaction.call_scope():
        redaction.install_log_filter()
        try:
            platform = get_platform()
            settings = load_settings(session, platform)
            rows = [tuple(redaction.redact_value(value) for value in row) for row in work(platform, settings)]
            log.info("done: %d row(s)", len(rows))
            return analyst.table_result(session, columns, rows)
        except Exception as exc:
            _raise_scrubbed(exc)


def _raise_scrubbed(exc: Exception) -> NoReturn:
    """Raise `exc` with every secret of the call masked (a new RuntimeError when its text hides one)."""
    safe = redaction.scrubbed(exc)
    log.error("failed: %s: %s", type(safe).__name__, str(safe)[:4000])
    if safe is exc:
        raise exc
    raise safe from None


def _ingest_handler(name: str) -> Callable[[Any], dict[str, Any]]:
    """The handler of INGEST_<NAME>: one batch of source `name`, with only its own EAI and secrets."""

    def handler(session: Any) -> dict[str, Any]:
        return _run(session, lambda p, s: run_ingest(session, p, s, get_source(name)))

    handler.__name__ = handler.__qualname__ = f"ingest_{name}"
    handler.__doc__ = f"INGEST_{name.upper()}: one ingest batch of source {name!r}, staged on S3."
    return handler


# One module-level `ingest_<source>` per declared source (snowflake.yml's handler
# api2snow.procedures.ingest_<source>), made from the declarations rather than written out per source.
for _name in SOURCES:
    globals()[f"ingest_{_name}"] = _ingest_handler(_name)


def _backfill_handler(name: str) -> Callable[[Any, Any, Any], dict[str, Any]]:
    """The handler of BACKFILL_<NAME>, which OPS.BACKFILL calls: one window of the source, with its EAI and
    secrets."""

    def handler(session: Any, from_ts: Any, to_ts: Any) -> dict[str, Any]:
        def work(platform: Platform, settings: Settings) -> dict[str, Any]:
            window = TimeWindow.checked(from_ts, to_ts, settings.get_int("backfill_max_window_hours"))
            return run_backfill(session, platform, settings, get_source(name), window)

        return _run(session, work)

    handler.__name__ = handler.__qualname__ = f"backfill_{name}"
    handler.__doc__ = f"BACKFILL_{name.upper()}: re-ingest a time window of source {name!r} and merge it."
    return handler


# And `backfill_<source>` for each source read by time (snowflake.yml's BACKFILL_<SOURCE>).
for _name, _source in SOURCES.items():
    if _source.incremental:
        globals()[f"backfill_{_name}"] = _backfill_handler(_name)


def pipeline_status(session: Any) -> Any:
    """OPS.PIPELINE_STATUS(): one row per source (analyst.PIPELINE_STATUS_COLUMNS, docs/ANALYSTS.md)."""
    return _run_table(
        session, analyst.PIPELINE_STATUS_COLUMNS, lambda p, s: analyst.pipeline_status(session, s)
    )


def rejects(session: Any, source: str, since: str) -> Any:
    """OPS.REJECTS(source, since): the source's rejected records loaded since `since`, with reasons."""
    source = arguments.one_of("source", source, SOURCES)
    start = analyst.check_since(since)
    return _run_table(
        session, analyst.REJECTS_COLUMNS, lambda p, s: analyst.rejects(session, s, source, start)
    )


def backfill(session: Any, source: str, from_ts: str, to_ts: str) -> dict[str, Any]:
    """OPS.BACKFILL(source, from_ts, to_ts): checks the call, then CALLs the source's BACKFILL_<SOURCE>, which
    holds that source's integration and secret (this procedure holds none)."""
    source = arguments.one_of("source", source, SOURCES)
    refuse_full_read(get_source(source))

    def work(platform: Platform, settings: Settings) -> dict[str, Any]:
        window = TimeWindow.checked(from_ts, to_ts, settings.get_int("backfill_max_window_hours"))
        args = [window.start.isoformat(), window.end.isoformat()]
        return platform.call_procedure(session, settings.table(f"OPS.BACKFILL_{source.upper()}"), args)

    return _run(session, work)


def refresh_pipe(session: Any, source: str) -> dict[str, Any]:
    source = arguments.one_of("source", source, SOURCES)
    return _run(session, lambda p, s: loading.refresh(session, p, s, source))


def wait_for_load(session: Any, timeout_seconds: int = 900) -> dict[str, Any]:
    # At most 1 h, the task timeout in sql/06 (USER_TASK_TIMEOUT_MS, the root's and Snowflake's default): a
    # longer wait would be cut off by the task instead of noting the missing parts in the ledger.
    timeout = arguments.int_in_range("timeout_seconds", timeout_seconds, 1, 3600)

    def work(platform: Platform, settings: Settings) -> dict[str, Any]:
        poll = settings.get_float("load_poll_seconds")
        return loading.wait_for_load(session, platform, settings, float(timeout), poll_s=poll)

    return _run(session, work)


def build_clean(session: Any) -> dict[str, Any]:
    return _run(session, lambda p, s: layers.build_clean(session, s))


def build_analytics(session: Any) -> dict[str, Any]:
    return _run(session, lambda p, s: {"daily_summary": layers.refresh_daily_summary(session, s)})


def run_dq(session: Any) -> dict[str, Any]:
    return _run(session, lambda p, s: quality.run_checks(session, s, p.run_id(session)))


def reconcile(session: Any) -> dict[str, Any]:
    return _run(session, lambda p, s: quality.reconcile(session, s, p.run_id(session)))


def validate_dq(session: Any) -> dict[str, Any]:
    return _run(session, lambda p, s: quality.validate(session, s, p.run_id(session)))


def publish_metrics(session: Any) -> dict[str, Any]:
    return _run(session, lambda p, s: reporting.publish_metrics(session, s, p.run_id(session)))


def finalize_run(session: Any) -> dict[str, Any]:
    def work(platform: Platform, settings: Settings) -> dict[str, Any]:
        return reporting.finalize_run(session, platform, settings, platform.run_id(session))

    return _run(session, work)
