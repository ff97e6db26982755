"""`nbops infer-schema` and `nbops validate` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbops import errors
from tests.helpers import run_nbops


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    n = 2000
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, size=n),
            "income": rng.normal(50_000, 10_000, size=n),
            "region": rng.choice(["north", "south", "east"], size=n),
            "churned": rng.choice([0, 1], size=n),
        }
    )
    frame.to_csv(tmp_path / "train.csv", index=False)
    return tmp_path


def test_a_schema_inferred_from_data_validates_that_data(data: Path) -> None:
    inferred = run_nbops(
        "infer-schema", "train.csv", "-o", "schema.json", "--label", "churned", cwd=data
    )
    assert inferred.returncode == 0, inferred.stderr
    schema = json.loads((data / "schema.json").read_text())
    assert [c["name"] for c in schema["columns"]] == ["age", "income", "region", "churned"]

    result = run_nbops(
        "validate", "train.csv", "--schema", "schema.json", "--html", "report.html", cwd=data
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation of train.csv" in result.stdout
    page = (data / "report.html").read_text()
    assert (
        "<h2>Data</h2>" in page
        and "fail" not in page.split("<h2>Data</h2>")[1].split("</p>")[0].split(":")[1][:3]
    )


def test_bad_data_fails_with_exit_1_and_names_the_checks(data: Path) -> None:
    run_nbops("infer-schema", "train.csv", "-o", "schema.json", cwd=data)
    bad = pd.read_csv(data / "train.csv")
    bad.loc[:99, "region"] = "atlantis"
    bad["income"] = bad["income"] * 3  # drift and out of range
    bad.drop(columns=["age"]).to_csv(data / "new.csv", index=False)

    result = run_nbops("validate", "new.csv", "--schema", "schema.json", "--json", cwd=data)

    assert result.returncode == errors.ValidationFailedError.exit_code
    report = json.loads(result.stdout)
    failed = {(c["kind"], c["column"]) for c in report["checks"] if c["status"] == "fail"}
    assert ("missing_column", "age") in failed
    assert ("categories", "region") in failed
    assert any(kind.startswith("drift") and column == "income" for kind, column in failed)
    assert (
        result.stderr.startswith("nbops: error: new.csv: ") and "check(s) failed" in result.stderr
    )


def test_serving_data_without_the_label_passes_where_training_data_must_have_it(data: Path) -> None:
    run_nbops("infer-schema", "train.csv", "-o", "schema.json", "--label", "churned", cwd=data)
    pd.read_csv(data / "train.csv").drop(columns=["churned"]).to_csv(
        data / "serve.csv", index=False
    )
    serving = run_nbops("validate", "serve.csv", "-s", "schema.json", "-e", "serving", cwd=data)
    training = run_nbops("validate", "serve.csv", "-s", "schema.json", "-e", "training", cwd=data)
    assert serving.returncode == 0, serving.stdout
    assert training.returncode == errors.ValidationFailedError.exit_code


@pytest.mark.parametrize(
    ("setup", "code", "fragment"),
    [
        (
            lambda d: (d / "x.txt").write_text("a"),
            errors.QualityInputError.exit_code,
            "unsupported data file type",
        ),
        (lambda d: None, errors.QualityInputError.exit_code, "no such file"),
    ],
)
def test_unreadable_input_to_infer_schema_is_one_line(
    data: Path, setup, code: int, fragment: str
) -> None:  # type: ignore[no-untyped-def]
    setup(data)
    name = "x.txt" if "unsupported" in fragment else "missing.csv"
    result = run_nbops("infer-schema", name, cwd=data)
    assert result.returncode == code
    assert len(result.stderr.strip().splitlines()) == 1 and fragment in result.stderr


def test_a_schema_from_a_newer_nbops_is_refused(data: Path) -> None:
    run_nbops("infer-schema", "train.csv", "-o", "schema.json", cwd=data)
    schema = json.loads((data / "schema.json").read_text())
    schema["schema_version"] = 99
    (data / "schema.json").write_text(json.dumps(schema))
    result = run_nbops("validate", "train.csv", "-s", "schema.json", cwd=data)
    assert result.returncode == errors.SchemaVersionError.exit_code
    assert "upgrade nbops" in result.stderr and "Traceback" not in result.stderr
