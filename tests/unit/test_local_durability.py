"""The local stack's disk layout for S3 objects, and the pipe facts its loads are keyed on (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api2snow_cli.local.pipes import PipeDefinition
from api2snow_cli.local.s3 import (
    LAYOUT_MARKER,
    TEMP_SUFFIX,
    UnstorableKey,
    _object_files,
    bucket_folder,
    encode_header,
    object_path,
    read_object,
    write_atomically,
)

PART_KEY = "source=api_a/dt=2026-11-30/hour=10/batch_id=0f3c/part-0001.jsonl.gz"
PIPE = """CREATE PIPE IF NOT EXISTS DB.RAW.API_A_EVENTS_PIPE
COMMENT = 'x, y'
AS
COPY INTO DB.RAW.API_A_EVENTS (PAYLOAD, FILE_NAME, FILE_ROW_NUMBER, BATCH_ID, LOADED_AT)
FROM (
    SELECT
        $1,
        metadata$filename,
        metadata$file_row_number,
        COALESCE($1:_batch_id::STRING, 'a,b'),
        metadata$start_scan_time
    FROM @DB.RAW.LANDING/source=api_a/
)
PATTERN = '.*part-[0-9]+[.]jsonl[.]gz'
FILE_FORMAT = (FORMAT_NAME = 'DB.RAW.JSONL_GZ');"""


def test_a_partitioned_key_maps_to_nested_folders(tmp_path: Path) -> None:
    assert object_path(tmp_path, PART_KEY) == tmp_path.joinpath(*PART_KEY.split("/"))


@pytest.mark.parametrize(
    "key",
    ["../outside", "a/../../outside", "/absolute", "a//b", "folder/", "./a", "", "a\0b", "x" + TEMP_SUFFIX],
)
def test_a_key_that_could_escape_or_collide_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(UnstorableKey):
        object_path(tmp_path, key)


def test_an_atomic_write_replaces_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "object"
    write_atomically(path, b"old")
    write_atomically(path, encode_header({"etag": "e"}), b"new\nbytes")
    assert read_object(path) == ({"etag": "e"}, b"new\nbytes")
    assert [p.name for p in path.parent.iterdir()] == ["object"]


def test_a_file_without_the_header_is_raw_bytes_restored_with_sse(tmp_path: Path) -> None:
    (tmp_path / "raw").write_bytes(b"\x1f\x8braw")
    assert read_object(tmp_path / "raw") == ({"encryption": "AES256"}, b"\x1f\x8braw")


def test_leftovers_of_an_interrupted_write_are_removed_not_restored(tmp_path: Path) -> None:
    write_atomically(tmp_path / "kept", b"x")
    leftover = tmp_path / f".kept.abc{TEMP_SUFFIX}"
    leftover.write_bytes(b"half")
    assert list(_object_files(tmp_path)) == [tmp_path / "kept"]
    assert not leftover.exists()


def test_a_home_from_before_moves_into_its_bucket_folder(tmp_path: Path) -> None:
    root = tmp_path / "s3"
    (root / "source=api_a").mkdir(parents=True)
    (root / "source=api_a" / "part-0001.jsonl.gz").write_bytes(b"raw")
    folder = bucket_folder(root, "landing")
    assert folder == root / "landing"
    assert (folder / "source=api_a" / "part-0001.jsonl.gz").read_bytes() == b"raw"
    assert (root / LAYOUT_MARKER).exists()
    assert sorted(p.name for p in root.iterdir()) == sorted([LAYOUT_MARKER, "landing"])
    assert bucket_folder(root, "landing") == folder  # a second start changes nothing
    assert (folder / "source=api_a" / "part-0001.jsonl.gz").exists()


def test_a_move_killed_midway_resumes(tmp_path: Path) -> None:
    root = tmp_path / "s3"
    previous = tmp_path / "s3.before-buckets"  # killed right after the first rename
    previous.mkdir()
    (previous / "k").write_bytes(b"raw")
    assert (bucket_folder(root, "landing") / "k").read_bytes() == b"raw"
    assert not previous.exists()


def test_a_fresh_or_new_layout_root_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "s3"
    assert bucket_folder(root, "one") == root / "one"
    write_atomically(root / "other" / "k", b"x")  # another bucket's objects are not a home from before
    assert bucket_folder(root, "one") == root / "one"
    assert (root / "other" / "k").exists()


def test_the_pipe_names_the_column_its_file_names_go_to() -> None:
    pipe = PipeDefinition.parse(PIPE)
    assert pipe.file_name_column == "FILE_NAME"
    assert pipe.covers("source=api_a/dt=2026-11-30/hour=10/batch_id=0f3c/part-0001.jsonl.gz")
    assert not pipe.covers("source=api_a/_manifest.json")
    assert not pipe.covers("source=api_b/dt=2026-11-30/part-0001.jsonl.gz")


def test_a_pipe_without_a_file_name_column_has_none() -> None:
    pipe = PipeDefinition.parse(PIPE.replace("metadata$filename", "'constant'"))
    assert pipe.file_name_column is None
