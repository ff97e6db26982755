"""Generated code a person would keep: real types on the values steps pass on, mypy-clean
packages, a run() docstring about the notebook's own parameters, metrics reported once, and
an nbops import that says why it is there."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.export.exporter import export_notebook
from nbops.notebook.read import read_notebook
from nbops.notebook.suggest import suggest_roles
from nbops.notebook.tagwrite import write_suggestion
from tests.helpers import EXAMPLES, REPO, SMALL, build_notebook

TUTORIALS = REPO / "tests" / "fixtures" / "tutorials"

TYPED = [
    (
        "import numpy as np\nimport pandas as pd\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.metrics import accuracy_score\n"
        "from sklearn.model_selection import train_test_split\n\nTARGET = 'y'",
        ["setup"],
    ),
    ("seed = 0", ["parameters"]),
    (
        "df = pd.read_csv('data.csv')\nX = df.drop(columns=[TARGET])\ny = df[TARGET]\n"
        "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=seed)",
        ["transform:load"],
    ),
    ("model = LogisticRegression(random_state=seed).fit(X_train, y_train)", ["train"]),
    (
        "predictions = model.predict(X_test)\naccuracy = accuracy_score(y_test, predictions)\n"
        "for n in range(3):\n    last = n",
        ["evaluate"],
    ),
]


def _function(path: Path, name: str) -> ast.FunctionDef:
    tree = ast.parse(path.read_text())
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)


def _fields(path: Path, name: str) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    return {
        s.target.id: ast.unparse(s.annotation)
        for s in cls.body
        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
    }


def test_step_values_carry_the_types_the_code_makes_certain(tmp_path: Path) -> None:
    result = export_notebook(build_notebook(tmp_path / "typed.ipynb", TYPED), tmp_path / "o")
    package = result.package_dir
    assert _fields(package / "transform.py", "LoadOutputs") == {
        "X_train": "pd.DataFrame",
        "X_test": "pd.DataFrame",
        "y_train": "pd.Series",
        "y_test": "pd.Series",
    }
    train = _function(package / "train.py", "train")
    assert ast.unparse(train.returns) == "LogisticRegression"  # type: ignore[arg-type]
    assert _fields(package / "evaluate.py", "EvaluateOutputs") == {
        "predictions": "np.ndarray",
        "accuracy": "float",
        "last": "Any",  # bound in a loop: not certain
    }
    results = _fields(package / "pipeline.py", "Results")
    assert results["model"] == "LogisticRegression"
    assert results["accuracy"] == "float"


def test_a_value_two_steps_return_with_different_types_stays_any(tmp_path: Path) -> None:
    cells = [
        ("size = 3", ["parameters"]),
        ("value = size * 2\ncount = 1", ["transform:load"]),
        ("total = value + count", ["train"]),
        ("count = 'many'\nscore = float(total)", ["evaluate"]),
    ]
    result = export_notebook(build_notebook(tmp_path / "mixed.ipynb", cells), tmp_path / "o")
    results = _fields(result.package_dir / "pipeline.py", "Results")
    assert results["count"] == "Any"
    assert results["score"] == "float"


def _tagged_copy(notebook: Path, into: Path) -> Path:
    folder = into / notebook.stem
    shutil.copytree(notebook.parent, folder)
    copy = folder / notebook.name
    write_suggestion(suggest_roles(read_notebook(copy)))
    return copy


@pytest.mark.slow
def test_the_generated_packages_pass_mypy(tmp_path: Path) -> None:
    notebooks = sorted(EXAMPLES.glob("*.ipynb"))
    tutorials = [TUTORIALS / "titanic" / "titanic_logreg.ipynb", TUTORIALS / "digits_svm.ipynb"]
    notebooks += [_tagged_copy(nb, tmp_path / "tagged") for nb in tutorials]
    packages = []
    for nb in notebooks:
        result = export_notebook(nb, tmp_path / "out")
        packages.append(str(result.package_dir))
    options = ["--ignore-missing-imports", "--no-incremental", "--cache-dir", str(tmp_path / "c")]
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", *options, *packages],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _run_docstring(pipeline: Path) -> str:
    return ast.get_docstring(_function(pipeline, "run")) or ""


def test_the_run_docstring_overrides_one_of_the_notebooks_own_parameters(
    tmp_path: Path,
) -> None:
    result = export_notebook(build_notebook(tmp_path / "small.ipynb", SMALL), tmp_path / "o")
    doc = _run_docstring(result.package_dir / "pipeline.py")
    assert "`run(factor=3)`" in doc
    assert "test_size" not in doc


def test_the_run_docstring_shows_no_override_without_parameters(tmp_path: Path) -> None:
    cells = [("value = 2", ["transform:load"]), ("score = float(value)", ["evaluate"])]
    result = export_notebook(build_notebook(tmp_path / "bare.ipynb", cells), tmp_path / "o")
    doc = _run_docstring(result.package_dir / "pipeline.py")
    assert "run(" not in doc


def test_a_dict_gathering_the_steps_metrics_is_not_reported_twice(tmp_path: Path) -> None:
    cells = [
        ("import nbops\nfrom sklearn.metrics import mean_absolute_error", ["setup"]),
        ("truth, guess = [1.0, 2.0], [1.5, 2.5]", ["transform:load"]),
        (
            "mae = mean_absolute_error(truth, guess)\nbias = sum(guess) - sum(truth)\n"
            'scores = {"mae": mae, "bias": bias}\nnbops.log_metrics(scores)',
            ["evaluate"],
        ),
    ]
    result = export_notebook(build_notebook(tmp_path / "dup.ipynb", cells), tmp_path / "o")
    assert [m.name for m in result.manifest.metrics] == ["mae", "bias"]
    evaluate = (result.package_dir / "evaluate.py").read_text().splitlines()
    (line,) = [ln for ln in evaluate if ln.startswith("import nbops")]
    assert "do nothing" in line  # says why the import stays
