"""'Now' in SQL as the pipeline stores every timestamp: naive UTC, whatever the session's TIMEZONE.

`CURRENT_TIMESTAMP()::TIMESTAMP_NTZ` would be wall time in the session's time zone (an account's default is
America/Los_Angeles) next to UTC event times; SYSDATE() loses its UTC inside a MERGE on the local warehouse.
Every statement built in Python takes its "now" from here (tests/unit/test_utc_timestamps.py checks them).
"""

UTC_NOW = "CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ"
