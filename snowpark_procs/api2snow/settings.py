"""Pipeline settings as the procedures see them: OPS.PIPELINE_CONFIG, overlaid by the task graph's CONFIG.

Non-secret settings live in a warehouse table (rendered from snowflake.yml's env at deploy), so a procedure
called by a task, by an analyst or by the local stack reads the same values. Secrets never pass through here.

Every setting is declared once, in SETTINGS: its kind, default, allowed range and purpose. `load_settings`
checks every value against it before a procedure does any work, so a typo'd key or an out-of-range value
fails the call with a message naming it, instead of falling back to a default or failing halfway through a
batch. docs/SETTINGS.md is generated from SETTINGS (a unit test keeps the two in step).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from .platform import Platform

Kind = Literal["str", "int", "float", "bool", "choice", "url"]
CONFIG_TABLE = "OPS.PIPELINE_CONFIG"
GRAPH_ROOT = "PIPELINE.ROOT"
DOC = "docs/SETTINGS.md"


class ConfigError(ValueError):
    """A setting is missing, malformed, out of range or unknown; the one-line message names it and where."""


class UndeclaredSetting(LookupError):
    """Code read a key that SETTINGS does not declare: a programming error, not a configuration one."""


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_BOOLS = {"true": True, "false": False}


def _parse_int(raw: str) -> int:
    if not _INT.fullmatch(raw):
        raise ValueError(raw)
    return int(raw)


def _parse_float(raw: str) -> float:
    if not _FLOAT.fullmatch(raw):  # also refuses nan, inf and Python's 1_000
        raise ValueError(raw)
    return float(raw)


def _parse_bool(raw: str) -> bool:
    try:
        return _BOOLS[raw.lower()]
    except KeyError:
        raise ValueError(raw) from None


def _parse_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in raw):
        raise ValueError(raw)
    _ = parts.port  # raises ValueError for a port that is not a number in 0..65535
    return raw


_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "choice": str,  # membership is checked by Setting.parse
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "url": _parse_url,
}


@dataclass(frozen=True)
class Setting:
    """One declared setting; without a default it is required, and a call without it fails at once."""

    name: str
    kind: Kind
    description: str
    default: Any = None  # typed ("" for optional text: unset); None: required
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is None

    def allowed(self) -> str:
        """What a value must be, as the error message and docs/SETTINGS.md say it."""
        if self.kind == "choice":
            if len(self.choices) == 2:
                return " or ".join(self.choices)
            return f"one of {', '.join(self.choices)}"
        fixed = {"str": "text", "bool": "true or false", "url": "an http(s) URL with a host"}
        if self.kind in fixed:
            return fixed[self.kind]
        noun = "an integer" if self.kind == "int" else "a number"
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} from {_number(self.minimum)} to {_number(self.maximum)}"
        return noun

    def parse(self, raw: str) -> Any:
        """The typed value of `raw` (kind and choices only); ValueError when it is not one."""
        value = _PARSERS[self.kind](raw)
        if self.choices and value not in self.choices:
            raise ValueError(raw)
        return value

    def check(self, raw: str) -> Any:
        """`parse`, then the range: what `load_settings` applies to every value it reads."""
        value = self.parse(raw)
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise ValueError(raw)
        return value

    def problem(self, raw: str, where: str) -> str:
        shown = raw if len(raw) <= 80 else raw[:77] + "..."
        return f"setting {self.name} must be {self.allowed()}, got {shown!r} (in {where})"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def source_settings(
    name: str,
    title: str,
    rate_limit_per_min: int,
    oauth_scope: str | None,
    page_size: int = 100,
    max_page_size: int = 100,
) -> list[Setting]:
    """The settings of one declared source (sources/ registers them): its base URL, request rate and page
    size, and for an OAuth2 client-credentials source who gets the token, with which scope and client auth.

    The page size defaults to the largest the API allows: under a rate limit, records per request are what
    a run's throughput is, so a smaller page only makes a backfill take longer."""
    settings = [
        Setting(f"{name}_base_url", "url", f"{title}'s base URL"),
        Setting(
            f"{name}_rate_limit_per_min",
            "int",
            f"requests a minute the procedure sends to {title} (at or below the API's own limit)",
            default=rate_limit_per_min,
            minimum=1,
            maximum=100_000,
        ),
        Setting(
            f"{name}_page_size",
            "int",
            f"records a page the procedure asks {title} for (the API allows at most {max_page_size})",
            default=page_size,
            minimum=1,
            maximum=max_page_size,
        ),
    ]
    if oauth_scope is None:
        return settings
    return [
        *settings,
        Setting(
            f"{name}_auth",
            "choice",
            f"who gets {title}'s token: Snowflake's OAuth2 integration, or the procedure (PASSWORD secret)",
            default="snowflake_oauth",
            choices=("client_credentials", "snowflake_oauth"),
        ),
        Setting(f"{name}_scope", "str", "the OAuth2 scope client_credentials asks for", default=oauth_scope),
        Setting(
            f"{name}_client_auth",
            "choice",
            "how client_credentials sends the client id and secret",
            default="client_secret_basic",
            choices=("client_secret_basic", "client_secret_post"),
        ),
    ]


