"""The captured model's fast save (nbops.runs.pickled_model): a pickle only when every global
it references is trusted, loaded back only through the sha256 and the recorded globals."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbops.runs import pickled_model
from nbops.runs.pickled_model import RefusedPickle, load_verified, referenced_globals, save

ROOT = Path(__file__).resolve().parents[2]


def _fitted_models() -> dict[str, Any]:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestRegressor,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int)
    frame = pd.DataFrame({"a": X[:, 1], "b": rng.choice(["x", "y"], 200), "c": X[:, 2]})
    frame.loc[::7, "a"] = np.nan
    columns = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["a", "c"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["b"]),
        ]
    )
    return {
        "forest": (RandomForestRegressor(5, random_state=0).fit(X, X[:, 0]), X),
        "hgb classifier": (HistGradientBoostingClassifier(max_iter=5).fit(X, y), X),
        "hgb regressor": (HistGradientBoostingRegressor(max_iter=5).fit(X, X[:, 1]), X),
        "gradient boosting": (GradientBoostingClassifier(n_estimators=5).fit(X, y), X),
        "pipeline": (
            Pipeline([("columns", columns), ("lr", LogisticRegression())]).fit(frame, y),
            frame,
        ),
        "log1p ridge": (
            make_pipeline(FunctionTransformer(np.log1p), Ridge()).fit(np.abs(X), y),
            np.abs(X),
        ),
    }


MODELS = _fitted_models()


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_a_scikit_learn_model_takes_the_fast_path_and_loads_back_predicting_the_same(
    tmp_path: Path, kind: str
) -> None:
    model, X = MODELS[kind]
    target = tmp_path / "captured-model.pkl"

    saved = save(model, target)

    assert saved is not None, kind
    assert saved["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    loaded = load_verified(target, saved["sha256"], saved["globals"])
    assert np.array_equal(loaded.predict(X), model.predict(X))


class NotebookScaler:  # a class a notebook defines: pickled by reference to its module
    def fit(self, X: Any, y: Any = None) -> NotebookScaler:
        return self


def test_a_model_holding_a_class_of_its_own_is_not_pickled(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(NotebookScaler(), Ridge())
    target = tmp_path / "captured-model.pkl"

    assert save(model, target) is None
    assert not target.exists()


def test_a_boosting_librarys_model_is_not_pickled(tmp_path: Path) -> None:
    """Its booster would parse its bytes while unpickling, before nbops checks them."""
    xgboost = pytest.importorskip("xgboost")
    X = np.random.default_rng(0).normal(size=(50, 3))
    model = xgboost.XGBRegressor(n_estimators=2).fit(X, X[:, 0])

    assert save(model, tmp_path / "captured-model.pkl") is None


def test_a_model_that_cannot_be_pickled_is_left_to_skops(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    assert save(FunctionTransformer(lambda x: x), tmp_path / "m.pkl") is None


def test_referenced_globals_reads_every_global_of_the_pickle() -> None:
    data = pickle.dumps([np.float64(1.0), np.dtype("int32"), slice(1, 2), slice(3, 4)], 5)

    names = referenced_globals(io.BytesIO(data))

    assert names == ["builtins.slice", "numpy._core.multiarray.scalar", "numpy.dtype"]


def test_a_pickle_changed_on_disk_is_refused(tmp_path: Path) -> None:
    model, _ = MODELS["forest"]
    target = tmp_path / "captured-model.pkl"
    saved = save(model, target)
    assert saved is not None
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))

    with pytest.raises(RefusedPickle, match="sha256 differs"):
        load_verified(target, saved["sha256"], saved["globals"])


class _System:
    """What a hostile file holds: unpickling it would run a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


def _hostile(tmp_path: Path) -> tuple[Path, Path, str]:
    marker = tmp_path / "pwned"
    file = tmp_path / "captured-model.pkl"
    data = pickle.dumps({"model": _System(f"touch {marker}")}, protocol=5)
    file.write_bytes(data)
    return file, marker, hashlib.sha256(data).hexdigest()


def test_a_pickle_referencing_a_global_the_run_did_not_record_is_refused_unrun(
    tmp_path: Path,
) -> None:
    file, marker, sha = _hostile(tmp_path)

    with pytest.raises(RefusedPickle, match=r"posix\.system.*did not record"):
        load_verified(file, sha, ["numpy.dtype"])
    assert not marker.exists()


def test_a_record_that_lists_an_untrusted_global_is_refused_unrun(tmp_path: Path) -> None:
    """The record changed with the file: the trusted list, not the record, decides."""
    file, marker, sha = _hostile(tmp_path)

    with pytest.raises(RefusedPickle, match=r"posix\.system.*never loads"):
        load_verified(file, sha, ["posix.system"])
    assert not marker.exists()


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "pickle_globals", ROOT / "scripts" / "pickle_globals.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pickle_globals", module)
    spec.loader.exec_module(module)
    return module


def test_the_trusted_globals_are_what_skops_and_nbops_trust_and_nothing_more() -> None:
    stored = set(json.loads(pickled_model.TRUSTED_FILE.read_text("utf-8"))["globals"])

    beyond = stored - set(_generator().derived_globals())

    assert not beyond, f"run scripts/pickle_globals.py: {sorted(beyond)[:5]}"
    assert not {n for n in stored if n.split(".")[0] in {"builtins", "os", "posix", "pickle"}}
