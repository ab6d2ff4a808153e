"""The one deterministic, seeded data set every mock API serves, plus its ground truth for tests.

Event ``i`` of a source is created at ``anchor - history + i * interval`` and exists forever after, so
advancing the clock makes new events appear. A seeded share of events receives exactly one later update
(5..90 min after creation). Everything about an event derives from ``(seed, source, i)`` through its own
``random.Random``, so any event can be rebuilt in O(1); only a compact sorted index of ``(updated_ms, i)``
versions is kept in memory.

Every version of a source has a distinct ``updated_at`` at millisecond resolution (the wire resolution):
creations sit on the interval grid, updates land strictly between two grid points at an offset that is unique
among all updates sharing that gap. Strict ``>`` watermarks are therefore exact.
"""

from __future__ import annotations

import bisect
import random
import threading
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple

from .clock import as_utc
from .faults import Faults

EVENT_SOURCES = ("api_a", "api_b")
SOURCES = ("api_a", "api_b", "api_c")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
_UPDATE_MIN_MS = 5 * _MINUTE_MS
_UPDATE_MAX_MS = 90 * _MINUTE_MS
_CAMERA_UPDATE_RATE = 0.5
_CAMERA_FUTURE_MS = 48 * _HOUR_MS

CATEGORIES = ("person", "vehicle", "bicycle", "animal", "package")
_CATEGORY_WEIGHTS = (45, 30, 10, 10, 5)
EVENT_TYPES = ("detection", "motion", "line_crossing", "tamper")
_EVENT_TYPE_WEIGHTS = (60, 25, 10, 5)
_ZONES = ("entrance", "parking", "perimeter", "loading_dock", "lobby", "street")
# occurred_at offsets (minutes) for API A; 0 is written as "Z".
_OFFSETS_MIN = (0, 120, -300, 330, 540, -180, 60, 0)
INVALID_KINDS = ("missing_camera", "bad_timestamp")

# (site_id, site_name, city, country, timezone, latitude, longitude)
SITES = (
    ("site-01", "Berlin HQ", "Berlin", "DE", "Europe/Berlin", 52.520008, 13.404954),
    ("site-02", "Chicago Depot", "Chicago", "US", "America/Chicago", 41.878113, -87.629799),
    ("site-03", "Mumbai Plant", "Mumbai", "IN", "Asia/Kolkata", 19.075983, 72.877655),
    ("site-04", "Tokyo Office", "Tokyo", "JP", "Asia/Tokyo", 35.676192, 139.650311),
    ("site-05", "São Paulo Yard", "São Paulo", "BR", "America/Sao_Paulo", -23.550520, -46.633308),
    ("site-06", "London Store", "London", "GB", "Europe/London", 51.507351, -0.127758),
)


