"""'Now' in SQL as the pipeline stores every timestamp: naive UTC, whatever the session's TIMEZONE.

`CURRENT_TIMESTAMP()::TIMESTAMP_NTZ` would be wall time in the session's time zone (an account's default is
America/Los_Angeles) next to UTC event times; SYSDATE() loses its UTC inside a MERGE on the local warehouse.
Every statement built in Python takes its "now" from here (tests/unit/test_utc_timestamps.py checks them).
"""

from datetime import datetime, timedelta

UTC_NOW = "CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ"


# A batch's rows are loaded after it started (its files are written after its ledger row); an hour allows
# for the two clocks (the warehouse's CURRENT_TIMESTAMP and Snowpipe's scan time) differing.
LOAD_CLOCK_MARGIN = timedelta(hours=1)


def loaded_since(started_at: datetime | None, alias: str = "") -> str:
    """`loaded_at >= <instant>`: RAW rows of batches started at or after `started_at` (naive UTC).

    RAW's LOADED_AT (TIMESTAMP_LTZ) is compared with an instant written with its UTC offset, which reads the
    same in every session time zone; as a literal, so the warehouse prunes RAW by it (RAW is appended in
    load order) and a MERGE, which the local warehouse splits into several statements, can carry it.
    """
    start = (started_at or datetime(1970, 1, 1)).replace(tzinfo=None) - LOAD_CLOCK_MARGIN
    column = f"{alias}.loaded_at" if alias else "loaded_at"
    return f"{column} >= '{start.isoformat(sep=' ')}+00:00'::TIMESTAMP_TZ"
