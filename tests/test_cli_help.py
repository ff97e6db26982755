"""Every command's --help shows its text as written: brackets such as `[tool.nbops]` or
`nbops[dask]` are words of the help, not Rich markup to be swallowed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from nbops.cli import app

_BRACKETED = re.compile(r"\\?\[([A-Za-z_][\w.\-]*)\]")


def _commands() -> Iterator[tuple[list[str], Any]]:
    root = typer.main.get_command(app)
    stack: list[tuple[list[str], Any]] = [([], root)]
    while stack:
        path, command = stack.pop()
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():  # a group's commands
            stack.append(([*path, name], sub))


def _texts(command: Any) -> list[str]:
    texts = [command.help or ""]
    texts += [getattr(p, "help", None) or "" for p in command.params]
    return texts


CASES = [
    pytest.param(path, word, id=" ".join([*path, word]))
    for path, command in _commands()
    for text in _texts(command)
    for word in _BRACKETED.findall(text)
]


def test_some_help_text_holds_brackets() -> None:
    assert any(word == "tool.nbops" for _, word in (c.values for c in CASES))


@pytest.mark.parametrize(("path", "word"), CASES)
def test_help_renders_bracketed_words(path: list[str], word: str) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.replace("│", " ").split())
    assert f"[{word}]" in shown, f"nbops {' '.join(path)} --help swallows [{word}]"
