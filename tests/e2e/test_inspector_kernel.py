"""The inspector in a real kernel: it renders as a widget, and under `nbops run` its
validation, slice metrics and gates land in the run record, where `nbops ci` gates see them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from nbops import errors
from nbops.runs.store import RunStore
from tests.helpers import run_nbops

pytestmark = pytest.mark.slow

CELLS = [
    ("min_accuracy = 0.5", ["parameters"]),
    (
        "import nbops\n"
        "from palmerpenguins import load_penguins\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import train_test_split\n"
        "penguins = load_penguins().dropna()\n"
        "X = penguins[['island', 'sex', 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm']]\n"
        "y = penguins['species']\n"
        "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=0)\n"
        "features = ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm']\n"
        "model = LogisticRegression(max_iter=2000).fit(X_train[features], y_train)",
        ["train"],
    ),
    (
        "class OnFeatures:\n"
        "    def __init__(self, model):\n"
        "        self.model = model\n"
        "    def predict(self, X):\n"
        "        return self.model.predict(X[features])\n"
        "    def predict_proba(self, X):\n"
        "        return self.model.predict_proba(X[features])\n"
        "inspector = nbops.inspect(\n"
        "    data=X_test, reference=X_train, model=OnFeatures(model), X=X_test, y=y_test,\n"
        "    slices=['island', 'sex'], min_size=10,\n"
        "    gates=['slices.accuracy.min >= 0.5', 'data.failed_checks == 0'],\n"
        ")\n"
        "inspector",
        ["evaluate"],
    ),
]


def test_the_inspector_renders_a_widget_and_is_recorded_in_the_run(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nbops]\ngates = ["slices.accuracy.min >= 0.5"]\n'
    )
    make_notebook(CELLS, name="inspect.ipynb")

    result = run_nbops("ci", "inspect.ipynb", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    store = RunStore(tmp_path / ".nbops")
    record = store.load("latest")
    kinds = {entry["kind"] for entry in record.quality.values()}
    assert kinds == {"validation", "slices", "gates"}
    assert record.gate_values()["slices.accuracy.min"] >= 0.5
    executed = nbformat.read(store.run_dir(record.run_id) / "output.ipynb", as_version=4)
    # the notebook's own last cell (nbops adds its capture cells to the executed copy)
    last = [c for c in executed.cells if "nbops-capture" not in c.metadata.get("tags", [])][-1]
    bundles = [o.get("data", {}) for o in last.outputs if o.get("output_type") == "execute_result"]
    assert bundles and "application/vnd.jupyter.widget-view+json" in bundles[0]
    assert "widgets" in executed.metadata  # the widget state papermill saved


def test_ci_fails_on_a_slice_gate(tmp_path: Path, make_notebook: Callable[..., Path]) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.nbops]\ngates = ["slices.accuracy.min > 1"]\n')
    make_notebook(CELLS, name="inspect.ipynb")
    result = run_nbops("ci", "inspect.ipynb", cwd=tmp_path)
    assert result.returncode == errors.GateFailedError.exit_code
    assert "slices.accuracy.min > 1" in result.stderr
