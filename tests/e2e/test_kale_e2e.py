"""Kale notebooks, as their authors left them, through the real `nbops` command.

Each notebook is written in Kale's own style (nbformat 4.4 without cell ids, `imports`,
`pipeline-parameters`, `step:`/`block:` cells with `prev:`, untagged continuation cells, `skip`
cells, a `pipeline-metrics` cell of prints, `limit:` tags) on scikit-learn's built-in data
sets. The exported package must report the numbers the notebook computes when papermill runs
it top to bottom; the kfp pipeline must carry the `limit:` resources.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.helpers import Cells, build_notebook, notebook_metrics, run_nbops

IRIS: Cells = [
    "# Install necessary packages",
    ("!pip3 show scikit-learn", ["skip"]),
    (
        "import numpy as np\n\n"
        "from sklearn import datasets\n"
        "from sklearn.model_selection import train_test_split\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.metrics import precision_score, recall_score, f1_score, accuracy_score",
        ["imports"],
    ),
    ("N_ESTIMATORS = 5\nMAX_DEPTH = 2", ["pipeline-parameters"]),
    "# Load and preprocess data",
    ("x, y = datasets.load_iris(return_X_y=True)", ["step:load_transform_data", "limit:cpu:1"]),
    ("x_trn, x_tst, y_trn, y_tst = train_test_split(x, y, test_size=.4, random_state=3)", []),
    ("x_trn.shape", []),
    (
        "model = RandomForestClassifier(n_estimators=int(N_ESTIMATORS),\n"
        "                               max_depth=int(MAX_DEPTH), random_state=0)",
        ["prev:load_transform_data", "step:train_model", "limit:nvidia.com/gpu:1"],
    ),
    ("model.fit(x_trn, y_trn)", []),
    (
        "preds = model.predict(x_tst)",
        [
            "step:evaluate_model",
            "prev:load_transform_data",
            "prev:train_model",
            "limit:memory:2Gi",
        ],
    ),
    (
        "precision = precision_score(y_tst, preds, average='macro')\n"
        "recall = recall_score(y_tst, preds, average='macro')\n"
        "f1 = f1_score(y_tst, preds, average='macro')\n"
        "accuracy = accuracy_score(y_tst, preds)",
        [],
    ),
    "# Pipeline metrics",
    ("print(precision)\nprint(recall)\nprint(f1)\nprint(accuracy)", ["pipeline-metrics"]),
]

# The titanic example's shape, on the breast cancer data: exploration in skip cells, a block
# per model that fits and scores, a results table, and the scores as pipeline metrics.
CANCER: Cells = [
    (
        "import pandas as pd\n"
        "from sklearn.datasets import load_breast_cancer\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "from sklearn.model_selection import train_test_split\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.tree import DecisionTreeClassifier",
        ["imports"],
    ),
    (
        "PREDICTION_LABEL = 'target'\n"
        "df = load_breast_cancer(as_frame=True).frame\n"
        "train_df, test_df = train_test_split(df, test_size=0.3, random_state=7)",
        ["block:loaddata"],
    ),
    ("train_df.describe()", ["skip"]),
    ("train_df[PREDICTION_LABEL].value_counts()", ["skip"]),
    (
        "train_labels = train_df[PREDICTION_LABEL]\n"
        "test_labels = test_df[PREDICTION_LABEL]\n"
        "train_df = train_df.drop(PREDICTION_LABEL, axis=1)\n"
        "test_df = test_df.drop(PREDICTION_LABEL, axis=1)",
        ["block:featureengineering", "prev:loaddata"],
    ),
    ("scaler = StandardScaler()\nscaler.fit(train_df)", []),
    ("train_x = scaler.transform(train_df)\ntest_x = scaler.transform(test_df)", []),
    (
        "logreg = LogisticRegression(max_iter=200)\n"
        "logreg.fit(train_x, train_labels)\n"
        "acc_log = round(logreg.score(test_x, test_labels) * 100, 2)",
        ["block:logisticregression", "prev:featureengineering"],
    ),
    (
        "decision_tree = DecisionTreeClassifier(max_depth=3, random_state=0)\n"
        "decision_tree.fit(train_x, train_labels)\n"
        "acc_decision_tree = round(decision_tree.score(test_x, test_labels) * 100, 2)",
        ["block:decisiontree", "prev:featureengineering"],
    ),
    (
        "results = pd.DataFrame({\n"
        "    'Model': ['Logistic Regression', 'Decision Tree'],\n"
        "    'Score': [acc_log, acc_decision_tree]})\n"
        "result_df = results.sort_values(by='Score', ascending=False)\n"
        "print(result_df)",
        ["block:results", "prev:logisticregression", "prev:decisiontree"],
    ),
    ("print(acc_log)\nprint(acc_decision_tree)", ["pipeline-metrics"]),
]


def kale_notebook(path: Path, cells: Cells) -> Path:
    """A notebook as Kale's examples are saved: nbformat 4.4, no cell ids."""
    build_notebook(path, cells)
    data = json.loads(path.read_text("utf-8"))
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        cell.pop("id", None)
    path.write_text(json.dumps(data, indent=1), "utf-8")
    return path


