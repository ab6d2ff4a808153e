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
from urllib.parse import urlsplit

import yaml
from api2snow.sources import SOURCES
from api2snow.sources.declaration import SourceDeclaration
from snowflake.connector.util_text import split_statements

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = re.compile(r"<%\s*(?:ctx\.env\.)?([A-Za-z_][A-Za-z0-9_]*)\s*%>")
EXTERNAL_ACCESS_SQL = Path("external_access") / "01_network_rules_and_secrets.sql"
ADMIN_SQL = Path("external_access") / "02_admin_integrations.sql"
# Secret template variables of external_access/ per auth kind of a source, after `<source>_`: what the
# source's SECRET (or OAuth2 integration) is created with. Each file says where the values come from (deploy:
# environment variables; the local stack: its own credentials for the mock APIs).
AUTH_SECRET_VARIABLES: dict[str, tuple[str, ...]] = {
    "oauth2_client_credentials": ("client_id", "client_secret"),
    "api_key": ("key",),
    "bearer": ("token",),
    "basic": ("user", "password"),
    "none": (),
}


def secret_variables(declaration: SourceDeclaration) -> tuple[str, ...]:
    """The secret template variables of one source, by its auth kind (`api_b_key`, `api_c_user`, ...)."""
    return tuple(f"{declaration.name}_{suffix}" for suffix in AUTH_SECRET_VARIABLES[declaration.auth.kind])


def host_variable(declaration: SourceDeclaration) -> str:
    """The template variable of a source's host[:port] in its network rule (`api_a_host`)."""
    return f"{declaration.name}_host"


DECLARATIONS: tuple[SourceDeclaration, ...] = tuple(
    source.declaration  # type: ignore[attr-defined]
    for source in SOURCES.values()
)
# Template variables of external_access/ that are secret values, not env keys: every source's, the alert
# webhook's (a Slack/Teams URL's secret path or a PagerDuty routing key), then AWS's.
SECRET_VARIABLES = (
    *(name for d in DECLARATIONS for name in secret_variables(d)),
    "alert_webhook_secret",
    "aws_role_arn",
)
# Template variable in external_access/ -> the env key whose URL it is the host[:port] of.
HOST_VARIABLES = {host_variable(d): d.base_url_setting for d in DECLARATIONS}


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


def sql_string_body(value: str) -> str:
    """A value for inside a single-quoted Snowflake string literal (backslash escapes are live there)."""
    return value.replace("\\", "\\\\").replace("'", "''")


def host_port(url: str) -> str:
    """The HOST_PORT network-rule value for a base URL: host, plus the port unless it is https's 443."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProjectError(f"not an http(s) base URL: {url!r}")
    if parts.port:
        return f"{parts.hostname}:{parts.port}"
    return parts.hostname if parts.scheme == "https" else f"{parts.hostname}:80"


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
    returns: str = "variant"

    @property
    def fqn(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"

    @property
    def table_columns(self) -> tuple[str, ...]:
        """The column names of `returns: table(NAME TYPE, ...)`, upper case; () for a scalar procedure."""
        return tuple(name.upper() for name, _ in table_return_columns(self.returns))


TABLE_RETURNS = re.compile(r"^\s*table\s*\((?P<columns>.*)\)\s*$", re.IGNORECASE | re.DOTALL)


def table_return_columns(returns: str) -> list[tuple[str, str]]:
    """(name, type) of a `table(NAME TYPE, ...)` return type; [] for any other type. Types such as
    NUMBER(38, 0) keep their commas: a column starts at each comma outside parentheses."""
    match = TABLE_RETURNS.match(returns or "")
    if match is None:
        return []
    columns, depth, current = [], 0, ""
    for char in match.group("columns") + ",":
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            name, _, kind = current.strip().partition(" ")
            if name:
                columns.append((name, kind.strip()))
            current = ""
        else:
            current += char
    return columns


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
                returns=str(entity.get("returns") or "variant"),
            )
            found[proc.name] = proc
        return found

    def external_access_variables(self, secrets: dict[str, str]) -> dict[str, str]:
        """What external_access/ is rendered with: env, API hosts, and `secrets` (SECRET_VARIABLES)."""
        unknown = sorted(set(secrets) - set(SECRET_VARIABLES))
        if unknown:
            raise ProjectError(f"not secret variables of external_access/: {', '.join(unknown)}")
        variables = dict(self.env)
        variables.update({name: host_port(self.env[key]) for name, key in HOST_VARIABLES.items()})
        variables.update(secrets)
        return variables

    def render_external_access(self, relative: Path, secrets: dict[str, str]) -> str:
        """One external_access/ file rendered with `secrets` as the values of SECRET_VARIABLES."""
        variables = self.external_access_variables(secrets)
        return render((self.root / relative).read_text(), variables, origin=str(relative))

    def sql_files(self, folder: str = "sql") -> list[Path]:
        files = sorted((self.root / folder).glob("*.sql"))
        if not files:
            raise ProjectError(f"no SQL files in {self.root / folder}")
        return files

    def statements(self, path: Path) -> list[str]:
        """The rendered statements of one SQL file."""
        return split_sql(self.render(path.read_text(), origin=str(path.relative_to(self.root))))
