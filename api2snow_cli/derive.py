"""Every per-source Snowflake object, derived from the source declarations (`api2snow.sources`).

A source is declared once, in `snowpark_procs/api2snow/sources/<name>.py`. What Snowflake needs of it (its
RAW table and pipe, its staging-view branch and CLEAN table, its branches of the analytics and DQ views, its
tasks, grants, network rule, secret, OAuth2 integration, external access integration, procedure entity and
env keys) is rendered here and written into **generated sections** of the files that `snow`, the snow-only
scripts and the local stack read:

    -- api2snow:generated <section>        (# in snowflake.yml)
    ...rendered text, never edited by hand...
    -- api2snow:end <section>

Everything around the sections (shared objects, the analytics and DQ logic) stays hand-written. The files are
checked in, so deploying needs `snow` only; `api2snow generate` rewrites the sections, `--check` and a unit
test fail while one is stale. This module is local tooling: nothing here ships into Snowflake.

Naming, in one place: RAW table and pipe, CLEAN table and staging view come from the declaration's derived
names; the network rule is OPS.<SRC>_NETWORK_RULE, the secret OPS.<AUTH.SECRET>_SECRET (SECRETS key:
auth.secret), the integrations API2SNOW_<SRC>_EAI / API2SNOW_<SRC>_OAUTH_INT + eai_suffix, the procedure
OPS.INGEST_<SRC>, the tasks PIPELINE.INGEST_<SRC> and PIPELINE.REFRESH_PIPE_<SRC>, the env keys
<src>_base_url (and <src>_auth, <src>_scope for OAuth2), the template variables project.secret_variables()
and project.host_variable().
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from api2snow.sources.declaration import (
    DeclarationError,
    Field,
    SourceDeclaration,
    check_declaration,
)
from api2snow.sources.entities import (
    ANALYSED_ENTITY,
    SUMMARY_DAY_COLUMN,
    SUMMARY_DAY_FIELD,
    bad_value_counts,
)

from . import project
from .project import host_variable, secret_variables

DB = "<% ctx.env.database %>"
SUFFIX = "<% ctx.env.eai_suffix %>"
OWNER = "<% ctx.env.owner_role %>"
OPERATOR = "<% ctx.env.operator_role %>"
MAX_SQL_LINE = 120  # .sqlfluff's max_line_length

Sources = Sequence[SourceDeclaration]
Renderer = Callable[..., list[str]]  # (sources) -> lines; those in READS_FILE: (sources, the file's text)


class DeriveError(ValueError):
    """A generated section is missing, unknown or malformed in a file, or the sources cannot be rendered."""


# ---- what a declaration does not say: prose and shape per entity, per auth and pagination kind -----------
@dataclass(frozen=True)
class EntityText:
    """How the objects of an entity's sources are described (comments, task comments)."""

    noun: str  # what one source of the entity provides: "events", "camera directory"
    record: str  # one RAW row: "one normalised event"
    staging: Callable[[Sources], list[str]]  # the staging view's comment, given the entity's sources
    clean: Callable[[SourceDeclaration], str]  # the CLEAN table's comment
    task_label: bool  # whether the ingest task's COMMENT names the noun


def _count_phrase(count: int, noun: str) -> str:
    return {1: f"the one {noun}", 2: f"both {noun}s"}.get(count, f"all {count} {noun}s")


ENTITY_TEXT: dict[str, EntityText] = {
    "events": EntityText(
        noun="events",
        record="one normalised event",
        staging=lambda sources: [
            f"Typed rows of {_count_phrase(len(sources), 'event source')}, one per RAW row "
            "(not deduplicated).",
            "The casts are the column types of the CLN_ tables; sources/entities.py EVENT_FIELDS reject "
            "at ingest any value",
            "they cannot hold (tests/unit/test_schema_matches_sql.py keeps the two in step). DURATION_MS is",
            "NUMBER(18, 0), not NUMBER(38, 0): that is what both Snowflake and the local warehouse hold "
            "exactly.",
        ],
        clean=lambda d: (
            f"{d.title} events, typed, one row per {d.key_field.name.upper()} holding its latest version."
        ),
        task_label=False,
    ),
    "cameras": EntityText(
        noun="camera directory",
        record="one camera",
        staging=lambda sources: [
            f"Typed rows of the camera directory ({', '.join(d.title for d in sources)}), one per RAW row."
        ],
        clean=lambda d: (
            f"The camera/site directory from {d.title}, one row per {d.key_field.name.upper()}; "
            "enriches events in ANALYTICS."
        ),
        task_label=True,
    ),
}

