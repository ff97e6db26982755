"""Habits of real notebooks, through the real command line: parameters set again after the
parameters cell, helper modules beside the notebook, relative data paths, percent scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nbops import errors
from tests.helpers import run_nbops

# -- a parameter set again: `-p` would do nothing ---------------------------------------------


def test_run_refuses_a_value_a_later_cell_always_overwrites_before_any_kernel_starts(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    make_notebook(
        [
            ("n_estimators = 100\nseed = 0", ["parameters"]),
            "## Train",
            ("print(n_estimators)", []),
            ("n_estimators = 200\nmodel = (n_estimators, seed)", []),
        ],
        name="forest.ipynb",
    )
    result = run_nbops("run", "forest.ipynb", "-p", "n_estimators", "50", cwd=tmp_path)
    assert result.returncode == errors.ParameterValueError.exit_code, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("nbops: error: forest.ipynb, cell 4 (id "), line
    assert "`n_estimators = 200`" in line and "no effect on the run" in line
    assert not (tmp_path / ".nbops" / "runs").exists() or not any(
        (tmp_path / ".nbops" / "runs").iterdir()
    )


# -- a tutorial folder: helper modules and a data file beside the notebook ---------------------

HELPERS = '''"""Feature helpers the tutorial keeps beside the notebook."""
import numpy as np


def add_features(frame):
    out = frame[["a", "b"]].fillna(0).copy()
    out["ab"] = np.tanh(out["a"] * out["b"])
    return out
'''

TUTORIAL: list[tuple[str, list[str]] | str] = [
    "# Scores, as the tutorial left it",
    (
        "import pandas as pd\nimport nbops\nfrom sklearn.linear_model import LogisticRegression\n"
        "from helpers import add_features",
        ["setup"],
    ),
    ("C = 1.0\ndata_file = 'data/scores.csv'", ["parameters"]),
    ("raw = pd.read_csv(data_file)\nlabels = raw['y']", ["transform:load"]),
    ("raw.describe()", []),
    ("features = add_features(raw)", ["transform:features"]),
    (
        "model = LogisticRegression(C=C).fit(features, labels)\nnbops.log_model(model, 'model')",
        ["train"],
    ),
    (
        "accuracy = float(model.score(features, labels))\nnbops.log_metric('accuracy', accuracy)",
        ["evaluate"],
    ),
]


def write_tutorial(folder: Path) -> Path:
    """The notebook, helpers.py and data/scores.csv in `folder`, a project root."""
    import numpy as np
    import pandas as pd

    from tests.helpers import build_notebook

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text("[tool.nbops]\n")
    (folder / "helpers.py").write_text(HELPERS)
    (folder / "data").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    frame["y"] = (frame.a + frame.b > 0).astype(int)
    frame.to_csv(folder / "data" / "scores.csv", index=False)
    return build_notebook(folder / "scores.ipynb", TUTORIAL)


def _python_m(name: str, export_folder: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(export_folder)}
    return subprocess.run(
        [sys.executable, "-m", name], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_the_run_it_hint_works_from_anywhere_reading_data_from_the_notebook_folder(
    tmp_path: Path,
) -> None:
    notebook = write_tutorial(tmp_path / "tutorial")
    exported = run_nbops("export", notebook.name, cwd=notebook.parent)
    assert exported.returncode == 0, exported.stderr
    export_folder = notebook.parent / "pipelines" / "scores"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    result = _python_m("scores", export_folder, elsewhere)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"] > 0.9
    manifest = json.loads((export_folder / "scores" / "manifest.json").read_text())
    assert manifest["source"]["data_dir"] == "../.."


def test_nbops_data_dir_overrides_the_notebook_folder(tmp_path: Path) -> None:
    notebook = write_tutorial(tmp_path / "tutorial")
    assert run_nbops("export", notebook.name, cwd=notebook.parent).returncode == 0
    other = tmp_path / "other"
    (other / "data").mkdir(parents=True)
    (other / "data" / "scores.csv").write_text("a,b,y\n1,1,1\n-1,-1,0\n2,2,1\n-2,-1,0\n")
    env = {**os.environ, "PYTHONPATH": str(notebook.parent / "pipelines" / "scores")}
    env["NBOPS_DATA_DIR"] = str(other)
    result = subprocess.run(
        [sys.executable, "-m", "scores"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"accuracy": 1.0}


# -- a percent-format .py notebook: the package never shadows the script -----------------------

PERCENT = """\
# %% tags=["parameters"]
n = 3

