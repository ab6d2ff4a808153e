"""Record stores of the hostile API server, with the ground truth the pipeline must end up with in CLEAN.

Each store holds one API's records as the exact JSON text served on the wire (so a poison record can carry
what a serializer would refuse, e.g. an unpaired surrogate escape) next to the normalised CLEAN columns it
must produce, or the :class:`Poison` it is (rejected with a reason, never in CLEAN). Stores are mutable:
faults update, insert and re-version records while a run pages through them, and the truth always follows
the latest version, which is also the one served last.

Ids come from one process-wide counter and times from one process-wide timeline of disjoint windows, so the
stores of successive tests never share an id and each test's records are newer than every earlier test's
(a shared stack's watermark never hides them).
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

API_A = "api_a"
API_B = "api_b"
APIS = (API_A, API_B)

# Faults switched on per test (HostileServer.enable); see the module docstring of server.py for each.
DATA_FAULTS = frozenset({"surrogate_text", "huge_number", "wrong_types", "huge_record"})
SERVING_FAULTS = frozenset(
    {
        "empty_page_before_total",
        "empty_page_always",
        "equal_updated_at_versions",
        "mutate_while_paging",
        "cursor_loop",
        "ignore_offset",
        "same_records_again",
        "revoke_token",
        "redirect_other_host",
        "echo_secret",
        "echo_secret_token",
        "has_more",
        "flaky_503",
        "throttle_once",
        "short_pages",
    }
)
FAULTS = DATA_FAULTS | SERVING_FAULTS

HUGE_RECORD_BYTES = 20 * 1024 * 1024
LONE_SURROGATE = "\\ud800"  # the six characters of the JSON escape, written into the body as they are
_SURROGATE_MARK = "@@LONE-SURROGATE@@"
_EPOCH = datetime(1970, 1, 1)
_TYPES = ("detection", "motion", "line_crossing", "tamper", "DETECTION")
_CATEGORIES = ("person", "vehicle", "bicycle", "animal", "package", "Vehicle", "PERSON")
_LABELS = ("Person", "Vehicle", "Bicycle", "Animal", "Package")
_KINDS = ("DETECTION", "MOTION", "LINE_CROSSING", "TAMPER")
_OFFSETS = (timedelta(0), timedelta(hours=2), timedelta(hours=-5), timedelta(hours=5, minutes=30))

_numbers = itertools.count(1_000_001)
_numbers_lock = threading.Lock()


def next_number() -> int:
    """A number never handed out before in this process (A ids and B eventIds are built from it)."""
    with _numbers_lock:
        return next(_numbers)


class Timeline:
    """Disjoint, increasing windows of record times: each store gets one, later than every earlier one."""

    def __init__(self, start: datetime, span: timedelta) -> None:
        self._next_ms = to_ms(start)
        self._span_ms = int(span.total_seconds() * 1000)
        self._lock = threading.Lock()

    def window(self) -> tuple[int, int]:
        """(start_ms, end_ms) of a fresh window."""
        with self._lock:
            start = self._next_ms
            self._next_ms += self._span_ms
        return start, start + self._span_ms


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int((moment.astimezone(UTC).replace(tzinfo=None) - _EPOCH) / timedelta(milliseconds=1))


def from_ms(ms: int) -> datetime:
    """Naive UTC datetime of epoch milliseconds (the CLEAN timestamp form)."""
    return _EPOCH + timedelta(milliseconds=ms)


def iso_z(ms: int) -> str:
    """API A's updated_at: ISO-8601 with milliseconds and Z."""
    return from_ms(ms).isoformat(timespec="milliseconds") + "Z"


def iso_offset(ms: int, offset: timedelta) -> str:
    """API A's occurred_at: the same instant in a local UTC offset."""
    local = from_ms(ms).replace(tzinfo=UTC).astimezone(timezone(offset))
    return local.isoformat(timespec="milliseconds")


# Four days back in windows of half an hour: ~190 stores before record times reach the present. In a
# window, seeded records take the first ten minutes; changes made during a test (RecordStore.tick) follow.
WINDOW = timedelta(minutes=30)
SEEDED_SPAN = timedelta(minutes=10)
TIMELINE = Timeline(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=96), WINDOW)


