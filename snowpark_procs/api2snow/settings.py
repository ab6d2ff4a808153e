"""Pipeline settings as the procedures see them: OPS.PIPELINE_CONFIG, overlaid by the task graph's CONFIG.

Non-secret settings live in a warehouse table (rendered from snowflake.yml's env at deploy), so a procedure
called by a task, by an analyst or by the local stack reads the same values. Secrets never pass through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .platform import Platform


class ConfigError(ValueError):
    """A required setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    database: str
    values: dict[str, str]

    def get(self, key: str, default: str | None = None) -> str:
        value = self.values.get(key)
        if value in (None, ""):
            if default is None:
                raise ConfigError(f"setting {key!r} is missing from {self.database}.OPS.PIPELINE_CONFIG")
            return default
        return str(value)

    def get_int(self, key: str, default: int) -> int:
        raw = self.get(key, str(default))
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"setting {key!r} must be an integer, got {raw!r}") from None

    def table(self, schema_and_name: str) -> str:
        """Fully qualify `SCHEMA.NAME` with the pipeline's database."""
        return f"{self.database}.{schema_and_name}"


def current_database(session: Any) -> str:
    database = session.get_current_database()
    if not database:
        raise ConfigError(
            "no current database: run USE DATABASE <pipeline database> before calling the procedure"
        )
    return database.strip('"')


def load_settings(session: Any, platform: Platform) -> Settings:
    database = current_database(session)
    rows = session.sql(f"SELECT config_key, config_value FROM {database}.OPS.PIPELINE_CONFIG").collect()
    values = {row["CONFIG_KEY"]: row["CONFIG_VALUE"] for row in rows}
    values.update({key: str(value) for key, value in platform.graph_config(session).items()})
    return Settings(database=database, values=values)