AUTH_TEXT = {
    "oauth2_client_credentials": "OAuth2",
    "api_key": "API key",
    "bearer": "bearer token",
    "basic": "HTTP Basic",
    "none": "no auth",
}
PAGINATION_TEXT = {
    "cursor": "cursor pages",
    "offset": "offset pages",
    "page_number": "numbered pages",
    "link_header": "Link header pages",
    "single": "one page",
    "custom": "custom pages",
}


# ---- names -----------------------------------------------------------------------------------------------
def _qualified(name: str) -> str:
    return f"{DB}.{name}"


def _network_rule(d: SourceDeclaration) -> str:
    return f"{DB}.OPS.{d.upper}_NETWORK_RULE"


def _secret(d: SourceDeclaration) -> str:
    return f"{DB}.OPS.{d.auth.secret.upper()}_SECRET"


def _eai(d: SourceDeclaration) -> str:
    return f"API2SNOW_{d.upper}_EAI{SUFFIX}"


def _oauth_integration(d: SourceDeclaration) -> str:
    return f"API2SNOW_{d.upper}_OAUTH_INT{SUFFIX}"


def _oauth(d: SourceDeclaration) -> bool:
    return d.auth.kind == "oauth2_client_credentials"


def _env_keys(d: SourceDeclaration) -> list[tuple[str, str, str]]:
    """The env keys of a source in snowflake.yml and PIPELINE_CONFIG: (key, default, YAML comment)."""
    keys = [(d.base_url_setting, d.host_example, "")]
    if _oauth(d):
        keys += [
            (
                f"{d.name}_auth",
                "snowflake_oauth",
                "or client_credentials: the procedure exchanges a PASSWORD secret itself",
            ),
            (f"{d.name}_scope", d.auth.scope, ""),
        ]
    return keys


def _column_type(spec: Field) -> str:
    """The CLEAN column type as the SQL spells it: `NUMBER(18, 0)`."""
    return re.sub(r"\s*,\s*", ", ", spec.spec().column_type)


def _clean_fields(d: SourceDeclaration) -> list[Field]:
    """The fields that are CLEAN columns: all but objects, which stay in RAW's payload."""
    return [f for f in d.fields if f.kind != "object"]


def _summary_day(d: SourceDeclaration) -> list[str]:
    """The stored day column of an analysed source ([] for others): ANL_DAILY_SUMMARY's key, a column of its
    own (not an expression over OCCURRED_AT) so a filter on the day prunes CLEAN through the views."""
    return [SUMMARY_DAY_COLUMN] if d.entity == ANALYSED_ENTITY else []


def _entity(sources: Sources, entity: str) -> list[SourceDeclaration]:
    return [d for d in sources if d.entity == entity]


def _statements(*blocks: list[str]) -> list[str]:
    """Blocks of lines (a comment and its statement) separated by one blank line."""
    lines: list[str] = []
    for block in blocks:
        if lines:
            lines.append("")
        lines += block
    return lines


def _comment(*text: str) -> list[str]:
    return [f"-- {line}" for line in text]


# ---- sql/01_setup.sql -------------------------------------------------------------------------------------
def pipeline_config_rows(sources: Sources) -> list[str]:
    """PIPELINE_CONFIG MERGE rows: each source's base URL (and OAuth2 settings), from snowflake.yml's env."""
    return [
        f"        ('{key}', '<% ctx.env.{key} %>')," for d in sources for key, _default, _note in _env_keys(d)
    ]


# ---- sql/02_raw.sql ---------------------------------------------------------------------------------------
_REJECTS_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS [^\n]*\.RAW\.REJECTED_RECORDS \(\n(?P<columns>.*?)\n\);$",
    re.MULTILINE | re.DOTALL,
)


def raw_tables(sources: Sources, text: str) -> list[str]:
    """Each source's RAW table, in the one shape of what a pipe loads: the columns of the hand-written
    RAW.REJECTED_RECORDS in the same file (payload, file name, row number, batch id, Snowpipe's load time)."""
    shape = _REJECTS_TABLE.search(text)
    if shape is None:
        raise DeriveError(
            "sql/02_raw.sql: no RAW.REJECTED_RECORDS table, whose columns every RAW table takes"
        )
    blocks = []
    for d in sources:
        prose = ENTITY_TEXT[d.entity]
        blocks.append(
            [
                *_comment(f"{d.title} {prose.noun} as staged: {prose.record} per row."),
                f"CREATE TABLE IF NOT EXISTS {_qualified(d.raw)} (",
                *shape.group("columns").split("\n"),
                ");",
            ]
        )
    return _statements(*blocks)