@dataclass(frozen=True)
class Poison:
    """A record the pipeline must reject with a reason and never put in CLEAN.

    ``markers`` are short strings unique to the record that appear early in its raw text, so its row in
    RAW.REJECTED_RECORDS can be found even if the reject keeps only a prefix of it. ``forbidden_ids`` are the
    CLEAN ids a lax pipeline could derive from it (e.g. ``int(4.5)``), none of which may appear in CLEAN.
    """

    fault: str
    markers: tuple[str, ...]
    forbidden_ids: frozenset[str]

    def matches(self, reject_text: str) -> bool:
        return any(marker in reject_text for marker in self.markers)


@dataclass
class Entry:
    """One record: its order key, exact wire text, and either its CLEAN columns or what poison it is."""

    key: str
    number: int
    sort_ms: int
    body: str
    clean: dict[str, Any] | None = None
    poison: Poison | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def order(self) -> tuple[int, int]:
        """(updated_at, id) for A, (modifiedMs, eventId) for B: ids are zero-padded numbers in both."""
        return self.sort_ms, self.number


def dump(raw: dict[str, Any]) -> str:
    """Compact JSON text of a record; a string holding the surrogate mark gets the raw escape instead."""
    return json.dumps(raw, separators=(",", ":")).replace(_SURROGATE_MARK, LONE_SURROGATE)


# ----------------------------------------------------------------------------------------------- records


def a_record(number: int, updated_ms: int, rng: random.Random) -> dict[str, Any]:
    """A well-formed API A event (docs/CONTRACTS.md) updated at ``updated_ms``."""
    occurred = updated_ms - rng.randint(0, 600_000)
    offset = rng.choice(_OFFSETS)
    occurred_at = iso_offset(occurred, offset)
    if offset == timedelta(0) and rng.random() < 0.5:
        occurred_at = occurred_at.replace("+00:00", "Z")
    return {
        "id": f"a-{number:08d}",
        "type": rng.choice(_TYPES),
        "camera_id": f"cam-{rng.randint(1, 40):03d}",
        "category": rng.choice(_CATEGORIES),
        "confidence": round(rng.random(), 3),
        "occurred_at": occurred_at,
        "updated_at": iso_z(updated_ms),
        "duration_ms": rng.randint(0, 120_000),
        "attributes": {"zone": rng.choice(("entrance", "parking", "lobby", "gate"))},
    }


def b_record(number: int, modified_ms: int, rng: random.Random) -> dict[str, Any]:
    """A well-formed API B detection modified at ``modified_ms``."""
    return {
        "eventId": number,
        "eventKind": rng.choice(_KINDS),
        "cameraRef": f"cam-{rng.randint(1, 40):03d}",
        "label": rng.choice(_LABELS),
        "score": rng.randint(0, 100),
        "timestampMs": modified_ms - rng.randint(0, 600_000),
        "modifiedMs": modified_ms,
        "durationSec": rng.choice((round(rng.uniform(0, 120), 3), rng.randint(0, 90))),
    }


def a_clean(raw: dict[str, Any]) -> dict[str, Any]:
    """CLEAN columns of a well-formed A event (lower-cased type/category, naive UTC timestamps)."""
    occurred = datetime.fromisoformat(raw["occurred_at"]).astimezone(UTC).replace(tzinfo=None)
    updated = datetime.fromisoformat(raw["updated_at"]).astimezone(UTC).replace(tzinfo=None)
    return {
        "event_type": raw["type"].lower(),
        "camera_id": raw["camera_id"],
        "category": raw["category"].lower(),
        "confidence": float(raw["confidence"]),
        "occurred_at": occurred,
        "updated_at": updated,
        "duration_ms": int(raw["duration_ms"]),
    }


def b_clean(raw: dict[str, Any]) -> dict[str, Any]:
    """CLEAN columns of a well-formed B detection (score/100, durationSec in ms, epoch ms as UTC)."""
    return {
        "event_type": raw["eventKind"].lower(),
        "camera_id": raw["cameraRef"],
        "category": raw["label"].lower(),
        "confidence": raw["score"] / 100.0,
        "occurred_at": from_ms(raw["timestampMs"]),
        "updated_at": from_ms(raw["modifiedMs"]),
        "duration_ms": int(round(float(raw["durationSec"]) * 1000)),
    }


def clean_id(api: str, number: int) -> str:
    return f"a-{number:08d}" if api == API_A else f"b-{number}"


# ------------------------------------------------------------------------------------------------- store


