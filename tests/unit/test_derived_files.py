"""Every per-source Snowflake object is derived from the source declarations (api2snow_cli/derive.py).

The checked-in generated sections of sql/, external_access/ and snowflake.yml must be what the declarations
render ("run api2snow generate" otherwise); a bad declaration fails when the sources are discovered, naming
its file and field, before anything is rendered; and a new source declared in one file gets every object,
in SQL that lints and that the local stack's interpreters read.
"""

from __future__ import annotations

import dataclasses
import difflib
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import sqlglot
from api2snow import sources as sources_package
from api2snow.sources import SOURCES
from api2snow.sources.declaration import DeclarationError, Field, check_declaration
from sqlfluff.core import FluffConfig, Linter
from typer.testing import CliRunner

from api2snow_cli import derive, project
from api2snow_cli.cli import app
from api2snow_cli.local.pipes import PipeDefinition, is_pipe_statement
from api2snow_cli.local.tasks import graph_from_statements
from api2snow_cli.project import PROJECT_ROOT, Project, host_port, render, secret_variables, split_sql

API_A = SOURCES["api_a"].declaration  # type: ignore[attr-defined]
PROJECT_FILES = ("snowflake.yml", ".sqlfluff", "sql", "external_access")


def _copy_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy(source, root / name)
    return root


# ---- the checked-in files are what the declarations render ------------------------------------------------
def test_every_generated_section_is_what_the_declarations_render():
    stale = []
    for relative, (now, rendered) in derive.render_files(PROJECT_ROOT).items():
        if now != rendered:
            diff = difflib.unified_diff(
                now.splitlines(), rendered.splitlines(), relative, "rendered", lineterm=""
            )
            stale.append("\n".join(list(diff)[:40]))
    assert not stale, "generated sections are stale: run api2snow generate\n" + "\n".join(stale)


def test_every_file_with_per_source_objects_has_its_sections():
    for relative, renderers in derive.SECTIONS.items():
        text = (PROJECT_ROOT / relative).read_text()
        lead = "#" if relative.endswith(".yml") else "--"
        for name in renderers:
            assert f"{lead} api2snow:generated {name}\n" in text, f"{relative}: section {name}"
            assert f"{lead} api2snow:end {name}\n" in text, f"{relative}: section {name}"


def test_generate_check_names_the_stale_files_and_generate_repairs_them(tmp_path, monkeypatch):
    root = _copy_project(tmp_path)
    monkeypatch.setattr(project, "PROJECT_ROOT", root)
    runner = CliRunner()
    assert runner.invoke(app, ["generate", "--check"]).exit_code == 0

    tasks = root / "sql" / "06_tasks.sql"
    original = tasks.read_text()
    tasks.write_text(original.replace("REFRESH_PIPE_API_B,\n", ""))  # a hand edit inside a section
    result = runner.invoke(app, ["generate", "--check"])
    assert result.exit_code == 1
    assert "sql/06_tasks.sql" in result.output and "run api2snow generate" in result.output
    assert tasks.read_text() != original  # --check changes nothing

    result = runner.invoke(app, ["generate"])
    assert result.exit_code == 0 and "sql/06_tasks.sql" in result.output
    assert tasks.read_text() == original
    assert runner.invoke(app, ["generate", "--check"]).exit_code == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("-- api2snow:end pipe_grants\n", ""), "section 'pipe_grants' does not end"),
        (("api2snow:generated pipe_grants", "api2snow:generated pipe_grant"), "unknown generated section"),
        (("-- api2snow:generated pipe_grants\n", ""), "an end marker without its generated marker"),
    ],
)
def test_a_broken_marker_is_named_with_its_file_and_line(tmp_path, edit, message):
    root = _copy_project(tmp_path)
    grants = root / "sql" / "07_grants.sql"
    grants.write_text(grants.read_text().replace(*edit))
    with pytest.raises(derive.DeriveError, match=message) as failure:
        derive.generate(root, check=True)
    assert str(failure.value).startswith("sql/07_grants.sql")