def register(settings: list[Setting]) -> None:
    """Add settings declared elsewhere (a source's); one name keeps one definition."""
    for setting in settings:
        if SETTINGS.setdefault(setting.name, setting) != setting:
            raise ValueError(f"setting {setting.name!r} is declared twice, differently")


_DECLARED = (
    Setting("env_name", "str", "the environment's name (dev, prod, local)", default=""),
    Setting("env", "str", "the environment's name, as the task graph's CONFIG carries it", default=""),
    Setting("bucket", "str", "the S3 bucket the ingest procedures stage files in"),
    Setting("region", "str", "the bucket's AWS region", default="us-east-1"),
    Setting("s3_endpoint_url", "url", "an S3-compatible endpoint; unset in Snowflake", default=""),
    Setting(
        "s3_sse",
        "choice",
        "server-side encryption of every staged object",
        default="AES256",
        choices=("AES256", "aws:kms"),
    ),
    Setting("s3_kms_key_id", "str", "the KMS key for aws:kms (unset: the AWS managed key)", default=""),
    # At most 256: Snowflake recommends load files of 100-250 MB compressed; below 1 MB, per-file Snowpipe
    # overhead dominates. Memory does not depend on it: a part streams to S3 in 8 MiB multipart chunks.
    Setting(
        "part_max_mb",
        "int",
        "compressed size (MiB) at which a staged part rolls over",
        default=64,
        minimum=1,
        maximum=256,
    ),
    # At most 10: one request's retries (9 waits, each at most 120 s by Retry-After) stay inside the
    # ingest task's 30-minute timeout.
    Setting(
        "http_max_attempts",
        "int",
        "attempts per HTTP request, the first included (1: no retries)",
        default=6,
        minimum=1,
        maximum=10,
    ),
    Setting(
        "load_poll_seconds",
        "float",
        "the longest pause between WAIT_FOR_LOAD's looks at RAW (from 0.25 s, doubling)",
        default=5.0,
        minimum=0.1,
        maximum=300.0,
    ),
    Setting(
        "pipe_refresh_grace_seconds",
        "int",
        "how long after a batch is staged its parts may wait for auto-ingest before REFRESH queues them",
        default=120,
        minimum=0,
        maximum=3_600,
    ),
    # Above REFRESH's 7-day window, so WAIT_FOR_LOAD still sees a batch old enough to be copied instead.
    Setting(
        "ledger_lookback_days",
        "int",
        "how far back the hourly procedures read the batch ledger (older open batches: ingest and RECONCILE)",
        default=14,
        minimum=8,
        maximum=3_650,
    ),
    Setting(
        "incremental_overlap_seconds",
        "int",
        "how far before the watermark an incremental read starts again",
        default=300,
        minimum=0,
        maximum=86_400,
    ),
    Setting(
        "max_record_bytes",
        "int",
        "a staged record larger than this is rejected (safely below the 16 MB VARIANT limit)",
        default=8_388_608,
        minimum=1024,
        maximum=16_000_000,
    ),
    # At most 99: below the smallest default page size (100 records); a page size set lower caps the
    # overlap at the page size less one.
    Setting(
        "pagination_overlap_records",
        "int",
        "records an offset page re-reads from the end of the previous one, to find shifted records",
        default=5,
        minimum=0,
        maximum=99,
    ),
    Setting(
        "max_stalled_pages",
        "int",
        "pages in a row that bring no new record before an extract is treated as stalled",
        default=3,
        minimum=1,
        maximum=100,
    ),
    # Below the ingest tasks' 30-minute USER_TASK_TIMEOUT_MS (sql/06), with room for one page's retries
    # and for staging: a run that stops at its budget stages what it read; the next run goes on from there.
    Setting(
        "ingest_budget_seconds",
        "int",
        "how long one ingest run fetches before it stages what it has and leaves the rest to the next run",
        default=1200,
        minimum=5,
        maximum=1500,
    ),
    Setting(
        "ingest_max_pages",
        "int",
        "pages one ingest run fetches at most (0: no cap, only the time budget)",
        default=0,
        minimum=0,
        maximum=10_000_000,
    ),
    # OPS.BACKFILL and OPS.REJECTS (docs/ANALYSTS.md). A backfill is one bounded batch (the ingest budget
    # above applies too); its window is capped so one call's batch stays a reviewable size.
    Setting(
        "backfill_max_window_hours",
        "int",
        "the longest window one OPS.BACKFILL call may re-read",
        default=168,
        minimum=1,
        maximum=8_760,
    ),
    # At most 1 h: a backfill's wait for its own load, like WAIT_FOR_LOAD's (below the task timeout).
    Setting(
        "backfill_load_timeout_seconds",
        "int",
        "how long OPS.BACKFILL waits for Snowpipe to load its batch before it returns it as STAGED",
        default=900,
        minimum=1,
        maximum=3_600,
    ),
    Setting(
        "rejects_max_rows",
        "int",
        "the most rows OPS.REJECTS returns (the newest first)",
        default=1_000,
        minimum=1,
        maximum=2_000,
    ),
    # Alerts (notifications.py): the finalizer sends through these notification integrations, which
    # external_access/02 creates.
    Setting(
        "alert_webhook_integration",
        "str",
        "the TYPE = WEBHOOK notification integration the finalizer alerts through (unset: no webhook alerts)",
        default="",
    ),
    Setting(
        "alert_email_integration",
        "str",
        "the TYPE = EMAIL notification integration the finalizer alerts through (unset: no email alerts)",
        default="",
    ),
    Setting(
        "alert_email_recipients",
        "str",
        "comma-separated verified email addresses of this account's users (unset: no email alerts)",
        default="",
    ),
    Setting(
        "alert_on_warnings",
        "bool",
        "also alert when warn-severity DQ checks of a passing run fail",
        default=False,
    ),
    # The root's TASK_AUTO_RETRY_ATTEMPTS (sql/06 puts the same env value in both): a failed attempt that a
    # retry follows does not alert, so a run group alerts once, on its last attempt. Snowflake allows 0..30.
    Setting(
        "task_retry_attempts",
        "int",
        "the task graph's TASK_AUTO_RETRY_ATTEMPTS, as the root's CONFIG carries it to the finalizer",
        default=0,
        minimum=0,
        maximum=30,
    ),
)
SETTINGS: dict[str, Setting] = {setting.name: setting for setting in _DECLARED}


