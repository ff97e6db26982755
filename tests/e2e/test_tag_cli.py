"""`nbops tag NOTEBOOK --suggest / --write / --force / --json`, through the real command line.

The tutorial notebooks below are written as tutorials are (no cell ids, scattered constants,
prints and plots between the work, a refit after `X_train` is redefined, cross-validation,
grid search, fit and score in one cell, a shell cell) on scikit-learn's built-in datasets.
`--write` then `nbops export` must give a package that runs (`python -m`) and reports the
same numbers as the notebook's own code run top to bottom.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.helpers import build_notebook, run_nbops

IRIS_TUTORIAL: list[tuple[str, list[str]] | str] = [
    "# Iris: nearest neighbours, then PCA and a logistic regression",
    ("%%bash\necho 'fetching nothing'", []),
    (
        "%matplotlib inline\nimport numpy as np\nimport matplotlib.pyplot as plt\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.model_selection import train_test_split\n"
        "from sklearn.neighbors import KNeighborsClassifier\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.decomposition import PCA\nfrom sklearn.metrics import accuracy_score",
        [],
    ),
    ("iris = load_iris()\nX = iris.data\ny = iris.target", []),
    ("print(X.shape)\nX[:5]", []),
    ("plt.scatter(X[:, 0], X[:, 1], c=y)\nplt.show()", []),
    ("TEST_SIZE = 0.3\nSEED = 7", []),
    (
        "X_train, X_test, y_train, y_test = train_test_split(\n"
        "    X, y, test_size=TEST_SIZE, random_state=SEED)",
        [],
    ),
    (
        "N_NEIGHBORS = 5\nknn = KNeighborsClassifier(n_neighbors=N_NEIGHBORS)\n"
        "knn.fit(X_train, y_train)",
        [],
    ),
    ("knn_accuracy = knn.score(X_test, y_test)\nknn_accuracy", []),
    ("min_pt = X.min()\nmax_pt = X.max()\nplt.plot([min_pt, max_pt])", []),
    (
        "pca = PCA(n_components=2)\nX_train = pca.fit_transform(X_train)\n"
        "X_test = pca.transform(X_test)",
        [],
    ),
    ("logreg = LogisticRegression(max_iter=1000)\nlogreg.fit(X_train, y_train)", []),
    ("y_pred = logreg.predict(X_test)", []),
    ("accuracy = accuracy_score(y_test, y_pred)\nprint('accuracy', accuracy)", []),
]

CANCER_TUTORIAL: list[tuple[str, list[str]] | str] = [
    (
        "import pandas as pd\nfrom sklearn.datasets import load_breast_cancer\n"
        "from sklearn.model_selection import train_test_split, cross_val_score, GridSearchCV\n"
        "from sklearn.ensemble import RandomForestClassifier\nfrom sklearn.svm import SVC\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.metrics import classification_report, f1_score\n"
        "data = load_breast_cancer(as_frame=True)\ndf = data.frame",
        [],
    ),
    ("df.describe()", []),
    ("df.isnull().sum()", []),
    ("df = df.drop_duplicates()", []),
    ("X = df.drop(columns=['target'])\ny = df['target']", []),
    (
        "X_train, X_test, y_train, y_test = train_test_split(\n"
        "    X, y, test_size=0.25, random_state=0, stratify=y)",
        [],
    ),
    (
        "rf = RandomForestClassifier(n_estimators=25, random_state=0)\n"
        "scores = cross_val_score(rf, X_train, y_train, cv=3)\ncv_mean = scores.mean()\n"
        "print(cv_mean)",
        [],
    ),
    (
        "pipe = make_pipeline(StandardScaler(), SVC())\n"
        "grid = GridSearchCV(pipe, {'svc__C': [0.5, 5]}, cv=3)\ngrid.fit(X_train, y_train)",
        [],
    ),
    ("grid.best_params_", []),
    (
        "rf.fit(X_train, y_train)\npred = rf.predict(X_test)\n"
        "print(classification_report(y_test, pred))\nf1 = f1_score(y_test, pred)",
        [],
    ),
    ("test_score = grid.score(X_test, y_test)\ntest_score", []),
]


def write_v44(path: Path, cells: list[tuple[str, list[str]] | str]) -> Path:
    """A tutorial as most real files are: nbformat 4.4, cells without ids."""
    build_notebook(path, cells)
    data = json.loads(path.read_text("utf-8"))
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        cell.pop("id", None)
    path.write_text(json.dumps(data, indent=1), "utf-8")
    return path


def run_as_script(notebook: Path, names: list[str]) -> dict[str, float]:
    """The notebook's own code, top to bottom (shell cells and magics left out): the values
    of `names` at the end."""
    nb = nbformat.read(notebook, as_version=4)
    code = "\n".join(
        "\n".join(line for line in c.source.splitlines() if not line.startswith(("%", "!")))
        for c in nb.cells
        if c.cell_type == "code" and not c.source.startswith("%%")
    )
    probe = (
        f"import json\nprint('VALUES ' + json.dumps({{n: float(globals()[n]) for n in {names!r}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code + "\n" + probe],
        cwd=notebook.parent,
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
        timeout=300,
        check=True,
    )
    return dict(json.loads(done.stdout.split("VALUES ", 1)[1]))


def run_package(folder: Path, name: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", name],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def tags(path: Path) -> list[list[str] | None]:
    nb = nbformat.read(path, as_version=4)
    return [c.metadata.get("tags") for c in nb.cells if c.cell_type == "code"]


# -- --suggest ----------------------------------------------------------------------------


def test_suggest_prints_each_code_cell_with_its_tag_and_reason(tmp_path: Path) -> None:
    path = write_v44(tmp_path / "iris.ipynb", IRIS_TUTORIAL)
    before = path.read_bytes()
    done = run_nbops("tag", "iris.ipynb", "--suggest", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Suggested tags for iris.ipynb:"
    cells = [line.split(None, 3) for line in lines[1:15]]
    assert [(c[1], c[2]) for c in cells] == [
        ("2", "skip"), ("3", "setup"), ("4", "transform:load"), ("5", "(untagged)"),
        ("6", "(untagged)"), ("7", "parameters"), ("8", "transform:split"), ("9", "train:knn"),
        ("10", "evaluate:knn"), ("11", "(untagged)"), ("12", "transform:reduce"),
        ("13", "train:logreg"), ("14", "evaluate:logreg"), ("15", "evaluate:logreg"),
    ]  # fmt: skip
    assert all(len(c) == 4 and c[3] for c in cells)  # every cell has a reason
    assert "Gather these constants into the parameters cell (cell 7)" in done.stdout
    assert "cell 9, line 1: N_NEIGHBORS = 5  (passed as n_neighbors=)" in done.stdout
    assert "The notebook exports with these tags: 7 steps" in done.stdout
    assert path.read_bytes() == before  # --suggest writes nothing


def test_json_lists_cells_gathering_problems_and_steps(tmp_path: Path) -> None:
    write_v44(tmp_path / "iris.ipynb", IRIS_TUTORIAL)
    done = run_nbops("tag", "iris.ipynb", "--suggest", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert set(body) == {
        "notebook", "exports", "cells", "parameters_cell", "gather", "problems", "steps",
        "warnings", "written",
    }  # fmt: skip
    assert body["exports"] is True and body["problems"] == [] and body["written"] is None
    assert body["cells"][0] == {
        "index": 1, "number": 2, "id": body["cells"][0]["id"], "tag": "skip", "role": "skip",
        "name": None, "reason": body["cells"][0]["reason"], "kept": False, "current": None,
        "changes": True,
    }  # fmt: skip
    assert body["parameters_cell"] == 6
    assert body["gather"] == [
        {"index": 8, "number": 9, "line": 1, "name": "N_NEIGHBORS", "source": "N_NEIGHBORS = 5",
         "use": "n_neighbors="}
    ]  # fmt: skip
    assert body["steps"][0] == "transform:load"


def test_unresolved_problems_are_listed_by_cell(tmp_path: Path) -> None:
    build_notebook(
        tmp_path / "broken.ipynb",
        [("from sklearn.linear_model import LogisticRegression", []),
         ("model = LogisticRegression()\nmodel.fit(features, labels)", [])],
    )  # fmt: skip
    done = run_nbops("tag", "broken.ipynb", "--suggest", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Not resolved (the export stops here):" in done.stdout
    assert "cell 2: step 'train:logistic_regression' uses 'features'" in done.stdout


# -- --write, then export -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cells", "metrics"),
    [(IRIS_TUTORIAL, ["knn_accuracy", "accuracy"]), (CANCER_TUTORIAL, ["cv_mean", "f1", "test_score"])],
    ids=["iris", "breast_cancer"],
)  # fmt: skip
def test_written_tags_export_a_package_that_reproduces_the_notebook(
    tmp_path: Path, cells: list[tuple[str, list[str]] | str], metrics: list[str]
) -> None:
    path = write_v44(tmp_path / "tutorial.ipynb", cells)
    done = run_nbops("tag", "tutorial.ipynb", "--write", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Wrote the tags of" in done.stdout
    exported = run_nbops("export", "tutorial.ipynb", "-o", "out", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    package = run_package(tmp_path / "out" / "tutorial", "tutorial")
    expected = run_as_script(path, metrics)
    assert {m: package[m] for m in metrics} == pytest.approx(expected)


def test_write_leaves_tagged_cells_and_other_tags_alone(tmp_path: Path) -> None:
    cells = list(IRIS_TUTORIAL)
    cells[3] = (str(cells[3][0]), ["hide-input", "transform:data"])  # the load cell
    cells[4] = (str(cells[4][0]), ["hide-output"])
    path = write_v44(tmp_path / "iris.ipynb", cells)
    done = run_nbops("tag", "iris.ipynb", "--write", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tags(path)
    assert written[2] == ["hide-input", "transform:data"]
    assert written[3] == ["hide-output"]
    assert written[0] == ["skip"] and written[1] == ["setup"]
    data = json.loads(path.read_text("utf-8"))
    assert data["nbformat_minor"] == 4 and all("id" not in c for c in data["cells"])


def test_write_again_has_nothing_to_write(tmp_path: Path) -> None:
    path = write_v44(tmp_path / "iris.ipynb", IRIS_TUTORIAL)
    assert run_nbops("tag", "iris.ipynb", "--write", cwd=tmp_path).returncode == 0
    before = path.read_bytes()
    again = run_nbops("tag", "iris.ipynb", "--write", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Nothing to write" in again.stdout
    assert path.read_bytes() == before


def test_force_replaces_nbops_tags_but_not_others(tmp_path: Path) -> None:
    path = build_notebook(
        tmp_path / "nb.ipynb",
        [("import math", ["train", "hide-input"]), ("x = math.sqrt(2)\nprint(x)", ["evaluate"])],
    )
    plain = run_nbops("tag", "nb.ipynb", "--write", cwd=tmp_path)
    assert plain.returncode == 0 and tags(path) == [["train", "hide-input"], ["evaluate"]]
    forced = run_nbops("tag", "nb.ipynb", "--write", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert tags(path) == [["hide-input", "setup"], None]


def test_a_percent_script_gets_its_tags_in_the_markers(tmp_path: Path) -> None:
    script = tmp_path / "tutorial.py"
    script.write_text(
        "# %%\nfrom sklearn.datasets import load_wine\n"
        "from sklearn.linear_model import LogisticRegression\n\n"
        '# %% tags=["hide-input"]\nX, y = load_wine(return_X_y=True)\n\n'
        "# %%\nclf = LogisticRegression(max_iter=5000).fit(X, y)\nscore = clf.score(X, y)\n",
        "utf-8",
    )
    done = run_nbops("tag", "tutorial.py", "--write", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = script.read_text("utf-8")
    assert '# %% tags=["setup"]\nfrom sklearn' in text
    assert '# %% tags=["hide-input", "transform:load"]\nX, y' in text
    assert '# %% tags=["evaluate:logistic_regression"]\nclf' in text


# -- bad input ----------------------------------------------------------------------------


def test_bad_input_is_one_line_and_a_distinct_exit_code(tmp_path: Path) -> None:
    (tmp_path / "notes.ipynb").write_text("not json", "utf-8")
    build_notebook(tmp_path / "badtag.ipynb", [("x = 1", ["transform:Bad Name"])])
    build_notebook(tmp_path / "ok.ipynb", [("import math", [])])
    cases = {
        ("tag", "missing.ipynb", "--suggest"): (3, "cannot read the file"),
        ("tag", "notes.ipynb", "--suggest"): (3, "not valid JSON"),
        ("tag", "badtag.ipynb", "--write"): (4, "invalid step name"),
        ("tag", "ok.ipynb"): (2, "--write or --from-kale"),
    }
    for args, (code, message) in cases.items():
        done = run_nbops(*args, cwd=tmp_path)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert tags(tmp_path / "badtag.ipynb") == [["transform:Bad Name"]]