# ---- a bad declaration fails first, naming its file and field ---------------------------------------------
def _field(name: str, **changes) -> tuple[Field, ...]:
    return tuple(dataclasses.replace(f, **changes) if f.name == name else f for f in API_A.fields)


@pytest.mark.parametrize(
    ("changes", "where", "why"),
    [
        ({"pagination": dataclasses.replace(API_A.pagination, kind="scroll")}, "pagination.kind", "'scroll'"),
        ({"fields": _field("duration_ms", kind="money")}, "fields.duration_ms.kind", "'money'"),
        (
            {"fields": _field("duration_ms", sql_type="NUMBER(10,2)")},
            "fields.duration_ms.sql_type",
            "NUMBER(p, 0)",
        ),
        (
            {"fields": _field("duration_ms", sql_type="NUMBER(40,0)")},
            "fields.duration_ms.sql_type",
            "1 to 38",
        ),
        ({"fields": _field("event_type", sql_type="VARCHAR(x)")}, "fields.event_type.sql_type", "use STRING"),
        (
            {"fields": _field("event_type", sql_type="VARCHAR(20)")},
            "fields.event_type.sql_type",
            "use STRING",
        ),
        ({"fields": _field("occurred_at", sql_type="TIMESTAMP_LTZ")}, "fields.occurred_at.sql_type", "NTZ"),
        ({"fields": _field("confidence", max_value=2.0)}, "fields.confidence", "events entity"),
        ({"fields": API_A.fields[:-1]}, "fields", "events entity"),
        ({"entity": "alerts"}, "entity", "'alerts'"),
        ({"name": "API_A"}, "name", "lower-case identifier"),
        ({"title": "Bob's API"}, "title", "SQL comments quote it"),
        ({"auth": dataclasses.replace(API_A.auth, kind="digest")}, "auth.kind", "'digest'"),
        ({"auth": dataclasses.replace(API_A.auth, scope="")}, "auth.scope", "scope"),
        ({"page_size": 600}, "page_size", "max_page_size"),
        ({"host_example": "api-a.example.com"}, "host_example", "base URL"),
        ({"raw_table": "CLEAN.API_A_EVENTS"}, "raw_table", "RAW."),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_bad_declaration_is_refused_naming_its_file_and_field(changes, where, why):
    bad = dataclasses.replace(API_A, **changes)
    with pytest.raises(DeclarationError) as failure:
        check_declaration(bad)
    message = str(failure.value)
    assert message.startswith(f"sources/{bad.name}.py: field {where!r}: "), message  # name: the file's
    assert why in message, message


def test_a_duplicate_source_name_is_refused_before_rendering():
    with pytest.raises(
        DeclarationError, match=r"^sources/api_a\.py: field 'name': 'api_a' is declared twice"
    ):
        derive.render_files(PROJECT_ROOT, [API_A, API_A])


SOURCE_MODULE = """
from api2snow.sources.declaration import (
    AuthSpec, DeclaredSource, PaginationSpec, RequestSpec, SourceDeclaration,
)
from api2snow.sources.entities import {fields}, mapped


class Declared(DeclaredSource):
    declaration = SourceDeclaration(
        name="{name}",
        title="{title}",
        entity="{entity}",
        auth=AuthSpec({auth}),
        request=RequestSpec("/v1/items", since_param="since"),
        pagination=PaginationSpec({pagination}),
        records_path="items",
        id_field="id",
        version_field="updated_at",
        fields=mapped({fields}, **{{name: {{"wire": name}} for name in {names}}}),
        rate_limit_per_min=30,
        page_size=50,
        max_page_size=50,
        incremental={incremental},
        tag_source={incremental},
        {extra}
        host_example="https://{host}.example.com:8443",
    )
"""
NEW_SOURCES = {
    "api_x1": {
        "title": "API X1",
        "entity": "events",
        "auth": '"bearer", secret="api_x1_token"',
        "pagination": '"page_number", total_pages_field="pages"',
        "incremental": True,
    },
    "api_x2": {
        "title": "API X2",
        "entity": "cameras",
        "auth": '"none"',
        "pagination": '"single"',
        "incremental": False,
    },
    "api_x3": {
        "title": "API X3",
        "entity": "events",
        "auth": '"oauth2_client_credentials", secret="api_x3_client", scope="read", token_path="/token"',
        "pagination": '"cursor"',
        "incremental": True,
    },
}


def _write_source(folder: Path, name: str, extra: str = "", **spec) -> None:
    fields = "EVENT_FIELDS" if spec["entity"] == "events" else "CAMERA_FIELDS"
    names = (
        "[f.name for f in EVENT_FIELDS]" if spec["entity"] == "events" else "[f.name for f in CAMERA_FIELDS]"
    )
    host = name.replace("_", "-")
    text = SOURCE_MODULE.format(name=name, host=host, fields=fields, names=names, extra=extra, **spec)
    (folder / f"{name}.py").write_text(textwrap.dedent(text))


@pytest.fixture
def extra_sources(tmp_path, monkeypatch):
    """A folder of source modules that discovery reads beside the package's own."""
    folder = tmp_path / "more_sources"
    folder.mkdir()
    monkeypatch.setattr(sources_package, "__path__", [*sources_package.__path__, str(folder)])
    yield folder
    for module in [m for m in sys.modules if m.startswith("api2snow.sources.api_x")]:
        del sys.modules[module]


def test_discovery_refuses_a_bad_source_file_naming_it_and_the_field(extra_sources):
    _write_source(extra_sources, "api_x1", **{**NEW_SOURCES["api_x1"], "pagination": '"scroll"'})
    with pytest.raises(DeclarationError, match=r"^sources/api_x1\.py: field 'pagination\.kind': 'scroll'"):
        sources_package._discover()


def test_discovery_refuses_a_source_that_takes_another_ones_table(extra_sources):
    _write_source(extra_sources, "api_x1", extra='raw_table="RAW.API_A_EVENTS",', **NEW_SOURCES["api_x1"])
    with pytest.raises(
        DeclarationError, match=r"^sources/api_x1\.py: field 'raw_table': .* sources/api_a\.py"
    ):
        sources_package._discover()


def test_discovery_refuses_a_source_named_unlike_its_file(extra_sources):
    _write_source(extra_sources, "api_x1", **NEW_SOURCES["api_x1"])
    path = extra_sources / "api_x1.py"
    path.write_text(path.read_text().replace('name="api_x1"', 'name="api_a"'))
    with pytest.raises(DeclarationError, match=r"^sources/api_x1\.py declares name='api_a'"):
        sources_package._discover()


# ---- a new source in one file: every object, in SQL the tools and the local stack read -------------------
def test_a_new_source_file_gets_every_object_in_valid_sql(extra_sources, tmp_path):
    for name, spec in NEW_SOURCES.items():
        _write_source(extra_sources, name, **spec)
    declared = [s.declaration for s in sources_package._discover().values()]  # type: ignore[attr-defined]
    assert {"api_x1", "api_x2", "api_x3"} <= {d.name for d in declared}
    root = _copy_project(tmp_path / "project")
    derive.generate(root, declared)
    assert derive.generate(root, declared, check=True) == []  # rewriting is stable

    lint = Linter(config=FluffConfig.from_path(str(root))).lint_paths((str(root / "sql"),))
    assert lint.num_violations() == 0, lint.as_records()

    proj = Project.load(root)
    procedures = proj.procedures()
    for d in declared:
        proc = procedures[f"INGEST_{d.upper}"]
        assert proc.handler == f"api2snow.procedures.ingest_{d.name}"
        expected_secrets = {"aws_s3"} | ({d.auth.secret} if d.auth.kind != "none" else set())
        assert set(proc.secrets) == expected_secrets
    assert proj.env["api_x1_base_url"] == "https://api-x1.example.com:8443"
    assert proj.env["api_x3_scope"] == "read" and proj.env["api_x3_auth"] == "snowflake_oauth"

    statements = [s for path in proj.sql_files("sql") for s in proj.statements(path)]
    pipes = {PipeDefinition.parse(s).table for s in statements if is_pipe_statement(s)}
    graph = graph_from_statements(proj.statements(root / "sql" / "06_tasks.sql"))
    database = proj.env["database"]
    for d in declared:
        assert f"{database}.{d.raw}" in pipes
        assert any(f"TABLE IF NOT EXISTS {database}.{d.clean} (" in s for s in statements), d.clean
        assert f"{database}.PIPELINE.INGEST_{d.upper}" in graph.tasks
    waits_for = graph.tasks[f"{database}.PIPELINE.WAIT_FOR_LOAD"].after
    assert {f"{database}.PIPELINE.REFRESH_PIPE_{d.upper}" for d in declared} == set(waits_for)
    views = "\n".join(statements)
    assert "'api_x2' AS source" in views and "'api_x3' AS source" in views  # STG_CAMERAS, STG_EVENTS
    assert "('api_x3')" in views  # the DQ view's events sources

    variables = dict(proj.env)
    for d in declared:
        variables[project.host_variable(d)] = host_port(proj.env[d.base_url_setting])
        variables.update({name: "x" for name in secret_variables(d)})
    variables["aws_role_arn"] = "arn:aws:iam::0:role/x"
    variables["alert_webhook_secret"] = "x"
    access = "\n".join(
        render((root / relative).read_text(), variables, relative)
        for relative in (project.EXTERNAL_ACCESS_SQL, project.ADMIN_SQL)
    )
    for statement in split_sql(access):
        sqlglot.parse_one(statement, read="snowflake")
    assert "CREATE SECRET IF NOT EXISTS" in access and "OPS.API_X1_TOKEN_SECRET" in access
    assert "OPS.API_X2" not in access.replace("OPS.API_X2_NETWORK_RULE", "")  # auth none: no secret
    assert "API2SNOW_API_X3_OAUTH_INT" in access and "'https://api-x3.example.com:8443/token'" in access
    assert "API_X2_NETWORK_RULE" in access and "API2SNOW_API_X2_EAI" in access


def test_a_long_list_of_event_sources_wraps_and_still_lints(tmp_path):
    many = [
        *derive.declarations(),
        *(
            dataclasses.replace(
                API_A, name=f"weather_station_{n}", title=f"Weather {n}", raw_table="", clean_table=""
            )
            for n in range(8)
        ),
    ]
    root = _copy_project(tmp_path)
    derive.generate(root, many)
    dq = (root / "sql" / "05_dq.sql").read_text()
    assert "            ('weather_station_7')\n    ) AS sources\n" in dq
    lint = Linter(config=FluffConfig.from_path(str(root))).lint_paths((str(root / "sql" / "05_dq.sql"),))
    assert lint.num_violations() == 0, lint.as_records()


# ---- what is computed at runtime instead of generated ------------------------------------------------------
def test_every_source_has_its_ingest_handler_and_template_variables():
    from api2snow import procedures

    from api2snow_cli.local.stack import LocalStack

    for name in SOURCES:
        handler = getattr(procedures, f"ingest_{name}")
        assert handler.__name__ == f"ingest_{name}" and callable(handler)
    assert project.SECRET_VARIABLES[:5] == (
        "api_a_client_id",
        "api_a_client_secret",
        "api_b_key",
        "api_c_user",
        "api_c_password",
    )
    assert project.SECRET_VARIABLES[-1] == "aws_role_arn"
    assert {f"{name}_host": f"{name}_base_url" for name in SOURCES} == project.HOST_VARIABLES
    assert set(LocalStack()._secret_values()) == set(project.SECRET_VARIABLES)  # the stack renders them all