def _export(notebook: Path, *extra: str) -> tuple[Path, str]:
    proc = run_nbops("export", notebook.name, *extra, cwd=notebook.parent)
    assert proc.returncode == 0, proc.stderr
    return notebook.parent / "pipelines" / notebook.stem, proc.stdout


def _package_metrics(folder: Path, name: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", name], cwd=folder, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


@dataclass
class AsIs:
    """A Kale notebook exported as its author left it, and what its package reports."""

    root: Path  # the notebook's folder, holding pipelines/
    notebook: Path
    folder: Path
    metrics: dict[str, Any]


@pytest.fixture(scope="module")
def as_is(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], AsIs]:
    """Each notebook exported once for the module (a test that changes it works on a copy)."""
    made: dict[str, AsIs] = {}

    def get(name: str) -> AsIs:
        if name not in made:
            root = tmp_path_factory.mktemp(f"kale-{name}")
            notebook = kale_notebook(root / f"{name}.ipynb", {"iris": IRIS, "cancer": CANCER}[name])
            folder, _ = _export(notebook)
            made[name] = AsIs(root, notebook, folder, _package_metrics(folder, name))
        return made[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", ["iris", "cancer"])
def test_a_kale_notebook_exports_as_it_is_and_gives_the_notebooks_metrics(
    as_is: Callable[[str], AsIs], tmp_path: Path, name: str
) -> None:
    made = as_is(name)
    exported = made.metrics
    expected = notebook_metrics(made.notebook, made.folder, name, {}, tmp_path)
    assert exported == pytest.approx(expected)
    assert (
        set(exported)
        == {
            "iris": {"precision", "recall", "f1", "accuracy"},
            "cancer": {"acc_log", "acc_decision_tree"},
        }[name]
    )


@pytest.mark.slow
def test_the_kfp_pipeline_carries_the_limit_tags_as_step_resources(tmp_path: Path) -> None:
    pytest.importorskip("kfp")
    yaml = pytest.importorskip("yaml")
    notebook = kale_notebook(tmp_path / "iris.ipynb", IRIS)
    folder, _ = _export(notebook, "--target", "kfp", "--no-install")
    executors = yaml.safe_load((folder / "kfp_pipeline.yaml").read_text())["deploymentSpec"][
        "executors"
    ]

    def resources(step: str) -> dict[str, Any]:
        return executors[f"exec-{step}"]["container"].get("resources", {})

    assert resources("train-train-model")["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources("train-train-model")["accelerator"]["resourceCount"] == "1"
    assert resources("transform-load-transform-data")["resourceCpuLimit"] == "1"
    assert resources("evaluate-evaluate-model")["resourceMemoryLimit"] == "2Gi"
    assert resources("evaluate-pipeline-metrics") == {}


@pytest.mark.slow
def test_a_setting_in_pyproject_wins_over_the_same_setting_from_a_limit_tag(
    tmp_path: Path,
) -> None:
    pytest.importorskip("kfp")
    yaml = pytest.importorskip("yaml")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nbops.steps.train_model]\nmemory_limit = "8G"\naccelerator_limit = 2\n'
    )
    notebook = kale_notebook(tmp_path / "iris.ipynb", IRIS)
    folder, _ = _export(notebook, "--target", "kfp", "--no-install")
    spec = yaml.safe_load((folder / "kfp_pipeline.yaml").read_text())
    got = spec["deploymentSpec"]["executors"]["exec-train-train-model"]["container"]["resources"]
    assert got["resourceMemoryLimit"] == "8G"
    assert got["accelerator"] == {
        "count": "2",
        "resourceCount": "2",
        "resourceType": "nvidia.com/gpu",
        "type": "nvidia.com/gpu",
    }