def raw_pipes(sources: Sources) -> list[str]:
    blocks = []
    for number, d in enumerate(sources):  # the first comment of a run of alike objects says the detail
        parts = f"{d.title} parts (not rejects, not manifests)" if number == 0 else f"{d.title} parts"
        blocks.append(
            [
                *_comment(f"Loads {parts} into {d.raw}."),
                f"CREATE PIPE IF NOT EXISTS {_qualified(d.pipe)}",
                "AUTO_INGEST = TRUE",
                f"COMMENT = 'api2snow: loads source={d.name} parts'",
                "AS",
                f"COPY INTO {_qualified(d.raw)} (PAYLOAD, FILE_NAME, FILE_ROW_NUMBER, BATCH_ID, LOADED_AT)",
                "FROM (",
                "    SELECT",
                "        $1,",
                "        metadata$filename,",
                "        metadata$file_row_number,",
                "        $1:_batch_id::STRING,",
                "        metadata$start_scan_time",
                f"    FROM @{DB}.RAW.LANDING/source={d.name}/",
                ")",
                "PATTERN = '.*part-[0-9]+[.]jsonl[.]gz'",
                f"FILE_FORMAT = (FORMAT_NAME = '{DB}.RAW.JSONL_GZ');",
            ]
        )
    return _statements(*blocks)


# ---- sql/03_clean.sql -------------------------------------------------------------------------------------
def staging_views(sources: Sources) -> list[str]:
    """One STG_ view per entity: a UNION ALL branch per source typing its RAW payloads."""
    blocks = []
    for entity, text in ENTITY_TEXT.items():
        members = _entity(sources, entity)
        if not members:
            continue
        lines = [
            *_comment(*text.staging(members)),
            f"CREATE OR REPLACE VIEW {_qualified(members[0].staging_view)} AS",
        ]
        for number, d in enumerate(members):
            if number:
                lines.append("UNION ALL")
            lines += [
                "SELECT",
                f"    '{d.name}' AS source,",
                *(f"    raw_rows.payload:{f.name}::{_column_type(f)} AS {f.name}," for f in _clean_fields(d)),
                *(
                    f"    raw_rows.payload:{SUMMARY_DAY_FIELD}::TIMESTAMP_NTZ::DATE AS {day},"
                    for day in _summary_day(d)
                ),
                "    raw_rows.batch_id,",
                "    raw_rows.file_name,",
                "    raw_rows.file_row_number,",
                "    raw_rows.loaded_at",
                f"FROM {_qualified(d.raw)} AS raw_rows",
            ]
        lines[-1] += ";"
        blocks.append(lines)
    return _statements(*blocks)


def clean_tables(sources: Sources) -> list[str]:
    blocks = []
    for d in sources:
        key, *rest = _clean_fields(d)
        blocks.append(
            [
                *_comment(ENTITY_TEXT[d.entity].clean(d)),
                f"CREATE TABLE IF NOT EXISTS {_qualified(d.clean)} (",
                f"    {key.name.upper()} {_column_type(key)} NOT NULL,",
                *(f"    {f.name.upper()} {_column_type(f)}," for f in rest),
                *(f"    {day.upper()} DATE," for day in _summary_day(d)),
                "    BATCH_ID STRING,",
                "    MERGED_AT TIMESTAMP_NTZ",
                ")" + "".join(f" CLUSTER BY ({day.upper()})" for day in _summary_day(d)) + ";",
            ]
        )
        for day in _summary_day(d):
            blocks.append(
                [
                    *_comment(
                        f"{d.title} CLEAN tables made before {day.upper()} was stored: add and fill it."
                    ),
                    f"ALTER TABLE {_qualified(d.clean)} ADD COLUMN IF NOT EXISTS {day.upper()} DATE;",
                    "",
                    f"UPDATE {_qualified(d.clean)} SET {day} = {SUMMARY_DAY_FIELD}::DATE",
                    f"WHERE {day} IS NULL AND {SUMMARY_DAY_FIELD} IS NOT NULL;",
                    "",
                    f"ALTER TABLE {_qualified(d.clean)} CLUSTER BY ({day.upper()});",
                ]
            )
    return _statements(*blocks)


# ---- sql/04_analytics.sql: the per-source branches of the shared views ------------------------------------
def _analysed(sources: Sources) -> list[SourceDeclaration]:
    members = _entity(sources, ANALYSED_ENTITY)
    if not members:
        raise DeriveError(f"no source of entity {ANALYSED_ENTITY!r}: the analytics and DQ views read them")
    return members


