"""Small queries the integration tests share."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
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


def load_batch(stack: Any, source: str, payloads: list[dict[str, Any]]) -> str:
    """A batch of `source` as ingest + Snowpipe leave it, LOADED: its ledger row and its RAW rows (one part).

    For tests that need particular records (updates that move an event, say) without serving them from a
    mock API; BUILD_CLEAN then merges it like any other batch.
    """
    import json
    import uuid
    from datetime import UTC, datetime

    from api2snow.sources import get_source

    db, now = stack.database, datetime.now(UTC)
    batch_id = str(uuid.uuid4())
    key = f"source={source}/dt={now:%Y-%m-%d}/hour={now:%H}/batch_id={batch_id}/part-0000.jsonl.gz"
    manifest = {"parts": [{"key": key, "rows": len(payloads)}], "rejects": []}
    utc_now = "CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ"
    stack.session.sql(
        f"INSERT INTO {db}.OPS.BATCH_LEDGER (batch_id, source, run_id, status, fetched, staged, rejected, "
        "duplicates, parts, manifest, started_at, staged_at, loaded_at, complete) "
        f"SELECT ?, ?, 'test', 'LOADED', ?, ?, 0, 0, 1, PARSE_JSON(?), {utc_now}, {utc_now}, {utc_now}, TRUE",
        params=[batch_id, source, len(payloads), len(payloads), json.dumps(manifest)],
    ).collect()
    rows = ", ".join("(?, ?)" for _ in payloads)
    params: list[Any] = []
    for number, payload in enumerate(payloads):
        params += [json.dumps(payload, default=str), number]
    stack.session.sql(
        f"INSERT INTO {db}.{get_source(source).raw_table} (payload, file_name, file_row_number, batch_id, "
        f"loaded_at) SELECT PARSE_JSON(column1), ?, column2, ?, CURRENT_TIMESTAMP() FROM VALUES {rows}",
        params=[key, batch_id, *params],
    ).collect()
    return batch_id


def failing(handler: Callable[..., Any], times: int) -> Callable[..., Any]:
    """`handler`, raising on its first `times` calls (a transient fault a retry cures)."""
    calls = 0

    def flaky(session: Any, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= times:
            raise RuntimeError(f"transient fault {calls}")
        return handler(session, *args)

    return flaky