# %% tags=["evaluate"]
total = sum(range(n))
"""


def test_a_percent_script_exports_to_a_package_that_does_not_shadow_it(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(PERCENT)
    result = run_nbops("export", "train.py", "-o", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "python -m train_pipeline" in result.stdout
    run = _python_m("train_pipeline", tmp_path / "train_pipeline", tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"total": 3.0}


def test_a_name_that_would_shadow_the_script_is_refused_with_a_fix(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(PERCENT)
    result = run_nbops("export", "train.py", "--name", "train", cwd=tmp_path)
    assert result.returncode == errors.ExportError.exit_code
    (line,) = result.stderr.strip().splitlines()
    assert "would shadow train.py" in line and "--name train_pipeline" in line
    assert not (tmp_path / "pipelines").exists()


# -- export --bundle: one export, one version, a bundle that carries the helpers ----------------


@pytest.fixture(scope="module")
def bundled(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    notebook = write_tutorial(tmp_path_factory.mktemp("bundled") / "project")
    result = run_nbops("export", notebook.name, "--bundle", cwd=notebook.parent)
    return notebook, result


@pytest.mark.slow
def test_export_bundle_makes_one_version_and_leaves_the_package_up_to_date(
    bundled: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    notebook, result = bundled
    assert result.returncode == 0, result.stderr
    index = json.loads(
        (notebook.parent / "pipelines" / ".versions" / "scores" / "index.json").read_text()
    )
    assert [v["version"] for v in index["versions"]] == [1]
    assert index["versions"][0]["source_path"] == "../../scores.ipynb"
    check = run_nbops("export", notebook.name, "--check", cwd=notebook.parent)
    assert check.returncode == 0, check.stderr


@pytest.mark.slow
def test_the_bundle_carries_the_helper_module_and_serves_without_the_notebook_folder(
    bundled: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    notebook, result = bundled
    assert result.returncode == 0, result.stderr
    bundle = notebook.parent / "bundles" / "scores-v1"
    assert (bundle / "code" / "scores" / "_local" / "helpers.py").read_text() == HELPERS
    records = tmp_path / "records.csv"
    records.write_text("a,b\n2.0,1.5\n-2.0,-1.0\n")
    predicted = run_nbops("predict", str(bundle), str(records), "-o", "out.csv", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    rows = (tmp_path / "out.csv").read_text().splitlines()[1:]
    assert [row.rsplit(",", 1)[-1] for row in rows] == ["1", "0"]


# -- old and future notebook formats, through the command line ---------------------------------


def _code(source: str, tags: list[str]) -> dict[str, object]:
    return {
        "cell_type": "code",
        "source": source,
        "metadata": {"tags": tags},
        "outputs": [],
        "execution_count": None,
    }


FUTURE = {
    "nbformat": 4,
    "nbformat_minor": 99,
    "metadata": {},
    "cells": [
        _code("n = 3", ["parameters"]),
        {"cell_type": "future", "metadata": {"tags": ["train"]}, "payload": [1, 2]},
        _code("total = sum(range(n))", ["evaluate"]),
    ],
}

V2 = {
    "nbformat": 2,
    "metadata": {"name": "old"},
    "worksheets": [
        {
            "cells": [
                {"cell_type": "markdown", "source": "# 2012"},
                {
                    "cell_type": "code",
                    "input": "total = sum(range(3))",
                    "language": "python",
                    "outputs": [],
                    "metadata": {"tags": ["evaluate"]},
                },
            ]
        }
    ],
}


def test_a_notebook_with_a_future_cell_type_exports_and_lists_it(tmp_path: Path) -> None:
    (tmp_path / "future.ipynb").write_text(json.dumps(FUTURE))
    tags = run_nbops("tags", "future.ipynb", cwd=tmp_path)
    assert tags.returncode == 0, tags.stderr
    assert "future" in tags.stdout
    result = run_nbops("export", "future.ipynb", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "warning" not in result.stderr.lower()
    manifest = json.loads((tmp_path / "pipelines/future/future/manifest.json").read_text())
    assert [c["index"] for s in manifest["steps"] for c in s["cells"]] == [2]


def test_a_v2_notebook_is_upgraded_and_exported(tmp_path: Path) -> None:
    (tmp_path / "old.ipynb").write_text(json.dumps(V2))
    result = run_nbops("export", "old.ipynb", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = _python_m("old", tmp_path / "pipelines" / "old", tmp_path)
    assert json.loads(run.stdout) == {"total": 3.0}