def events_union(sources: Sources) -> list[str]:
    """VW_EVENTS's `all_events`: every events source's CLEAN rows (indented inside the CTE)."""
    lines: list[str] = []
    for number, d in enumerate(_analysed(sources)):
        if number:
            lines.append("    UNION ALL")
        columns = [f"'{d.name}' AS source", *(f.name for f in _clean_fields(d)), *_summary_day(d)]
        lines += [
            "    SELECT",
            *(f"        {column}," for column in columns[:-1]),
            f"        {columns[-1]}",
            f"    FROM {_qualified(d.clean)}",
        ]
    return lines


def raw_stats_union(sources: Sources) -> list[str]:
    """VW_RAW_STATS's body: rows, distinct ids and the newest load of each events source's RAW table."""
    lines: list[str] = []
    for number, d in enumerate(_analysed(sources)):
        if number:
            lines.append("UNION ALL")
        lines += [
            "SELECT",
            f"    '{d.name}' AS source,",
            "    COUNT(*) AS raw_rows,",
            f"    COUNT(DISTINCT payload:{d.key_field.name}::STRING) AS raw_distinct_ids,",
            "    CONVERT_TIMEZONE('UTC', MAX(loaded_at))::TIMESTAMP_NTZ AS last_loaded_at",
            f"FROM {_qualified(d.raw)}",
        ]
    lines[-1] += ";"
    return lines


# ---- sql/05_dq.sql ----------------------------------------------------------------------------------------
def dq_accepted_values(sources: Sources) -> list[str]:
    """VW_DQ_CHECKS's `bad_<field>` counts, from entities.ACCEPTED_VALUES (the hourly checks use the same)."""
    del sources  # the same for every set of sources
    return [f"        {count}," for count in bad_value_counts()]


def dq_raw_union(sources: Sources) -> list[str]:
    """VW_DQ_CHECKS's `raw_loaded` input: batch id and record id of every events source's RAW rows."""
    lines: list[str] = []
    for number, d in enumerate(_analysed(sources)):
        if number:
            lines.append("        UNION ALL")
        lines += [
            "        SELECT",
            "            batch_id,",
            f"            payload:{d.key_field.name}::STRING AS {d.key_field.name}",
            f"        FROM {_qualified(d.raw)}",
        ]
    return lines


def dq_sources(sources: Sources) -> list[str]:
    """VW_DQ_CHECKS's `raw_stats` rows: one per events source, loaded or not."""
    names = [d.name for d in _analysed(sources)]
    line = (
        f"    FROM (SELECT column1 AS source FROM VALUES {', '.join(f'({n!r})' for n in names)}) AS sources"
    )
    if len(line) <= MAX_SQL_LINE:
        return [line]
    return [
        "    FROM (",
        "        SELECT column1 AS source",
        "        FROM",
        "            VALUES",
        *(f"            ('{n}')," for n in names[:-1]),
        f"            ('{names[-1]}')",
        "    ) AS sources",
    ]


# ---- sql/06_tasks.sql -------------------------------------------------------------------------------------
def ingest_tasks(sources: Sources) -> list[str]:
    blocks = []
    for d in sources:
        text = ENTITY_TEXT[d.entity]
        how = f"{AUTH_TEXT[d.auth.kind]}, {PAGINATION_TEXT[d.pagination.kind]}"
        if d.incremental:
            comment = f"Pulls {d.title} ({how}) since its watermark and stages gzip JSONL parts on S3."
        else:
            comment = f"Pulls the {text.noun} from {d.title} ({how}) and stages it on S3."
        label = f" ({text.noun})" if text.task_label else ""
        blocks.append(
            [
                *_comment(comment),
                f"CREATE OR ALTER TASK {DB}.PIPELINE.INGEST_{d.upper}",
                "    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'",
                "    USER_TASK_TIMEOUT_MS = 1800000",
                f"    COMMENT = 'api2snow: extract {d.title}{label} to S3'",
                f"    AFTER {DB}.PIPELINE.ROOT",
                "AS",
                f"    CALL {DB}.OPS.INGEST_{d.upper}();",
            ]
        )
    return _statements(*blocks)


