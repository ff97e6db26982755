"""Modules a notebook imports from its own folder, and packages that are not installed.

Jupyter starts a notebook's kernel in the notebook's folder, so `from helpers import plot_x`,
`from preamble import *`, `import utils` or `import mypkg.sub` find `helpers.py`,
`preamble.py`, `utils.py` or `mypkg/` beside the notebook. Those modules are part of the
notebook's code: the exporter copies them into the package (see export/vendor.py). This module
only finds them: a module `NAME.py`, or a folder `NAME/` holding Python files, beside the
notebook — and, transitively, the ones those modules import the same way.

A top-level package exported code imports that is neither local, nor in the standard
library, nor installed where nbops runs, gets a warning naming the cell that imports it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

_SKIPPED_DIRS = frozenset({"__pycache__", ".ipynb_checkpoints"})


def local_module_path(folder: Path, top: str) -> Path | None:
    """`folder/top.py`, or the package folder `folder/top/` (with Python files), or None."""
    if not top.isidentifier():
        return None
    module = folder / f"{top}.py"
    if module.is_file():
        return module
    package = folder / top
    if package.is_dir() and any(True for _ in package_files(package)):
        return package
    return None


def package_files(package: Path) -> Iterator[Path]:
    """The Python files of a local package folder, in a stable order (caches and hidden
    folders left out)."""
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).parts[:-1]
        if not any(p in _SKIPPED_DIRS or p.startswith(".") for p in rel):
            yield path


def find_local_modules(folder: Path, tops: Iterable[str]) -> dict[str, Path]:
    """The local modules among `tops` (top-level module names), and those they import from
    the same folder, each with its file or package folder, in a stable order."""
    found: dict[str, Path] = {}
    pending = sorted(set(tops))
    while pending:
        top = pending.pop()
        if top in found:
            continue
        path = local_module_path(folder, top)
        if path is None:
            continue
        found[top] = path
        files = [path] if path.is_file() else list(package_files(path))
        for file in files:
            pending.extend(t for t in imported_tops(file) if t not in found)
    return dict(sorted(found.items()))


def imported_tops(file: Path) -> set[str]:
    """Top-level module names a Python file imports absolutely, anywhere in it."""
    try:
        tree = ast.parse(file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return set()
    tops: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def is_installed(top: str) -> bool:
    """Whether a top-level module can be imported here (standard library included)."""
    import importlib.util

    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False
