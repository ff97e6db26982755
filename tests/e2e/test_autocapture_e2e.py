"""Notebooks with no nbops calls, in tutorial style, to a tracked run and a bundle.

Each notebook runs once on a real kernel (`nbops run`, or `nbops ci` with gates) and is
exported once; the run's recorded metrics must be the exported package's
(`python -m PKG`), names and values, and the run's model must bundle without log_model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.bundle.load import load_bundle
from nbops.gates import evaluate_gates, parse_gate
from nbops.runs.record import RunRecord
from nbops.runs.store import RunStore
from tests.helpers import build_notebook, run_nbops

pytestmark = pytest.mark.slow

# An sklearn tutorial as people write it: the headline number is the last line of a cell,
# plots and prints sit among the work, and nothing calls nbops.
IRIS_KNN = [
    "# k-nearest neighbours on iris",
    (
        "import numpy as np\n"
        "import matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.metrics import accuracy_score\n"
        "from sklearn.model_selection import cross_val_score, train_test_split\n"
        "from sklearn.neighbors import KNeighborsClassifier",
        ["setup"],
    ),
    (
        "iris = load_iris(as_frame=True)\n"
        "X, y = iris.data, iris.target\n"
        "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)",
        ["transform"],
    ),
    ("X_train.head()", []),
    ("knn = KNeighborsClassifier(n_neighbors=1)\nknn.fit(X_train, y_train)", ["train"]),
    ('y_pred = knn.predict(X_test)\nprint("Test set predictions:\\n", y_pred)', ["evaluate"]),
    ("knn.score(X_test, y_test)", ["evaluate"]),
    (
        "x_min, x_max = X.iloc[:, 0].min() - 1, X.iloc[:, 0].max() + 1\n"
        "y_min, y_max = X.iloc[:, 1].min() - 1, X.iloc[:, 1].max() + 1\n"
        "h = .02  # step size in the mesh\n"
        "xx, yy = np.meshgrid(np.arange(x_min, x_max, h), np.arange(y_min, y_max, h))\n"
        "plt.scatter(X.iloc[:, 0], X.iloc[:, 1], c=y)\n"
        "plt.xlim(xx.min(), xx.max())\n"
        "plt.show()",
        ["evaluate"],
    ),
    (
        "scores = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=5)\n"
        'print("Cross-validation scores: {}".format(scores))\n'
        "scores.mean()",
        ["evaluate:cv"],
    ),
    ("print(accuracy_score(y_test, y_pred))", ["evaluate:cv"]),
]

# Fit and score in one cell, two evaluate steps defining `accuracy`, and an explicit
# log_metric with a history for a value nbops would also capture.
WINE = [
    (
        "import nbops\n"
        "from sklearn.datasets import load_wine\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.metrics import accuracy_score, f1_score\n"
        "from sklearn.model_selection import train_test_split\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "from sklearn.tree import DecisionTreeClassifier",
        ["setup"],
    ),
    ("C = 1.0\nmax_depth = 3", ["parameters"]),
    (
        "X, y = load_wine(return_X_y=True, as_frame=True)\n"
        "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=1, stratify=y)",
        ["transform"],
    ),
    (
        "logreg = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))\n"
        "logreg.fit(X_train, y_train)\n"
        "train_acc = logreg.score(X_train, y_train)\n"
        'print(f"train accuracy: {train_acc:.3f}")',
        ["train:logreg"],
    ),
    (
        "pred = logreg.predict(X_test)\n"
        "accuracy = accuracy_score(y_test, pred)\n"
        'f1 = f1_score(y_test, pred, average="macro")',
        ["evaluate:logreg"],
    ),
    (
        "for depth in range(1, max_depth + 1):\n"
        "    tree = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X_train, y_train)\n"
        "    tree_score = tree.score(X_test, y_test)\n"
        '    nbops.log_metric("tree_score", tree_score, step=depth)',
        ["train:tree"],
    ),
    ("accuracy = accuracy_score(y_test, tree.predict(X_test))", ["evaluate:tree"]),
]

GATES = ["tree.accuracy >= 0.5", "train_acc > 0.9"]

# scikit-learn's linear regression example: the scores are only printed, with %-format.
DIABETES = [
    "# Linear Regression Example",
    (
        "import matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "from sklearn.datasets import load_diabetes\n"
        "from sklearn.linear_model import LinearRegression\n"
        "from sklearn.metrics import mean_squared_error, r2_score",
        ["setup"],
    ),
    (
        "X, y = load_diabetes(return_X_y=True)\n"
        "X = X[:, [2]]  # one feature, to plot it\n"
        "X_train, X_test = X[:-20], X[-20:]\n"
        "y_train, y_test = y[:-20], y[-20:]",
        ["transform"],
    ),
    (
        "regr = LinearRegression()\nregr.fit(X_train, y_train); y_pred = regr.predict(X_test)",
        ["train"],
    ),
    (
        'print("Coefficients: \\n", regr.coef_)\n'
        'print("Mean squared error: %.2f" % mean_squared_error(y_test, y_pred))\n'
        'print("Coefficient of determination: %.2f" % r2_score(y_test, y_pred))',
        ["evaluate"],
    ),
    (
        "plt.scatter(X_test, y_test, color='black')\n"
        "plt.plot(X_test, y_pred, color='blue', linewidth=3)\n"
        "plt.show()",
        [],
    ),
]


def package_metrics(project: Path, name: str) -> dict[str, float]:
    exported = run_nbops("export", f"{name}.ipynb", cwd=project)
    assert exported.returncode == 0, exported.stderr
    proc = subprocess.run(
        [sys.executable, "-m", name],
        cwd=project / "pipelines" / name,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(proc.stdout))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("autocapture")
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    build_notebook(root / "iris_knn.ipynb", IRIS_KNN)
    build_notebook(root / "wine.ipynb", WINE)
    build_notebook(root / "diabetes.ipynb", DIABETES)
    ran = run_nbops("run", "diabetes.ipynb", cwd=root)
    assert ran.returncode == 0, ran.stderr
    ran = run_nbops("run", "iris_knn.ipynb", cwd=root)
    assert ran.returncode == 0, ran.stderr
    gated = run_nbops("ci", "wine.ipynb", *(a for g in GATES for a in ("--gate", g)), cwd=root)
    assert gated.returncode == 0, gated.stdout + gated.stderr
    return root


def recorded(project: Path, notebook: str) -> RunRecord:
    (record,) = [r for r in RunStore(project / ".nbops").list() if r.notebook.endswith(notebook)]
    return record


@pytest.mark.parametrize("name", ["iris_knn", "wine", "diabetes"])
def test_the_runs_metrics_are_the_exported_packages(project: Path, name: str) -> None:
    run = recorded(project, f"{name}.ipynb").latest_metrics()
    package = package_metrics(project, name)

    assert package
    assert run == pytest.approx(package, rel=1e-12)


def test_the_last_expression_of_an_evaluate_cell_is_a_metric_and_plot_bounds_are_not(
    project: Path,
) -> None:
    assert set(recorded(project, "iris_knn.ipynb").metrics) == {
        "knn_score",
        "scores_mean",
        "accuracy",  # print(accuracy_score(y_test, y_pred))
    }


def test_metrics_an_evaluate_cell_only_prints_are_recorded_and_not_warned_about(
    project: Path,
) -> None:
    metrics = recorded(project, "diabetes.ipynb").latest_metrics()
    tags = run_nbops("tags", "diabetes.ipynb", cwd=project)

    assert set(metrics) == {"mean_squared_error", "r2"}
    assert 0 < metrics["r2"] < 1 and metrics["mean_squared_error"] > 0
    assert "without keeping it" not in tags.stderr


def test_fit_and_score_in_one_cell_and_two_steps_defining_one_name_all_reach_the_run(
    project: Path,
) -> None:
    metrics = recorded(project, "wine.ipynb").latest_metrics()

    assert {"train_acc", "logreg.accuracy", "tree.accuracy", "f1"} <= set(metrics)
    assert "accuracy" not in metrics and "pred" not in metrics


def test_an_explicit_log_metric_wins_and_keeps_its_history(project: Path) -> None:
    points = recorded(project, "wine.ipynb").metrics["tree_score"]

    assert [p.step for p in points] == [1, 2, 3]


def test_gates_and_runs_list_see_the_captured_metrics(project: Path) -> None:
    record = recorded(project, "wine.ipynb")
    results = evaluate_gates([parse_gate(g) for g in GATES], record.gate_values())

    assert [r.passed for r in results] == [True, True]
    assert [g["passed"] for g in record.gates] == [True, True]  # as `nbops ci` checked them
    listed = run_nbops("runs", "list", cwd=project)
    assert "knn_score=" in listed.stdout


def test_a_run_without_log_model_bundles_the_model_it_predicted_with(project: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    record = recorded(project, "iris_knn.ipynb")
    built = run_nbops("bundle", "--run", record.run_id, cwd=project)
    assert built.returncode == 0, built.stderr

    bundle = load_bundle(project / "bundles" / "iris_knn-v1")
    X, y = load_iris(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, random_state=0)
    oracle = KNeighborsClassifier(n_neighbors=1).fit(X_train, y_train)
    assert list(bundle.predict(X_test)) == list(oracle.predict(X_test))
    assert bundle.manifest.source.metrics == record.latest_metrics()


def test_mlflow_gets_the_captured_metrics_under_their_qualified_names(project: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    from nbops.config import load_project
    from nbops.runs.tracking import MlflowBackend

    record = recorded(project, "wine.ipynb")
    run_dir = RunStore(project / ".nbops").run_dir(record.run_id)
    logged = MlflowBackend(load_project(project)).log_run(record, run_dir)

    run = mlflow.tracking.MlflowClient(tracking_uri=logged["uri"]).get_run(logged["run_id"])
    assert run.data.metrics == pytest.approx(record.latest_metrics())
    assert "tree.accuracy" in run.data.metrics
