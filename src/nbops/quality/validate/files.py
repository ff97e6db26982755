"""File inputs: a .csv/.csv.gz/.parquet/.pq file read into a frame, with its `file_size` and
`file_format` checks (a bad file is a failed check, not a traceback).

`read_frame` is the same reader for callers without a schema (`nbops predict`, `nbops
monitor --data`, `nbops infer-schema`): the same suffixes, and a bad file is a
QualityInputError naming the file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pandas as pd

from nbops.errors import QualityInputError
from nbops.quality.schema.infer import column_family
from nbops.quality.schema.model import TEXT_KINDS, Schema
from nbops.quality.validate.report import CheckResult
from nbops.quality.validate.values import _one_line

_FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
_SUFFIXES = "a .csv, .csv.gz, .parquet or .pq file"


def _read_file(path: Path, schema: Schema) -> tuple[pd.DataFrame | None, list[CheckResult]]:
    """Read a .csv or .parquet file; problems become failed file checks."""
    if not path.exists():
        raise QualityInputError(f"{path}: no such file")
    checks: list[CheckResult] = []
    size = path.stat().st_size if path.is_file() else 0
    limit = schema.max_file_bytes
    too_big = limit is not None and size > limit
    checks.append(
        CheckResult(
            name="file.size",
            kind="file_size",
            status="fail" if too_big else "pass",
            message=f"{size} bytes" + (f", over the limit of {limit}" if too_big else ""),
            stats={"bytes": size, "max_bytes": limit},
        )
    )
    fmt = _format_of(path)

    def bad(message: str) -> tuple[None, list[CheckResult]]:
        checks.append(
            CheckResult(name="file.format", kind="file_format", status="fail", message=message)
        )
        return None, checks

    if not path.is_file():
        return bad(f"{path} is not a file")
    if fmt is None:
        return bad(f"{path.name}: unsupported file type (use .csv, .csv.gz, .parquet or .pq)")
    try:
        df = _parse(path, fmt, schema)
    except (ValueError, OSError) as e:  # pandas' and pyarrow's parse errors are ValueErrors
        return bad(f"cannot read {path.name} as {fmt}: {_one_line(e)}")
    except Exception as e:
        if type(e).__module__.startswith("pyarrow"):
            return bad(f"cannot read {path.name} as {fmt}: {_one_line(e)}")
        raise
    if len(df) == 0:
        return bad(f"{path.name} has no rows")
    if df.columns.has_duplicates:
        return bad(f"{path.name}: a column name appears twice")
    checks.append(
        CheckResult(name="file.format", kind="file_format", status="pass", message=f"read as {fmt}")
    )
    return df, checks


def read_frame(path: Path) -> pd.DataFrame:
    """Read a .csv, .csv.gz, .parquet or .pq file into a frame; a missing file, another
    suffix or a file that does not parse is a QualityInputError naming the file."""
    if not path.exists():
        raise QualityInputError("no such file", location=str(path), fix="check the path")
    fmt = _format_of(path)
    if fmt is None or not path.is_file():
        what = "not a file" if not path.is_file() else f"unsupported data file type {path.suffix!r}"
        raise QualityInputError(what, location=str(path), fix=f"use {_SUFFIXES}")
    try:
        return _parse(path, fmt, None)
    except Exception as e:  # pandas' and pyarrow's parse errors, as in _read_file
        if not isinstance(e, ValueError | OSError) and not type(e).__module__.startswith("pyarrow"):
            raise
        raise QualityInputError(
            f"cannot read it as {fmt} ({_one_line(e)})",
            location=str(path),
            fix="check that the file is complete and in that format",
        ) from None


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    return next((f for suffix, f in _FORMATS.items() if name.endswith(suffix)), None)


def _parse(path: Path, fmt: str, schema: Schema | None) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(path)
    if schema is None:
        return pd.read_csv(path)
    text_columns = {c.name: "str" for c in schema.columns if c.kind in TEXT_KINDS}
    df = pd.read_csv(path, dtype=text_columns)
    for column in schema.columns:
        text = column.name in df.columns and column_family(df[column.name]) == "string"
        if column.kind == "datetime" and text:
            with contextlib.suppress(TypeError, ValueError):  # left as text: dtype reports it
                df[column.name] = pd.to_datetime(df[column.name], format="ISO8601")
    return df
