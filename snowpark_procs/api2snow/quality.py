"""Data-quality gate: record the checks under the run id, then judge them.

Two sets of the same checks, so an hourly run costs what its new data costs:
- RUN_DQ (hourly) checks the batches merged since the last graph run checked them (per-batch checks: their
  RAW rows, and the CLEAN rows of their keys, reached through the same prunable bounds as the merge), plus
  freshness and volume read from bounded windows and row counts the warehouse keeps as table metadata.
- RECONCILE (daily, and on demand) records ANALYTICS.VW_DQ_CHECKS, the same checks over the full history
  (sql/05_dq.sql, readable by analysts), plus ANL_DAILY_SUMMARY against a fresh GROUP BY over CLEAN.
VALIDATE_DQ turns a graph run's error-severity failures into a failed task.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import layers, ledger
from .ledger import BatchRecord
from .platform import is_graph_run
from .reporting import RUN_DAYS
from .settings import Settings
from .sources import SOURCES, Source
from .sources.entities import ACCEPTED_VALUES, ANALYSED_ENTITY, EVENT_FIELDS, bad_value_counts
from .sqltime import UTC_NOW

RESULT_COLUMNS = (
    "run_id, check_name, source, severity, observed_value, threshold, passed, details, checked_at"
)
# How far back a manual VALIDATE_DQ looks for the newest run's results (a run's own: reporting.RUN_DAYS).
LATEST_RESULTS_DAYS = 7
# freshness_event_minutes reads the events of this many recent days: a source whose newest event is older
# fails the check (its threshold is one day) with no observed value.
EVENT_FRESHNESS_DAYS = 2


class DataQualityError(RuntimeError):
    """At least one error-severity check failed."""


@dataclass(frozen=True)
class Check:
    """One check's verdict, as a DQ_CHECK_RESULTS row."""

    name: str
    source: str
    severity: str
    observed: float | None
    threshold: float
    passed: bool
    details: str


def run_checks(session: Any, settings: Settings, run_id: str) -> dict[str, Any]:
    """The hourly checks of every events source, recorded under `run_id`. A graph run marks the batches it
    checked (DQ_RUN_ID), so the next one checks only newer ones; a manual RUN_DQ leaves them to it."""
    checked: list[BatchRecord] = []
    results: list[Check] = []
    for source in analysed_sources():
        batches = batches_to_check(session, settings, source.name, run_id)
        results += source_checks(session, settings, source, batches)
        checked += batches
    record(session, settings, run_id, results)
    if is_graph_run(run_id) and checked:
        where, params = ledger.by_id(checked)
        session.sql(
            f"UPDATE {settings.table('OPS.BATCH_LEDGER')} SET dq_run_id = ? WHERE {where}",
            params=[run_id, *params],
        ).collect()
    return {**summarize(session, settings, run_id), "batches_checked": len(checked)}


def reconcile(session: Any, settings: Settings, run_id: str) -> dict[str, Any]:
    """The full-history reconciliation, off the hourly path: merge what the hourly lookback no longer sees
    (a batch loaded long ago), refresh the summary days that queued, then record every check of
    VW_DQ_CHECKS under `run_id`, and fail loudly when an error-severity one failed."""
    layers.build_clean(session, settings, recent=False)
    layers.refresh_daily_summary(session, settings)
    session.sql(
        f"INSERT INTO {settings.table('ANALYTICS.DQ_CHECK_RESULTS')} ({RESULT_COLUMNS}) "
        "SELECT ?, check_name, source, severity, observed_value, threshold, passed, details, "
        f"{UTC_NOW} FROM {settings.table('ANALYTICS.VW_DQ_CHECKS')}",
        params=[run_id],
    ).collect()
    summary = summarize(session, settings, run_id)
    if summary["failed_error"]:
        raise DataQualityError(
            f"reconciliation {run_id}: {len(summary['failed_error'])} error-severity check(s) failed over "
            f"the full history: {', '.join(summary['failed_error'])} "
            "(ANALYTICS.DQ_CHECK_RESULTS has the details)"
        )
    return summary


