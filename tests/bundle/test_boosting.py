"""Gradient boosting models in bundles: XGBoost, LightGBM and CatBoost through their
scikit-learn API, alone or inside a Pipeline with a ColumnTransformer, are built, loaded with
their types vetted by nbops, predicted and served exactly as the model in hand; a bundle that
names an unvetted type, or holds a malformed booster, is refused."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from nbops.bundle.from_run import _run_model
from nbops.bundle.load import load_bundle
from nbops.bundle.serve import create_app
from nbops.bundle.write import build_bundle
from nbops.errors import BundleError, BundleIntegrityError
from nbops.quality.schema import Schema, infer_schema
from nbops.runs.record import RunRecord

from .test_serve import running

LIBRARIES = ["xgboost", "lightgbm", "catboost"]
# What a bundle of each library's model must list (and nbops vet) beyond scikit-learn's types.
VETTED = {
    "xgboost": {"xgboost.sklearn.XGBClassifier", "xgboost.core.Booster"},
    "lightgbm": {"lightgbm.sklearn.LGBMClassifier", "lightgbm.basic.Booster"},
    "catboost": {"catboost.core.CatBoostClassifier"},
}
FORMATS = {"xgboost": "UBJSON", "lightgbm": "text model", "catboost": "CBM"}
CATEGORIES = ["sex", "embarked"]
NUMBERS = ["age", "fare"]
COLUMNS = NUMBERS + CATEGORIES


def library(name: str) -> Any:
    return pytest.importorskip(name, reason=f"{name} is not installed (nbops[boosting])")


def classifier(name: str) -> Any:
    """A tiny, single-threaded, deterministic classifier of the library."""
    lib = library(name)
    if name == "xgboost":
        return lib.XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1, random_state=0)
    if name == "lightgbm":
        return lib.LGBMClassifier(n_estimators=8, num_leaves=7, n_jobs=1, verbose=-1)
    return lib.CatBoostClassifier(
        iterations=8,
        depth=3,
        thread_count=1,
        random_seed=0,
        verbose=False,
        allow_writing_files=False,
    )


def regressor(name: str) -> Any:
    lib = library(name)
    if name == "xgboost":
        return lib.XGBRegressor(n_estimators=8, max_depth=3, n_jobs=1, random_state=0)
    if name == "lightgbm":
        return lib.LGBMRegressor(n_estimators=8, num_leaves=7, n_jobs=1, verbose=-1)
    return lib.CatBoostRegressor(
        iterations=8,
        depth=3,
        thread_count=1,
        random_seed=0,
        verbose=False,
        allow_writing_files=False,
    )


def passengers(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """A Titanic-shaped frame: numbers with missing fares, text categories, a 0/1 label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(1, 80, size=n),
            "fare": rng.gamma(2.0, 15.0, size=n).round(2),
            "sex": rng.choice(["male", "female"], size=n),
            "embarked": rng.choice(["S", "C", "Q"], size=n, p=[0.6, 0.25, 0.15]),
        }
    )
    frame.loc[rng.choice(n, size=12, replace=False), "fare"] = np.nan
    score = (frame.sex == "female") * 1.5 - frame.age / 40 + frame.fare.fillna(30) / 60
    frame["survived"] = (score + rng.normal(0, 0.4, size=n) > 0.3).astype(int)
    return frame


def pipeline_of(estimator: Any) -> Pipeline:
    return Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        (
                            "cat",
                            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                            CATEGORIES,
                        )
                    ],
                    remainder="passthrough",
                ),
            ),
            ("model", estimator),
        ]
    )


def build(out: Path, model: Any, schema: Schema, name: str) -> Path:
    """A bundle serving `model` alone on the schema's columns."""
    return build_bundle(
        out,
        name=name,
        model=model,
        export_folder=None,
        serving=None,
        schema=schema,
        reference=None,
        source={"notebook": f"{name}.ipynb"},
        metrics={},
        slice_metrics=None,
        gates=[],
        override=False,
        failed_gates=[],
        requirements=[],
    )


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame[COLUMNS].to_dict(orient="records"):
        row = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        out.append(
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        )
    return out


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return passengers()


@pytest.fixture(scope="module")
def schema(frame: pd.DataFrame) -> Schema:
    return infer_schema(frame, label="survived", name="titanic")


# -- built, loaded, predicted, served ------------------------------------------------------------


