"""The serialisations values travel in between the steps of an orchestrated pipeline."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.extra import pandas as hpd

from nbops.export import artifact_io as io

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def round_trip(value: object, tmp: Path) -> object:
    codec = io.choose(value)
    path = tmp / f"value{io.EXTENSIONS[codec]}"
    io.save(value, str(path), codec)
    return io.load(str(path), codec, io.describe(value)["trusted"])


@SETTINGS
@given(value=json_values)
def test_json_values_come_back_equal(
    value: object, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert io.choose(value) == "json"
    assert round_trip(value, tmp_path_factory.mktemp("j")) == value


@SETTINGS
@given(
    frame=hpd.data_frames(
        [
            hpd.column("count", dtype=int),
            hpd.column("ratio", dtype=float),
            hpd.column("label", elements=st.text(max_size=5)),
        ],
        index=hpd.range_indexes(max_size=20),
    )
)
def test_data_frames_come_back_equal_with_their_index(
    frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert io.choose(frame) == "parquet"
    pd.testing.assert_frame_equal(round_trip(frame, tmp_path_factory.mktemp("f")), frame)


@SETTINGS
@given(
    array=hnp.arrays(
        dtype=st.sampled_from([np.int64, np.float64, np.bool_]),
        shape=hnp.array_shapes(max_dims=2, max_side=6),
    )
)
def test_numeric_arrays_come_back_equal(
    array: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> None:
    back = round_trip(array, tmp_path_factory.mktemp("a"))
    assert isinstance(back, np.ndarray) and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_a_series_keeps_its_name_and_index_and_an_unnamed_one_stays_unnamed(
    tmp_path: Path,
) -> None:
    named = pd.Series([1.5, 2.5], index=[10, 20], name="target")
    unnamed = pd.Series(["a", "b"])
    pd.testing.assert_series_equal(round_trip(named, tmp_path), named)
    pd.testing.assert_series_equal(round_trip(unnamed, tmp_path), unnamed)


def test_an_array_of_python_strings_comes_back_as_text(tmp_path: Path) -> None:
    labels = np.array(["Adelie", "Gentoo"], dtype=object)
    assert list(round_trip(labels, tmp_path)) == ["Adelie", "Gentoo"]


def test_numpy_scalars_become_python_numbers(tmp_path: Path) -> None:
    assert round_trip(np.float64(0.25), tmp_path) == 0.25
    assert round_trip({"n": np.int64(3)}, tmp_path) == {"n": 3}
    assert math.isnan(round_trip(float("nan"), tmp_path))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {1, 2}, object(), np.array([{"a": 1}], dtype=object), lambda x: x],
    ids=["int-keys", "set", "object", "object-array", "function"],
)
def test_values_with_no_safe_serialisation_are_refused(value: object) -> None:
    with pytest.raises(io.UnsupportedValue):
        io.choose(value)


def test_a_model_file_holding_an_undeclared_type_is_refused(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    model = DecisionTreeClassifier(max_depth=1).fit([[0], [1]], [0, 1])
    assert io.choose(model) == "skops"
    path = str(tmp_path / "model.skops")
    io.save(model, path, "skops")
    declared = io.describe(model)["trusted"]
    assert io.load(path, "skops", declared).predict([[1]])[0] == 1
    with pytest.raises(TypeError, match="did not declare"):
        io.load(path, "skops", [])


def test_metric_values_are_the_numbers_flattened() -> None:
    found = io.metric_values({"acc": np.float64(0.5), "flag": True, "per": {"a": 1}, "x": "s"})
    assert found == {"acc": 0.5, "per.a": 1.0}


# -- gradient boosting models between steps --------------------------------------------------------


def _boosted_pipeline(library: str) -> tuple[Any, pd.DataFrame]:
    """A ColumnTransformer + the library's tiny classifier, fitted on a small mixed frame."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    lib = pytest.importorskip(library, reason=f"{library} is not installed (nbops[boosting])")
    estimator = {
        "xgboost": lambda: lib.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1),
        "lightgbm": lambda: lib.LGBMClassifier(n_estimators=5, num_leaves=5, n_jobs=1, verbose=-1),
        "catboost": lambda: lib.CatBoostClassifier(
            iterations=5, depth=2, thread_count=1, verbose=False, allow_writing_files=False
        ),
    }[library]()
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=120), "kind": rng.choice(["a", "b", "c"], size=120)})
    label = ((frame.x + (frame.kind == "a")) > 0.3).astype(int)
    encode = ColumnTransformer(
        [("kind", OneHotEncoder(sparse_output=False), ["kind"])], remainder="passthrough"
    )
    return Pipeline([("encode", encode), ("model", estimator)]).fit(frame, label), frame


@pytest.mark.parametrize("library", ["xgboost", "lightgbm", "catboost"])
def test_a_boosted_pipeline_travels_as_skops_and_predicts_the_same(
    library: str, tmp_path: Path
) -> None:
    model, frame = _boosted_pipeline(library)
    entry = io.describe(model)
    assert entry["codec"] == "skops"
    assert any(t.startswith(f"{library}.") for t in entry["trusted"])
    path = str(tmp_path / "model.skops")
    io.save(model, path, "skops")
    back = io.load(path, "skops", entry["trusted"])
    np.testing.assert_array_equal(back.predict(frame), model.predict(frame))
    np.testing.assert_allclose(
        back.predict_proba(frame),
        model.predict_proba(frame),
        rtol=1e-6,
    )


@pytest.mark.parametrize("library", ["xgboost", "lightgbm", "catboost"])
def test_a_boosted_model_is_refused_when_its_types_were_not_declared(
    library: str, tmp_path: Path
) -> None:
    model, _ = _boosted_pipeline(library)
    path = str(tmp_path / "model.skops")
    io.save(model, path, "skops")
    sklearn_only = [t for t in io.describe(model)["trusted"] if not t.startswith(library)]
    with pytest.raises(TypeError, match=rf"did not declare \({library}\."):
        io.load(path, "skops", sklearn_only)
