"""The command line starts light: `import nbops.cli` (every `nbops` invocation, `--help`
included) loads no heavy library, and the bundle commands refuse a path that holds no bundle
(or a data file that is not there) before they import the machinery that loads bundles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbops import errors
from tests.helpers import run_nbops

# What a bundle command imports to load, verify or serve a bundle, or to read data (typer
# itself imports pydantic when a command runs, so pydantic is not among them).
HEAVY = [
    "pandas", "numpy", "sklearn", "fastapi", "uvicorn", "cryptography",
    "nbops.config", "nbops.bundle.load", "nbops.bundle.signing", "nbops.bundle.serve",
    "nbops.quality",
]  # fmt: skip

_PROBE = """
import json, sys
from nbops.cli import main
args, watched = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["nbops", *args]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
heavy = [m for m in watched if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _probe(args: list[str], cwd: Path) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(HEAVY)],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["code"], result["heavy"], done.stderr


def test_importing_the_cli_loads_no_heavy_library(tmp_path: Path) -> None:
    code, heavy, stderr = _probe(["--version"], tmp_path)
    assert code == 0, stderr
    assert heavy == []


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "gone", "data.csv"],
        ["serve", "gone"],
        ["monitor", "gone", "--data", "data.csv"],
        ["bundle", "verify", "gone"],
        ["bundle", "sign", "gone", "--key", "ops.key"],
        ["bundle", "compare", "gone", "here"],
        ["bundle", "compare", "here", "gone"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_missing_bundle_is_refused_before_any_heavy_import(
    tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "here").mkdir()
    code, heavy, stderr = _probe(args, tmp_path)
    assert code == errors.BundleError.exit_code
    assert stderr.strip() == (
        "nbops: error: no bundle at gone; give a bundle folder or its .tar.gz (nbops bundle)"
    )
    assert heavy == []


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "here", "gone.csv"],
        ["monitor", "here", "--data", "gone.csv"],
        ["monitor", "here", "--log", "gone.csv"],
    ],
    ids=lambda args: " ".join(args[:3:2]),
)
def test_a_missing_data_file_is_refused_before_any_heavy_import(
    tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "here").mkdir()
    code, heavy, stderr = _probe(args, tmp_path)
    assert code == errors.QualityInputError.exit_code
    assert "gone.csv" in stderr and "no such file" in stderr and len(stderr.splitlines()) == 1
    assert heavy == []


_READ_NOTEBOOK = """
import json, sys, time
from nbops.cli import main
sys.argv = ["nbops", "tags", sys.argv[1]]
started = time.perf_counter()
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "iri": sys.modules.get("rfc3987_syntax") is not None,
                  "nbformat": "nbformat" in sys.modules}))
"""


def test_a_command_reading_a_notebook_skips_jsonschemas_iri_grammars(tmp_path: Path) -> None:
    """rfc3987_syntax compiles ~30 Lark grammars on import (~2.7 s); no schema nbops validates
    has an `iri` format, so a command's process never loads it, and still reads notebooks."""
    import nbformat

    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["train"]})]
    )
    path = tmp_path / "nb.ipynb"
    nbformat.write(notebook, path)
    done = subprocess.run(
        [sys.executable, "-c", _READ_NOTEBOOK, str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "iri": False, "nbformat": True}, done.stderr
    assert "train" in done.stdout


def test_a_command_still_refuses_a_notebook_its_schema_rejects(tmp_path: Path) -> None:
    """With the iri check left out, nbformat's schema validation still runs: a cell with an
    invalid field is refused in one line, not read."""
    path = tmp_path / "bad.ipynb"
    path.write_text(
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                    "cells": [{"cell_type": "code", "source": 3, "metadata": {},
                               "outputs": [], "execution_count": None, "id": "a"}]})
    )  # fmt: skip
    # A new process: what its main() marks before nbformat loads is what is tested.
    done = run_nbops("tags", str(path), cwd=tmp_path, timeout=120, fresh=True)
    assert done.returncode == errors.NotebookReadError.exit_code, done.stderr
    assert "invalid notebook at cells/0/source" in done.stderr
    assert "Traceback" not in done.stderr


def test_each_command_is_registered_by_the_group_main_imports_for_it() -> None:
    """`main` imports only the group module `COMMANDS` names for the command it runs: that
    module must be the one registering it, for every command the full app has."""
    from typer.main import get_command_name

    from nbops.cli import COMMANDS, GROUPS, app

    found: dict[str, str] = {}
    for command in app.registered_commands:
        name = command.name or get_command_name(command.callback.__name__)  # type: ignore[union-attr]
        found[name] = command.callback.__module__  # type: ignore[union-attr]
    for group in app.registered_groups:
        assert group.name is not None and group.typer_instance is not None
        first = group.typer_instance.registered_commands[0]
        found[group.name] = first.callback.__module__  # type: ignore[union-attr]
    assert set(found) == set(COMMANDS)
    assert {name: f"nbops.cli.{module}" for name, module in COMMANDS.items()} == found
    assert set(COMMANDS.values()) == set(GROUPS)


@pytest.mark.parametrize(
    ("args", "group"),
    [
        (["serve", "gone"], "nbops.cli.serve"),
        (["bundle", "verify", "gone"], "nbops.cli.bundle"),
        (["registry", "--help"], "nbops.cli.registry"),
    ],
)
def test_a_command_imports_its_own_group_alone(tmp_path: Path, args: list[str], group: str) -> None:
    probe = _PROBE.replace(
        "heavy = [", "heavy = [m for m in sys.modules if m.startswith('nbops.cli.')] or ["
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(args), json.dumps([])],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    groups = json.loads(done.stdout.strip().splitlines()[-1])["heavy"]
    assert group in groups, done.stderr
    # its own group and what that imports (serve and registry share bundle's trust options)
    assert set(groups) <= {"nbops.cli.common", "nbops.cli.bundle", group}
