"""What a source is: small override hooks around the shared HTTP, transform and staging machinery.

Like the Singer SDK's streams, a source declares its names and schema and overrides a few hooks: how it
authenticates, how its first request looks, how it paginates, how a page's records are found and how one
record maps onto the normalised model. Everything else (rate limiting, retries, dedupe, staging) is shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, ClassVar

import requests

from ..http.auth import Auth
from ..http.paginate import PageRequest, Paginator
from ..http.progress import key_hashes
from ..platform import Platform
from ..settings import SETTINGS, Settings
from ..transform import RecordSchema
from ..wire import json_body


class Source(ABC):
    """Base class of one API source; subclasses override the hooks below."""

    name: ClassVar[str]
    raw_table: ClassVar[str]
    pipe: ClassVar[str]
    clean_table: ClassVar[str]
    staging_view: ClassVar[str]
    schema: ClassVar[RecordSchema]
    id_field: ClassVar[str]
    updated_field: ClassVar[str] = "updated_at"
    clean_key: ClassVar[str]
    rate_limit_per_min: ClassVar[int]
    page_size: ClassVar[int] = 100  # the default page: the largest the API allows
    incremental: ClassVar[bool] = True
    wire_id: ClassVar[str]  # the id and version fields of a raw record, as the API names them
    wire_version: ClassVar[str]

    def base_url(self, settings: Settings) -> str:
        return settings.get(f"{self.name}_base_url")

    @abstractmethod
    def auth(self, platform: Platform, settings: Settings, http: requests.Session) -> Auth:
        """Credentials from the platform's secrets, never from settings or code."""

    def page_size_for(self, settings: Settings) -> int:
        """Records a page this run asks for: the `<name>_page_size` setting, whose default is the
        declaration's page size (the largest page the API allows). A source built outside the registry
        (a test's, a tool's) has no such setting and keeps its own."""
        if f"{self.name}_page_size" not in SETTINGS:
            return self.page_size
        return settings.get_int(f"{self.name}_page_size")

    @abstractmethod
    def first_request(self, since: datetime | None, page_size: int | None = None) -> PageRequest:
        """The request for the first page of records updated after `since` (None: everything), asking for
        `page_size` records a page (None: the source's default)."""

    @abstractmethod
    def paginator(self, settings: Settings) -> Paginator:
        """A fresh paginator for one extract (paginators keep state)."""

    def parse_page(self, response: requests.Response) -> tuple[Any, list[dict[str, Any]]]:
        """(payload, records) of one page; raise ValueError when the body is not what the API promises."""
        payload = json_body(response.content)
        return payload, payload

    def record_key(self, raw: Any) -> Hashable | None:
        """(id, version) of a raw record, as paging sees it: whether a page brought anything new."""
        if not isinstance(raw, dict):
            return None
        record_id, version = raw.get(self.wire_id), raw.get(self.wire_version)
        if not isinstance(record_id, str | int) or not isinstance(version, str | int | float | None):
            return None
        return record_id, version

    def key_hashes(self, records: list) -> set[int | None]:
        """The hash of each record's `record_key` (None for a record without one), as a set: the progress
        guard's work per page (http/progress.py says why hashes)."""
        return key_hashes(map(self.record_key, records))

    @abstractmethod
    def normalize(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Map one wire record onto the normalised model; KeyError/ValueError/TypeError reject it."""

    def fast_normalizer(self) -> Callable[[Any], dict[str, Any] | None] | None:
        """Optionally, `normalize` + validation in one pass: the normalised record when it is certainly
        valid, None to leave the record to the general path (transform.RecordProcessor)."""
        return None
