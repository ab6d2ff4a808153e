"""A source file with a mistake stops every `api2snow` command before it starts: one line, exit code 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from api2snow_cli.project import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "snowpark_procs" / "api2snow"


def _with_source(tmp_path: Path, name: str, text: str) -> Path:
    """A copy of the procedures' package with one more source module; returns the folder to import from."""
    root = tmp_path / "procs"
    shutil.copytree(PACKAGE, root / "api2snow", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "api2snow" / "sources" / f"{name}.py").write_text(text)
    return root


def _api_e(**replacements: str) -> str:
    text = (PACKAGE / "sources" / "api_d.py").read_text()
    text = text.replace("class ApiD", "class ApiE").replace('name="api_d"', 'name="api_e"')
    text = text.replace('title="API D"', 'title="API E"')
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(
    ("replacements", "message"),
    [
        (
            {'PaginationSpec("link_header")': 'PaginationSpec("cursorz")'},
            "error: sources/api_e.py: field 'pagination.kind': 'cursorz' is not one of cursor, offset, "
            "page_number, link_header, single, custom",
        ),
        (
            {
                '"wire": "detection.duration_ms", "wire_type": "int"}': (
                    '"wire": "detection.duration_ms", "wire_type": "int", "sql_type": "NUMBER(10,2)"}'
                )
            },
            "error: sources/api_e.py: field 'fields.duration_ms.sql_type': 'NUMBER(10,2)' cannot hold an int "
            "field exactly: use NUMBER(p, 0), p from 1 to 38",
        ),
    ],
)
def test_a_bad_declaration_is_one_line_naming_file_and_field_before_any_command(
    tmp_path: Path, replacements: dict[str, str], message: str
) -> None:
    procs = _with_source(tmp_path, "api_e", _api_e(**replacements))
    env = {**os.environ, "PYTHONPATH": str(procs)}
    env.pop("API2SNOW_DEBUG", None)
    for command in (["generate"], ["deploy", "--env", "dev", "--dry-run"]):
        result = subprocess.run(
            [sys.executable, "-c", "from api2snow_cli.entry import main; main()", *command],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert (result.returncode, result.stdout, result.stderr.strip()) == (2, "", message)
