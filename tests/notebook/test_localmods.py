"""Modules a notebook imports from its own folder (found so the export can copy them), and
packages exported code imports that are not installed (warned about, naming the cell)."""

from __future__ import annotations

from pathlib import Path

from nbops.notebook.localmods import find_local_modules, local_module_path


def _write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


# -- what is local ---------------------------------------------------------------------------


def test_a_module_file_beside_the_notebook_is_local(tmp_path):
    helpers = _write(tmp_path / "helpers.py", "def f(): pass\n")
    assert local_module_path(tmp_path, "helpers") == helpers


def test_a_package_folder_is_local_with_or_without_init(tmp_path):
    _write(tmp_path / "mypkg" / "__init__.py")
    _write(tmp_path / "nspkg" / "tools.py")
    assert local_module_path(tmp_path, "mypkg") == tmp_path / "mypkg"
    assert local_module_path(tmp_path, "nspkg") == tmp_path / "nspkg"


def test_a_data_folder_without_python_files_is_not_a_module(tmp_path):
    _write(tmp_path / "data" / "train.csv", "a\n1\n")
    assert local_module_path(tmp_path, "data") is None


def test_an_installed_package_that_is_not_beside_the_notebook_is_not_local(tmp_path):
    assert find_local_modules(tmp_path, ["numpy", "os"]) == {}


def test_local_modules_the_local_modules_import_are_found_too(tmp_path):
    _write(tmp_path / "helpers.py", "import utils\n\ndef f():\n    from mypkg import x\n")
    _write(tmp_path / "utils.py", "import numpy\n")
    _write(tmp_path / "mypkg" / "__init__.py", "from shared import y\n")
    _write(tmp_path / "shared.py")
    _write(tmp_path / "unused.py")
    found = find_local_modules(tmp_path, ["helpers"])
    assert sorted(found) == ["helpers", "mypkg", "shared", "utils"]


def test_a_local_module_that_does_not_parse_is_still_found(tmp_path):
    _write(tmp_path / "broken.py", "def (:\n")
    assert list(find_local_modules(tmp_path, ["broken"])) == ["broken"]


# -- through the analysis --------------------------------------------------------------------

SETUP = "import numpy as np\nfrom helpers import plot_x\nfrom preamble import *"


def test_the_analysis_lists_the_local_modules_exported_code_imports(analyse_cells, tmp_path):
    _write(tmp_path / "helpers.py", "def plot_x(v):\n    return v\n")
    _write(tmp_path / "preamble.py", "SEED = 0\n")
    _write(tmp_path / "explore.py", "def peek(df): pass\n")
    graph = analyse_cells(
        [
            (SETUP, ["setup"]),
            ("from explore import peek", []),
            ("x = plot_x(np.arange(3))", ["transform"]),
        ]
    )
    assert list(graph.local_modules) == ["helpers", "preamble"]


def test_a_local_module_only_exploration_uses_is_not_listed(analyse_cells, tmp_path):
    _write(tmp_path / "explore.py", "def peek(df): pass\n")
    graph = analyse_cells(
        [("from explore import peek", []), ("peek(1)", []), ("x = 1", ["transform"])]
    )
    assert graph.local_modules == {}


def test_a_step_importing_a_package_that_is_not_installed_is_warned_about(analyse_cells):
    graph = analyse_cells(
        [
            ("import numpy as np", ["setup"]),
            ("import nbops_test_absent_pkg as absent\nx = 1", []),
            ("y = absent.load(np.ones(2))", ["transform:load"]),
        ]
    )
    (warning,) = [str(d) for d in graph.diagnostics if "not installed" in d.message]
    assert "cell 2" in warning
    assert "step 'transform:load' imports 'nbops_test_absent_pkg'" in warning


def test_a_star_import_of_a_package_that_is_not_installed_is_warned_about_at_its_cell(
    analyse_cells,
):
    graph = analyse_cells(
        [
            ("x = 1", ["setup"]),
            ("from nbops_test_absent_pkg import *\nfrom os import path", ["setup"]),
            ("y = load(path)", ["transform:load"]),
        ]
    )
    (warning,) = [str(d) for d in graph.diagnostics if "not installed" in d.message]
    assert "cell 2" in warning
    assert "exported code imports 'nbops_test_absent_pkg'" in warning


def test_installed_standard_and_local_modules_get_no_warning(analyse_cells, tmp_path):
    _write(tmp_path / "helpers.py", "def plot_x(v):\n    return v\n")
    graph = analyse_cells(
        [
            ("import os\nimport numpy as np\nfrom helpers import plot_x", ["setup"]),
            ("x = plot_x(np.ones(int(os.cpu_count() or 1)))", ["transform"]),
        ]
    )
    assert not [d for d in graph.diagnostics if "not installed" in d.message]


def test_a_missing_package_only_exploration_imports_gets_no_warning(analyse_cells):
    graph = analyse_cells(
        [("import nbops_test_absent_pkg\nnbops_test_absent_pkg.show()", []), ("x = 1", ["train"])]
    )
    assert not [d for d in graph.diagnostics if "not installed" in d.message]