class RecordStore:
    """One API's records, ordered as its contract says, with the truth and the poison set.

    ``now_ms`` is the store's own clock for changes made during a test (updates, inserts): it starts after
    the seeded records and only moves forward, so a changed record sorts after everything seeded.
    """

    def __init__(self, api: str, window: tuple[int, int], seed: int = 0) -> None:
        if api not in APIS:
            raise ValueError(f"unknown api {api!r}")
        self.api = api
        self.window = window
        self.rng = random.Random(f"{seed}:{api}:{window[0]}")
        self.entries: dict[str, Entry] = {}
        self.next_seed_ms = window[0] + 1000
        self.now_ms = window[0] + int(SEEDED_SPAN.total_seconds() * 1000)
        self.max_served_ms: int | None = None
        self.served_keys: set[str] = set()

    # ---- reading

    def ordered(self) -> list[Entry]:
        return sorted(self.entries.values(), key=lambda e: e.order)

    def truth(self) -> dict[str, dict[str, Any]]:
        """CLEAN id -> CLEAN columns of the latest version of every well-formed record."""
        return {e.key: dict(e.clean) for e in self.entries.values() if e.clean is not None}

    def poison(self) -> list[Poison]:
        return [e.poison for e in self.entries.values() if e.poison is not None]

    def poison_ids(self) -> set[str]:
        return {i for p in self.poison() for i in p.forbidden_ids}

    def mark_served(self, entries: list[Entry]) -> None:
        for entry in entries:
            self.served_keys.add(entry.key)
            if self.max_served_ms is None or entry.sort_ms > self.max_served_ms:
                self.max_served_ms = entry.sort_ms

    # ---- writing

    def tick(self, step_ms: int = 1000) -> int:
        """The store's 'now', moved forward: the time of a change made during a test."""
        self.now_ms += step_ms
        if self.now_ms >= self.window[1]:
            raise RuntimeError("the store's time window is used up: change fewer records per test")
        return self.now_ms

    def seed_records(self, count: int) -> list[Entry]:
        """``count`` well-formed records after the existing seeded ones; every 7th shares its time."""
        added = []
        for i in range(count):
            if i % 7 != 6:
                self.next_seed_ms += self.rng.randint(150, 450)
            if self.next_seed_ms >= self.now_ms:
                raise RuntimeError("too many seeded records for one time window")
            added.append(self.add_record(self.next_seed_ms))
        return added

    def add_record(self, sort_ms: int, number: int | None = None) -> Entry:
        """A new well-formed record at ``sort_ms``."""
        number = number if number is not None else next_number()
        build = a_record if self.api == API_A else b_record
        raw = build(number, sort_ms, self.rng)
        return self.put_raw(raw, number)

    def put_raw(self, raw: dict[str, Any], number: int) -> Entry:
        """Store a well-formed raw record (replacing an earlier version of the same id)."""
        is_a = self.api == API_A
        sort_ms = int(_parse_ms(raw["updated_at"]) if is_a else raw["modifiedMs"])
        clean = a_clean(raw) if is_a else b_clean(raw)
        entry = Entry(clean_id(self.api, number), number, sort_ms, dump(raw), clean=clean, fields=dict(raw))
        self.entries[entry.key] = entry
        return entry

    def put_poison(self, raw: dict[str, Any], number: int, poison: Poison, sort_ms: int) -> Entry:
        """Store a poison record whose wire text is ``raw`` (already hostile) at ``sort_ms``."""
        key = f"poison:{self.api}:{number}"
        entry = Entry(key, number, sort_ms, dump(raw), poison=poison, fields={})
        self.entries[key] = entry
        return entry

    def revise(self, key: str, bump: bool) -> Entry:
        """A new version of record ``key`` with other content; ``bump`` moves its time to 'now'."""
        entry = self.entries[key]
        raw = json.loads(entry.body)
        if self.api == API_A:
            raw["category"] = _other(raw["category"].lower(), ("person", "vehicle", "bicycle", "animal"))
            raw["confidence"] = round(self.rng.random(), 3)
            if bump:
                raw["updated_at"] = iso_z(self.tick())
        else:
            raw["label"] = _other(raw["label"], _LABELS)
            raw["score"] = self.rng.randint(0, 100)
            if bump:
                raw["modifiedMs"] = self.tick()
        return self.put_raw(raw, entry.number)

    def latest_key(self) -> str:
        """The well-formed record that sorts last (the one a watermark points at)."""
        return next(e.key for e in reversed(self.ordered()) if e.clean is not None)

    def commit_late(self, count: int, seconds_back: float) -> list[Entry]:
        """Records that commit late: half at the latest time served so far, half ``seconds_back`` older."""
        if self.max_served_ms is None:
            raise RuntimeError("nothing served yet: late commits are relative to the last served time")
        at = [self.max_served_ms, self.max_served_ms - int(seconds_back * 1000)]
        return [self.add_record(at[i % 2]) for i in range(count)]

    # ---- poison

    def inject(self, fault: str) -> list[Entry]:
        """Interleave the poison records of a data fault among the existing ones."""
        builders = _A_POISON if self.api == API_A else _B_POISON
        added = []
        for build in builders[fault]:
            number = next_number()
            sort_ms = self._poison_time()
            raw, forbidden = build(self, number, sort_ms)
            markers = (f"cam-poison-{number}",) + ((f"a-{number:08d}",) if self.api == API_A else ())
            poison = Poison(fault, markers, frozenset(forbidden))
            added.append(self.put_poison(raw, number, poison, sort_ms))
        return added

    def _poison_time(self) -> int:
        """The time of a randomly chosen existing record, so poison lands inside pages, not at the end."""
        times = [e.sort_ms for e in self.entries.values()]
        return self.rng.choice(times) if times else self.tick()

    def base(self, number: int, sort_ms: int) -> dict[str, Any]:
        """A well-formed raw record carrying the poison marker as its camera."""
        build = a_record if self.api == API_A else b_record
        raw = build(number, sort_ms, self.rng)
        raw["camera_id" if self.api == API_A else "cameraRef"] = f"cam-poison-{number}"
        return raw