def analysed_sources() -> list[Source]:
    return [s for s in SOURCES.values() if s.declaration.entity == ANALYSED_ENTITY]


def batches_to_check(session: Any, settings: Settings, source: str, run_id: str) -> list[BatchRecord]:
    """MERGED batches of `source` within the ledger lookback that no graph run has checked (or this one
    has: a retry in the same run group checks them again)."""
    return [
        b
        for b in ledger.batches(session, settings, ledger.MERGED, source)
        if b.dq_run_id is None or b.dq_run_id == run_id
    ]


def source_checks(
    session: Any, settings: Settings, source: Source, batches: list[BatchRecord]
) -> list[Check]:
    """Every hourly check of one events source."""
    name = source.name
    freshness = _freshness(session, settings, source)
    checks = [
        Check(
            "freshness_load_minutes",
            name,
            "error",
            freshness["load"],
            120,
            _at_most(freshness["load"], 120),
            "minutes since a batch of the source was last confirmed loaded (empty batches count)",
        ),
        Check(
            "freshness_event_minutes",
            name,
            "warn",
            freshness["event"],
            1440,
            _at_most(freshness["event"], 1440),
            "minutes since the newest event occurred",
        ),
        Check(
            "volume_clean_rows",
            name,
            "error",
            freshness["rows"],
            1,
            freshness["rows"] >= 1,
            "CLEAN holds at least one row",
        ),
        Check(
            "volume_last_24h",
            name,
            "warn",
            freshness["last_24h"],
            1,
            freshness["last_24h"] >= 1,
            "events that occurred in the last 24 hours",
        ),
        Check(
            "load_stuck",
            name,
            "error",
            freshness["stuck"],
            0,
            freshness["stuck"] == 0,
            "staged batches Snowpipe refused or did not load in time "
            "(OPS.BATCH_LEDGER.ERROR_MESSAGE says why)",
        ),
    ]
    return checks + batch_checks(session, settings, source, batches)


def batch_checks(session: Any, settings: Settings, source: Source, batches: list[BatchRecord]) -> list[Check]:
    """The checks of the batches' rows: RAW against the ledger, CLEAN against RAW, CLEAN's values."""
    stats = _batch_stats(session, settings, source, batches)
    scope = f"the {len(batches)} batch(es) merged since the last check"
    name, rows = source.name, stats["clean_rows"]
    checks = [
        Check(
            f"null_rate_{field}",
            name,
            "error",
            _share(stats[f"null_{field}"], rows),
            0,
            stats[f"null_{field}"] == 0,
            f"share of CLEAN rows of {scope} where a required column is NULL",
        )
        for field in _required_fields()
    ]
    checks += [
        Check(
            f"accepted_values_{field}",
            name,
            "warn",
            stats[f"bad_{field}"],
            0,
            stats[f"bad_{field}"] == 0,
            f"CLEAN rows of {scope} whose {field.upper()} is outside the accepted list",
        )
        for field in ACCEPTED_VALUES
    ]
    staged = sum(b.staged for b in batches)
    return checks + [
        Check(
            "unique_event_id",
            name,
            "error",
            rows - stats["clean_ids"],
            0,
            rows == stats["clean_ids"],
            f"CLEAN rows beyond one per id, among the ids of {scope}",
        ),
        Check(
            "reconcile_raw_to_clean",
            name,
            "error",
            stats["unmerged"],
            0,
            stats["unmerged"] == 0,
            f"ids of {scope} without their latest version in CLEAN",
        ),
        Check(
            "reconcile_staged_to_raw",
            name,
            "error",
            staged - stats["raw_rows"],
            0,
            staged == stats["raw_rows"],
            f"rows staged by {scope} minus their rows in RAW",
        ),
    ]


