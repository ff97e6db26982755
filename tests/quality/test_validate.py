"""Validation: every check kind on the reference itself and on planted problems, files, drift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from nbops.errors import QualityInputError, ValidationFailedError
from nbops.quality.schema import CustomCheck, Schema, infer_schema
from nbops.quality.validate import ValidationReport, validate

N = 4000


def make_frame(n: int = N, seed: int = 0, *, shift: float = 0.0) -> pd.DataFrame:
    """Customers: a key, numbers (one with nulls), categories, a flag, a timestamp, a label."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000 + shift * 12_000, 12_000, n)
    income[rng.random(n) < 0.04] = np.nan
    return pd.DataFrame(
        {
            "id": np.arange(seed * n, (seed + 1) * n),
            "age": rng.integers(18, 90, n),
            "income": income,
            "spend": np.round(rng.gamma(2.0, 100.0, n), 2),
            "city": rng.choice(np.array(["Oslo", "Lima", "Pune"]), n, p=[0.5, 0.3, 0.2]),
            "plan": pd.Categorical(rng.choice(["free", "pro"], n, p=[0.7, 0.3])),
            "active": rng.random(n) < 0.3,
            "signup": pd.date_range("2024-01-01", periods=n, freq="h"),
            "churned": rng.integers(0, 2, n),
        }
    )


def make_schema(frame: pd.DataFrame) -> Schema:
    schema = infer_schema(frame, label="churned", key="id", name="customers")
    checks = [
        CustomCheck(name="adult", column="age", expression="value >= 18"),
        CustomCheck(name="spend_vs_income", column="spend", expression="value <= income"),
    ]
    columns = [c.model_copy(update={"unique": c.name == "id"}) for c in schema.columns]
    return schema.model_copy(update={"checks": checks, "columns": columns})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def schema(frame: pd.DataFrame) -> Schema:
    return make_schema(frame)


