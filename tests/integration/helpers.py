"""Small queries the integration tests share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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


def set_config(stack: Any, key: str, value: str) -> None:
    """A setting in OPS.PIPELINE_CONFIG, as an operator would change it."""
    table = f"{stack.database}.OPS.PIPELINE_CONFIG"
    stack.session.sql(f"DELETE FROM {table} WHERE config_key = ?", params=[key]).collect()
    stack.session.sql(
        f"INSERT INTO {table} (config_key, config_value) VALUES (?, ?)", params=[key, value]
    ).collect()


@contextlib.contextmanager
def notifications_lost(stack: Any, grace_seconds: int | None = None) -> Iterator[None]:
    """The bucket's event notification removed for the block, so auto-ingest hears of no new file (then put
    back). `grace_seconds` sets pipe_refresh_grace_seconds meanwhile (back to the default after)."""
    bucket = stack.project.env["bucket"]
    stack.s3.client().put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    if grace_seconds is not None:
        set_config(stack, "pipe_refresh_grace_seconds", str(grace_seconds))
    try:
        yield
    finally:
        stack.snowpipe_queue.subscribe(stack.s3.client())
        if grace_seconds is not None:
            set_config(stack, "pipe_refresh_grace_seconds", "120")
