"""Local stack: a bad setting or argument fails the CALL before any work, naming it, and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api2snow.arguments import ArgumentError
from api2snow.settings import ConfigError
from api2snow.sources import SOURCES

pytestmark = pytest.mark.integration


def _state(stack: Any) -> dict[str, list[tuple]]:
    """Everything a CALL could damage: the ledger, the watermarks and the staged objects."""
    db = stack.database
    ledger = stack.session.sql(f"SELECT * FROM {db}.OPS.BATCH_LEDGER ORDER BY batch_id").collect()
    marks = stack.session.sql(f"SELECT * FROM {db}.OPS.WATERMARKS ORDER BY source").collect()
    listing = stack.s3.client().list_objects_v2(Bucket=stack.project.env["bucket"])
    return {
        "ledger": [tuple(r) for r in ledger],
        "watermarks": [tuple(r) for r in marks],
        "s3": sorted(o["Key"] for o in listing.get("Contents", [])),
    }


@pytest.fixture(scope="module")
def loaded(stack) -> dict[str, list[tuple]]:
    """One good API B batch, staged, loaded and its watermark moved: the state a bad CALL must not touch."""
    db = stack.database
    stack.call(f"CALL {db}.OPS.INGEST_API_B()")
    stack.call(f"CALL {db}.OPS.REFRESH_PIPE('api_b')")
    stack.call(f"CALL {db}.OPS.WAIT_FOR_LOAD(60)")
    state = _state(stack)
    assert len(state["ledger"]) == 1 and len(state["watermarks"]) == 1 and state["s3"]
    return state


@pytest.fixture
def config(stack) -> Iterator[Any]:
    """Sets PIPELINE_CONFIG rows for one test, then puts the table back as it was."""
    table = f"{stack.database}.OPS.PIPELINE_CONFIG"
    before = stack.session.sql(f"SELECT config_key, config_value, updated_at FROM {table}").collect()

    def set_value(key: str, value: str) -> None:
        stack.session.sql(f"DELETE FROM {table} WHERE config_key = ?", params=[key]).collect()
        stack.session.sql(
            f"INSERT INTO {table} (config_key, config_value) VALUES (?, ?)", params=[key, value]
        ).collect()

    yield set_value
    stack.session.sql(f"DELETE FROM {table}").collect()
    for row in before:
        stack.session.sql(
            f"INSERT INTO {table} (config_key, config_value, updated_at) VALUES (?, ?, ?)", params=list(row)
        ).collect()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("part_max_mb", "abc", "setting part_max_mb must be an integer from 1 to 256, got 'abc'"),
        ("part_max_mb", "0", "setting part_max_mb must be an integer from 1 to 256, got '0'"),
        ("part_max_mbb", "8", "unknown setting 'part_max_mbb'"),
    ],
)
def test_a_bad_setting_fails_ingest_before_any_work(stack, loaded, config, key, value, message):
    db = stack.database
    config(key, value)
    with pytest.raises(ConfigError) as caught:
        stack.call(f"CALL {db}.OPS.INGEST_API_B()")
    where = f"{db}.OPS.PIPELINE_CONFIG"
    expected = (
        f"{message} in {where} (did you mean part_max_mb?)"
        if key == "part_max_mbb"
        else f"{message} (in {where})"
    )
    assert str(caught.value) == expected
    assert _state(stack) == loaded


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("WAIT_FOR_LOAD(NULL)", "argument timeout_seconds must be an integer from 1 to 3600, got NULL"),
        ("WAIT_FOR_LOAD(-5)", "argument timeout_seconds must be an integer from 1 to 3600, got -5"),
        ("REFRESH_PIPE(NULL)", f"argument source must be one of {', '.join(sorted(SOURCES))}, got NULL"),
        ("REFRESH_PIPE('nope')", f"argument source must be one of {', '.join(sorted(SOURCES))}, got 'nope'"),
    ],
)
def test_a_bad_argument_fails_the_call_naming_it(stack, loaded, statement, message):
    with pytest.raises(ArgumentError) as caught:
        stack.call(f"CALL {stack.database}.OPS.{statement}")
    assert str(caught.value) == message
    assert _state(stack) == loaded


def test_the_restored_settings_work_again(stack, loaded):
    summary = stack.call(f"CALL {stack.database}.OPS.REFRESH_PIPE('api_b')")
    assert '"batches_refreshed":0' in summary
    assert _state(stack) == loaded
