"""Bundling a House-prices-style notebook (train.csv and test.csv prepared side by side) with
the serving path nbops slices from it: the bundle reproduces the notebook's predictions,
nullability comes from what the serving code accepts, and `nbops predict` and `nbops serve`
agree on the same raw records, extra columns included.

The pipeline runs in this process (no kernel); the bundle is real files, loaded back safely.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nbformat
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbops.bundle.from_run import build_from
from nbops.bundle.frozen_values import _decode, _encode
from nbops.bundle.load import Bundle, load_bundle
from nbops.bundle.serve import create_app
from nbops.config import load_project
from nbops.errors import BundleError
from nbops.export.exporter import export_notebook
from tests.bundle.conftest import import_package
from tests.helpers import run_nbops, running

CELLS: list[tuple[str, str | None]] = [
    ("import numpy as np\nimport pandas as pd\nfrom sklearn.linear_model import Ridge\n"
     "from sklearn.preprocessing import LabelEncoder", "setup"),
    ("alpha = 1.0  # ridge strength", "parameters"),
    ('train = pd.read_csv("train.csv")\ntest = pd.read_csv("test.csv")\ntrain.shape', "transform:load"),
    ("train.describe()", None),
    ("for frame in [train, test]:\n"
     '    frame["LotArea"] = frame["LotArea"].fillna(train["LotArea"].median())\n'
     '    frame["Garage"] = frame["Garage"].fillna("None")\n'
     "\n"
     'for col in ["LotArea", "Rooms"]:\n'
     "    upper = train[col].quantile(0.99)\n"
     "    train[col] = train[col].clip(upper=upper)\n"
     "    test[col] = test[col].clip(upper=train[col].quantile(0.99))", "transform:clean"),
    ("def add_age(df):\n"
     '    df["Age"] = 2024 - df["YearBuilt"]\n'
     "    return df\n"
     "\n"
     "train = add_age(train)\ntest = add_age(test)\n"
     "garage = LabelEncoder()\n"
     'train["Garage"] = garage.fit_transform(train["Garage"])\n'
     'test["Garage"] = garage.transform(test["Garage"])\n'
     'train = pd.get_dummies(train, columns=["Neighborhood"])\n'
     'test = pd.get_dummies(test, columns=["Neighborhood"])\n'
     'features = [c for c in train.columns if c not in ("Id", "SalePrice", "YearBuilt")]\n'
     'X_train = train[features]\ny = np.log(train["SalePrice"])\n'
     "X_test = test.reindex(columns=features, fill_value=0)", "transform:features"),
    ("model = Ridge(alpha=alpha)\nmodel.fit(X_train, y)", "train"),
    ("predicted = model.predict(X_test)\n"
     'rmse = float(np.sqrt(((predicted - np.log(test["SalePrice"])) ** 2).mean()))\n'
     "print(rmse)", "evaluate"),
]  # fmt: skip


def houses(n: int, rng: np.random.Generator, first_id: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "Id": np.arange(first_id, first_id + n),
            "LotArea": rng.gamma(4.0, 2500.0, n).round(),
            "Rooms": rng.integers(2, 10, n),
            "YearBuilt": rng.integers(1900, 2020, n),
            "Neighborhood": rng.choice(["North", "Mill", "Oak"], n),
            "Garage": rng.choice(["Attached", "Detached"], n),
        }
    )
    price = 50_000 + 3 * frame.LotArea + 9_000 * frame.Rooms + 400 * (frame.YearBuilt - 1900)
    frame["SalePrice"] = (price * rng.lognormal(0, 0.1, n)).round()
    frame.loc[rng.random(n) < 0.15, "LotArea"] = np.nan
    frame.loc[rng.random(n) < 0.1, "Garage"] = None
    return frame


def write_project(root: Path, cells: list[tuple[str, str | None]]) -> Path:
    rng = np.random.default_rng(5)
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    houses(300, rng, 1).to_csv(root / "train.csv", index=False)
    test = houses(80, rng, 301)
    test.loc[7, "LotArea"] = np.nan
    test.to_csv(root / "test.csv", index=False)
    nb = new_notebook(cells=[new_markdown_cell("# House prices, train and test files")])
    for source, tag in cells:
        nb.cells.append(new_code_cell(source, metadata={"tags": [tag]} if tag else {}))
    path = root / "houses.ipynb"
    nbformat.write(nb, path)
    return path


@dataclass
class Houses:
    root: Path
    notebook: Path
    results: Any
    bundle: Bundle

    @property
    def raw_test(self) -> pd.DataFrame:
        return pd.read_csv(self.root / "test.csv")


def run_and_bundle(root: Path, cells: list[tuple[str, str | None]]) -> tuple[Path, Any, Path]:
    notebook = write_project(root, cells)
    project = load_project(root)
    export = export_notebook(notebook, root / "pipelines")
    with contextlib.chdir(root):
        results = import_package(export.folder, export.name).run()
    folder = build_from(
        notebook, results.model, {"alpha": 1.0}, out=root / "bundles", project=project
    )
    return notebook, results, folder


@pytest.fixture(scope="module")
def houses_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Houses]:
    root = tmp_path_factory.mktemp("houses")
    notebook, results, folder = run_and_bundle(root, CELLS)
    with load_bundle(folder) as bundle:
        yield Houses(root, notebook, results, bundle)


def test_the_bundle_predicts_the_raw_test_rows_as_the_notebook_did(houses_bundle: Houses) -> None:
    expected = houses_bundle.results.model.predict(houses_bundle.results.X_test)
    assert np.array_equal(houses_bundle.bundle.predict(houses_bundle.raw_test), expected)


def test_the_manifest_names_the_sliced_path_and_its_cells(houses_bundle: Houses) -> None:
    serving = houses_bundle.bundle.manifest.serving
    assert (serving.step, serving.module, serving.input) == ("serving-path", "serving", "test")
    assert serving.cells == [6, 7]
    assert set(serving.request_columns) == {
        "LotArea", "Rooms", "YearBuilt", "Neighborhood", "Garage"
    }  # fmt: skip
    code = (houses_bundle.bundle.path / "code" / "houses" / "serving.py").read_text()
    assert "def add_age(df):" in code and "garage.fit_transform" not in code
    assert "_nbops_frozen('v" in code and "train" not in code.split("def serve")[1]


def test_a_null_the_serving_code_fills_is_accepted(houses_bundle: Houses) -> None:
    bundle = houses_bundle.bundle
    assert bundle.schema.column("LotArea").nullable
    assert bundle.schema.column("LotArea").max_null_fraction is None
    row = houses_bundle.raw_test.iloc[[3]].assign(LotArea=np.nan)
    assert math.isfinite(float(bundle.predict(row)[0]))


def test_a_null_the_serving_code_cannot_take_is_refused_naming_the_column(
    houses_bundle: Houses,
) -> None:
    bundle = houses_bundle.bundle
    assert not bundle.schema.column("Rooms").nullable
    row = houses_bundle.raw_test.iloc[[3]].assign(Rooms=np.nan)
    with pytest.raises(BundleError, match="'Rooms'"):
        bundle.predict(row)


def test_predict_and_serve_agree_on_raw_records_with_extra_columns(houses_bundle: Houses) -> None:
    raw = houses_bundle.raw_test.head(12).copy()
    raw.loc[raw.index[0], "LotArea"] = np.nan  # a null the serving code fills
    records = json.loads(raw.to_json(orient="records"))  # with Id and SalePrice
    assert {"Id", "SalePrice"} <= set(records[0])
    in_process = houses_bundle.bundle.predict_records(records)

    csv = houses_bundle.root / "new_houses.csv"
    raw.to_csv(csv, index=False)
    out = houses_bundle.root / "predictions.csv"
    batch = run_nbops(
        "predict", str(houses_bundle.bundle.path), str(csv), "-o", str(out), cwd=houses_bundle.root
    )
    assert batch.returncode == 0, batch.stderr
    from_cli = pd.read_csv(out)["prediction"].tolist()

    with running(create_app(houses_bundle.bundle)) as url:
        answer = httpx.post(f"{url}/predict", json={"records": records}, timeout=20)
    assert answer.status_code == 200, answer.text
    served = answer.json()["predictions"]

    np.testing.assert_allclose(served, in_process, rtol=0, atol=1e-12)
    np.testing.assert_allclose(from_cli, in_process, rtol=1e-12)


def test_a_value_the_serving_code_cannot_take_is_refused_by_predict_and_serve(
    houses_bundle: Houses,
) -> None:
    record = json.loads(houses_bundle.raw_test.head(1).to_json(orient="records"))[0]
    record["Garage"] = "Carport"  # the LabelEncoder fit on train never saw it
    with pytest.raises(BundleError, match=r"serving code fails on the request.*Carport"):
        houses_bundle.bundle.predict_records([record])
    with running(create_app(houses_bundle.bundle)) as url:
        answer = httpx.post(f"{url}/predict", json={"records": [record]}, timeout=20)
    assert answer.status_code == 422 and "Garage" in answer.text


def test_a_training_side_value_nbops_cannot_store_is_an_error_naming_it(
    tmp_path: Path,
) -> None:
    cells = [*CELLS]
    cells[5] = (
        "import re\n"
        'pattern = re.compile(r"^(\\w)")\n'
        'test["Initial"] = test["Neighborhood"].str.extract(pattern, expand=False)\n'
        'test = pd.get_dummies(test, columns=["Neighborhood"])\n'
        'train = pd.get_dummies(train, columns=["Neighborhood"])\n'
        'X_train = train[["Rooms", "LotArea"]]\ny = train["SalePrice"]\n'
        'X_test = test[["Rooms", "LotArea", "Initial"]].drop(columns="Initial")',
        "transform:features",
    )
    with pytest.raises(BundleError, match=r"'pattern'.*re\.Pattern") as raised:
        run_and_bundle(tmp_path, cells)
    assert "cell 7" in str(raised.value)
    assert not (tmp_path / "bundles").exists() or not any((tmp_path / "bundles").iterdir())


# -- frozen values round-trip ------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=True),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(values)
def test_plain_values_survive_the_values_file(value: Any) -> None:
    files: dict[str, bytes] = {}
    encoded = _encode(value, "v1", files, set(), None)  # type: ignore[arg-type]
    text = json.dumps(encoded, allow_nan=False)
    assert same(_decode(json.loads(text), files, []), value)


@pytest.mark.parametrize(
    "value",
    [
        np.array([[1.5, np.nan], [3.0, 4.0]]),
        np.float32(2.5),
        pd.Index(["a", "b"], name="cols"),
        pd.Series([1.0, None, 3.0], index=["x", "y", "z"], name="median"),
        pd.Series(pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"], ordered=True)),
        pd.DataFrame({"a": [1, 2], "b": ["x", None]}, index=[10, 20]),
        pd.Timestamp("2024-03-01T10:00:00"),
    ],
    ids=["array", "np-scalar", "index", "series", "categorical", "frame", "timestamp"],
)
def test_numpy_and_pandas_values_survive_the_values_file(value: Any) -> None:
    files: dict[str, bytes] = {}
    encoded = json.loads(json.dumps(_encode(value, "v1", files, set(), None)))  # type: ignore[arg-type]
    back = _decode(encoded, files, [])
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(back, value)
    elif isinstance(value, pd.Series):
        pd.testing.assert_series_equal(back, value)
    elif isinstance(value, pd.Index):
        pd.testing.assert_index_equal(back, value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(back, value)
        assert back.dtype == value.dtype
    else:
        assert back == value and type(back) is type(value)
