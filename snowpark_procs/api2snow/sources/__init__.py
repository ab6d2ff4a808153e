"""The API sources: one module per source in this package, each declaring one `DeclaredSource`.

A new API is a new module here (docs/SOURCES.md); nothing lists the sources by hand. The module's name is
the source's name, which the procedures, the task graph and every derived Snowflake object use.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..settings import register, source_settings
from .base import Source
from .declaration import DeclarationError, DeclaredSource, check_declaration

# modules of this package that are not sources
_MACHINERY = {"base", "declaration", "entities", "fast_normalize"}


def _declared_in(module: object) -> list[type[DeclaredSource]]:
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, DeclaredSource)
        and value.__module__ == getattr(module, "__name__", "")
        and "declaration" in vars(value)
    ]


def _discover() -> dict[str, Source]:
    found: dict[str, Source] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _MACHINERY or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        classes = _declared_in(module)
        if len(classes) != 1:
            raise DeclarationError(
                f"sources/{info.name}.py must declare exactly one source, found {len(classes)}"
            )
        source = classes[0]()
        if source.name != info.name:
            raise DeclarationError(
                f"sources/{info.name}.py declares name={source.name!r}: a source is named after its file"
            )
        declaration = classes[0].declaration
        check_declaration(declaration)
        # Every Snowflake object of a source is named from these: two sources may not share one.
        for field, derived in (("name", "name"), ("raw_table", "raw"), ("clean_table", "clean")):
            value = getattr(declaration, derived).upper()
            for other in found.values():
                if getattr(other.declaration, derived).upper() == value:  # type: ignore[attr-defined]
                    raise DeclarationError(
                        f"sources/{info.name}.py: field {field!r}: {value} is also "
                        f"sources/{other.name}.py's (two sources cannot share a Snowflake object)"
                    )
        found[source.name] = source
    return found


SOURCES: dict[str, Source] = _discover()
for _source in SOURCES.values():
    _declared = _source.declaration  # type: ignore[attr-defined]
    register(
        source_settings(
            _declared.name,
            _declared.title,
            _declared.rate_limit_per_min,
            _declared.auth.scope if _declared.auth.kind == "oauth2_client_credentials" else None,
            _declared.page_size,
            _declared.max_page_size,
        )
    )


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; expected one of {', '.join(sorted(SOURCES))}") from None