def declared(key: str) -> Setting:
    try:
        return SETTINGS[key]
    except KeyError:
        raise UndeclaredSetting(f"setting {key!r} is not declared in api2snow.settings.SETTINGS") from None


_ACCESSORS: dict[str, tuple[str, ...]] = {
    "get": ("str", "choice", "url"),
    "get_int": ("int",),
    "get_float": ("float",),
    "get_bool": ("bool",),
}


@dataclass(frozen=True)
class Settings:
    """One call's settings: raw strings, read through typed accessors that take defaults from SETTINGS.

    Ranges are enforced once, by `load_settings`; the accessors convert (so tests and benchmarks may build
    Settings directly with values outside the deployed ranges).
    """

    database: str
    values: Mapping[str, str]
    origins: Mapping[str, str] = field(default_factory=dict)  # key -> where it was set, for messages

    def get(self, key: str) -> str:
        """A text, choice or URL setting; "" for an optional one that is unset."""
        return self._read(key, "get")

    def get_int(self, key: str) -> int:
        return self._read(key, "get_int")

    def get_float(self, key: str) -> float:
        return self._read(key, "get_float")

    def get_bool(self, key: str) -> bool:
        return self._read(key, "get_bool")

    def where(self, key: str) -> str:
        return self.origins.get(key, f"{self.database}.{CONFIG_TABLE}")

    def table(self, schema_and_name: str) -> str:
        """Fully qualify `SCHEMA.NAME` with the pipeline's database."""
        return f"{self.database}.{schema_and_name}"

    def _read(self, key: str, accessor: str) -> Any:
        setting = declared(key)
        if setting.kind not in _ACCESSORS[accessor]:
            right = next(name for name, kinds in _ACCESSORS.items() if setting.kind in kinds)
            raise TypeError(f"setting {key} is of kind {setting.kind}: read it with Settings.{right}()")
        raw = self.values.get(key)
        if raw is None or raw == "":
            if setting.default is None:
                raise ConfigError(f"setting {key} is required but not set (in {self.where(key)})")
            return setting.default
        try:
            return setting.parse(raw)
        except ValueError:
            raise ConfigError(setting.problem(raw, self.where(key))) from None


