"""errors.py's docstring draws the exception tree a user reads: every class, under its real
parent, with its real exit code."""

from __future__ import annotations

import inspect
import re

from nbops import errors

_ROW = re.compile(r"^ {4}(?P<indent>[│ ]*(?:[├└]── )?)(?P<name>\w+)\s.*\((?:.*?)(?P<code>\d+)\)$")


def _tree() -> dict[str, tuple[str | None, int]]:
    """name -> (parent name, exit code) as the docstring draws them."""
    parents: list[tuple[int, str]] = []
    drawn: dict[str, tuple[str | None, int]] = {}
    for line in (errors.__doc__ or "").splitlines():
        match = _ROW.match(line)
        if not match:
            continue
        depth = len(match["indent"])
        while parents and parents[-1][0] >= depth:
            parents.pop()
        drawn[match["name"]] = (parents[-1][1] if parents else None, int(match["code"]))
        parents.append((depth, match["name"]))
    return drawn


def _classes() -> dict[str, type[BaseException]]:
    return {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if cls.__module__ == errors.__name__ and issubclass(cls, BaseException)
    }


def test_the_docstring_tree_lists_every_error_class() -> None:
    assert set(_tree()) == set(_classes())


def test_each_class_sits_under_its_parent_with_its_exit_code() -> None:
    classes, drawn = _classes(), _tree()
    for name, (parent, code) in drawn.items():
        cls = classes[name]
        base = cls.__bases__[0].__name__
        assert parent == (base if base in classes else None), name
        assert code == cls.exit_code, name  # type: ignore[attr-defined]