@pytest.mark.parametrize("name", LIBRARIES)
def test_a_pipeline_with_the_booster_is_bundled_loaded_predicted_and_served(
    name: str, frame: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    model = pipeline_of(classifier(name)).fit(frame[COLUMNS], frame["survived"])
    folder = build(tmp_path, model, schema, "titanic")

    manifest = json.loads((folder / "manifest.json").read_text())
    assert VETTED[name] <= set(manifest["model"]["types"])
    assert manifest["output"]["prediction"] == "class" and manifest["output"]["classes"] == [0, 1]
    lock = (folder / "requirements.lock").read_text().splitlines()
    assert any(line.split("==")[0] in (name, f"{name}-cpu") for line in lock)
    assert FORMATS[name] in (folder / "MODEL_CARD.md").read_text()

    bundle = load_bundle(folder.with_name(folder.name + ".tar.gz"))
    requests = frame.drop(columns=["survived"])
    expected = model.predict(frame[COLUMNS])
    assert 0 < expected.sum() < len(expected)  # both classes: the comparison means something
    np.testing.assert_array_equal(bundle.predict(requests), expected)
    proba = model.predict_proba(frame[COLUMNS])
    np.testing.assert_allclose(bundle.predict_proba(requests), proba, rtol=1e-6, atol=1e-9)

    app = create_app(bundle)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        served = frame.dropna().iloc[:40]  # a batch the schema's null share lets through
        records = records_of(served)
        response = client.post("/predict", json={"records": records})
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == expected[served.index].tolist()
        response = client.post("/predict", params={"proba": "true"}, json={"records": records})
        assert response.status_code == 200, response.text
        probabilities = response.json()["probabilities"]
        np.testing.assert_allclose(probabilities, proba[served.index], rtol=1e-6, atol=1e-9)
    bundle.close()


@pytest.mark.parametrize("name", LIBRARIES)
def test_a_plain_regressor_is_bundled_and_predicts_as_the_model_in_hand(
    name: str, frame: pd.DataFrame, tmp_path: Path
) -> None:
    numbers = frame[NUMBERS].assign(target=frame.age * 0.5 + frame.fare.fillna(0) / 10)
    model = regressor(name).fit(numbers[NUMBERS], numbers["target"])
    folder = build(tmp_path, model, infer_schema(numbers, label="target"), "fares")

    bundle = load_bundle(folder)
    assert bundle.manifest.output.prediction == "number"
    got = bundle.predict(numbers.drop(columns=["target"]))
    np.testing.assert_allclose(got, model.predict(numbers[NUMBERS]), rtol=1e-6)
    assert np.ptp(got) > 0  # a model that predicts something
    served = bundle.predict_records(records_of_numbers(numbers.head(5)))
    np.testing.assert_allclose(served, got[:5], rtol=1e-6)


def records_of_numbers(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: None if np.isnan(v) else float(v) for k, v in row.items()}
        for row in frame[NUMBERS].to_dict(orient="records")
    ]


def _logged_run(run_dir: Path, model: Any) -> RunRecord:
    """A completed run that logged `model` as `nbops.log_model` does (skops, models/)."""
    (run_dir / "models").mkdir(parents=True)
    sio.dump(model, run_dir / "models" / "model.skops")
    return RunRecord(
        run_id="20260101-000000-abcdef",
        notebook="titanic.ipynb",
        started_at="2026-01-01T00:00:00+00:00",
        status="completed",
        models=[{"name": "model", "path": "models/model.skops", "format": "skops"}],
    )


@pytest.mark.parametrize("name", LIBRARIES)
def test_the_model_a_run_logged_loads_for_bundling(
    name: str, frame: pd.DataFrame, tmp_path: Path
) -> None:
    """What `nbops bundle --run` reads first: the issue's XGBoost and LightGBM runs failed here."""
    model = pipeline_of(classifier(name)).fit(frame[COLUMNS], frame["survived"])
    loaded = _run_model(_logged_run(tmp_path, model), tmp_path, None)
    np.testing.assert_array_equal(loaded.predict(frame[COLUMNS]), model.predict(frame[COLUMNS]))


def shout(values: Any) -> Any:
    return values


