"""The key ranges that bound a MERGE's target: they cover every key (so the MERGE matches what it would
without them), and they stay narrow where keys grow with time."""

from __future__ import annotations

import random
import uuid

import pytest
from api2snow.key_ranges import MAX_RANGES, key_ranges, literal, range_predicate


def _covered(key: str, ranges: list[tuple[str, str]]) -> bool:
    return any(low <= key <= high for low, high in ranges)


@pytest.mark.parametrize(
    "keys",
    [
        [f"a-{i:08d}" for i in range(990_001, 1_000_001)] + ["a-00012345"],
        [f"b-{i}" for i in range(99_990, 100_010)],
        [str(uuid.UUID(int=random.Random(7).getrandbits(128))) for _ in range(5_000)],
        ["only-one"],
    ],
    ids=["padded", "unpadded", "uuid4", "single"],
)
def test_every_key_lies_in_a_range_and_there_are_at_most_max_ranges(keys):
    ranges = key_ranges(keys)
    assert 1 <= len(ranges) <= MAX_RANGES
    assert ranges == sorted(ranges) and all(low <= high for low, high in ranges)
    assert all(_covered(key, ranges) for key in keys)


def test_ids_that_grow_with_time_give_narrow_ranges_and_an_old_update_its_own():
    keys = [f"a-{i:08d}" for i in range(990_001, 1_000_000)] + ["a-00012345"]
    ranges = key_ranges(keys, max_ranges=4)
    assert ranges[0] == ("a-00012345", "a-00012345")  # the old id does not widen the new ids' range
    assert ranges[-1][1] == "a-00999999" and ranges[1][0] == "a-00990001"


def test_a_change_of_length_splits_unpadded_numeric_ids():
    ranges = key_ranges([f"b-{i}" for i in range(99_990, 100_010)], max_ranges=2)
    assert ranges == [("b-100000", "b-100009"), ("b-99990", "b-99999")]
    assert not _covered("b-5", ranges) and not _covered("b-2000", ranges)  # the ids in between stay out


def test_no_keys_no_ranges_and_no_bound():
    assert key_ranges([]) == []
    assert range_predicate("tgt.event_id", []) == "TRUE"


def test_the_predicate_quotes_each_bound_so_both_warehouses_read_it_the_same():
    predicate = range_predicate("tgt.k", [("a", "b"), ("it's", "c\\d")])
    assert predicate == "(tgt.k BETWEEN 'a' AND 'b' OR tgt.k BETWEEN $$it's$$ AND $$c\\d$$)"
    assert literal("plain") == "'plain'" and literal("o'k") == "$$o'k$$"
    # a key with a quote or a backslash and a `$` cannot be written safely: no bound, rather than a wrong one
    assert literal("a'$") is None
    assert range_predicate("tgt.k", [("a", "x'$$")]) == "TRUE"
