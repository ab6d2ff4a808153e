"""Where each source stands: its watermark and newest batch, and whether it is current or catching up.

A source with a backlog stages one budget's worth per run (api2snow.budget); the ledger's COMPLETE and
REMAINING columns say how far the newest batch got and how much the API still declared. One query serves
the local warehouse and Snowflake (`status --connection`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


def source_progress_query(database: str) -> str:
    """The newest batch of every source (abandoned ones aside) with the source's watermark."""
    return f"""SELECT
    batches.source, wm.watermark, batches.batch_id, batches.status, batches.complete, batches.remaining,
    batches.fetched, batches.max_updated_at, batches.error_message
FROM {database}.OPS.BATCH_LEDGER AS batches
LEFT JOIN {database}.OPS.WATERMARKS AS wm ON wm.source = batches.source
WHERE batches.status <> 'ABANDONED' AND COALESCE(batches.kind, 'HOURLY') = 'HOURLY'
QUALIFY ROW_NUMBER() OVER (PARTITION BY batches.source ORDER BY batches.started_at DESC) = 1
ORDER BY batches.source"""


@dataclass
class SourceProgress:
    source: str
    state: str  # current, catching up, stuck, failed, in progress
    detail: str
    watermark: str | None
    last_batch: str
    last_batch_status: str
    remaining: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def source_progress(rows: list[Any]) -> list[SourceProgress]:
    return [_progress(row) for row in rows]


def _progress(row: Any) -> SourceProgress:
    status, remaining = row["STATUS"], row["REMAINING"]
    remaining = int(remaining) if remaining is not None else None
    if status == "FAILED" or (status == "STAGED" and row["ERROR_MESSAGE"]):
        state, detail = ("failed" if status == "FAILED" else "stuck"), str(row["ERROR_MESSAGE"] or "")
    elif status == "STARTED":
        state, detail = "in progress", "a batch is being fetched"
    elif row["COMPLETE"] is False:
        to_go = f"{remaining} records to go" if remaining is not None else "more to go"
        state, detail = "catching up", f"read up to {_text(row['MAX_UPDATED_AT'])}; {to_go}"
    else:
        state, detail = "current", f"newest batch read the source to its end ({row['FETCHED'] or 0} records)"
    return SourceProgress(
        source=row["SOURCE"],
        state=state,
        detail=detail,
        watermark=_text(row["WATERMARK"]),
        last_batch=row["BATCH_ID"],
        last_batch_status=status,
        remaining=remaining,
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat(sep=" ") if hasattr(value, "isoformat") else str(value)
