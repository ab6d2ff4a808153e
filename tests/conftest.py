"""Shared fixtures: a running local stack on a throwaway home, with a frozen, seeded mock data set."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

warnings.filterwarnings("ignore")
for _name in ("fakesnow", "uvicorn", "snowflake", "werkzeug", "moto", "botocore"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def start_stack(
    home: Path, env_overrides: dict[str, str] | None = None, history_hours: int = 12, **mock_overrides
):
    """A started LocalStack whose mock clock is frozen half an hour after the data set's anchor."""
    from api2snow_cli.local.stack import start_frozen_stack

    return start_frozen_stack(home, env_overrides, history_hours, **mock_overrides)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    started = start_stack(tmp_path_factory.mktemp("api2snow-home"))
    try:
        yield started
    finally:
        started.stop()