# ---- validation -------------------------------------------------------------------------------------------
def _unknown(values: Mapping[str, str], where: Callable[[str], str]) -> list[str]:
    """Undeclared keys: most often a typo that would otherwise silently leave the default in force."""
    problems = []
    for key in sorted(set(values) - set(SETTINGS)):
        close = difflib.get_close_matches(key.lower(), SETTINGS, n=1)
        hint = f"did you mean {close[0]}?" if close else f"the settings are listed in {DOC}"
        problems.append(f"unknown setting {key!r} in {where(key)} ({hint})")
    return problems


def _invalid(values: Mapping[str, str], where: Callable[[str], str]) -> list[str]:
    problems = []
    for key, raw in values.items():
        setting = SETTINGS.get(key)
        if setting is None or raw is None or raw == "":
            continue
        try:
            setting.check(raw)
        except ValueError:
            problems.append(setting.problem(raw, where(key)))
    return problems


def _missing(values: Mapping[str, str], where: Callable[[str], str]) -> list[str]:
    return [
        f"setting {s.name} is required but not set (in {where(s.name)})"
        for s in SETTINGS.values()
        if s.required and values.get(s.name) in (None, "")
    ]


def _inconsistent(values: Mapping[str, str], where: Callable[[str], str]) -> list[str]:
    """Combinations S3 would refuse only at the first put, after the batch was started."""
    if values.get("s3_kms_key_id") and values.get("s3_sse", "AES256") != "aws:kms":
        return [f"setting s3_kms_key_id needs s3_sse = aws:kms (in {where('s3_kms_key_id')})"]
    return []


def validate(settings: Settings) -> Settings:
    """`settings` when every value is declared, well-formed and in range and every required one is set."""
    checks = (_unknown, _invalid, _missing, _inconsistent)
    problems = [p for check in checks for p in check(settings.values, settings.where)]
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} problems with the settings: " + "; ".join(problems))
    return settings


# ---- loading ----------------------------------------------------------------------------------------------
def current_database(session: Any) -> str:
    database = session.get_current_database()
    if not database:
        raise ConfigError(
            "no current database: run USE DATABASE <pipeline database> before calling the procedure"
        )
    return database.strip('"')


def _table_values(rows: Iterable[Any], table: str) -> dict[str, str]:
    """CONFIG_KEY -> CONFIG_VALUE; two rows of one key with different values leave no way to pick one."""
    values: dict[str, str] = {}
    for row in rows:
        key, value = row["CONFIG_KEY"], "" if row["CONFIG_VALUE"] is None else str(row["CONFIG_VALUE"])
        if key in values and values[key] != value:
            raise ConfigError(
                f"setting {key} has more than one row in {table} ({values[key]!r} and {value!r}): keep one"
            )
        values[key] = value
    return values


def _graph_value(key: str, value: Any, where: str) -> str:
    """A CONFIG JSON value as the text PIPELINE_CONFIG would hold (true/false, numbers as written)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise ConfigError(f"setting {key} must be a single value, got {type(value).__name__} (in {where})")
    return str(value)


def load_settings(session: Any, platform: Platform) -> Settings:
    """The checked settings of this call (ConfigError before any work when one is wrong)."""
    database = current_database(session)
    table = f"{database}.{CONFIG_TABLE}"
    values = _table_values(session.sql(f"SELECT config_key, config_value FROM {table}").collect(), table)
    graph = f"the task graph CONFIG of {database}.{GRAPH_ROOT}"
    overlay = {key: _graph_value(key, value, graph) for key, value in platform.graph_config(session).items()}
    values.update(overlay)
    return validate(Settings(database, values, dict.fromkeys(overlay, graph)))