def by_name(report: ValidationReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def failed(report: ValidationReport) -> set[str]:
    return {c.name for c in report.failed_checks}


# -- the reference passes everything ---------------------------------------------------------------


def test_the_reference_passes_every_check(frame: pd.DataFrame, schema: Schema) -> None:
    report = validate(frame, schema)
    assert report.passed and not report.warned_checks, report.to_frame()
    kinds = {c.kind for c in report.checks}
    assert kinds >= {
        "missing_column",
        "unexpected_column",
        "dtype",
        "nulls",
        "range",
        "categories",
        "unique",
        "duplicate_keys",
        "drift_psi",
        "drift_ks",
        "drift_categories",
        "new_categories",
        "custom",
    }
    assert report.gate_values() == {
        "data.failed_checks": 0,
        "data.warned_checks": 0,
        "data.drifted_columns": 0,
        "data.rows": N,
    }
    assert report.summary.checks == len(report.checks) == report.summary.passed
    assert report.rows == N and report.columns == 9 and report.drift_checked


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_reference_passes_from_a_file(
    frame: pd.DataFrame, schema: Schema, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"customers{suffix}"
    if suffix == ".csv":
        data = frame.copy()
        data.loc[::50, "age"] = np.nan  # integers with nulls: a CSV reads them back as floats
        data.to_csv(path, index=False)
        lenient = schema.model_copy(
            update={
                "columns": [
                    c.model_copy(update={"nullable": True}) if c.name == "age" else c
                    for c in schema.columns
                ]
            }
        )
    else:
        frame.to_parquet(path)
        lenient = schema
    report = validate(path, lenient)
    assert report.passed and not report.warned_checks, report.to_frame()
    assert by_name(report)["file.format"] == "pass" and by_name(report)["file.size"] == "pass"
    assert report.source == str(path)


# -- planted problems ------------------------------------------------------------------------------


def test_a_missing_column_fails(frame: pd.DataFrame, schema: Schema) -> None:
    report = validate(frame.drop(columns=["age"]), schema, drift=False)
    assert failed(report) == {"age.missing_column"}  # the custom check reading age is skipped
    check = report.failed_checks[0]
    assert (check.kind, check.column, check.fraction) == ("missing_column", "age", 1.0)


def test_a_wrong_dtype_fails_and_skips_the_value_checks(
    frame: pd.DataFrame, schema: Schema
) -> None:
    bad = frame.assign(age=frame["age"].astype(str))
    report = validate(bad, schema, drift=False)
    assert "age.dtype" in failed(report)
    names = by_name(report)
    assert "age.range" not in names and "age.nulls" not in names
    check = next(c for c in report.checks if c.name == "age.dtype")
    assert "expected integer values, found dtype str" in check.message
    assert check.examples == [str(v) for v in frame["age"].iloc[:5]]


def test_fractional_values_in_an_integer_column_fail(frame: pd.DataFrame, schema: Schema) -> None:
    whole = frame.assign(age=frame["age"].astype(float))
    assert validate(whole, schema, drift=False).passed
    fractional = whole.copy()
    fractional.loc[[3, 9], "age"] = [20.5, 30.25]
    check = next(c for c in validate(fractional, schema, drift=False).failed_checks)
    assert (check.name, check.count, check.examples, check.example_rows) == (
        "age.dtype",
        2,
        [20.5, 30.25],
        [3, 9],
    )


def test_nulls_fail_in_a_non_nullable_column_and_above_the_threshold(
    frame: pd.DataFrame, schema: Schema
) -> None:
    bad = frame.copy()
    bad["city"] = bad["city"].where(bad.index % 100 != 7, None)
    bad.loc[bad.index % 3 == 0, "income"] = np.nan
    report = validate(bad, schema, drift=False)
    assert {"city.nulls", "income.nulls"} <= failed(report)
    city = next(c for c in report.checks if c.name == "city.nulls")
    assert city.count == N // 100 and city.example_rows == [7, 107, 207, 307, 407]
    income = next(c for c in report.checks if c.name == "income.nulls")
    assert "above max_null_fraction" in income.message


def test_out_of_range_values_fail_with_examples(frame: pd.DataFrame, schema: Schema) -> None:
    bad = frame.copy()
    bad.loc[[4, 8], "age"] = [200, -1]
    bad.loc[10, "income"] = np.inf
    report = validate(bad, schema, drift=False)
    assert {"age.range", "income.range"} <= failed(report)
    age = next(c for c in report.checks if c.name == "age.range")
    assert (age.count, age.examples, age.example_rows) == (2, [200, -1], [4, 8])
    assert age.fraction == pytest.approx(2 / N)
    income = next(c for c in report.checks if c.name == "income.range")
    assert income.examples == ["inf"]  # JSON-safe
    assert "custom.adult" in failed(report)  # -1 is also below 18


def test_an_unknown_category_fails(frame: pd.DataFrame, schema: Schema) -> None:
    bad = frame.copy()
    bad.loc[[5, 6, 11], "city"] = ["Atlantis", "Atlantis", "Eldorado"]
    bad["plan"] = bad["plan"].cat.add_categories("gold")
    bad.loc[2, "plan"] = "gold"
    report = validate(bad, schema, drift=False)
    assert failed(report) == {"city.categories", "plan.categories"}
    city = next(c for c in report.checks if c.name == "city.categories")
    assert (city.count, city.examples, city.example_rows) == (
        3,
        ["Atlantis", "Eldorado"],
        [5, 6, 11],
    )


def test_duplicate_keys_fail(frame: pd.DataFrame, schema: Schema) -> None:
    bad = frame.copy()
    bad.loc[[1, 2], "id"] = bad.loc[0, "id"]
    report = validate(bad, schema, drift=False)
    assert failed(report) == {"key.duplicate_keys", "id.unique"}
    key = next(c for c in report.checks if c.kind == "duplicate_keys")
    assert (key.count, key.examples, key.example_rows) == (3, [0, 0, 0], [0, 1, 2])


def test_a_composite_key_is_checked_as_a_whole(frame: pd.DataFrame) -> None:
    data = frame.assign(part=frame["id"] % 2, id=frame["id"] // 2)
    schema = infer_schema(data, key=["id", "part"])
    assert validate(data, schema, drift=False).passed
    bad = data.copy()
    bad.loc[3, ["id", "part"]] = bad.loc[0, ["id", "part"]].to_numpy()
    check = next(c for c in validate(bad, schema, drift=False).failed_checks)
    assert check.name == "key.duplicate_keys" and check.examples == [[0, 0], [0, 0]]


def test_custom_checks_report_the_rows_that_break_them(frame: pd.DataFrame, schema: Schema) -> None:
    bad = frame.copy()
    bad.loc[[3, 4], "spend"] = 10**7
    bad.loc[5, "income"] = np.nan  # not judged: the nulls check covers it
    report = validate(bad, schema, drift=False)
    check = next(c for c in report.checks if c.name == "custom.spend_vs_income")
    assert (check.status, check.count, check.examples, check.example_rows) == (
        "fail",
        2,
        [10**7, 10**7],
        [3, 4],
    )
    warn_only = schema.model_copy(
        update={
            "checks": [
                CustomCheck(name="big", column="spend", expression="value < 1000", severity="warn")
            ]
        }
    )
    report = validate(frame, warn_only, drift=False)
    assert report.passed and [c.name for c in report.warned_checks] == ["custom.big"]


def test_a_custom_check_that_cannot_be_evaluated_fails(frame: pd.DataFrame, schema: Schema) -> None:
    odd = schema.model_copy(
        update={"checks": [CustomCheck(name="odd", column="city", expression="value > 3")]}
    )
    check = next(c for c in validate(frame, odd, drift=False).failed_checks)
    assert check.name == "custom.odd" and "cannot evaluate" in check.message


def test_the_label_is_required_in_training_and_absent_in_serving(
    frame: pd.DataFrame, schema: Schema
) -> None:
    unlabelled = frame.drop(columns=["churned"])
    assert failed(validate(unlabelled, schema, drift=False)) == {"churned.missing_column"}
    assert validate(unlabelled, schema, environment="serving").passed
    report = validate(frame, schema, environment="serving", drift=False)
    assert failed(report) == {"churned.unexpected_column"}
    assert "it is the label" in report.failed_checks[0].message
    with pytest.raises(QualityInputError, match="no environment 'staging'"):
        validate(frame, schema, environment="staging")


def test_unexpected_columns_warn_or_fail_as_the_schema_says(
    frame: pd.DataFrame, schema: Schema
) -> None:
    extra = frame.assign(score=1.0, note="x")
    report = validate(extra, schema, drift=False)
    assert report.passed and [c.examples for c in report.warned_checks] == [["score", "note"]]
    strict = schema.model_copy(update={"unexpected_columns": "fail"})
    assert failed(validate(extra, strict, drift=False)) == {"columns.unexpected"}
    relaxed = schema.model_copy(update={"unexpected_columns": "ignore"})
    assert "columns.unexpected" not in by_name(validate(extra, relaxed, drift=False))


def test_a_datetime_range_set_by_hand_is_checked(frame: pd.DataFrame, schema: Schema) -> None:
    columns = [
        c.model_copy(update={"max": "2024-03-01T00:00:00"}) if c.name == "signup" else c
        for c in schema.columns
    ]
    report = validate(frame, schema.model_copy(update={"columns": columns}), drift=False)
    check = next(c for c in report.checks if c.name == "signup.range")
    assert check.status == "fail" and check.examples[0] == "2024-03-01T01:00:00"
    assert check.count == int((frame["signup"] > "2024-03-01").sum())


# -- files -----------------------------------------------------------------------------------------


def test_bad_files_are_failed_checks_not_tracebacks(schema: Schema, tmp_path: Path) -> None:
    cases = {
        "data.txt": b"a,b\n1,2\n",
        "broken.parquet": b"PAR1 this is not parquet at all",
        "empty.csv": b"",
        "header_only.csv": b"id,age\n",
        "binary.csv": bytes(range(256)) * 4,
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        report = validate(path, schema)
        assert failed(report) == {"file.format"}, (name, report.to_frame())
        assert report.rows == 0 and not report.passed
    with pytest.raises(QualityInputError, match="no such file"):
        validate(tmp_path / "nope.csv", schema)


def test_a_file_over_the_size_limit_fails(
    frame: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    path = tmp_path / "customers.parquet"
    frame.to_parquet(path)
    limited = schema.model_copy(update={"max_file_bytes": 1000})
    report = validate(path, limited)
    assert failed(report) == {"file.size"}
    assert report.failed_checks[0].stats["bytes"] == path.stat().st_size


def test_a_schema_file_path_is_accepted(
    frame: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    path = schema.save(tmp_path / "schema.json")
    assert validate(frame, path).passed


# -- thresholds edited in the file -----------------------------------------------------------------


def test_thresholds_edited_in_the_file_are_honoured(
    frame: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    shifted = make_frame(seed=1, shift=1.0)
    shifted.loc[0, "city"] = "Atlantis"
    before = validate(shifted, schema)
    assert {"income.drift_psi", "income.drift_ks", "city.categories"} <= failed(before)
    path = schema.save(tmp_path / "schema.json")
    data = json.loads(path.read_text())
    for column in data["columns"]:
        if column["name"] == "income":
            column.update(
                psi_warn=5.0, psi_fail=10.0, ks_statistic_fail=0.9, max=10**6, min=-(10**6)
            )
        if column["name"] == "city":
            column["categories"].append("Atlantis")
    path.write_text(json.dumps(data, indent=2))
    after = validate(shifted, path)
    statuses = by_name(after)
    assert statuses["income.drift_psi"] == "pass"
    assert statuses["income.drift_ks"] == "warn"  # significant, but below the edited gap
    assert statuses["income.range"] == "pass" and statuses["city.categories"] == "pass"
    assert statuses["city.new_categories"] == "warn"  # one row in a category never seen


# -- drift -----------------------------------------------------------------------------------------


def test_a_mean_shift_is_detected(schema: Schema) -> None:
    report = validate(make_frame(seed=1, shift=1.0), schema)
    assert {"income.drift_psi", "income.drift_ks"} <= failed(report)
    assert "income" in report.drifted_columns
    ks = next(c for c in report.checks if c.name == "income.drift_ks")
    assert ks.stats["statistic"] == pytest.approx(0.38, abs=0.04)  # 2*Phi(0.5) - 1
    assert report.gate_values()["data.drifted_columns"] >= 1


def test_a_category_shift_is_detected(schema: Schema) -> None:
    data = make_frame(seed=1)
    rng = np.random.default_rng(5)
    data["city"] = rng.choice(np.array(["Oslo", "Lima", "Pune"]), N, p=[0.2, 0.3, 0.5])
    data["active"] = rng.random(N) < 0.7
    report = validate(data, schema)
    assert {"city.drift_categories", "active.drift_categories"} <= failed(report)
    city = next(c for c in report.checks if c.name == "city.drift_categories")
    assert city.stats["total_variation"] == pytest.approx(0.3, abs=0.03)
    assert report.drifted_columns == ["city", "active"]


def test_new_categories_above_their_share_fail(schema: Schema) -> None:
    data = make_frame(seed=1)
    data.loc[: N // 20, "city"] = "Atlantis"  # 5% of rows
    columns = [c.model_copy(update={"categories": None}) for c in schema.columns]
    open_schema = schema.model_copy(update={"columns": columns})
    report = validate(data, open_schema)
    check = next(c for c in report.checks if c.name == "city.new_categories")
    assert check.status == "fail" and check.examples == ["Atlantis"]
    assert check.stats["share"] == pytest.approx(0.05, abs=0.002)


def test_the_same_data_raises_no_alarm(frame: pd.DataFrame, schema: Schema) -> None:
    report = validate(frame, schema)
    drift = [c for c in report.checks if c.kind.startswith("drift") or c.kind == "new_categories"]
    assert len(drift) == 13 and all(c.status == "pass" for c in drift)
    assert all(c.stats.get("psi", 0) < 1e-6 for c in drift)
    assert all(c.stats.get("statistic", 0) < 1e-6 for c in drift)  # CDFs kept to 1e-8


@settings(max_examples=6, deadline=None, derandomize=True)
@given(seed=st.integers(1, 10_000))
def test_a_fresh_sample_from_the_same_distribution_raises_no_alarm(seed: int) -> None:
    schema = make_schema(make_frame())
    report = validate(make_frame(seed=seed), schema)
    assert report.drifted_columns == [], report.to_frame().query("status != 'pass'")


def test_the_ks_statistic_matches_scipy_within_the_grid(schema: Schema) -> None:
    reference = make_frame()["income"].dropna()
    sample = make_frame(seed=3, shift=0.2)["income"].dropna()
    report = validate(make_frame(seed=3, shift=0.2), schema)
    ks = next(c for c in report.checks if c.name == "income.drift_ks")
    exact = stats.ks_2samp(reference, sample)
    assert ks.stats["statistic"] <= exact.statistic + 1e-12
    assert ks.stats["statistic"] == pytest.approx(exact.statistic, abs=2e-3)
    assert ks.stats["pvalue"] == pytest.approx(exact.pvalue, rel=0.5, abs=1e-6)


def test_drift_against_another_reference(
    frame: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    shifted = make_frame(seed=2, shift=1.0)
    assert "income" in validate(shifted, schema).drifted_columns
    assert validate(shifted, schema, reference=shifted).drifted_columns == []
    other = make_schema(shifted)
    assert validate(shifted, schema, reference=other).drifted_columns == []
    path = tmp_path / "shifted.parquet"
    shifted.to_parquet(path)
    assert validate(shifted, schema, reference=path).drifted_columns == []
    plain = validate(shifted, schema, drift=False)
    assert not plain.drift_checked and not any(c.kind.startswith("drift") for c in plain.checks)
    with pytest.raises(QualityInputError, match="reference must be"):
        validate(shifted, schema, reference=[1, 2])  # type: ignore[arg-type]


# -- the report and bad input ----------------------------------------------------------------------


def test_the_report_is_json_serialisable(frame: pd.DataFrame, schema: Schema) -> None:
    bad = frame.copy()
    bad.loc[1, "id"] = 0
    columns = [
        c.model_copy(update={"max": "2024-01-02"}) if c.name == "signup" else c
        for c in schema.columns
    ]
    report = validate(bad, schema.model_copy(update={"columns": columns}))
    text = report.model_dump_json()
    again = ValidationReport.model_validate_json(text)
    assert again == report and json.loads(text)["schema_version"] == 1
    table = report.to_frame()
    assert list(table.columns[:6]) == ["name", "column", "kind", "status", "count", "fraction"]
    assert len(table) == len(report.checks)
    with pytest.raises(
        ValidationFailedError,
        match=r"3 data check\(s\) failed: id.unique, signup.range, key.duplicate_keys",
    ):
        report.raise_if_failed()
    validate(frame, schema).raise_if_failed()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pd.DataFrame({"id": []}), "no rows"),
        ([{"id": 1}], "needs a DataFrame or a .csv/.parquet path, not list"),
        (pd.DataFrame([[1, 2]], columns=["id", "id"]), "appears twice"),
    ],
)
def test_unusable_input_is_refused(data: object, message: str, schema: Schema) -> None:
    with pytest.raises(QualityInputError, match=message):
        validate(data, schema)  # type: ignore[arg-type]


def test_the_schema_must_be_a_schema(frame: pd.DataFrame) -> None:
    with pytest.raises(QualityInputError, match="needs a Schema"):
        validate(frame, {"columns": []})  # type: ignore[arg-type]


def test_nullable_extension_dtypes_are_checked(schema: Schema) -> None:
    data = make_frame()
    data["age"] = data["age"].astype("Int64")
    data["active"] = data["active"].astype("boolean")
    data["city"] = data["city"].astype(object)
    report = validate(data, schema)
    assert report.passed and not report.drifted_columns, report.to_frame()
    data.loc[3, "age"] = pd.NA
    data.loc[4, "age"] = 150
    checks = {c.name: c for c in validate(data, schema).checks}
    assert checks["age.range"].status == "fail"
    # one null in 4000 rows where the 4000 reference rows had none: seen, but what sampling
    # alone gives half the time, so a warning
    assert (checks["age.nulls"].status, checks["age.nulls"].count) == ("warn", 1)


def test_threads_give_the_same_report(schema: Schema) -> None:
    data = make_frame(seed=1, shift=0.3)
    data.loc[[3, 4], "city"] = "Atlantis"
    data.loc[5, "id"] = data.loc[6, "id"]
    one = validate(data, schema, workers=1).model_dump(exclude={"duration_s"})
    assert validate(data, schema, workers=3).model_dump(exclude={"duration_s"}) == one
    with pytest.raises(QualityInputError, match="workers must be a positive integer"):
        validate(data, schema, workers=0)


def test_text_columns_of_every_storage_give_the_same_counts(schema: Schema) -> None:
    data = make_frame(seed=1)
    data.loc[[3, 4], "city"] = ["Atlantis", None]
    reports = []
    for dtype in ("str", object, pd.ArrowDtype(pa.large_string()), "category"):
        reports.append(validate(data.assign(city=data["city"].astype(dtype)), schema))
    city = [[c for c in r.checks if c.column == "city" and c.kind != "dtype"] for r in reports]
    assert all(checks == city[0] for checks in city[1:])
    categories = next(c for c in city[0] if c.kind == "categories")
    assert (categories.count, categories.examples, categories.example_rows) == (
        1,
        ["Atlantis"],
        [3],
    )


@pytest.mark.parametrize("seed", range(5))
def test_a_small_sample_of_the_same_distribution_raises_no_psi_alarm(seed: int) -> None:
    # 80 rows against 10 bins: raw PSI is often above 0.1 (warn) from sampling alone.
    rng = np.random.default_rng(seed)
    schema = infer_schema(pd.DataFrame({"x": rng.normal(size=2000)}))
    sample = pd.DataFrame({"x": rng.normal(size=80)})
    report = validate(sample, schema)
    psi = next(c for c in report.checks if c.kind == "drift_psi")
    assert psi.status == "pass", psi.message
    # judged by the chi-square test of the 2 x 10 table (every bin expects 5+ rows: no merging)
    ref = schema.column("x").reference
    assert ref is not None and ref.bin_edges is not None and ref.proportions is not None
    new = np.bincount(np.searchsorted(ref.bin_edges, sample["x"], side="left"), minlength=10)
    table = np.array([new, np.asarray(ref.proportions) * ref.rows])
    expected = stats.chi2_contingency(table, correction=False).pvalue
    assert psi.stats["bins"] == 10 and psi.stats["pvalue"] == pytest.approx(expected, rel=1e-6)


def test_a_planted_shift_in_a_small_sample_is_still_caught() -> None:
    rng = np.random.default_rng(7)
    schema = infer_schema(pd.DataFrame({"x": rng.normal(size=2000)}))
    report = validate(pd.DataFrame({"x": rng.normal(loc=1.5, size=80)}), schema)
    psi = next(c for c in report.checks if c.kind == "drift_psi")
    assert psi.status == "fail", psi.message