def _required_fields() -> list[str]:
    """The event fields whose NULL rate is checked: the id, the camera, the category and both times."""
    required = {f.name for f in EVENT_FIELDS if f.required}
    return [f for f in ("event_id", "camera_id", "category", "occurred_at", "updated_at") if f in required]


def _batch_stats(
    session: Any, settings: Settings, source: Source, batches: list[BatchRecord]
) -> dict[str, int]:
    """Counts over the batches' RAW rows and the CLEAN rows of their keys (zero for no batch)."""
    if not batches:
        zero = ["raw_rows", "clean_rows", "clean_ids", "unmerged"]
        zero += [f"null_{f}" for f in _required_fields()] + [f"bad_{f}" for f in ACCEPTED_VALUES]
        return dict.fromkeys(zero, 0)
    target = layers.CleanTarget(source.name, source.staging_view, source.clean_table, source.clean_key)
    delta = layers.Delta(target, tuple(batches))
    key, version = target.key, target.version
    view, table = settings.table(target.staging_view), settings.table(target.table)
    bound = layers.key_bound(session, settings, delta, f"tgt.{key}")
    latest = (
        f"SELECT stg.{key} AS k, MAX(stg.{version}) AS v, COUNT(*) AS n FROM {view} AS stg "
        f"WHERE {delta.where()} GROUP BY stg.{key}"
    )
    # CLEAN per key within the bound (the delta's key ranges), joined to the delta's keys: one read of each
    per_key = ", ".join(
        [f"COUNT_IF(tgt.{f} IS NULL) AS null_{f}" for f in _required_fields()] + bad_value_counts("tgt")
    )
    clean = (
        f"SELECT tgt.{key} AS k, COUNT(*) AS copies, MAX(tgt.{version}) AS v, {per_key} "
        f"FROM {table} AS tgt WHERE {bound} GROUP BY tgt.{key}"
    )
    sums = ", ".join(
        f"COALESCE(SUM(c.{name}), 0) AS {name}"
        for name in [*(f"null_{f}" for f in _required_fields()), *(f"bad_{f}" for f in ACCEPTED_VALUES)]
    )
    row = session.sql(
        f"SELECT SUM(delta.n) AS raw_rows, COUNT_IF(c.k IS NULL OR c.v < delta.v) AS unmerged, "
        f"COALESCE(SUM(c.copies), 0) AS clean_rows, COUNT(c.k) AS clean_ids, {sums} "
        f"FROM ({latest}) AS delta LEFT JOIN ({clean}) AS c ON c.k = delta.k"
    ).collect()[0]
    return {name.lower(): int(value or 0) for name, value in row.as_dict().items()}


def _freshness(session: Any, settings: Settings, source: Source) -> dict[str, Any]:
    """Freshness and volume of a source from bounded reads: the ledger within its lookback, the last days'
    events, and the CLEAN row count (table metadata in Snowflake; statistics locally)."""
    table = settings.table(source.clean_table)
    batch = session.sql(
        # hourly batches only: a backfill's load says nothing about whether the hourly ingest keeps up
        "SELECT DATEDIFF('minute', MAX(CASE WHEN status IN ('LOADED', 'MERGED') "
        f"AND COALESCE(kind, '{ledger.HOURLY}') = '{ledger.HOURLY}' THEN loaded_at END), "
        f"{UTC_NOW}) AS load_minutes, COUNT_IF(status = 'STAGED' AND error_message IS NOT NULL) AS stuck "
        f"FROM {settings.table('OPS.BATCH_LEDGER')} WHERE {ledger.lookback(settings)} AND source = ?",
        params=[source.name],
    ).collect()[0]
    events = session.sql(
        f"SELECT DATEDIFF('minute', MAX(occurred_at), {UTC_NOW}) AS event_minutes, "
        f"COUNT_IF(occurred_at >= DATEADD('hour', -24, {UTC_NOW})) AS last_24h FROM {table} "
        f"WHERE occurred_at >= DATEADD('day', {-EVENT_FRESHNESS_DAYS}, {UTC_NOW})"
    ).collect()[0]
    rows = session.sql(f"SELECT COUNT(*) AS n FROM {table}").collect()[0]["N"]
    return {
        "load": batch["LOAD_MINUTES"],
        "stuck": int(batch["STUCK"] or 0),
        "event": events["EVENT_MINUTES"],
        "last_24h": int(events["LAST_24H"] or 0),
        "rows": int(rows or 0),
    }


