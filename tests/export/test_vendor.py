"""Local modules copied into the package: imports of them made relative, nothing else
changed; the exported package runs without the notebook's folder on the path."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbops.errors import StaleExportError
from nbops.export.exporter import check_export, export_notebook
from nbops.export.vendor import localised_import, relative_imports, vendored_files
from tests.notebook.conftest import build_notebook

LOCAL = {"helpers", "utils", "mypkg"}


# -- import statements of generated code -------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("from helpers import plot_x", ["from ._local.helpers import plot_x"]),
        ("from helpers import plot_x as px", ["from ._local.helpers import plot_x as px"]),
        ("from mypkg.sub import f", ["from ._local.mypkg.sub import f"]),
        ("from helpers import *", ["from ._local.helpers import *"]),
        ("import utils", ["from ._local import utils"]),
        ("import utils as u", ["from ._local import utils as u"]),
        ("import mypkg.sub as s", ["from ._local.mypkg import sub as s"]),
        (
            "import mypkg.sub",
            [
                "from ._local import mypkg",
                "from ._local.mypkg import sub as _nbops_mypkg_sub  # noqa: F401",
            ],
        ),
    ],
)
def test_generated_import_of_a_local_module_comes_from_the_copy(statement, expected):
    assert localised_import(statement, LOCAL) == expected


@pytest.mark.parametrize(
    "statement", ["import numpy as np", "from sklearn.svm import SVC", "from .x import y"]
)
def test_other_imports_are_left_alone(statement):
    assert localised_import(statement, LOCAL) == [statement]


# -- inside the copied modules -------------------------------------------------------------------


def test_imports_of_local_modules_inside_a_copy_become_relative_at_its_depth():
    text = "import utils\nfrom mypkg.constants import BASE\n"
    assert (
        relative_imports(text, LOCAL, 1)
        == "from . import utils\nfrom .mypkg.constants import BASE\n"
    )
    assert relative_imports(text, LOCAL, 3).startswith("from ... import utils\n")


def test_an_import_inside_a_function_and_a_mixed_import_are_rewritten_in_place():
    text = "def f():\n    import os, utils  # both\n    return utils.x\n"
    assert relative_imports(text, LOCAL, 1) == (
        "def f():\n    import os; from . import utils  # both\n    return utils.x\n"
    )


def test_a_multi_line_import_is_rewritten_whole():
    text = "from helpers import (\n    a,\n    b,\n)\nx = 1\n"
    assert relative_imports(text, LOCAL, 1) == "from .helpers import a, b\nx = 1\n"


_LINE = st.sampled_from(
    [
        "x = 1",
        "# a comment with ünïcödé",
        "def f(a):\n    return a",
        "s = '''import utils'''",
        "import numpy as np",
        "import utils",
        "from helpers import plot_x",
        "",
    ]
)


@given(st.lists(_LINE, max_size=12))
def test_rewriting_keeps_every_other_line_byte_for_byte_and_the_module_parses(lines):
    text = "\n".join(lines) + "\n"
    out = relative_imports(text, LOCAL, 1)
    ast.parse(out)
    kept = [
        line for line in text.splitlines() if not line.startswith(("import utils", "from helpers"))
    ]
    assert [line for line in out.splitlines() if not line.startswith("from .")] == kept


def test_a_namespace_folder_gets_an_init_in_the_copy(tmp_path):
    (tmp_path / "nspkg" / "inner").mkdir(parents=True)
    (tmp_path / "nspkg" / "inner" / "tools.py").write_text("X = 1\n")
    files = vendored_files("pkg", {"nspkg": tmp_path / "nspkg"})
    assert sorted(files) == [
        "pkg/_local/__init__.py",
        "pkg/_local/nspkg/__init__.py",
        "pkg/_local/nspkg/inner/__init__.py",
        "pkg/_local/nspkg/inner/tools.py",
    ]


# -- the exported package ------------------------------------------------------------------------

HELPERS = '''"""Plot and feature helpers kept beside the notebook."""
import utils


def add_ratio(rows):
    return [dict(r, ratio=utils.ratio(r["a"], r["b"])) for r in rows]


def plot_x(rows):  # only the exploration cells call it
    return len(rows)
'''
UTILS = "def ratio(a, b):\n    return a / b\n"


@pytest.fixture
def tutorial(tmp_path: Path) -> Path:
    """A notebook as tutorials leave it: a helper module beside it, used by a step and by
    plotting cells, and a preamble star-imported in the first cell."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "helpers.py").write_text(HELPERS)
    (folder / "utils.py").write_text(UTILS)
    (folder / "preamble.py").write_text("import statistics\nSCALE = 2\n")
    nb = build_notebook(
        [
            ("from preamble import *\nfrom helpers import add_ratio, plot_x", ["setup"]),
            ("rows = [{'a': 1, 'b': 2}, {'a': 3, 'b': 4}]", ["transform:load"]),
            ("plot_x(rows)", []),
            ("rows = add_ratio(rows)", ["transform:features"]),
            ("mean_ratio = statistics.mean(r['ratio'] for r in rows) * SCALE", ["evaluate"]),
        ]
    )
    import nbformat

    path = folder / "tutorial.ipynb"
    nbformat.write(nb, path)
    return path


def test_local_modules_are_copied_into_the_package_and_listed(tutorial: Path, tmp_path: Path):
    result = export_notebook(tutorial, tmp_path / "out")
    package = result.package_dir
    assert sorted(p.name for p in (package / "_local").iterdir()) == [
        "__init__.py",
        "helpers.py",
        "preamble.py",
        "utils.py",
    ]
    assert result.manifest.local_modules == ["helpers", "preamble", "utils"]
    assert "_local/helpers.py" in " ".join(result.manifest.files)
    assert "helpers" not in result.manifest.requirements


def test_the_package_runs_from_another_folder_without_the_notebook_folder(
    tutorial: Path, tmp_path: Path
):
    result = export_notebook(tutorial, tmp_path / "out")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", result.name],
        cwd=elsewhere,
        env={"PYTHONPATH": str(result.folder), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"mean_ratio": 1.' in proc.stdout


def test_editing_a_local_module_makes_the_export_stale(tutorial: Path, tmp_path: Path):
    export_notebook(tutorial, tmp_path / "out")
    check_export(tutorial, tmp_path / "out")
    (tutorial.parent / "utils.py").write_text("def ratio(a, b):\n    return b / a\n")
    with pytest.raises(StaleExportError):
        check_export(tutorial, tmp_path / "out")


def test_a_changed_local_module_makes_a_new_version(tutorial: Path, tmp_path: Path):
    first = export_notebook(tutorial, tmp_path / "out")
    (tutorial.parent / "utils.py").write_text("def ratio(a, b):\n    return b / a\n")
    second = export_notebook(tutorial, tmp_path / "out")
    assert (first.version, second.version) == (1, 2)