def refresh_pipe_tasks(sources: Sources) -> list[str]:
    blocks = []
    for number, d in enumerate(sources):  # the first comment says how, as in raw_pipes
        how = " (ALTER PIPE ... REFRESH PREFIX)" if number == 0 else ""
        blocks.append(
            [
                *_comment(f"Queues {d.title}'s new parts for Snowpipe{how}."),
                f"CREATE OR ALTER TASK {DB}.PIPELINE.REFRESH_PIPE_{d.upper}",
                "    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'",
                f"    COMMENT = 'api2snow: refresh the {d.title} pipe for staged batches'",
                f"    AFTER {DB}.PIPELINE.INGEST_{d.upper}",
                "AS",
                f"    CALL {DB}.OPS.REFRESH_PIPE('{d.name}');",
            ]
        )
    return _statements(*blocks)


def wait_for_load_after(sources: Sources) -> list[str]:
    """WAIT_FOR_LOAD runs after every source's REFRESH_PIPE task."""
    return [
        f"    {DB}.PIPELINE.REFRESH_PIPE_{d.upper}" + ("," if number < len(sources) - 1 else "")
        for number, d in enumerate(sources)
    ]


# ---- sql/07_grants.sql ------------------------------------------------------------------------------------
def pipe_grants(sources: Sources) -> list[str]:
    return _statements(
        *(
            [
                *_comment(f"Operator: watches the {d.title} pipe."),
                f"GRANT MONITOR ON PIPE {_qualified(d.pipe)} TO ROLE {OPERATOR};",
            ]
            for d in sources
        )
    )


# ---- external_access/01_network_rules_and_secrets.sql -----------------------------------------------------
def network_rules(sources: Sources) -> list[str]:
    blocks = []
    for d in sources:
        host = f"<% {host_variable(d)} %>"
        note = "."
        if _oauth(d):
            noun = ENTITY_TEXT[d.entity].noun
            note = f": one host serves both the OAuth token endpoint and the {noun} endpoint."
        blocks += [
            [
                *_comment(f"Egress to {d.title}{note}"),
                f"CREATE NETWORK RULE IF NOT EXISTS {_network_rule(d)}",
                "MODE = EGRESS",
                "TYPE = HOST_PORT",
                f"VALUE_LIST = ('{host}')",
                f"COMMENT = 'api2snow: {d.title} host';",
            ],
            [
                *_comment(f"{d.title}'s rule follows {d.base_url_setting} when the host changes."),
                f"ALTER NETWORK RULE {_network_rule(d)} SET",
                f"VALUE_LIST = ('{host}')",
                f"COMMENT = 'api2snow: {d.title} host';",
            ],
        ]
    return _statements(*blocks)


def _secret_blocks(d: SourceDeclaration) -> list[list[str]]:
    kind, name, title, secret = d.auth.kind, d.name, d.title, _secret(d)
    variables = [f"<% {v} %>" for v in secret_variables(d)]
    if kind == "oauth2_client_credentials":
        scope = f"('<% ctx.env.{name}_scope %>')"
        return [
            [
                *_comment(
                    f"{title}'s bearer token, issued by Snowflake through the OAuth2 integration of "
                    "external_access/02 part 1, which",
                    f"holds the client id and secret. INGEST_{d.upper} reads it with "
                    f"get_oauth_access_token('{d.auth.secret}').",
                ),
                f"CREATE SECRET IF NOT EXISTS {secret}",
                "TYPE = OAUTH2",
                f"API_AUTHENTICATION = {_oauth_integration(d)}",
                f"OAUTH_SCOPES = {scope}",
                f"COMMENT = 'api2snow: {title} OAuth2 token';",
            ],
            [
                *_comment(f"Keeps {title}'s token scope in line with {name}_scope."),
                f"ALTER SECRET {secret} SET",
                f"OAUTH_SCOPES = {scope};",
            ],
            _comment(
                f"Alternative for {title} (documented, not deployed): the procedure runs the "
                "client-credentials exchange itself",
                "with the client id and secret of a PASSWORD secret (no OAuth2 integration, so no "
                "ACCOUNTADMIN for it):",
                f"  CREATE SECRET IF NOT EXISTS <db>.OPS.{d.auth.secret.upper()}_SECRET",
                "  TYPE = PASSWORD",
                "  USERNAME = '<client id>'",
                "  PASSWORD = '<client secret>';",
                f"with {name}_auth = client_credentials in snowflake.yml's env, and API2SNOW_{d.upper}_EAI "
                "without",
                "ALLOWED_API_AUTHENTICATION_INTEGRATIONS (docs/DEPLOY.md).",
            ),
        ]
    if kind in ("api_key", "bearer"):
        sent = f"sent as the {d.auth.header} header" if kind == "api_key" else "sent as Authorization: Bearer"
        what = "key" if kind == "api_key" else "token"
        return [
            [
                *_comment(
                    f"{title}'s {what}, {sent}; read with get_generic_secret_string('{d.auth.secret}')."
                ),
                f"CREATE SECRET IF NOT EXISTS {secret}",
                "TYPE = GENERIC_STRING",
                f"SECRET_STRING = '{variables[0]}'",
                f"COMMENT = 'api2snow: {title} {what}';",
            ],
            [
                *_comment(f"Rotates {title}'s {what} to the value given to this deploy."),
                f"ALTER SECRET {secret} SET",
                f"SECRET_STRING = '{variables[0]}';",
            ],
        ]
    if kind == "basic":
        return [
            [
                *_comment(f"{title}'s HTTP Basic login; read with get_username_password('{d.auth.secret}')."),
                f"CREATE SECRET IF NOT EXISTS {secret}",
                "TYPE = PASSWORD",
                f"USERNAME = '{variables[0]}'",
                f"PASSWORD = '{variables[1]}'",
                f"COMMENT = 'api2snow: {title} user and password';",
            ],
            [
                *_comment(f"Rotates {title}'s login to the values given to this deploy."),
                f"ALTER SECRET {secret} SET",
                f"USERNAME = '{variables[0]}'",
                f"PASSWORD = '{variables[1]}';",
            ],
        ]
    return []  # auth "none": no secret