def _at_most(value: Any, threshold: float) -> bool:
    return value is not None and float(value) <= threshold


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def record(session: Any, settings: Settings, run_id: str, checks: Iterable[Check]) -> None:
    rows = list(checks)
    if not rows:
        return
    values = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?)" for _ in rows)
    params: list[Any] = []
    for c in rows:
        observed = None if c.observed is None else float(c.observed)
        params += [run_id, c.name, c.source, c.severity, observed, float(c.threshold), c.passed, c.details]
    session.sql(
        f"INSERT INTO {settings.table('ANALYTICS.DQ_CHECK_RESULTS')} ({RESULT_COLUMNS}) "
        "SELECT column1, column2, column3, column4, column5::FLOAT, column6::FLOAT, column7::BOOLEAN, "
        "column8, "
        f"{UTC_NOW} FROM VALUES {values}",
        params=params,
    ).collect()


def latest_run_id(session: Any, settings: Settings) -> str:
    """The run whose checks were recorded last within the last week (a graph run's, or a manual RUN_DQ's)."""
    rows = session.sql(
        f"SELECT run_id FROM {settings.table('ANALYTICS.DQ_CHECK_RESULTS')} "
        f"WHERE checked_at >= DATEADD('day', {-LATEST_RESULTS_DAYS}, {UTC_NOW}) "
        "ORDER BY checked_at DESC LIMIT 1"
    ).collect()
    if not rows:
        raise DataQualityError(
            f"no data-quality results to validate in the last {LATEST_RESULTS_DAYS} days: RUN_DQ has not run"
        )
    return rows[0]["RUN_ID"]


def summarize(session: Any, settings: Settings, run_id: str) -> dict[str, Any]:
    """The run's recorded checks, read within the last days only (a run's own results are recent)."""
    rows = session.sql(
        f"SELECT check_name, source, severity, passed, observed_value FROM "
        f"{settings.table('ANALYTICS.DQ_CHECK_RESULTS')} WHERE run_id = ? "
        f"AND checked_at >= DATEADD('day', {-RUN_DAYS}, {UTC_NOW}) ORDER BY check_name, source",
        params=[run_id],
    ).collect()
    failed = [r for r in rows if not r["PASSED"]]
    return {
        "run_id": run_id,
        "checks": len(rows),
        "passed": len(rows) - len(failed),
        "failed_error": [f"{r['CHECK_NAME']}[{r['SOURCE']}]" for r in failed if r["SEVERITY"] == "error"],
        "failed_warn": [f"{r['CHECK_NAME']}[{r['SOURCE']}]" for r in failed if r["SEVERITY"] == "warn"],
    }


def validate(session: Any, settings: Settings, run_id: str) -> dict[str, Any]:
    """Fail when an error-severity check of graph run `run_id` failed. Its own results, not the newest ones:
    an analyst's RUN_DQ during the run records under another run id and must not change the verdict. A
    manual CALL (outside a graph run) has no results of its own, so it judges the newest run's."""
    judged = run_id if is_graph_run(run_id) else latest_run_id(session, settings)
    summary = summarize(session, settings, judged)
    if summary["checks"] == 0:
        raise DataQualityError(f"run {summary['run_id']} recorded no data-quality checks")
    if summary["failed_error"]:
        raise DataQualityError(
            f"{len(summary['failed_error'])} error-severity data-quality check(s) failed: "
            + ", ".join(summary["failed_error"])
        )
    return summary
