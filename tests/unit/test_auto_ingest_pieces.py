"""Pieces of auto-ingest that need no stack: the pipes' declaration, the S3 event format, the bulk COPY."""

from __future__ import annotations

import json

import pytest
from api2snow import loading
from api2snow.platform import PlatformError, bulk_copy_statement
from api2snow.sources import SOURCES

from api2snow_cli.local.auto_ingest import created_objects, object_created
from api2snow_cli.local.pipes import REFRESH_WINDOW_SECONDS, PipeDefinition, is_pipe_statement
from api2snow_cli.project import Project

PIPE = (
    "COPY INTO DB.RAW.API_A_EVENTS (PAYLOAD, FILE_NAME) FROM (SELECT $1, metadata$filename "
    "FROM @DB.RAW.LANDING/source=api_a/) PATTERN = '.*part-[0-9]+[.]jsonl[.]gz' "
    "FILE_FORMAT = (FORMAT_NAME = 'DB.RAW.JSONL_GZ')"
)


def test_every_raw_pipe_auto_ingests():
    project = Project.load()
    pipes = [
        PipeDefinition.parse(s)
        for path in project.sql_files("sql")
        for s in project.statements(path)
        if is_pipe_statement(s)
    ]
    assert len(pipes) == len(SOURCES) + 1  # and the rejects pipe
    assert all(pipe.auto_ingest for pipe in pipes), [p.name for p in pipes if not p.auto_ingest]


def test_a_pipe_without_auto_ingest_is_read_as_such():
    assert not PipeDefinition.parse(f"CREATE PIPE IF NOT EXISTS DB.RAW.P AS {PIPE}").auto_ingest
    assert PipeDefinition.parse(f"CREATE PIPE DB.RAW.P AUTO_INGEST = TRUE AS {PIPE}").auto_ingest


def test_an_s3_event_names_the_created_object_and_its_key_is_decoded():
    key = "source=api_a/dt=2026-11-30/hour=10/batch_id=b 1/part-0001.jsonl.gz"
    assert created_objects(json.dumps(object_created("landing", key))) == [("landing", key)]
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "landing"}
    assert created_objects(json.dumps(test_event)) == []
    assert created_objects("not json") == []


def test_the_bulk_copy_is_the_pipes_copy_limited_to_the_files():
    statement = bulk_copy_statement(
        PIPE, ["source=api_a/dt=2026-11-30/hour=10/batch_id=b/part-0001.jsonl.gz"]
    )
    assert statement == (
        "COPY INTO DB.RAW.API_A_EVENTS (PAYLOAD, FILE_NAME) FROM (SELECT $1, metadata$filename "
        "FROM @DB.RAW.LANDING/source=api_a/) FILES = ('dt=2026-11-30/hour=10/batch_id=b/part-0001.jsonl.gz') "
        "FILE_FORMAT = (FORMAT_NAME = 'DB.RAW.JSONL_GZ') ON_ERROR = SKIP_FILE LOAD_UNCERTAIN_FILES = TRUE"
    )


def test_the_bulk_copy_refuses_a_file_outside_the_pipes_path():
    with pytest.raises(PlatformError, match="is not under the pipe's path 'source=api_a/'"):
        bulk_copy_statement(PIPE, ["source=api_b/x/part-0001.jsonl.gz"])


def test_copy_takes_over_before_refresh_stops_seeing_a_batch():
    """REFRESH sees 7 days (the local loader's window pins Snowflake's); the copy starts a day earlier."""
    assert REFRESH_WINDOW_SECONDS == 7 * 86_400
    assert REFRESH_WINDOW_SECONDS - loading.COPY_AFTER_SECONDS == 86_400
