"""Schemas: inference, the JSON file (round trip, versions, errors), custom checks, pandera."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from nbops.errors import MissingExtraError, QualityInputError, SchemaVersionError
from nbops.quality.schema import (
    SCHEMA_VERSION,
    ColumnSchema,
    CustomCheck,
    Schema,
    from_pandera,
    infer_schema,
    parse_expression,
    to_pandera,
)
from nbops.quality.validate import validate


def make_frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 12_000, n)
    income[rng.random(n) < 0.04] = np.nan
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "age": rng.integers(18, 90, n),
            "income": income,
            "city": rng.choice(np.array(["Oslo", "Lima", "Pune"]), n, p=[0.5, 0.3, 0.2]),
            "plan": pd.Categorical(
                rng.choice(["free", "pro"], n), categories=["free", "pro", "max"]
            ),
            "active": rng.random(n) < 0.3,
            "comment": [f"note {i}" for i in range(n)],
            "signup": pd.date_range("2024-01-01", periods=n, freq="h"),
            "churned": rng.integers(0, 2, n),
        }
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def schema(frame: pd.DataFrame) -> Schema:
    return infer_schema(frame, label="churned", key="id", name="customers")


# -- inference -----------------------------------------------------------------------------------


def test_infer_gives_each_column_its_kind(schema: Schema) -> None:
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {
        "id": "integer",
        "age": "integer",
        "income": "float",
        "city": "categorical",
        "plan": "categorical",
        "active": "boolean",
        "comment": "string",
        "signup": "datetime",
        "churned": "integer",
    }
    assert schema.key == ["id"] and schema.label == "churned" and schema.rows == 3000
    assert schema.environments["serving"].absent == ["churned"]
    assert schema.environments["training"].absent == []


def test_infer_records_constraints_and_observations(frame: pd.DataFrame, schema: Schema) -> None:
    age, income = schema.column("age"), schema.column("income")
    assert (age.min, age.max) == (int(frame["age"].min()), int(frame["age"].max()))
    assert isinstance(age.min, int) and not age.nullable and age.max_null_fraction is None
    assert income.nullable and income.null_fraction == pytest.approx(frame["income"].isna().mean())
    assert income.max_null_fraction == pytest.approx(1.5 * income.null_fraction + 0.01, abs=1e-6)
    assert income.quantiles is not None
    for q, value in income.quantiles.items():
        assert value == pytest.approx(np.nanquantile(frame["income"], float(q)))
    assert schema.column("city").categories == ["Lima", "Oslo", "Pune"]
    assert schema.column("plan").categories == ["free", "pro", "max"]  # declared, even unseen
    assert schema.column("comment").categories is None
    signup = schema.column("signup")
    assert signup.min is None and signup.max is None  # time moves on: no inferred range
    key = schema.column("id")
    assert key.min is None and key.reference is None  # new data brings new keys
    assert not any(c.unique for c in schema.columns)


def test_reference_statistics_are_consistent(frame: pd.DataFrame, schema: Schema) -> None:
    ref = schema.column("income").reference
    assert ref is not None and ref.bin_edges and ref.proportions and ref.cdf_values and ref.cdf
    values = frame["income"].dropna().to_numpy()
    assert ref.rows == values.size
    assert len(ref.bin_edges) == 9 and sum(ref.proportions) == pytest.approx(1.0)
    assert all(p == pytest.approx(0.1, abs=0.002) for p in ref.proportions)
    assert len(ref.cdf_values) == 1000 and ref.cdf[-1] == 1.0
    for point, cdf in zip(ref.cdf_values[::97], ref.cdf[::97], strict=True):
        assert cdf == pytest.approx(np.mean(values <= point), abs=1e-8)
    city = schema.column("city").reference
    assert city is not None and city.frequencies is not None
    assert sum(city.frequencies.values()) == pytest.approx(1.0)
    assert list(city.frequencies) == ["Oslo", "Lima", "Pune"]  # most frequent first
    active = schema.column("active").reference
    assert active is not None and set(active.frequencies or {}) == {"False", "True"}


def test_discrete_columns_get_distinct_bins() -> None:
    frame = pd.DataFrame({"level": np.repeat([1, 2, 3], [500, 300, 200])})
    ref = infer_schema(frame).column("level").reference
    assert ref is not None
    assert ref.bin_edges == [1.0, 2.0, 3.0]
    assert ref.proportions == [0.5, 0.3, 0.2, 0.0]
    assert ref.cdf_values == [1.0, 2.0, 3.0] and ref.cdf == [0.5, 0.8, 1.0]


def test_categorical_max_decides_between_categorical_and_string(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, categorical_max=2)
    assert schema.column("city").kind == "string" and schema.column("city").reference is None
    assert schema.column("plan").kind == "string"  # three declared categories


@pytest.mark.parametrize(
    ("bad", "options", "message"),
    [
        ([1, 2, 3], {}, "needs a pandas DataFrame, not list"),
        (pd.DataFrame({"a": []}), {}, "no rows"),
        (pd.DataFrame(index=range(3)), {}, "no columns"),
        (pd.DataFrame({"a": [1, 2]}), {"label": "y"}, "label 'y' is not a column"),
        (pd.DataFrame({"a": [1, 1]}), {"key": "a"}, "not unique"),
        (pd.DataFrame({"a": [1, 2]}), {"key": ["a", "b"]}, "is not a column"),
        (pd.DataFrame({"a": [1, 2]}), {"categorical_max": 0}, "categorical_max"),
        (pd.DataFrame({"a": [1, 2]}), {"bins": 1}, "bins"),
        (pd.DataFrame({0: [1, 2]}), {}, "column names must be strings"),
        (pd.DataFrame({"a": [1, "x"]}, dtype=object), {}, "holds mixed-integer values"),
        (pd.DataFrame({"a": pd.to_timedelta([1, 2], unit="s")}), {}, "cannot check"),
    ],
)
def test_unusable_input_is_refused(bad: object, options: dict, message: str) -> None:
    with pytest.raises(QualityInputError, match=message):
        infer_schema(bad, **options)  # type: ignore[arg-type]


def test_duplicate_column_names_are_refused() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(QualityInputError, match="appears twice"):
        infer_schema(frame)


# -- the file --------------------------------------------------------------------------------------


def with_checks(schema: Schema) -> Schema:
    checks = [
        CustomCheck(name="adult", column="age", expression="value >= 18"),
        CustomCheck(
            name="income_in_band",
            column="income",
            expression='value < 10 * col("age") * 1000 or city in ("Oslo",)',
            severity="warn",
            description="rough plausibility",
        ),
    ]
    return schema.model_copy(update={"checks": checks})


def test_save_and_load_round_trip(schema: Schema, tmp_path: Path) -> None:
    original = with_checks(schema)
    path = original.save(tmp_path / "schemas" / "customers.json")
    loaded = Schema.load(path)
    assert loaded == original
    assert [c.expression for c in loaded.checks] == [c.expression for c in original.checks]
    assert loaded.checks[1].severity == "warn"
    assert os.listdir(path.parent) == ["customers.json"]  # no temporary file left behind


def test_the_file_is_indented_json_with_only_the_fields_that_apply(
    schema: Schema, tmp_path: Path
) -> None:
    text = schema.save(tmp_path / "s.json").read_text()
    assert text.startswith(f'{{\n  "schema_version": {SCHEMA_VERSION},\n  "kind": "nbops.schema",')
    data = json.loads(text)
    columns = {c["name"]: c for c in data["columns"]}
    assert "ks_pvalue" in columns["income"] and "new_category_share" not in columns["income"]
    assert "new_category_share" in columns["city"] and "min" not in columns["city"]
    assert "psi_warn" not in columns["comment"]
    # long numeric lists stay on one line each, so the file reads top to bottom
    assert len(text.splitlines()) < 600


def test_save_is_atomic(schema: Schema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = schema.save(tmp_path / "s.json")
    before = path.read_text()

    def broken(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(QualityInputError, match="disk full"):
        with_checks(schema).save(path)
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["s.json"]


def test_a_newer_schema_version_is_refused(schema: Schema, tmp_path: Path) -> None:
    data = json.loads(schema.to_json())
    data["schema_version"] = SCHEMA_VERSION + 1
    data["columns"][0]["a_field_from_the_future"] = True
    path = tmp_path / "future.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SchemaVersionError, match="upgrade nbops") as info:
        Schema.load(path)
    assert f"schema_version {SCHEMA_VERSION + 1}" in str(info.value)


def test_invalid_json_is_reported_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "columns": [\n    {"name": "a",}\n  ]\n}\n')
    with pytest.raises(QualityInputError, match=r"not valid JSON \(line 3"):
        Schema.load(path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(QualityInputError, match="no such schema file"):
        Schema.load(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["columns"][2].update(psi_warn="high"), r"columns\[2\] \('income'\)\.psi_warn"),
        (lambda d: d["columns"][2].update(psi_warn=0.5, psi_fail=0.3), "psi_warn must not exceed"),
        (lambda d: d["columns"][1].update(min=100, max=5), "age: min is above max"),
        (lambda d: d["columns"][1].update(kind="number"), r"columns\[1\] \('age'\)\.kind"),
        (lambda d: d["columns"][1].update(colour="red"), r"\('age'\)\.colour: Extra inputs"),
        (lambda d: d.update(key=["nope"]), "key: 'nope' is not one of the columns"),
        (lambda d: d.update(label="nope"), "label: 'nope'"),
        (lambda d: d["columns"].append(dict(d["columns"][0])), "'id' appears twice"),
        (lambda d: d["columns"][7].update(max="not a date"), "ISO timestamps"),
        (lambda d: d["columns"][3].update(min=1), "apply to numeric and datetime"),
        (lambda d: d["columns"][2]["reference"].update(cdf=[0.5]), "same length"),
        (
            lambda d: d.update(checks=[{"name": "x", "column": "age", "expression": "value >"}]),
            r"checks\[0\] \('x'\)\.expression: 'value >' is not a valid expression",
        ),
        (
            lambda d: d.update(checks=[{"name": "x", "expression": "wage > 0"}]),
            "checks.x: 'wage' is not one of the columns",
        ),
    ],
)
def test_invalid_fields_are_named(schema: Schema, tmp_path: Path, edit, message: str) -> None:
    data = json.loads(schema.to_json())
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data, indent=2))
    with pytest.raises(QualityInputError, match=message):
        Schema.load(path)


# -- custom checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "value >= 0",
        "0 <= value <= 1",
        "value <= other",
        "value * 2 - 1 < col('a b') / 3",
        "value in ('a', 'b') or not value == 'c'",
        "value not in [1, 2, -3]",
        "-value > -5 and value != 2.5",
    ],
)
def test_the_check_grammar_accepts_comparisons(expression: str) -> None:
    parse_expression(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('echo hi')",
        "value.real > 0",
        "value[0] > 1",
        "open('x') == 1",
        "value + 1",
        "value > 0 if True else False",
        "(lambda: 1)() == 1",
        "value ** 2 > 3",
        "value in other",
        "value is None",
        "len(value) > 2",
        "col(name) > 1",
    ],
)
def test_the_check_grammar_refuses_anything_else(expression: str) -> None:
    with pytest.raises(ValueError):
        parse_expression(expression)
    with pytest.raises(ValidationError):
        CustomCheck(name="x", column="a", expression=expression)


def test_a_check_using_value_needs_a_column() -> None:
    with pytest.raises(ValidationError, match="names no column"):
        CustomCheck(name="x", expression="value > 0")
    check = CustomCheck(name="x", column="a", expression='value <= b + col("c d")')
    assert check.columns_read() == ["a", "b", "c d"]


# -- pandera ---------------------------------------------------------------------------------------


def test_to_pandera_translates_the_basic_constraints(schema: Schema) -> None:
    import pandera.pandas as pa

    pandera_schema = to_pandera(schema)
    assert isinstance(pandera_schema, pa.DataFrameSchema)
    assert pandera_schema.unique == ["id"]
    age = pandera_schema.columns["age"]
    assert [(c.name, c.statistics["min_value"], c.statistics["max_value"]) for c in age.checks] == [
        ("in_range", schema.column("age").min, schema.column("age").max)
    ]
    assert pandera_schema.columns["income"].nullable and not age.nullable
    city = pandera_schema.columns["city"]
    assert [c.statistics["allowed_values"] for c in city.checks] == [["Lima", "Oslo", "Pune"]]
    assert "churned" not in to_pandera(schema, environment="serving").columns


def test_pandera_round_trip_keeps_the_basic_constraints(schema: Schema) -> None:
    edited = schema.model_copy(
        update={
            "columns": [
                c.model_copy(update={"unique": c.name == "comment"}) for c in schema.columns
            ]
        }
    )
    back = from_pandera(to_pandera(edited))
    assert back.key == ["id"] and back.name == "customers"
    for original, restored in zip(edited.columns, back.columns, strict=True):
        assert restored.name == original.name
        assert restored.kind == original.kind, original.name
        assert restored.nullable == original.nullable
        assert restored.unique == original.unique
        assert (restored.min, restored.max) == (original.min, original.max)
        assert restored.categories == original.categories
        assert restored.reference is None  # pandera has no drift reference


def test_from_pandera_reads_a_hand_written_schema() -> None:
    import pandera.pandas as pa

    pandera_schema = pa.DataFrameSchema(
        {
            "score": pa.Column(float, [pa.Check.ge(0), pa.Check.le(1), pa.Check.le(0.9)]),
            "grade": pa.Column(str, pa.Check.isin(["a", "b"]), nullable=True),
            "n": pa.Column("Int64", pa.Check.gt(0), required=False),
            "when": pa.Column("datetime64[ns]", pa.Check.ge(pd.Timestamp("2020-01-01"))),
        },
        unique=["score", "grade"],
        name="grades",
    )
    schema = from_pandera(pandera_schema)
    score, grade, n, when = schema.columns
    assert (score.kind, score.min, score.max) == ("float", 0, 0.9)
    assert (grade.kind, grade.categories, grade.nullable) == ("categorical", ["a", "b"], True)
    assert (n.kind, n.min) == ("integer", None)  # a strict bound has no nbops form
    assert (when.kind, when.min) == ("datetime", "2020-01-01T00:00:00")
    assert schema.key == ["score", "grade"] and schema.environments["serving"].optional == ["n"]


def _pandera_fails(pandera_schema, frame: pd.DataFrame) -> bool:
    import pandera.errors

    try:
        pandera_schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors:
        return True
    return False


def _planted(frame: pd.DataFrame, problem: str) -> pd.DataFrame:
    bad = frame.copy()
    if problem == "missing column":
        return bad.drop(columns="age")
    if problem == "wrong dtype":
        bad["age"] = bad["age"].astype(str)
    elif problem == "null in a non-nullable column":
        # nulls in 2% of the rows: one null would be what sampling gives (a warning)
        bad["city"] = bad["city"].where(bad.index % 50 != 3, None)
    elif problem == "out of range":
        bad.loc[5, "income"] = 10**9
    elif problem == "unknown category":
        bad.loc[7, "city"] = "Atlantis"
    elif problem == "duplicate key":
        bad.loc[1, "id"] = bad.loc[0, "id"]
    elif problem == "duplicate in a unique column":
        bad.loc[2, "comment"] = bad.loc[0, "comment"]
    return bad


@pytest.mark.parametrize(
    "problem",
    [
        "none",
        "missing column",
        "wrong dtype",
        "null in a non-nullable column",
        "out of range",
        "unknown category",
        "duplicate key",
        "duplicate in a unique column",
    ],
)
def test_pandera_and_nbops_agree_on_the_basic_checks(
    frame: pd.DataFrame, schema: Schema, problem: str
) -> None:
    columns = [c.model_copy(update={"unique": c.name == "comment"}) for c in schema.columns]
    strict = schema.model_copy(update={"columns": columns})
    data = _planted(frame, problem)
    report = validate(data, strict, drift=False)
    assert report.passed == (problem == "none"), report.failed_checks
    assert _pandera_fails(to_pandera(strict), data) == (problem != "none")


def test_pandera_runs_the_custom_checks(frame: pd.DataFrame, schema: Schema) -> None:
    checked = schema.model_copy(
        update={"checks": [CustomCheck(name="young", column="age", expression="value < 80")]}
    )
    assert _pandera_fails(to_pandera(checked), frame)
    assert not _pandera_fails(to_pandera(with_checks(schema)), frame)


def test_pandera_functions_need_the_extra(schema: Schema, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pandera" else real(name, *a)
    )
    with pytest.raises(MissingExtraError, match=r"nbops\[pandera\]"):
        to_pandera(schema)
    with pytest.raises(MissingExtraError):
        from_pandera(object())  # type: ignore[arg-type]


def test_column_schema_checks_its_own_fields() -> None:
    with pytest.raises(ValidationError, match="categories apply"):
        ColumnSchema(name="a", kind="integer", categories=["1"])
    with pytest.raises(ValidationError, match="numbers"):
        ColumnSchema(name="a", kind="float", min="0")
    with pytest.raises(ValidationError):
        ColumnSchema(name="a", kind="float", max=float("inf"))
