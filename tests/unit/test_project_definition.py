"""snowflake.yml is accepted by the real Snowflake CLI, and every handler it names matches its declaration."""

from __future__ import annotations

import ast
import inspect
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from api2snow.sources import SOURCES

from api2snow_cli.local.procedures import ProcedureDispatcher, is_call_statement, parse_call
from api2snow_cli.local.tasks import graph_from_statements
from api2snow_cli.project import PROJECT_ROOT, Project

SNOW = Path(sys.executable).parent / "snow"
ALLOWED_THIRD_PARTY = {"requests", "boto3", "botocore", "snowflake", "_snowflake"}
OPTIONAL_FAST_PATHS = {"orjson"}


@pytest.fixture(scope="module")
def project() -> Project:
    return Project.load()


def _snow_build(folder: Path, definition: str) -> subprocess.CompletedProcess:
    """`snow snowpark build --skip-dependencies` on a project copy with `definition` as snowflake.yml."""
    (folder / "snowflake.yml").write_text(definition)
    shutil.copy(PROJECT_ROOT / "requirements.txt", folder / "requirements.txt")
    shutil.copytree(
        PROJECT_ROOT / "snowpark_procs",
        folder / "snowpark_procs",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return subprocess.run(
        [str(SNOW), "snowpark", "build", "--skip-dependencies"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_snow_snowpark_build_accepts_the_project(tmp_path):
    result = _snow_build(tmp_path, (PROJECT_ROOT / "snowflake.yml").read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    names = zipfile.ZipFile(tmp_path / "snowpark_procs.zip").namelist()
    assert "api2snow/procedures.py" in names and "api2snow/http/client.py" in names


def test_snow_build_rejects_an_unknown_key(tmp_path):
    handler = "    handler: api2snow.procedures.run_dq"
    definition = (PROJECT_ROOT / "snowflake.yml").read_text().replace(handler, handler + "\n    colour: blue")
    result = _snow_build(tmp_path, definition)
    assert result.returncode == 1
    assert "colour" in result.stdout + result.stderr


def test_every_handler_imports_and_takes_the_declared_arguments(project):
    procedures = project.procedures()
    backfills = sum(1 for source in SOURCES.values() if source.incremental)
    # INGEST_<SRC> per source, BACKFILL_<SRC> per source read by time, and the analysts' three
    assert len(procedures) == 9 + len(SOURCES) + backfills + 3
    dispatcher = ProcedureDispatcher(procedures, session=None)
    for proc in procedures.values():
        params = list(inspect.signature(dispatcher.handler(proc)).parameters.values())
        assert params[0].name == "session", proc.name
        assert [p.name for p in params[1:]] == [a.name for a in proc.arguments], proc.name
        for param, argument in zip(params[1:], proc.arguments, strict=True):
            if argument.default is not None:
                assert param.default == int(argument.default), proc.name


def test_every_task_calls_a_declared_procedure_with_valid_arguments(project):
    dispatcher = ProcedureDispatcher(project.procedures(), session=None)
    graph = graph_from_statements(project.statements(PROJECT_ROOT / "sql/06_tasks.sql"))
    calls = [task.body for task in graph.tasks.values() if is_call_statement(task.body)]
    assert len(calls) == len(graph.tasks) - 1  # every task but the root calls a procedure
    for call in calls:
        name, args = parse_call(call)
        dispatcher.bind(dispatcher.resolve(name), args)


def test_procedure_code_imports_only_what_snowflake_offers():
    offenders = []
    for path in (PROJECT_ROOT / "snowpark_procs").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY or top == "api2snow":
                    continue
                if top in OPTIONAL_FAST_PATHS and isinstance(_parent_try(tree, node), ast.Try):
                    continue
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}: {module}")
    assert not offenders


def _parent_try(tree: ast.AST, target: ast.AST) -> ast.AST | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(child is target for child in ast.walk(node)):
            return node
    return None


def test_the_runtime_packages_are_pinned_and_boto3_has_what_ingest_uses():
    """requirements.txt is what Snowflake installs for the procedures: exact versions, boto3 new enough for
    `request_checksum_calculation` (botocore 1.36)."""
    lines = [
        line.strip()
        for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    pins = dict(line.split("==") for line in lines)
    assert set(pins) == {"snowflake-snowpark-python", "requests", "boto3"}, lines
    assert tuple(int(part) for part in pins["boto3"].split(".")[:2]) >= (1, 36)


def test_the_staging_procedures_take_orjson_from_the_pypi_artifact_repository():
    """Ingest and backfill procedures stage JSON with orjson from Snowflake's PyPI artifact repository, with
    the same pins as requirements.txt (a procedure's packages all come from the repository once it names
    one); every other procedure keeps the Anaconda channel's requirements.txt."""
    from snowflake.cli.api.project.definition_manager import DefinitionManager

    pins = {
        line.strip()
        for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    constraints = (PROJECT_ROOT / "constraints.txt").read_text().splitlines()
    [orjson_pin] = [line for line in constraints if line.startswith("orjson==")]
    definition = DefinitionManager(PROJECT_ROOT).project_definition
    procedures = {k: e for k, e in definition.entities.items() if e.type == "procedure"}
    staging = {k for k in procedures if k.startswith(("ingest_", "backfill_"))}
    assert {f"ingest_{name}" for name in SOURCES} <= staging
    for key, entity in procedures.items():
        if key in staging:
            assert entity.artifact_repository == "snowflake.snowpark.pypi_shared_repository", key
            assert set(entity.artifact_repository_packages) == pins | {orjson_pin}, key
        else:
            assert entity.artifact_repository is None and not entity.artifact_repository_packages, key
