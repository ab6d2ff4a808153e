"""The API sources, by the name the procedures and the task graph use."""

from __future__ import annotations

from .api_a import ApiA
from .api_b import ApiB
from .api_c import ApiC
from .base import Source

SOURCES: dict[str, Source] = {source.name: source for source in (ApiA(), ApiB(), ApiC())}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; expected one of {', '.join(sorted(SOURCES))}") from None
