"""Which batches an ingest closes, waits for, or re-opens (the decisions, apart from the warehouse)."""

from __future__ import annotations

import pytest
from api2snow import ledger
from api2snow.ledger import BatchRecord
from api2snow.recovery import DEAD_AFTER_SECONDS, _dead_reason
from api2snow.sqltime import loaded_since


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


class _Session:
    """Records statements; enough for abandon(), which only writes."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, list]] = []

    def sql(self, query: str, params: list | None = None):
        self.statements.append((query, params or []))
        return self

    def collect(self) -> list:
        return []


class _DeniedS3:
    def get_paginator(self, name: str):
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "ListObjectsV2")


def test_a_batch_whose_objects_cannot_be_removed_is_closed_all_the_same():
    from api2snow.recovery import abandon
    from api2snow.settings import Settings
    from api2snow.sources import get_source

    session = _Session()  # a batch of unknown start: the delete is bounded by nothing later than the epoch
    record = BatchRecord("b-1", "api_b", ledger.FAILED, 0, 0, None, {}, "source=api_b/dt=2026-11-30/hour=10/")
    settings = Settings(database="DB", values={"bucket": "landing"})
    abandon(session, settings, get_source("api_b"), record, "abandoned: its extract failed", _DeniedS3())
    deletes = [q for q, _ in session.statements if q.startswith("DELETE FROM")]
    ALL_LOADS = loaded_since(None)  # noqa: N806 - the bound every delete carries
    assert deletes == [
        f"DELETE FROM DB.RAW.API_B_EVENTS WHERE {ALL_LOADS} AND batch_id IN (?)",
        f"DELETE FROM DB.RAW.REJECTED_RECORDS WHERE {ALL_LOADS} AND batch_id IN (?)",
    ]
    [(update, params)] = [(q, p) for q, p in session.statements if q.startswith("UPDATE")]
    assert params[0] == ledger.ABANDONED
    assert params[1].startswith(
        "abandoned: its extract failed; its objects under source=api_b/dt=2026-11-30/"
    )
    assert "AccessDenied" in params[1]
