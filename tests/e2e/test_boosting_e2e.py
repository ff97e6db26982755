"""A tutorial-style notebook that trains gradient boosting, end to end: `nbops run` logs the
model, `nbops bundle --run` bundles it, and `nbops predict` scores the notebook's raw test rows
as the notebook did — for XGBoost, LightGBM and CatBoost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbops.bundle.load import load_bundle
from tests.helpers import build_notebook, run_nbops

pytestmark = pytest.mark.slow

MODELS = {
    "xgboost": (
        "from xgboost import XGBClassifier",
        "XGBClassifier(n_estimators=n_estimators, max_depth=3, n_jobs=1, random_state=seed)",
    ),
    "lightgbm": (
        "from lightgbm import LGBMClassifier",
        "LGBMClassifier(n_estimators=n_estimators, num_leaves=7, n_jobs=1, verbose=-1)",
    ),
    "catboost": (
        "from catboost import CatBoostClassifier",
        "CatBoostClassifier(iterations=n_estimators, depth=3, thread_count=1, "
        "random_seed=seed, verbose=False, allow_writing_files=False)",
    ),
}


def passengers_csv(path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "PassengerId": np.arange(1, n + 1),
            "Pclass": rng.choice([1, 2, 3], size=n),
            "Sex": rng.choice(["male", "female"], size=n),
            "Age": rng.integers(1, 80, size=n).astype(float),
            "Fare": rng.gamma(2.0, 15.0, size=n).round(2),
        }
    )
    frame.loc[rng.choice(n, 20, replace=False), "Age"] = np.nan
    score = (frame.Sex == "female") * 1.2 - frame.Pclass * 0.4 + frame.Fare / 80
    frame.insert(1, "Survived", (score + rng.normal(0, 0.4, n) > 0).astype(int))
    frame.to_csv(path, index=False)


def notebook(path: Path, library: str) -> Path:
    import_line, estimator = MODELS[library]
    return build_notebook(
        path,
        [
            "# Titanic survival with gradient boosting",
            (
                "import numpy as np\nimport pandas as pd\n"
                f"from sklearn.model_selection import train_test_split\n{import_line}\nimport nbops",
                ["setup"],
            ),
            ("n_estimators = 12\nseed = 0", ["parameters"]),
            ("df = pd.read_csv('passengers.csv')\ndf.head()", ["transform:load"]),
            (
                "X = pd.DataFrame({\n"
                "    'pclass': df['Pclass'],\n"
                "    'female': (df['Sex'] == 'female').astype(int),\n"
                "    'age': df['Age'].fillna(30.0),\n"
                "    'fare': df['Fare'],\n"
                "})",
                ["transform:features"],
            ),
            (
                "X_train, X_test, y_train, y_test = train_test_split(\n"
                "    X, df['Survived'], test_size=0.25, random_state=seed)",
                ["transform:split"],
            ),
            (
                f"model = {estimator}\nmodel.fit(X_train, y_train)\nnbops.log_model(model)",
                ["train"],
            ),
            (
                "accuracy = float((model.predict(X_test) == y_test).mean())\n"
                "nbops.log_metric('accuracy', accuracy)\nprint(accuracy)",
                ["evaluate"],
            ),
            (
                "df.loc[X_test.index].drop(columns='Survived').to_csv('raw_test.csv', index=False)\n"
                "pd.DataFrame({'prediction': np.ravel(model.predict(X_test)),\n"
                "              'p1': model.predict_proba(X_test)[:, 1]}).to_csv(\n"
                "    'notebook_predictions.csv', index=False)",
                [],
            ),
        ],
    )


@pytest.mark.parametrize("library", list(MODELS))
def test_a_run_that_logged_a_boosted_model_bundles_and_predicts_as_the_notebook(
    library: str, tmp_path: Path
) -> None:
    pytest.importorskip(library, reason=f"{library} is not installed (nbops[boosting])")
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    passengers_csv(tmp_path / "passengers.csv")
    notebook(tmp_path / "titanic.ipynb", library)

    ran = run_nbops("run", "titanic.ipynb", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    built = run_nbops("bundle", "--run", "latest", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    [folder] = [p for p in (tmp_path / "bundles").iterdir() if p.is_dir()]
    assert library in (folder / "requirements.lock").read_text()

    scored = run_nbops("predict", str(folder), "raw_test.csv", "-o", "scored.csv", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    expected = pd.read_csv(tmp_path / "notebook_predictions.csv")
    got = pd.read_csv(tmp_path / "scored.csv")
    assert got["prediction"].tolist() == expected["prediction"].tolist()
    assert 0 < expected["prediction"].sum() < len(expected)

    bundle = load_bundle(folder)
    raw = pd.read_csv(tmp_path / "raw_test.csv")
    np.testing.assert_allclose(bundle.predict_proba(raw)[:, 1], expected["p1"], rtol=1e-5)


TRUSTED = {
    "xgboost": ["xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"],
    "lightgbm": [
        "collections.OrderedDict",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
    ],
    "catboost": ["catboost.core.CatBoostClassifier"],
}


@pytest.mark.parametrize("library", list(MODELS))
def test_an_orchestrated_export_passes_the_boosted_model_between_steps_as_skops(
    library: str, tmp_path: Path
) -> None:
    """The export runs the package once, writing and reading every value a step hands on; the
    model travels from the train task to the evaluate task as skops with its types declared."""
    pytest.importorskip(library, reason=f"{library} is not installed (nbops[boosting])")
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    passengers_csv(tmp_path / "passengers.csv")
    notebook(tmp_path / "titanic.ipynb", library)

    exported = run_nbops(
        "export", "titanic.ipynb", "--target", "airflow", "-o", "out", cwd=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((tmp_path / "out" / "titanic" / "titanic" / "manifest.json").read_text())
    model = manifest["artifacts"]["model"]
    assert model["codec"] == "skops"
    assert sorted(t for t in model["trusted"] if not t.startswith("sklearn.")) == TRUSTED[library]
    dag = (tmp_path / "out" / "titanic" / "airflow_dag.py").read_text()
    assert all(f'"{t}"' in dag for t in TRUSTED[library])
    assert "import pickle" not in dag