def secrets(sources: Sources) -> list[str]:
    return _statements(*(block for d in sources for block in _secret_blocks(d)))


# ---- external_access/02_admin_integrations.sql ------------------------------------------------------------
def oauth_integrations(sources: Sources) -> list[str]:
    """Part 1: the OAuth2 security integration of each OAuth2 client-credentials source, and its grant."""
    blocks = []
    for d in (d for d in sources if _oauth(d)):
        integration, title = _oauth_integration(d), d.title
        client_id, client_secret = (f"<% {v} %>" for v in secret_variables(d))
        endpoint = f"'<% ctx.env.{d.base_url_setting} %>{d.auth.token_path}'"
        scope = f"('<% ctx.env.{d.name}_scope %>')"
        blocks += [
            [
                *_comment(
                    f"{title}'s OAuth2 client credentials, held by Snowflake: it runs the client-credentials "
                    f"exchange against {title}'s",
                    f"token endpoint and hands INGEST_{d.upper} a bearer token "
                    f"({d.auth.secret.upper()}_SECRET, TYPE = OAUTH2, in",
                    "external_access/01). Named per environment, since dev and prod may use different "
                    f"{title} clients.",
                ),
                f"CREATE SECURITY INTEGRATION IF NOT EXISTS {integration}",
                "TYPE = API_AUTHENTICATION",
                "AUTH_TYPE = OAUTH2",
                "ENABLED = TRUE",
                f"OAUTH_TOKEN_ENDPOINT = {endpoint}",
                "OAUTH_CLIENT_AUTH_METHOD = CLIENT_SECRET_POST",
                f"OAUTH_CLIENT_ID = '{client_id}'",
                f"OAUTH_CLIENT_SECRET = '{client_secret}'",
                "OAUTH_GRANT = 'CLIENT_CREDENTIALS'",
                f"OAUTH_ALLOWED_SCOPES = {scope}",
                f"COMMENT = 'api2snow: {title} OAuth2 client credentials';",
            ],
            [
                *_comment(
                    f"Follows {d.base_url_setting} and rotates {title}'s client credentials to the values "
                    "given to this deploy."
                ),
                f"ALTER SECURITY INTEGRATION {integration} SET",
                "ENABLED = TRUE",
                f"OAUTH_TOKEN_ENDPOINT = {endpoint}",
                f"OAUTH_CLIENT_ID = '{client_id}'",
                f"OAUTH_CLIENT_SECRET = '{client_secret}'",
                f"OAUTH_ALLOWED_SCOPES = {scope};",
            ],
            [
                *_comment(f"The owner creates {d.auth.secret.upper()}_SECRET on the OAuth2 integration."),
                f"GRANT USAGE ON INTEGRATION {integration} TO ROLE {OWNER};",
            ],
        ]
    return _statements(*blocks)


