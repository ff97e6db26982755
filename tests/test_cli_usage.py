"""The command line keeps its word on usage: every command's help names its arguments one
way (in capitals, as the help texts do), shows no `<bool>` or `<list[...]>` type, and options
are checked before any work starts (a usage error, exit 2, with no kernel started)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from nbops.cli import app
from nbops.errors import RunTimeoutError
from tests.helpers import SMALL, build_notebook, run_nbops


def _commands() -> Iterator[list[str]]:
    stack: list[tuple[list[str], Any]] = [([], typer.main.get_command(app))]
    while stack:
        path, command = stack.pop()
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(([*path, name], sub))


COMMANDS = sorted(_commands())


def _help(path: list[str]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "nbops")
def test_help_shows_no_python_type_names(path: list[str]) -> None:
    text = _help(path)
    assert "<bool>" not in text and "list[" not in text, text


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "nbops")
def test_usage_names_every_argument_in_capitals(path: list[str]) -> None:
    (usage,) = [line for line in _help(path).splitlines() if "Usage:" in line]
    arguments = re.findall(r"[{\[]([^}\]]+)[}\]]", usage.split("[OPTIONS]", 1)[-1])
    assert all(a == a.upper() for a in arguments), usage


def test_runs_compare_with_one_id_is_a_usage_error(tmp_path: Path) -> None:
    result = run_nbops("runs", "compare", "20240101-000000-abcdef", cwd=tmp_path)
    assert result.returncode == 2
    assert "two or more" in result.stderr
    assert not (tmp_path / ".nbops").exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_a_usage_error(
    tmp_path: Path, value: str
) -> None:
    notebook = build_notebook(tmp_path / "nb.ipynb", SMALL)
    result = run_nbops("run", notebook.name, "--timeout", value, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "--timeout" in result.stderr
    assert not (tmp_path / ".nbops").exists()


def test_an_unknown_kernel_is_a_usage_error_naming_the_installed_ones(tmp_path: Path) -> None:
    notebook = build_notebook(tmp_path / "nb.ipynb", SMALL)
    result = run_nbops("run", notebook.name, "--kernel", "pythn3", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    text = " ".join(result.stderr.replace("│", " ").split())
    assert "'pythn3'" in text and "python3" in text.split("'pythn3'", 1)[1], text
    assert not (tmp_path / ".nbops").exists()  # no run was recorded: no kernel started


def test_a_fractional_timeout_stops_a_cell_that_runs_past_it(tmp_path: Path) -> None:
    notebook = build_notebook(
        tmp_path / "slow.ipynb",
        [("n = 1", ["parameters"]), ("import time\ntime.sleep(600)", ["train"])],
    )
    result = run_nbops("run", notebook.name, "--timeout", "0.5", cwd=tmp_path)
    assert result.returncode == RunTimeoutError.exit_code, result.stderr
    assert "Traceback" not in result.stderr and "TraitError" not in result.stderr
