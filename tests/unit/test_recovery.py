"""Which batches an ingest closes, waits for, or re-opens (the decisions, apart from the warehouse)."""

from __future__ import annotations

import pytest
from api2snow import ledger
from api2snow.ledger import BatchRecord
from api2snow.recovery import DEAD_AFTER_SECONDS, _dead_reason


def batch(status: str, age: int | None = 60, error: str | None = None) -> BatchRecord:
    return BatchRecord("b", "api_b", status, 0, 0, None, {}, "", None, error, age)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (batch(ledger.FAILED), "abandoned: its extract failed"),
        (batch(ledger.STAGED), None),  # still expected to load: this run's refresh and wait finish it
        (batch(ledger.STAGED, error="x: Snowpipe failed"), "abandoned: it did not load (x: Snowpipe failed)"),
        (batch(ledger.STARTED, age=DEAD_AFTER_SECONDS - 1), None),  # its run may still be going
        (batch(ledger.STARTED, age=DEAD_AFTER_SECONDS), "abandoned: the process writing it died"),
    ],
)
def test_dead_reason(record, reason):
    assert _dead_reason(record) == reason