def external_access_integrations(sources: Sources) -> list[str]:
    """Part 2: what each ingest procedure may reach: its host, with its secret (and OAuth2 integration)."""
    blocks = []
    for d in sources:
        allowed = [f"ALLOWED_NETWORK_RULES = ({_network_rule(d)})"]
        if _oauth(d):
            allowed.append(f"ALLOWED_API_AUTHENTICATION_INTEGRATIONS = ({_oauth_integration(d)})")
        if d.auth.kind != "none":
            allowed.append(f"ALLOWED_AUTHENTICATION_SECRETS = ({_secret(d)})")
        with_what = {
            "oauth2_client_credentials": ", with the OAuth2 token of its integration",
            "api_key": ", with its key",
            "bearer": ", with its token",
            "basic": ", with its login",
        }.get(d.auth.kind, "")
        pointed = "rule and secret" if d.auth.kind != "none" else "rule"
        blocks += [
            [
                *_comment(f"What INGEST_{d.upper} may reach: {d.title}'s host{with_what}."),
                f"CREATE EXTERNAL ACCESS INTEGRATION IF NOT EXISTS {_eai(d)}",
                *allowed,
                "ENABLED = TRUE",
                f"COMMENT = 'api2snow: {d.title} for INGEST_{d.upper}';",
            ],
            [
                *_comment(
                    f"Keeps {d.title}'s integration pointed at this database's {pointed}, "
                    "without replacing it."
                ),
                f"ALTER EXTERNAL ACCESS INTEGRATION {_eai(d)} SET",
                *allowed,
                "ENABLED = TRUE;",
            ],
        ]
    return _statements(*blocks)


def integration_grants(sources: Sources) -> list[str]:
    return _statements(
        *(
            [
                *_comment(f"The owner creates the procedures that use {d.title}'s integration."),
                f"GRANT USAGE ON INTEGRATION {_eai(d)} TO ROLE {OWNER};",
            ]
            for d in sources
        )
    )


# ---- snowflake.yml ----------------------------------------------------------------------------------------
def _yaml_scalar(value: str) -> str:
    """`value` as a flat YAML scalar that reads back as the same text (scripts/deploy.sh reads these too)."""
    plain = value and " #" not in value and not value.startswith(("'", '"'))
    if plain and yaml.safe_load(f"k: {value}") == {"k": value}:
        return value
    return "'" + value.replace("'", "''") + "'"


def env_keys(sources: Sources) -> list[str]:
    """The env block's keys of each source: base URL (the declaration's host_example), OAuth2 settings."""
    lines = []
    for d in sources:
        for key, default, note in _env_keys(d):
            lines.append(f"  {key}: {_yaml_scalar(default)}" + (f"  # {note}" if note else ""))
    return lines


def procedure_entities(sources: Sources) -> list[str]:
    """One ingest procedure per source, with only its own external access integration and secret; and for a
    source read by time, its backfill procedure with the same (OPS.BACKFILL calls it for the analyst)."""
    lines = []
    for d in sources:
        secret_lines = [f"      {d.auth.secret}: {_secret(d)}"] if d.auth.kind != "none" else []
        access = [
            f"    external_access_integrations: [{_eai(d)}, API2SNOW_S3_EAI{SUFFIX}]",
            "    secrets:",
            *secret_lines,
            f"      aws_s3: {DB}.OPS.AWS_S3_SECRET",
            "    meta: { use_mixins: [pipeline_procedure, pypi_packages] }",
        ]
        lines += [
            f"  ingest_{d.name}:",
            "    type: procedure",
            f"    identifier: {{ name: INGEST_{d.upper}, schema: OPS, database: {DB} }}",
            f"    handler: api2snow.procedures.ingest_{d.name}",
            '    signature: ""',
            *access,
        ]
        if d.incremental:
            lines += [
                f"  backfill_{d.name}:",
                "    type: procedure",
                f"    identifier: {{ name: BACKFILL_{d.upper}, schema: OPS, database: {DB} }}",
                f"    handler: api2snow.procedures.backfill_{d.name}",
                "    signature:",
                "      - { name: from_ts, type: string }",
                "      - { name: to_ts, type: string }",
                *access,
            ]
    return lines


