"""`read_frame`: the one data-file reader behind `nbops predict`, `monitor --data` and
`infer-schema`, taking every file type `validate` takes, and refusing a bad file in one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nbops.errors import QualityInputError
from nbops.quality.validate import read_frame, validate
from nbops.quality.validate.files import _FORMATS
from tests.helpers import run_nbops

FRAME = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})


def _write(path: Path) -> Path:
    if path.name.endswith((".parquet", ".pq")):
        FRAME.to_parquet(path)
    else:
        FRAME.to_csv(path, index=False)  # pandas compresses .csv.gz by its suffix
    return path


@pytest.mark.parametrize("suffix", sorted(_FORMATS))
def test_read_frame_reads_every_file_type_validate_reads(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"data{suffix}")
    pd.testing.assert_frame_equal(read_frame(path), FRAME)
    schema_checks = validate(path, _schema(), drift=False)
    assert schema_checks.passed, schema_checks.failed_checks


def _schema() -> object:
    from nbops.quality.schema import infer_schema

    return infer_schema(FRAME)


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("data.txt", "a,b\n1,x\n", "unsupported data file type '.txt'"),
        ("data.parquet", "not parquet at all", "cannot read it as parquet"),
        ("missing.csv", None, "no such file"),
    ],
)
def test_read_frame_refuses_a_bad_file_naming_it(
    tmp_path: Path, name: str, content: str | None, fragment: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(QualityInputError, match=fragment) as caught:
        read_frame(path)
    assert str(path) in str(caught.value)


def test_infer_schema_reads_a_gzipped_csv_as_validate_does(tmp_path: Path) -> None:
    _write(tmp_path / "train.csv.gz")
    result = run_nbops("infer-schema", "train.csv.gz", "-o", "schema.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "schema.json").exists()
    checked = run_nbops("validate", "train.csv.gz", "-s", "schema.json", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
