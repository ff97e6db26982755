"""Helpers for end-to-end tests: real notebook files and the real `nbops` command."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_notebooks"

Cells = Sequence[tuple[str, Sequence[str]] | str]


def build_notebook(path: Path, cells: Cells) -> Path:
    """Write a notebook; each cell is (source, tags) for code, or a plain string for markdown."""
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    for cell in cells:
        if isinstance(cell, str):
            nb.cells.append(new_markdown_cell(cell))
        else:
            source, tags = cell
            code = new_code_cell(source)
            if tags:
                code.metadata["tags"] = list(tags)
            nb.cells.append(code)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def make_notebook(tmp_path: Path) -> Callable[..., Path]:
    def make(cells: Cells, name: str = "analysis.ipynb") -> Path:
        return build_notebook(tmp_path / name, cells)

    return make


def run_nbops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "nbops", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SMALL = [
    ("import math\n\nOFFSET = 1", ["setup"]),
    ("factor = 3  # multiplies the data\nsize = 5", ["parameters"]),
    ("values = [i + OFFSET for i in range(size)]", ["transform:load"]),
    ("values", []),
    ("scaled = [v * factor for v in values]", ["transform:scale"]),
    ("total = sum(scaled)", ["train"]),
    ("score = math.sqrt(total)\nscore", ["evaluate"]),
]


# A tutorial's shape: two models scored under the same name, and a score left as the last
# expression of a cell (the package reports `knn.accuracy`, `tree.accuracy`, `accuracy_score`).
TWO_MODELS = [
    (
        "from sklearn.datasets import load_iris\n"
        "from sklearn.metrics import accuracy_score\n"
        "from sklearn.model_selection import train_test_split\n"
        "from sklearn.neighbors import KNeighborsClassifier\n"
        "from sklearn.tree import DecisionTreeClassifier",
        ["setup"],
    ),
    (
        "X, y = load_iris(return_X_y=True)\n"
        "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)",
        ["transform:split"],
    ),
    ("knn = KNeighborsClassifier(n_neighbors=15).fit(X_train, y_train)", ["train:knn"]),
    ("accuracy = knn.score(X_test, y_test)\nprint(accuracy)", ["evaluate:knn"]),
    ("tree = DecisionTreeClassifier(max_depth=1).fit(X_train, y_train)", ["train:tree"]),
    (
        "accuracy = tree.score(X_test, y_test)\naccuracy_score(y_test, tree.predict(X_test))",
        ["evaluate:tree"],
    ),
]


def package_metric_names(folder: Path, name: str) -> set[str]:
    """The metric names the exported package itself reports (`python -m NAME`)."""
    proc = subprocess.run(
        [sys.executable, "-m", name], cwd=folder, capture_output=True, text=True, check=True
    )
    return set(json.loads(proc.stdout))


def reported_metric_names(source: str) -> set[str]:
    """The metric names generated orchestrator code reports: the keys of its
    `io.metric_values({...})` calls."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "io.metric_values":
            mapping = node.args[0]
            assert isinstance(mapping, ast.Dict)
            names |= {ast.literal_eval(k) for k in mapping.keys if k is not None}
    return names