def to_ms(dt: datetime) -> int:
    """Epoch milliseconds of ``dt`` (floored, exact integer arithmetic; naive means UTC)."""
    return (as_utc(dt) - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """Aware UTC datetime for epoch milliseconds."""
    return _EPOCH + timedelta(milliseconds=ms)


def iso_z(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` for epoch milliseconds."""
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def iso_offset(ms: int, offset_min: int) -> str:
    """The same instant written in a UTC offset (``Z`` for zero), millisecond precision."""
    if offset_min == 0:
        return iso_z(ms)
    tz = timezone(timedelta(minutes=offset_min))
    return from_ms(ms).astimezone(tz).isoformat(timespec="milliseconds")


def record_id(source: str, index: int) -> str:
    """The record id as a string (API A ``a-00000042``, API B ``42``, API C ``cam-042``)."""
    if source == "api_a":
        return f"a-{index + 1:08d}"
    if source == "api_b":
        return str(index + 1)
    if source == "api_c":
        return f"cam-{index + 1:03d}"
    raise ValueError(f"unknown source {source!r}")


def index_of(source: str, rid: str | int) -> int:
    """Inverse of :func:`record_id`; raises ``ValueError`` for ids that are not ours."""
    text = str(rid)
    prefix = {"api_a": "a-", "api_b": "", "api_c": "cam-"}.get(source)
    if prefix is None or not text.startswith(prefix) or not text[len(prefix) :].isdigit():
        raise ValueError(f"not a {source} id: {rid!r}")
    index = int(text[len(prefix) :]) - 1
    if index < 0:
        raise ValueError(f"not a {source} id: {rid!r}")
    return index


@dataclass(frozen=True)
class EventVersion:
    """One version of an event in neutral form, before it is shaped for a particular API."""

    index: int
    is_update: bool
    event_type: str
    camera: int
    category: str
    confidence: float
    occurred_ms: int
    updated_ms: int
    duration_ms: int
    zone: str
    offset_min: int
    invalid_draw: float
    invalid_kind: str


class _EventKey(NamedTuple):
    """What the version index needs about an event."""

    created_ms: int
    update_ms: int | None
    invalid_draw: float
    invalid_kind: str


@dataclass(frozen=True)
class _EventCore:
    """Everything about an event, both versions included."""

    index: int
    created_ms: int
    update_ms: int | None
    original: EventVersion
    updated: EventVersion | None


@dataclass(frozen=True)
class _CameraCore:
    index: int
    site: tuple[str, str, str, str, str, float, float]
    latitude: Decimal
    longitude: Decimal
    installed_ms: int
    first_ms: int
    update_ms: int | None
    active: bool
    invalid_draw: float


class _Schedule:
    """Creation grid and collision-free update times for one source."""

    def __init__(self, start_ms: int, events_per_hour: int) -> None:
        if events_per_hour < 1:
            raise ValueError("events_per_hour must be >= 1")
        self.start_ms = start_ms
        self.interval_ms = _HOUR_MS // events_per_hour
        if self.interval_ms < 3:
            raise ValueError("events_per_hour too high: need at least 3 ms between events")
        self.k_min = max(1, -(-_UPDATE_MIN_MS // self.interval_ms))
        k_max = max(self.k_min, _UPDATE_MAX_MS // self.interval_ms)
        span = k_max - self.k_min
        # Updates landing in one gap come from indexes spaced by `step`; `choices` of them at most, each
        # with its own offset 1..choices, which must stay below the interval so updates never hit the grid.
        self.step = 1
        while span // self.step + 1 > self.interval_ms - 1:
            self.step += 1
        self.choices = span // self.step + 1

    def created_ms(self, index: int) -> int:
        return self.start_ms + index * self.interval_ms

    def count_until(self, as_of_ms: int) -> int:
        """How many events exist at ``as_of_ms`` (created at or before it)."""
        if as_of_ms < self.start_ms:
            return 0
        return (as_of_ms - self.start_ms) // self.interval_ms + 1

    def update_ms(self, index: int, draw: int) -> int:
        k = self.k_min + self.step * draw
        offset = 1 + (index // self.step) % self.choices
        return self.created_ms(index) + k * self.interval_ms + offset


class _VersionIndex:
    """Sorted ``(updated_ms, index, is_update, superseded_ms)`` rows for all versions of events ``[0, n)``.

    Rows with ``updated_ms`` up to the creation time of event ``n`` are complete; later rows are inserted in
    order as more events are generated, always after every row an earlier query could have read.
    """

    _NEVER = 1 << 62

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, bool, int]] = []
        self.invalid_draws = array("d")
        self.lock = threading.RLock()

    @property
    def size(self) -> int:
        return len(self.invalid_draws)

    def add(self, key: _EventKey) -> None:
        """Index event ``self.size`` (events must be added in index order)."""
        sup = key.update_ms if key.update_ms is not None else self._NEVER
        bisect.insort(self.rows, (key.created_ms, self.size, False, sup))
        if key.update_ms is not None:
            bisect.insort(self.rows, (key.update_ms, self.size, True, self._NEVER))
        self.invalid_draws.append(key.invalid_draw)

    def scan(self, after_ms: int, as_of_ms: int, limit: int | None) -> list[tuple[int, int, bool]]:
        """Latest versions as of ``as_of_ms`` with ``after_ms < updated_ms <= as_of_ms``, in order."""
        out: list[tuple[int, int, bool]] = []
        rows = self.rows
        pos = bisect.bisect_right(rows, after_ms, key=lambda row: row[0])
        while pos < len(rows):
            updated, index, is_update, superseded = rows[pos]
            if updated > as_of_ms:
                break
            if superseded > as_of_ms:
                out.append((updated, index, is_update))
                if limit is not None and len(out) >= limit:
                    break
            pos += 1
        return out


class Dataset:
    """Deterministic camera events (API A and B) and camera directory (API C) as a function of time.

    ``faults`` maps a source to its live :class:`Faults`; its ``invalid_record_rate`` decides (with the seed)
    which records are served broken, and is read on every call so runtime changes apply.
    """

    def __init__(
        self,
        seed: int = 42,
        anchor: datetime | None = None,
        history_hours: float = 24,
        events_per_hour_a: int = 120,
        events_per_hour_b: int = 120,
        cameras: int = 24,
        update_rate: float = 0.2,
        faults: Mapping[str, Faults] | None = None,
    ) -> None:
        if cameras < 1:
            raise ValueError("cameras must be >= 1")
        if not 0.0 <= update_rate <= 1.0:
            raise ValueError("update_rate must be within 0..1")
        self.seed = seed
        self.anchor = as_utc(anchor) if anchor is not None else floor_hour(datetime.now(UTC))
        self.history_hours = history_hours
        self.update_rate = update_rate
        self.camera_count = cameras
        self.faults: Mapping[str, Faults] = faults if faults is not None else {}
        self.start_ms = to_ms(self.anchor) - round(history_hours * _HOUR_MS)
        self._schedules = {
            "api_a": _Schedule(self.start_ms, events_per_hour_a),
            "api_b": _Schedule(self.start_ms, events_per_hour_b),
        }
        self._indexes = {source: _VersionIndex() for source in EVENT_SOURCES}
        self._cameras = [self._camera_core(j) for j in range(cameras)]

    # ----- configuration ------------------------------------------------------------------------------------

    @property
    def start(self) -> datetime:
        """Creation time of the first event of every source."""
        return from_ms(self.start_ms)

    def interval_ms(self, source: str) -> int:
        """Milliseconds between two event creations of ``source``."""
        return self._schedule(source).interval_ms

    def invalid_rate(self, source: str) -> float:
        faults = self.faults.get(source)
        return faults.invalid_record_rate if faults is not None else 0.0

    # ----- ground truth -------------------------------------------------------------------------------------

    def visible(
        self, source: str, as_of: datetime, updated_since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Records as the API serves them at ``as_of`` (latest version each), in served order, in wire shape.

        API A/B: ordered by ``(updated_at, id)``, only ``updated_at > updated_since``. API C: by camera id.
        """
        if source == "api_c":
            cams = self.cameras(as_of)
            if updated_since is None:
                return cams
            return [c for c in cams if c["updatedAt"] > as_utc(updated_since)]
        rows = self.scan(source, as_of, after_ms=_after_ms(updated_since))
        return [self.render(source, index, is_update) for _, index, is_update in rows]

    def truth(
        self, source: str, as_of: datetime, updated_since: datetime | None = None
    ) -> dict[str, datetime]:
        """``{record id (str): updated_at}`` of every record visible at ``as_of``, in served order."""
        if source == "api_c":
            return {c["cameraId"]: c["updatedAt"] for c in self.visible(source, as_of, updated_since)}
        rows = self.scan(source, as_of, after_ms=_after_ms(updated_since))
        return {record_id(source, index): from_ms(updated) for updated, index, _ in rows}

    def invalid_ids(self, source: str, as_of: datetime) -> list[str]:
        """Ids of the records visible at ``as_of`` that are served broken (empty when the rate is 0)."""
        rate = self.invalid_rate(source)
        if rate <= 0.0:
            return []
        if source == "api_c":
            as_of_ms = to_ms(as_of)
            return [
                record_id(source, core.index)
                for core in self._cameras
                if core.installed_ms <= as_of_ms and core.invalid_draw < rate
            ]
        index = self._index(source, as_of)
        with index.lock:
            n = self._schedule(source).count_until(to_ms(as_of))
            return [record_id(source, i) for i in range(n) if index.invalid_draws[i] < rate]

    def cameras(self, as_of: datetime) -> list[dict[str, Any]]:
        """The camera directory at ``as_of`` (API C), ordered by camera id, latest version of each camera."""
        as_of_ms = to_ms(as_of)
        return [
            self._render_camera(core, as_of_ms) for core in self._cameras if core.installed_ms <= as_of_ms
        ]

    # ----- serving ------------------------------------------------------------------------------------------

    def scan(
        self, source: str, as_of: datetime, after_ms: int | None = None, limit: int | None = None
    ) -> list[tuple[int, int, bool]]:
        """``(updated_ms, index, is_update)`` of visible versions with ``updated_ms > after_ms``, in order."""
        index = self._index(source, as_of)
        with index.lock:
            return index.scan(after_ms if after_ms is not None else -(1 << 62), to_ms(as_of), limit)

    def count(self, source: str, as_of: datetime, after_ms: int | None = None) -> int:
        """Number of records :meth:`scan` would return without a limit."""
        return len(self.scan(source, as_of, after_ms))

    def version(self, source: str, index: int, is_update: bool) -> EventVersion:
        """The neutral form of one version of an event."""
        core = self._event_core(source, index)
        if is_update:
            if core.updated is None:
                raise ValueError(f"{record_id(source, index)} has no update")
            return core.updated
        return core.original

    def render(self, source: str, index: int, is_update: bool) -> dict[str, Any]:
        """One version of an event in the wire shape of ``source`` (broken when it is an invalid record)."""
        v = self.version(source, index, is_update)
        invalid = v.invalid_kind if v.invalid_draw < self.invalid_rate(source) else None
        if source == "api_a":
            return _render_a(v, invalid)
        return _render_b(v, invalid)

    # ----- generation ---------------------------------------------------------------------------------------

    def _schedule(self, source: str) -> _Schedule:
        try:
            return self._schedules[source]
        except KeyError:
            raise ValueError(f"unknown event source {source!r}; expected one of {EVENT_SOURCES}") from None

    def _index(self, source: str, as_of: datetime) -> _VersionIndex:
        """The version index of ``source``, extended to cover every event created by ``as_of``."""
        schedule = self._schedule(source)
        index = self._indexes[source]
        n = schedule.count_until(to_ms(as_of))
        if index.size < n:
            with index.lock:
                for i in range(index.size, n):
                    index.add(self._event_key(random.Random(f"{self.seed}:{source}:{i}"), source, i))
        return index

    def _event_key(self, rng: random.Random, source: str, index: int) -> _EventKey:
        """The first draws of an event's RNG: all the index needs, so indexing skips the rest."""
        schedule = self._schedule(source)
        has_update = rng.random() < self.update_rate
        update_draw = rng.randrange(schedule.choices)
        invalid_draw = rng.random()
        invalid_kind = rng.choice(INVALID_KINDS)
        update_ms = schedule.update_ms(index, update_draw) if has_update else None
        return _EventKey(schedule.created_ms(index), update_ms, invalid_draw, invalid_kind)

    def _event_core(self, source: str, index: int) -> _EventCore:
        rng = random.Random(f"{self.seed}:{source}:{index}")
        key = self._event_key(rng, source, index)
        created, update_ms, invalid_draw, invalid_kind = key
        event_type = rng.choices(EVENT_TYPES, _EVENT_TYPE_WEIGHTS)[0]
        camera = rng.randrange(self.camera_count) + 1
        category = rng.choices(CATEGORIES, _CATEGORY_WEIGHTS)[0]
        confidence = round(rng.uniform(0.30, 0.99), 2)
        occurred = created - rng.randint(0, 5_000)
        duration = rng.randint(100, 30_000)
        zone = rng.choice(_ZONES)
        offset_min = rng.choice(_OFFSETS_MIN)
        new_category = rng.choices(CATEGORIES, _CATEGORY_WEIGHTS)[0]
        new_confidence = round(rng.uniform(0.30, 0.99), 2)
        new_duration = duration + rng.randint(100, 5_000)
        original = EventVersion(
            index=index,
            is_update=False,
            event_type=event_type,
            camera=camera,
            category=category,
            confidence=confidence,
            occurred_ms=occurred,
            updated_ms=created,
            duration_ms=duration,
            zone=zone,
            offset_min=offset_min,
            invalid_draw=invalid_draw,
            invalid_kind=invalid_kind,
        )
        if update_ms is None:
            return _EventCore(index, created, None, original, None)
        updated = EventVersion(
            index=index,
            is_update=True,
            event_type=event_type,
            camera=camera,
            category=new_category,
            confidence=new_confidence,
            occurred_ms=occurred,
            updated_ms=update_ms,
            duration_ms=new_duration,
            zone=zone,
            offset_min=offset_min,
            invalid_draw=invalid_draw,
            invalid_kind=invalid_kind,
        )
        return _EventCore(index, created, update_ms, original, updated)

    def _camera_core(self, j: int) -> _CameraCore:
        rng = random.Random(f"{self.seed}:api_c:{j}")
        site = SITES[j % len(SITES)]
        latitude = Decimal(f"{site[5] + rng.uniform(-0.01, 0.01):.6f}")
        longitude = Decimal(f"{site[6] + rng.uniform(-0.01, 0.01):.6f}")
        installed = (self.start_ms - rng.randint(30, 900) * _DAY_MS) // 1000 * 1000
        first = (self.start_ms - rng.randint(1, 29) * _DAY_MS) // 1000 * 1000 + j
        active = rng.random() < 0.9
        invalid_draw = rng.random()
        has_update = rng.random() < _CAMERA_UPDATE_RATE
        window = round(self.history_hours * _HOUR_MS) + _CAMERA_FUTURE_MS
        update = self.start_ms + rng.randrange(window) // 1000 * 1000 + j
        return _CameraCore(
            index=j,
            site=site,
            latitude=latitude,
            longitude=longitude,
            installed_ms=installed,
            first_ms=first,
            update_ms=update if has_update else None,
            active=active,
            invalid_draw=invalid_draw,
        )

    def _render_camera(self, core: _CameraCore, as_of_ms: int) -> dict[str, Any]:
        updated = core.update_ms is not None and core.update_ms <= as_of_ms
        invalid = core.invalid_draw < self.invalid_rate("api_c")
        site_id, site_name, city, country, tz, _, _ = core.site
        return {
            "cameraId": record_id("api_c", core.index),
            "siteId": site_id,
            "siteName": site_name,
            "city": city,
            "country": country,
            "timezone": tz,
            # An invalid camera has an impossible latitude: schema-valid, but fails range validation.
            "latitude": Decimal("999.000000") if invalid else core.latitude,
            "longitude": core.longitude,
            "installedAt": from_ms(core.installed_ms),
            "active": (not core.active) if updated else core.active,
            "updatedAt": from_ms(core.update_ms if updated and core.update_ms is not None else core.first_ms),
        }


def floor_hour(dt: datetime) -> datetime:
    """``dt`` in UTC truncated to the hour (the default anchor)."""
    return as_utc(dt).replace(minute=0, second=0, microsecond=0)


def _after_ms(updated_since: datetime | None) -> int | None:
    """Largest millisecond a record may have and still be excluded by a strict ``> updated_since``."""
    if updated_since is None:
        return None
    return (as_utc(updated_since) - _EPOCH) // _MS


def _render_a(v: EventVersion, invalid: str | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": record_id("api_a", v.index),
        "type": v.event_type,
        "camera_id": f"cam-{v.camera:03d}",
        "category": v.category,
        "confidence": v.confidence,
        "occurred_at": iso_offset(v.occurred_ms, v.offset_min),
        "updated_at": iso_z(v.updated_ms),
        "duration_ms": v.duration_ms,
        "attributes": {"zone": v.zone},
    }
    if invalid == "missing_camera":
        del record["camera_id"]
    elif invalid == "bad_timestamp":
        record["occurred_at"] = "not-a-date"
    return record


def _render_b(v: EventVersion, invalid: str | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventId": v.index + 1,
        "eventKind": v.event_type.upper(),
        "cameraRef": f"cam-{v.camera:03d}",
        "label": v.category.capitalize(),
        "score": round(v.confidence * 100),
        "timestampMs": v.occurred_ms,
        "modifiedMs": v.updated_ms,
        "durationSec": v.duration_ms / 1000,
    }
    if invalid == "missing_camera":
        del record["cameraRef"]
    elif invalid == "bad_timestamp":
        record["timestampMs"] = "not-a-date"
    return record
