"""Small queries the integration tests share."""

from __future__ import annotations

from typing import Any


def scalar(stack: Any, query: str, params: list[Any] | None = None) -> Any:
    row = stack.session.sql(query, params=params).collect()[0]
    return row[0]


def clean_versions(stack: Any, table: str) -> dict[str, tuple]:
    rows = stack.session.sql(
        f"SELECT event_id, updated_at, merged_at FROM {stack.database}.CLEAN.{table}"
    ).collect()
    return {r["EVENT_ID"]: (r["UPDATED_AT"], r["MERGED_AT"]) for r in rows}


def expected_ids(stack: Any, source: str, truth: dict) -> dict[str, Any]:
    """Ground-truth ids in the normalised form CLEAN keys on (API B ids get a `b-` prefix)."""
    prefix = "b-" if source == "api_b" else ""
    return {f"{prefix}{record_id}": updated.replace(tzinfo=None) for record_id, updated in truth.items()}


def batches_of_run(stack: Any, run_id: str) -> dict[str, Any]:
    rows = stack.session.sql(
        f"SELECT * FROM {stack.database}.OPS.BATCH_LEDGER WHERE run_id = ?", params=[run_id]
    ).collect()
    return {r["SOURCE"]: r for r in rows}
