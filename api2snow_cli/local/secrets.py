"""The local stand-in for Snowflake's secrets and the security integrations behind them.

There is no second list of secrets here: the local stack renders external_access/ (the files deploy runs) with
its own credentials for the mock APIs, and reads every CREATE SECRET and CREATE SECURITY INTEGRATION in them.
A secret is then readable only the way its TYPE allows in Snowflake: GENERIC_STRING as a string, PASSWORD as
user and password, OAUTH2 as a bearer token obtained from its integration's token endpoint with the
integration's client credentials (what Snowflake does), CLOUD_PROVIDER_TOKEN as AWS credentials (moto's,
where Snowflake would assume the AWS_IAM integration's role).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests
from api2snow.http.auth import OAuth2ClientCredentials
from api2snow.platform import AwsCredentials, PlatformError

from ..project import ADMIN_SQL, EXTERNAL_ACCESS_SQL, Project, split_sql, sql_string_body

_CREATE = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(?P<kind>SECRET|SECURITY\s+INTEGRATION)\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?P<name>[\w.$]+)\s+(?P<body>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_STRING = r"'(?:[^'\\]|''|\\.)*'"
_PROPERTY = re.compile(rf"(?P<key>\w+)\s*=\s*(?P<value>{_STRING}|\((?:[^)']|{_STRING})*\)|[\w.$-]+)")


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"''|\\(.)", lambda m: "'" if m.group(0) == "''" else m.group(1), body)


def _value(raw: str) -> str | list[str]:
    if raw.startswith("("):
        return [_unquote(item) for item in re.findall(_STRING, raw)]
    return _unquote(raw) if raw.startswith("'") else raw.upper()


def parse_properties(body: str) -> dict[str, str | list[str]]:
    """`KEY = value` pairs of a CREATE statement: strings unquoted, lists as lists, words upper-cased."""
    return {m.group("key").upper(): _value(m.group("value")) for m in _PROPERTY.finditer(body)}


@dataclass(frozen=True)
class SecretObject:
    """One CREATE SECRET or CREATE SECURITY INTEGRATION, by its upper-case name."""

    name: str
    properties: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.properties.get("TYPE", "")).upper()

    def text(self, key: str) -> str:
        value = self.properties.get(key)
        if not isinstance(value, str) or not value:
            raise PlatformError(f"{self.name} has no {key}")
        return value

    def __repr__(self) -> str:  # properties hold secret values
        return f"SecretObject(name={self.name!r}, type={self.type!r})"


def external_access_statements(project: Project, values: dict[str, str]) -> list[str]:
    """external_access/ statements (admin part first), rendered with `values` for its secret variables."""
    literals = {name: sql_string_body(value) for name, value in values.items()}
    return [
        statement
        for relative in (ADMIN_SQL, EXTERNAL_ACCESS_SQL)
        for statement in split_sql(project.render_external_access(relative, literals))
    ]


class LocalSecrets:
    """Secret objects and security integrations as external_access/ declares them, with local values."""

    def __init__(self, statements: list[str], aws: AwsCredentials) -> None:
        self._secrets: dict[str, SecretObject] = {}
        self._integrations: dict[str, SecretObject] = {}
        self._aws = aws
        for statement in statements:
            match = _CREATE.match(statement.strip())
            if match is None:
                continue
            target = self._secrets if match.group("kind").upper() == "SECRET" else self._integrations
            name = match.group("name").upper()
            target[name] = SecretObject(name, parse_properties(match.group("body")))

    @classmethod
    def from_project(cls, project: Project, values: dict[str, str], aws: AwsCredentials) -> LocalSecrets:
        """external_access/ rendered with `values` for its secret variables (project.SECRET_VARIABLES)."""
        return cls(external_access_statements(project, values), aws)

    def _get(self, name: str, *types: str) -> SecretObject:
        secret = self._secrets.get(name.upper())
        if secret is None:
            raise PlatformError(f"secret object {name} does not exist in the local stack (external_access/)")
        if secret.type not in types:
            raise PlatformError(f"secret object {name} is TYPE = {secret.type}, not {' or '.join(types)}")
        return secret

    def _integration(self, secret: SecretObject, auth_type: str) -> SecretObject:
        name = secret.text("API_AUTHENTICATION").upper()
        integration = self._integrations.get(name)
        if integration is None:
            raise PlatformError(f"{secret.name}: security integration {name} is not in external_access/")
        if str(integration.properties.get("AUTH_TYPE", "")).upper() != auth_type:
            raise PlatformError(f"{secret.name}: security integration {name} is not AUTH_TYPE = {auth_type}")
        return integration

    def secret_string(self, name: str) -> str:
        return self._get(name, "GENERIC_STRING").text("SECRET_STRING")

    def username_password(self, name: str) -> tuple[str, str]:
        secret = self._get(name, "PASSWORD")
        return secret.text("USERNAME"), secret.text("PASSWORD")

    def aws_credentials(self, name: str) -> AwsCredentials:
        secret = self._get(name, "CLOUD_PROVIDER_TOKEN", "PASSWORD")
        if secret.type == "PASSWORD":  # the documented alternative: an access key pair
            return AwsCredentials(secret.text("USERNAME"), secret.text("PASSWORD"))
        self._integration(secret, "AWS_IAM")
        return self._aws

    def oauth_client(self, name: str, http: requests.Session | None = None) -> OAuth2ClientCredentials:
        """A client-credentials token source configured as the OAUTH2 secret's integration says."""
        secret = self._get(name, "OAUTH2")
        integration = self._integration(secret, "OAUTH2")
        grant = integration.text("OAUTH_GRANT").upper()
        if grant != "CLIENT_CREDENTIALS":
            raise PlatformError(f"{integration.name}: locally, OAUTH_GRANT must be 'CLIENT_CREDENTIALS'")
        scopes = secret.properties.get("OAUTH_SCOPES") or integration.properties.get("OAUTH_ALLOWED_SCOPES")
        method = str(integration.properties.get("OAUTH_CLIENT_AUTH_METHOD", "CLIENT_SECRET_BASIC")).lower()
        return OAuth2ClientCredentials(
            token_url=integration.text("OAUTH_TOKEN_ENDPOINT"),
            client_id=integration.text("OAUTH_CLIENT_ID"),
            client_secret=integration.text("OAUTH_CLIENT_SECRET"),
            scope=" ".join(scopes or []) or None,
            method=method,
            http=http,
        )
