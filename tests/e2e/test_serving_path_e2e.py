"""The passengers example end to end: a train/test notebook, as written, run on a real kernel
with `nbops run`, bundled with `nbops bundle --run latest`; the bundle scores the raw test
file exactly as the notebook predicted it. And the label check, from the command line."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell

from nbops import errors
from nbops.bundle.load import load_bundle
from nbops.runs.store import RunStore
from tests.helpers import EXAMPLES, run_nbops

pytestmark = pytest.mark.slow

PROBE = (
    "import json\njson.dump([int(p) for p in predictions], open('notebook_predictions.json', 'w'))"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("passengers")
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    shutil.copytree(EXAMPLES / "data", root / "data")
    nb = nbformat.read(EXAMPLES / "passengers.ipynb", as_version=4)
    nb.cells.append(new_code_cell(PROBE))
    nbformat.write(nb, root / "passengers.ipynb")
    ran = run_nbops("run", "passengers.ipynb", "-p", "n_estimators", "60", cwd=root)
    assert ran.returncode == 0, ran.stderr
    built = run_nbops("bundle", "--run", "latest", cwd=root)
    assert built.returncode == 0, built.stderr
    return root


def test_the_bundle_scores_the_raw_test_file_as_the_notebook_predicted(project: Path) -> None:
    raw = pd.read_csv(project / "data" / "passengers_test.csv")  # Survived, Ticket, ids: extra
    expected = json.loads((project / "notebook_predictions.json").read_text())
    with load_bundle(project / "bundles" / "passengers-v1") as bundle:
        assert bundle.manifest.serving.step == "serving-path"
        assert "Survived" not in bundle.request_columns
        assert "PassengerId" not in bundle.request_columns
        assert [int(p) for p in bundle.predict(raw)] == expected
        # the test file's one missing fare is filled by the notebook's code, so it scores
        assert raw["Fare"].isna().sum() == 1 and bundle.schema.column("Fare").nullable


def test_the_example_makes_no_nbops_call_and_its_run_still_records_metric_and_model(
    project: Path,
) -> None:
    nb = nbformat.read(EXAMPLES / "passengers.ipynb", as_version=4)
    assert not any("nbops" in c.source for c in nb.cells if c.cell_type == "code")
    record = RunStore(project / ".nbops").load("latest")
    # the test accuracy (evaluate) and the training accuracy the train cell keeps and prints
    assert set(record.latest_metrics()) == {"accuracy", "train_accuracy"}
    assert [m.get("auto") for m in record.models] == [True]  # recorded by nbops itself
    # the files its load cell reads (`train = pd.read_csv(train_path)`), fingerprinted
    data = {d.name: d for d in record.data}
    assert set(data) == {"train", "test"}
    for name in ("train", "test"):
        path = project / "data" / f"passengers_{name}.csv"
        assert data[name].type == "file"
        assert data[name].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_nbops_tags_reports_a_label_read_by_the_serving_path(tmp_path: Path) -> None:
    notebook = tmp_path / "leaky.ipynb"
    nb = nbformat.read(EXAMPLES / "passengers.ipynb", as_version=4)
    leak = 'X_test["Leak"] = y.mean()\n'
    evaluate = next(c for c in nb.cells if "evaluate" in c.metadata.get("tags", []))
    evaluate.source = leak + evaluate.source
    nbformat.write(nb, notebook)
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    result = run_nbops("tags", str(notebook), cwd=tmp_path)
    assert result.returncode == errors.ServingPathError.exit_code, result.stdout + result.stderr
    assert f"cell {nb.cells.index(evaluate) + 1}" in result.stderr + result.stdout
    assert "the label 'y'" in result.stderr + result.stdout
    exported = run_nbops("export", str(notebook), "-o", "pipelines", cwd=tmp_path)
    assert exported.returncode == errors.ServingPathError.exit_code
    assert not (tmp_path / "pipelines").exists()
