"""The project's declarations, read the way the Snowflake CLI reads them.

snowflake.yml declares every procedure and the `env:` values; sql/ and external_access/ hold templated
SQL. The local stack and `api2snow deploy` both go through this module, so there is one reading of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import yaml
from snowflake.connector.util_text import split_statements

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = re.compile(r"<%\s*(?:ctx\.env\.)?([A-Za-z_][A-Za-z0-9_]*)\s*%>")


class ProjectError(Exception):
    """A declaration in snowflake.yml or sql/ is missing or malformed."""


def render(text: str, env: dict[str, str], origin: str = "template") -> str:
    """Fill `<% ctx.env.x %>` and `<% x %>` like `snow sql -f`; an undefined variable is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ProjectError(f"{origin}: undefined template variable {name!r}")
        return str(env[name])

    return TEMPLATE.sub(value, text)


def split_sql(text: str) -> list[str]:
    """Split a SQL script into statements with the Snowflake connector's own splitter (quotes, comments)."""
    statements = []
    for statement, _is_put in split_statements(StringIO(text), remove_comments=True):
        statement = statement.strip().rstrip(";").strip()
        if statement:
            statements.append(statement)
    return statements


@dataclass(frozen=True)
class Argument:
    name: str
    type: str
    default: str | None = None


@dataclass(frozen=True)
class Procedure:
    """One procedure entity of snowflake.yml, with its mixins applied."""

    entity_id: str
    name: str
    schema: str
    database: str
    handler: str
    arguments: tuple[Argument, ...]
    secrets: dict[str, str] = field(default_factory=dict)
    external_access_integrations: tuple[str, ...] = ()

    @property
    def fqn(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"


@dataclass
class Project:
    """snowflake.yml and the SQL folders of one checkout, rendered for one environment."""

    root: Path
    env: dict[str, str]
    definition: dict[str, Any]

    @classmethod
    def load(cls, root: Path = PROJECT_ROOT, overrides: dict[str, str] | None = None) -> Project:
        path = root / "snowflake.yml"
        if not path.is_file():
            raise ProjectError(f"no snowflake.yml in {root}")
        definition = yaml.safe_load(path.read_text())
        env = {key: "" if value is None else str(value) for key, value in definition.get("env", {}).items()}
        env.update(overrides or {})
        return cls(root=root, env=env, definition=definition)

    def render(self, text: str, origin: str = "template") -> Any:
        return render(text, self.env, origin)

    def _resolved(self, value: Any, origin: str) -> Any:
        if isinstance(value, str):
            return self.render(value, origin)
        if isinstance(value, dict):
            return {k: self._resolved(v, origin) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolved(v, origin) for v in value]
        return value

    def procedures(self) -> dict[str, Procedure]:
        """Procedures keyed by upper-case unqualified name (what a CALL names)."""
        mixins = self.definition.get("mixins", {})
        found: dict[str, Procedure] = {}
        for entity_id, raw in self.definition.get("entities", {}).items():
            if raw.get("type") != "procedure":
                continue
            entity: dict[str, Any] = {}
            for mixin in raw.get("meta", {}).get("use_mixins", []):
                entity.update(mixins[mixin])
            entity.update(raw)
            entity = self._resolved(entity, f"snowflake.yml entity {entity_id}")
            ident = entity.get("identifier") or {"name": entity_id}
            if isinstance(ident, str):
                ident = {"name": ident}
            signature = entity.get("signature") or []
            proc = Procedure(
                entity_id=entity_id,
                name=ident["name"].upper(),
                schema=ident.get("schema", "PUBLIC").upper(),
                database=ident.get("database", self.env.get("database", "")).upper(),
                handler=entity["handler"],
                arguments=tuple(
                    Argument(a["name"], a["type"], None if a.get("default") is None else str(a["default"]))
                    for a in signature
                ),
                secrets=dict(entity.get("secrets") or {}),
                external_access_integrations=tuple(entity.get("external_access_integrations") or ()),
            )
            found[proc.name] = proc
        return found

    def sql_files(self, folder: str = "sql") -> list[Path]:
        files = sorted((self.root / folder).glob("*.sql"))
        if not files:
            raise ProjectError(f"no SQL files in {self.root / folder}")
        return files

    def statements(self, path: Path) -> list[str]:
        """The rendered statements of one SQL file."""
        return split_sql(self.render(path.read_text(), origin=str(path.relative_to(self.root))))