# ---- the sections, by file --------------------------------------------------------------------------------
SECTIONS: dict[str, dict[str, Renderer]] = {
    "snowflake.yml": {"env": env_keys, "procedures": procedure_entities},
    "sql/01_setup.sql": {"pipeline_config": pipeline_config_rows},
    "sql/02_raw.sql": {"raw_tables": raw_tables, "raw_pipes": raw_pipes},
    "sql/03_clean.sql": {"staging_views": staging_views, "clean_tables": clean_tables},
    "sql/04_analytics.sql": {"events_union": events_union, "raw_stats": raw_stats_union},
    "sql/05_dq.sql": {
        "dq_accepted_values": dq_accepted_values,
        "dq_raw_union": dq_raw_union,
        "dq_sources": dq_sources,
    },
    "sql/06_tasks.sql": {
        "ingest_tasks": ingest_tasks,
        "refresh_pipe_tasks": refresh_pipe_tasks,
        "wait_for_load_after": wait_for_load_after,
    },
    "sql/07_grants.sql": {"pipe_grants": pipe_grants},
    "external_access/01_network_rules_and_secrets.sql": {"network_rules": network_rules, "secrets": secrets},
    "external_access/02_admin_integrations.sql": {
        "oauth_integrations": oauth_integrations,
        "external_access_integrations": external_access_integrations,
        "integration_grants": integration_grants,
    },
}
READS_FILE = {raw_tables}  # renderers that also read the hand-written rest of their file
_BEGIN = re.compile(r"^[ \t]*(--|#) api2snow:generated ([a-z0-9_]+)[ \t]*$")
_END = re.compile(r"^[ \t]*(--|#) api2snow:end ([a-z0-9_]+)[ \t]*$")


def declarations() -> tuple[SourceDeclaration, ...]:
    """The declared sources, in SOURCES' order (by name)."""
    return project.DECLARATIONS


def checked(sources: Iterable[SourceDeclaration]) -> tuple[SourceDeclaration, ...]:
    """`sources`, each checked (`check_declaration`), none sharing a name: before anything is rendered."""
    result: list[SourceDeclaration] = []
    for d in sources:
        check_declaration(d)
        if any(other.name == d.name for other in result):
            raise DeclarationError(f"sources/{d.name}.py: field 'name': {d.name!r} is declared twice")
        result.append(d)
    return tuple(result)


def rewrite(text: str, origin: str, renderers: dict[str, Renderer], sources: Sources) -> str:
    """`text` with each generated section's lines replaced by what its renderer makes of `sources`; every
    section of `renderers` must be there once, and no other."""
    lines = text.split("\n")
    out: list[str] = []
    seen: set[str] = set()
    number = 0
    while number < len(lines):
        line = lines[number]
        out.append(line)
        number += 1
        begin = _BEGIN.match(line)
        if begin is None:
            if _END.match(line):
                raise DeriveError(f"{origin}:{number}: an end marker without its generated marker")
            continue
        lead, name = begin.groups()
        where = f"{origin}:{number}"
        if name not in renderers:
            raise DeriveError(
                f"{where}: unknown generated section {name!r}; {origin} has {', '.join(renderers)}"
            )
        if name in seen:
            raise DeriveError(f"{where}: generated section {name!r} appears twice")
        seen.add(name)
        while number < len(lines) and not _END.match(lines[number]):
            if _BEGIN.match(lines[number]):
                raise DeriveError(f"{where}: section {name!r} is not closed before the next one starts")
            number += 1
        end = _END.match(lines[number]) if number < len(lines) else None
        if end is None or end.groups() != (lead, name):
            raise DeriveError(f"{where}: section {name!r} does not end with `{lead} api2snow:end {name}`")
        render = renderers[name]
        out += render(sources, text) if render in READS_FILE else render(sources)
        out.append(lines[number])
        number += 1
    missing = [name for name in renderers if name not in seen]
    if missing:
        lead = "#" if origin.endswith((".yml", ".yaml")) else "--"
        raise DeriveError(
            f"{origin}: no generated section {', '.join(missing)} (mark where it goes with the lines "
            f"`{lead} api2snow:generated {missing[0]}` and `{lead} api2snow:end {missing[0]}`)"
        )
    return "\n".join(out)


def render_files(root: Path, sources: Sources | None = None) -> dict[str, tuple[str, str]]:
    """Each file with generated sections: (its text now, its text with the sections rendered)."""
    decls = checked(declarations() if sources is None else sources)
    files = {}
    for relative, renderers in SECTIONS.items():
        path = root / relative
        if not path.is_file():
            raise DeriveError(f"{relative}: no such file in {root}")
        text = path.read_text()
        files[relative] = (text, rewrite(text, relative, renderers, decls))
    return files


def generate(root: Path | None = None, sources: Sources | None = None, check: bool = False) -> list[str]:
    """Rewrite the stale generated sections under `root` (unless `check`); the files that were stale."""
    root = root or project.PROJECT_ROOT
    files = render_files(root, sources)
    stale = [relative for relative, (now, rendered) in files.items() if now != rendered]
    if not check:
        for relative in stale:
            (root / relative).write_text(files[relative][1])
    return stale
