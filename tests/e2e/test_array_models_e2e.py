"""A model trained on numpy arrays (the commonest tutorial shape: `X = iris.data`,
`train_test_split`, `KNeighborsClassifier().fit(X_train, y_train)`) bundles from its run and
serves: requests are named columns (the dataset's feature names when the notebook has them,
else x0, x1, ...), turned back into the array the model was fit on."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.neighbors import KNeighborsClassifier

from nbops.bundle.from_run import build_from
from nbops.bundle.load import load_bundle
from nbops.bundle.serve import create_app
from nbops.config import load_project
from nbops.errors import BundleError
from tests.helpers import build_notebook, run_nbops, running

pytestmark = pytest.mark.slow

IMPORTS = """\
import json
import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
"""

IRIS = [
    (IMPORTS, ["setup"]),
    ("n_neighbors = 3\ntest_size = 0.25", ["parameters"]),
    ("iris = load_iris()\nX = iris.data\ny = iris.target\nprint(X.shape)", ["transform:load"]),
    ("df = pd.DataFrame(X, columns=iris.feature_names)\ndf.describe()", []),
    (
        "X_train, X_test, y_train, y_test = train_test_split(\n"
        "    X, y, test_size=test_size, random_state=42\n)",
        ["transform:split"],
    ),
    ("knn = KNeighborsClassifier(n_neighbors=n_neighbors)\nknn.fit(X_train, y_train)", ["train"]),
    ("y_pred = knn.predict(X_test)\nprint(accuracy_score(y_test, y_pred))", ["evaluate"]),
    ("json.dump(knn.predict(iris.data).tolist(), open('notebook_predictions.json', 'w'))", []),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("iris")
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    build_notebook(root / "iris.ipynb", IRIS)
    ran = run_nbops("run", "iris.ipynb", cwd=root)
    assert ran.returncode == 0, ran.stderr
    built = run_nbops("bundle", "--run", "latest", cwd=root)
    assert built.returncode == 0, built.stderr
    iris = load_iris()
    raw = pd.DataFrame(iris.data, columns=iris.feature_names).assign(note="extra")
    raw.to_csv(root / "requests.csv", index=False)
    return root


def test_requests_are_named_by_the_datasets_feature_names(project: Path) -> None:
    with load_bundle(project / "bundles" / "iris-v1") as bundle:
        assert bundle.request_columns == list(load_iris().feature_names)
        assert bundle.manifest.serving.request_array


def test_nbops_predict_scores_a_csv_as_the_notebook_predicted(project: Path) -> None:
    result = run_nbops(
        "predict", "bundles/iris-v1", "requests.csv", "-o", "predictions.csv", cwd=project
    )
    assert result.returncode == 0, result.stderr
    expected = json.loads((project / "notebook_predictions.json").read_text())
    assert pd.read_csv(project / "predictions.csv")["prediction"].tolist() == expected


def test_the_served_bundle_predicts_as_the_notebook_did(project: Path) -> None:
    expected = json.loads((project / "notebook_predictions.json").read_text())
    records = pd.read_csv(project / "requests.csv").drop(columns="note").to_dict("records")
    with load_bundle(project / "bundles" / "iris-v1") as bundle, running(create_app(bundle)) as url:
        response = httpx.post(f"{url}/predict", json={"records": records}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected


def test_an_array_without_names_in_the_notebook_takes_x0_to_xn(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    notebook = build_notebook(
        tmp_path / "knn.ipynb",
        [
            (IMPORTS, ["setup"]),
            ("X, y = load_iris(return_X_y=True)", ["transform:load"]),
            ("X_train, X_test, y_train, y_test = train_test_split(X, y)", ["transform:split"]),
            ("knn = KNeighborsClassifier()\nknn.fit(X_train, y_train)", ["train"]),
            ("knn.score(X_test, y_test)", ["evaluate"]),
        ],
    )
    X, y = load_iris(return_X_y=True)
    model = KNeighborsClassifier().fit(X, y)
    project = load_project(tmp_path)
    folder = build_from(notebook, model, {}, out=tmp_path / "bundles", project=project)
    request = pd.DataFrame(X[:5], columns=["x0", "x1", "x2", "x3"])
    with load_bundle(folder) as bundle:
        assert bundle.request_columns == ["x0", "x1", "x2", "x3"]
        assert bundle.predict(request).tolist() == model.predict(X[:5]).tolist()


def test_a_features_step_reading_a_dataset_object_serves_the_model_on_its_array(
    tmp_path: Path,
) -> None:
    # What `nbops tag --write` proposes for the classic iris tutorial: the step that takes
    # X and y out of sklearn's Bunch is named transform:features, but a Bunch is no request.
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    notebook = build_notebook(
        tmp_path / "tutorial.ipynb",
        [
            (IMPORTS, ["setup"]),
            ("iris = load_iris()", ["transform:load"]),
            ("X = iris.data\ny = iris.target", ["transform:features"]),
            ("X_train, X_test, y_train, y_test = train_test_split(X, y)", ["transform:split"]),
            ("knn = KNeighborsClassifier()\nknn.fit(X_train, y_train)", ["train"]),
            ("knn.score(X_test, y_test)", ["evaluate"]),
        ],
    )
    iris = load_iris()
    model = KNeighborsClassifier().fit(iris.data, iris.target)
    folder = build_from(
        notebook, model, {}, out=tmp_path / "bundles", project=load_project(tmp_path)
    )
    request = pd.DataFrame(iris.data[:5], columns=iris.feature_names)
    with load_bundle(folder) as bundle:
        assert bundle.request_columns == list(iris.feature_names)
        assert bundle.predict(request).tolist() == model.predict(iris.data[:5]).tolist()


def test_a_model_input_that_is_not_a_table_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    notebook = build_notebook(
        tmp_path / "words.ipynb",
        [
            ("from sklearn.naive_bayes import MultinomialNB\nimport numpy as np", ["setup"]),
            ("X = np.arange(40).reshape(20, 2)\ny = np.arange(20) % 2", ["transform:load"]),
            ("X_flat = X.ravel()[:20]", ["transform:flatten"]),
            ("model = MultinomialNB()\nmodel.fit(X_flat.reshape(-1, 1), y)", ["train"]),
        ],
    )
    model = KNeighborsClassifier(n_neighbors=1).fit([[0], [1]], [0, 1])
    project = load_project(tmp_path)
    with pytest.raises(BundleError) as raised:
        build_from(notebook, model, {}, out=tmp_path / "bundles", project=project)
    assert "'X_flat' is a ndarray of shape (20,)" in str(raised.value)
    assert raised.value.fix and "2-D numpy array" in raised.value.fix
    assert not (tmp_path / "bundles").exists()


def test_a_frame_with_unnamed_columns_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    notebook = build_notebook(
        tmp_path / "frame.ipynb",
        [
            (IMPORTS, ["setup"]),
            ("X, y = load_iris(return_X_y=True)\ndf = pd.DataFrame(X)", ["transform:load"]),
            ("model = KNeighborsClassifier()\nmodel.fit(df, y)", ["train"]),
        ],
    )
    X, y = load_iris(return_X_y=True)
    model = KNeighborsClassifier().fit(pd.DataFrame(X), y)
    with pytest.raises(BundleError, match=r"'df' has columns without text names \(0, 1, 2\)"):
        build_from(notebook, model, {}, out=tmp_path / "bundles", project=load_project(tmp_path))
    assert not (tmp_path / "bundles").exists()