def test_a_run_model_holding_an_unvetted_type_is_refused_naming_it(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    from sklearn.preprocessing import FunctionTransformer

    model = Pipeline([("f", FunctionTransformer(shout)), ("m", classifier("lightgbm"))])
    model.fit(frame[NUMBERS], frame["survived"])
    with pytest.raises(BundleError, match=r"logged holds the type '.*shout'"):
        _run_model(_logged_run(tmp_path, model), tmp_path, None)


# -- refused -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xgb_bundle(
    frame: pd.DataFrame, schema: Schema, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    model = pipeline_of(classifier("xgboost")).fit(frame[COLUMNS], frame["survived"])
    return build(tmp_path_factory.mktemp("xgb"), model, schema, "titanic")


def _copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    return target


def _rewrite(
    folder: Path, model_bytes: bytes | None = None, types: list[str] | None = None
) -> None:
    """Change the model file and/or the manifest's types, rehashing as an attacker would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    if model_bytes is not None:
        (folder / "model.skops").write_bytes(model_bytes)
        digest = hashlib.sha256(model_bytes).hexdigest()
        manifest["files"]["model.skops"] = manifest["model"]["sha256"] = digest
    if types is not None:
        manifest["model"]["types"] = types
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_a_manifest_naming_an_unvetted_type_is_refused_without_importing_it(
    xgb_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library("xgboost")
    module = f"nbops_probe_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "IMPORTED"
    (tmp_path / f"{module}.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Booster:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = _copy(xgb_bundle, tmp_path / "copy")
    types = json.loads((folder / "manifest.json").read_text())["model"]["types"]
    _rewrite(folder, types=[*types, f"{module}.Booster"])

    with pytest.raises(BundleIntegrityError, match=rf"{module}\.Booster.*never loads"):
        load_bundle(folder)
    assert module not in sys.modules
    assert not marker.exists()


@pytest.mark.parametrize(
    "unvetted", ["xgboost.dask.DaskXGBClassifier", "lightgbm.dask.DaskLGBMClassifier"]
)
def test_a_boosting_type_nbops_did_not_vet_is_refused(
    xgb_bundle: Path, tmp_path: Path, unvetted: str
) -> None:
    folder = _copy(xgb_bundle, tmp_path)
    types = json.loads((folder / "manifest.json").read_text())["model"]["types"]
    _rewrite(folder, types=[*types, unvetted])
    with pytest.raises(BundleIntegrityError, match=unvetted.replace(".", r"\.")):
        load_bundle(folder)


def squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A custom XGBoost objective: a function the model would call, which nbops never trusts."""
    return y_pred - y_true, np.ones_like(y_pred)


def test_a_boosted_model_holding_a_custom_objective_is_refused_at_build(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    xgb = library("xgboost")
    numbers = frame[NUMBERS].assign(target=frame.age / 10.0)
    model = xgb.XGBRegressor(n_estimators=3, n_jobs=1, objective=squared_error)
    model.fit(numbers[NUMBERS], numbers["target"])
    with pytest.raises(BundleError, match=r"squared_error.*does not load from bundles"):
        build(tmp_path, model, infer_schema(numbers, label="target"), "custom")
    assert not list(tmp_path.glob("custom-v*"))


def test_a_bare_booster_is_refused_at_build_naming_it(frame: pd.DataFrame, tmp_path: Path) -> None:
    model = classifier("xgboost").fit(frame[NUMBERS], frame["survived"])
    schema = infer_schema(frame[[*NUMBERS, "survived"]], label="survived")
    with pytest.raises(BundleError, match=r"bare xgboost\.core\.Booster"):
        build(tmp_path, model.get_booster(), schema, "bare")


def _malformed_xgboost(model: Pipeline) -> bytes:
    """The pipeline's skops file, its XGBoost booster's first tree pointing a child outside
    the tree (XGBoost itself loads such a model without a word)."""
    xgb = library("xgboost")
    raw = json.loads(model[-1].get_booster().save_raw(raw_format="json"))
    tree = raw["learner"]["gradient_booster"]["model"]["trees"][0]
    tree["left_children"][0] = 10_000
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(raw).encode()))
    model[-1]._Booster = booster
    return sio.dumps(model)


def _malformed_lightgbm(model: Pipeline) -> bytes:
    """The pipeline's skops file, its LightGBM text model's first split pointing at a leaf the
    tree lacks (LightGBM aborts the process loading it: it must never see it)."""
    data = sio.dumps(model)
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for member in source.namelist():
            content = source.read(member)
            if member == "schema.json":
                text = content.decode()
                head, _, rest = text.partition("left_child=")
                content = f"{head}left_child=-99 {rest.partition(' ')[2]}".encode()
            target.writestr(member, content)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "tamper", "why"),
    [
        ("xgboost", _malformed_xgboost, "a child index is out of range"),
        ("lightgbm", _malformed_lightgbm, "a leaf index is out of range"),
    ],
)
def test_a_booster_with_a_malformed_tree_is_refused_before_its_library_reads_it(
    name: str, tamper: Any, why: str, frame: pd.DataFrame, xgb_bundle: Path, tmp_path: Path
) -> None:
    data = tamper(pipeline_of(classifier(name)).fit(frame[COLUMNS], frame["survived"]))
    folder = _copy(xgb_bundle, tmp_path)
    _rewrite(folder, model_bytes=data, types=sorted(sio.get_untrusted_types(data=data)))
    with pytest.raises(BundleIntegrityError, match=why):
        load_bundle(folder)


def test_the_boosters_are_stored_in_their_libraries_own_formats(
    frame: pd.DataFrame, xgb_bundle: Path
) -> None:
    """No pickle: the skops file holds XGBoost's UBJSON model and LightGBM's text model."""
    with zipfile.ZipFile(xgb_bundle / "model.skops") as z:
        blobs = [z.read(n) for n in z.namelist() if n.endswith(".bin")]
    assert any(b.startswith(b"{L") and b"learner" in b[:200] for b in blobs)  # UBJSON object
    model = classifier("lightgbm").fit(frame[NUMBERS], frame["survived"])
    with zipfile.ZipFile(io.BytesIO(sio.dumps(model))) as z:
        schema = json.loads(z.read("schema.json"))
    booster = schema["content"]["content"]["_Booster"]
    assert (booster["__module__"], booster["__class__"]) == ("lightgbm.basic", "Booster")
    text = json.loads(booster["content"]["content"]["_handle"]["content"])
    assert text.startswith("tree\nversion=") and "\nTree=0\n" in text