def test_tag_from_kale_write_converts_once_and_the_export_is_unchanged(
    as_is: Callable[[str], AsIs], tmp_path: Path
) -> None:
    made = as_is("iris")
    shutil.copytree(made.root, tmp_path, dirs_exist_ok=True)
    notebook, folder = tmp_path / "iris.ipynb", tmp_path / "pipelines" / "iris"
    before = made.metrics

    shown = run_nbops("tag", "iris.ipynb", "--from-kale", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "train:train_model" in shown.stdout and "Nothing written" in shown.stdout
    written = run_nbops("tag", "iris.ipynb", "--from-kale", "--write", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert "Kale's tags kept" in written.stdout

    tags = run_nbops("tags", "iris.ipynb", cwd=tmp_path)
    assert "Roles read from Kale's tags" not in tags.stdout
    _, stdout = _export(notebook)
    assert "4 steps" in stdout
    assert _package_metrics(folder, "iris") == before
    again = run_nbops("tag", "iris.ipynb", "--from-kale", "--write", cwd=tmp_path)
    assert again.returncode == 0 and "already has its nbops tag" in again.stdout


def test_tags_says_when_the_roles_come_from_kales_tags(tmp_path: Path) -> None:
    kale_notebook(tmp_path / "iris.ipynb", IRIS)
    proc = run_nbops("tags", "iris.ipynb", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Roles read from Kale's tags" in proc.stdout
    assert "train:train_model" in proc.stdout


@pytest.mark.parametrize(
    ("cells", "found"),
    [
        ([("import math", ["setup"]), ("n = 3", ["parameters"])], "tags found: setup, parameters"),
        (
            [("import math", ["imports"]), ("N = 3", ["pipeline-parameters"])],
            "tags found: imports, pipeline-parameters",
        ),
        ([("x = 1", ["hide-input"]), ("y = 2", ["remove-output"])], "hide-input, remove-output"),
        ([("x = 1", [])], "the notebook's cells have no tags"),
    ],
    ids=["setup-and-parameters", "kale-without-steps", "other-tools-tags", "no-tags"],
)
def test_an_export_with_no_step_fails_with_exit_5_naming_the_tags_and_writes_nothing(
    tmp_path: Path, cells: Cells, found: str
) -> None:
    kale_notebook(tmp_path / "nb.ipynb", cells)
    proc = run_nbops("export", "nb.ipynb", cwd=tmp_path)
    assert proc.returncode == 5
    assert found in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "pipelines").exists()


@pytest.mark.slow
def test_run_p_on_a_kale_notebook_sets_the_value_after_its_pipeline_parameters_cell(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.nbops]\nstore = ".nbops"\n')
    kale_notebook(
        tmp_path / "candies.ipynb",
        [
            ("import random", ["imports"]),
            ("CANDIES = 20", ["pipeline-parameters"]),
            ("print('sharing %s candies' % CANDIES)", ["step:sack"]),
            ("kid1 = CANDIES // 2", ["prev:sack", "step:kid1"]),
        ],
    )
    proc = run_nbops("run", "candies.ipynb", "-p", "CANDIES", "8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (output,) = (tmp_path / ".nbops" / "runs").glob("*/output.ipynb")
    cells = nbformat.read(output, as_version=4).cells
    injected = next(i for i, c in enumerate(cells) if "injected-parameters" in c.metadata.tags)
    assert cells[injected - 1].source == "CANDIES = 20"
    assert "CANDIES = 8" in cells[injected].source
    assert "sharing 8 candies" in cells[injected + 1].outputs[0].text