def _other(current: str, choices: tuple[str, ...]) -> str:
    return next(c for c in choices if c != current)


def _parse_ms(iso: str) -> int:
    return to_ms(datetime.fromisoformat(iso))


# ------------------------------------------------------------------------------------- poison builders
# A poison record is a well-formed one (carrying its marker as the camera) with one field made hostile.

PoisonBuild = Callable[[RecordStore, int, int], tuple[dict[str, Any], set[str]]]


def _set(name: str, value: Any, forbidden: Callable[[int], set[str]] | None = None) -> PoisonBuild:
    """Set field ``name`` to ``value`` (or ``value(number)``); ``forbidden`` derives lax CLEAN ids."""

    def build(store: RecordStore, number: int, sort_ms: int) -> tuple[dict[str, Any], set[str]]:
        raw = store.base(number, sort_ms)
        raw[name] = value(number) if callable(value) else value
        return raw, forbidden(number) if forbidden else {clean_id(store.api, number)}

    return build


_S = _SURROGATE_MARK
_GIANT = "x" * HUGE_RECORD_BYTES

_A_POISON: dict[str, list[PoisonBuild]] = {
    "surrogate_text": [
        _set("camera_id", lambda n: f"cam-poison-{n}{_S}"),
        _set("category", f"person{_S}"),
        _set("attributes", {"zone": f"lobby{_S}", "note": "firmware 2.1"}),
    ],
    "huge_number": [_set("duration_ms", 10**38 + 7), _set("duration_ms", 10**18 + 7)],
    "wrong_types": [
        _set("id", lambda n: n, lambda n: {str(n), f"a-{n:08d}"}),
        _set("id", True, lambda n: {"True", "true", "1"}),
        _set("type", ["x"]),
        _set("duration_ms", 12.5),
        _set("duration_ms", True),
        _set("duration_ms", "1200"),
    ],
    "huge_record": [_set("attributes", {"zone": "entrance", "blob": _GIANT})],  # attributes come last
}

_B_POISON: dict[str, list[PoisonBuild]] = {
    "surrogate_text": [
        _set("cameraRef", lambda n: f"cam-poison-{n}{_S}"),
        _set("label", f"Vehicle{_S}"),
    ],
    "huge_number": [_set("durationSec", 10**38 + 1), _set("durationSec", 10**15 + 1)],
    "wrong_types": [
        _set("eventId", lambda n: n + 0.5, lambda n: {f"b-{n}", f"b-{n + 0.5}"}),
        _set("eventId", True, lambda n: {"b-1", "b-True", "b-true"}),
        _set("eventId", str, lambda n: {f"b-{n}"}),
        _set("eventKind", ["DETECTION"]),
        _set("durationSec", True),
        _set("score", "87"),
    ],
    "huge_record": [_set("cameraRef", lambda n: f"cam-poison-{n}-{_GIANT}")],
}
