"""A backfill's time window: its arguments checked, and the pages of a read cut to it.

The APIs filter by time on one side only (`updated_since`), so a backfill asks for records updated since a
little before the window's start and cuts the pages itself: a record whose version time falls outside
[start, end) is counted (`outside`) and not staged, and the read stops after the first page that reaches
the end. That is exact because incremental sources serve records in version-time order (the hourly read
and its run budget rely on the same order): every record after that page is past the end too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .arguments import ArgumentError
from .sources.declaration import wire_value
from .transform import to_utc_iso


def parse_utc(name: str, value: Any) -> datetime:
    """A procedure argument as naive UTC: ISO 8601, with an offset or `Z`, or without one (read as UTC)."""
    if not isinstance(value, str) or not value.strip():
        shown = "NULL" if value is None else repr(value)
        raise ArgumentError(
            f"argument {name} must be an ISO 8601 timestamp such as '2024-05-01T00:00:00Z', got {shown}"
        )
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ArgumentError(
            f"argument {name} must be an ISO 8601 timestamp such as '2024-05-01T00:00:00Z', got {value!r}"
        ) from None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo is not None else parsed


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class TimeWindow:
    """[start, end) in naive UTC, checked: start before end, end not in the future, at most `max_hours`."""

    start: datetime
    end: datetime

    @classmethod
    def checked(cls, from_ts: Any, to_ts: Any, max_hours: int, now: datetime | None = None) -> TimeWindow:
        start, end = parse_utc("from_ts", from_ts), parse_utc("to_ts", to_ts)
        now = now or utc_now()
        if start >= end:
            raise ArgumentError(
                f"argument from_ts must be before to_ts, got {start.isoformat()} >= {end.isoformat()} (UTC)"
            )
        if end > now:
            raise ArgumentError(
                f"argument to_ts is in the future: {end.isoformat()} is after now, "
                f"{now.isoformat(timespec='seconds')} (UTC); the hourly run reads what is new"
            )
        hours = (end - start).total_seconds() / 3600
        if hours > max_hours:
            raise ArgumentError(
                f"the window from_ts..to_ts spans {hours:g} hours, more than backfill_max_window_hours = "
                f"{max_hours}; split it into smaller windows"
            )
        return cls(start, end)


@dataclass
class PageWindow:
    """Cuts the pages of one read to a window: keeps the records whose version time (the source's wire
    version field) is in [start, end), counts the others, and ends the read after the page that reaches
    `end`. A record whose version cannot be read is kept: the record processor rejects it with its reason."""

    version_field: str
    start: datetime
    end: datetime
    outside: int = 0
    reached_end: bool = False
    _bounds: tuple[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self._bounds = (
            self.start.isoformat(timespec="microseconds"),
            self.end.isoformat(timespec="microseconds"),
        )

    def version(self, raw: Any) -> str | None:
        try:
            return to_utc_iso(wire_value(raw, self.version_field))
        except (ValueError, TypeError, OverflowError):
            return None

    def limit(self, pages: Iterator[list[Any]]) -> Iterator[list[Any]]:
        start, end = self._bounds
        for page in pages:
            kept: list[Any] = []
            for raw in page:
                version = self.version(raw)
                if version is None or start <= version < end:
                    kept.append(raw)
                    continue
                self.outside += 1
                self.reached_end = self.reached_end or version >= end
            yield kept
            if self.reached_end:
                return  # no further page is requested
