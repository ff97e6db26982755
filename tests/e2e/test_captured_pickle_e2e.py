"""The model nbops captures, saved in the kernel as a checked pickle, to a bundle: a plain
scikit-learn model skips `import skops.io` in the kernel and bundles as before; a model with
a class of the notebook's own is saved with skops as before; a pickle changed on disk, or
one naming a global the run did not record, is refused at bundle time without running it."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from nbops import errors
from nbops.bundle.load import load_bundle
from nbops.runs.pickled_model import load_verified
from nbops.runs.record import RunRecord
from nbops.runs.store import RunStore
from tests.helpers import build_notebook, run_nbops

pytestmark = pytest.mark.slow

SKOPS_PROBE = "import sys\nopen('skops_imported.txt', 'w').write(str('skops.io' in sys.modules))"

FOREST = [
    (
        "from sklearn.datasets import load_iris\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.model_selection import train_test_split",
        ["setup"],
    ),
    (
        "X, y = load_iris(return_X_y=True, as_frame=True)\n"
        "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)",
        ["transform"],
    ),
    (
        "forest = RandomForestClassifier(n_estimators=20, random_state=0)\n"
        "forest.fit(X_train, y_train)",
        ["train"],
    ),
    ("accuracy = forest.score(X_test, y_test)", ["evaluate"]),
    (SKOPS_PROBE, []),
]

OWN_CLASS = [
    (
        "from sklearn.base import BaseEstimator, TransformerMixin\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        "\n"
        "class Doubler(BaseEstimator, TransformerMixin):\n"
        "    def fit(self, X, y=None):\n"
        "        return self\n"
        "    def transform(self, X):\n"
        "        return X * 2",
        ["setup"],
    ),
    ("X, y = load_iris(return_X_y=True, as_frame=True)", ["transform"]),
    (
        "model = make_pipeline(Doubler(), LogisticRegression(max_iter=500))\nmodel.fit(X, y)",
        ["train"],
    ),
    ("accuracy = model.score(X, y)", ["evaluate"]),
    (SKOPS_PROBE, []),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("captured-pickle")
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    for name, cells in (("forest", FOREST), ("own_class", OWN_CLASS)):
        folder = root / name
        folder.mkdir()
        build_notebook(folder / f"{name}.ipynb", cells)
        ran = run_nbops("run", f"{name}/{name}.ipynb", cwd=root)
        assert ran.returncode == 0, ran.stderr
    return root


def recorded(project: Path, notebook: str) -> RunRecord:
    (record,) = [r for r in RunStore(project / ".nbops").list() if r.notebook.endswith(notebook)]
    return record


def model_file(project: Path, record: RunRecord) -> Path:
    return RunStore(project / ".nbops").run_dir(record.run_id) / record.models[0]["path"]


def test_a_scikit_learn_model_is_pickled_without_importing_skops_in_the_kernel(
    project: Path,
) -> None:
    record = recorded(project, "forest.ipynb")

    (model,) = record.models
    assert model["format"] == "pickle" and model["path"] == "models/captured-model.pkl"
    assert model["sha256"] == hashlib.sha256(model_file(project, record).read_bytes()).hexdigest()
    assert "sklearn.ensemble._forest.RandomForestClassifier" in model["globals"]
    assert (project / "forest" / "skops_imported.txt").read_text() == "False"


def test_a_fast_path_run_bundles_a_model_predicting_as_the_notebooks(project: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    record = recorded(project, "forest.ipynb")
    built = run_nbops("bundle", "--run", record.run_id, cwd=project)
    assert built.returncode == 0, built.stderr

    bundle = load_bundle(project / "bundles" / "forest-v1")
    X, y = load_iris(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, random_state=0)
    oracle = RandomForestClassifier(n_estimators=20, random_state=0).fit(X_train, y_train)
    assert list(bundle.predict(X_test)) == list(oracle.predict(X_test))
    assert bundle.manifest.model.serializer == "skops"
    assert not list((project / "bundles" / "forest-v1").rglob("*.pkl"))


def test_a_model_with_a_class_of_the_notebooks_own_is_saved_with_skops_and_refused_as_before(
    project: Path,
) -> None:
    record = recorded(project, "own_class.ipynb")

    (model,) = record.models
    assert model["format"] == "skops" and model["path"] == "models/captured-model.skops"
    assert (project / "own_class" / "skops_imported.txt").read_text() == "True"
    built = run_nbops("bundle", "--run", record.run_id, cwd=project)
    assert built.returncode == errors.BundleError.exit_code, built.stderr
    assert "'__main__.Doubler', which nbops does not load from bundles" in built.stderr


@contextmanager
def altered(path: Path, data: bytes) -> Iterator[None]:
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(original)


def test_a_captured_pickle_changed_on_disk_is_refused_at_bundle_time(project: Path) -> None:
    record = recorded(project, "forest.ipynb")
    file = model_file(project, record)
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF

    with altered(file, bytes(data)):
        built = run_nbops("bundle", "--run", record.run_id, "--out", "tampered", cwd=project)

    assert built.returncode == errors.BundleIntegrityError.exit_code, built.stderr
    (line,) = built.stderr.strip().splitlines()
    assert "sha256 differs from the one the run recorded" in line and str(file) in line
    assert not (project / "tampered").exists()


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


def test_a_pickle_naming_a_global_the_run_did_not_record_is_refused_without_running(
    project: Path,
) -> None:
    """The file and its recorded sha256 both replaced: the recorded globals still decide."""
    store = RunStore(project / ".nbops")
    record = recorded(project, "forest.ipynb")
    file = model_file(project, record)
    marker = project / "pwned"
    hostile = pickle.dumps(_System(f"touch {marker}"), protocol=5)
    forged = record.model_copy(deep=True)
    forged.models[0]["sha256"] = hashlib.sha256(hostile).hexdigest()

    with altered(file, hostile):
        store.save(forged)
        try:
            built = run_nbops("bundle", "--run", record.run_id, "--out", "hostile", cwd=project)
        finally:
            store.save(record)

    assert built.returncode == errors.BundleIntegrityError.exit_code, built.stderr
    (line,) = built.stderr.strip().splitlines()
    assert "'posix.system', which the run did not record" in line
    assert not marker.exists()
    assert not (project / "hostile").exists()


def test_mlflow_gets_the_captured_model_as_skops_never_the_pickle(project: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    import skops.io

    from nbops.config import load_project
    from nbops.runs.tracking import MlflowBackend

    record = recorded(project, "forest.ipynb")
    run_dir = RunStore(project / ".nbops").run_dir(record.run_id)
    logged = MlflowBackend(load_project(project)).log_run(record, run_dir)

    client = mlflow.tracking.MlflowClient(tracking_uri=logged["uri"])
    (artifact,) = client.list_artifacts(logged["run_id"], "models")
    assert artifact.path == "models/captured-model.skops"
    local = Path(client.download_artifacts(logged["run_id"], artifact.path, str(project)))
    model = skops.io.load(local, trusted=skops.io.get_untrusted_types(file=local))
    from sklearn.datasets import load_iris

    X = load_iris(as_frame=True).data.head(20)
    entry = record.models[0]
    captured = load_verified(model_file(project, record), entry["sha256"], entry["globals"])
    assert list(model.predict(X)) == list(captured.predict(X))
