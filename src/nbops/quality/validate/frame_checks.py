"""Checks over the whole frame: columns missing or unexpected, duplicate keys, and the
schema's custom checks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import JsonValue

from nbops.quality.schema.expressions import evaluate_expression
from nbops.quality.schema.model import CustomCheck, Environment, Schema
from nbops.quality.validate.report import CheckResult
from nbops.quality.validate.values import EXAMPLES, _first_rows, _json_value, _one_line


def _presence_checks(df: pd.DataFrame, schema: Schema, env: Environment) -> list[CheckResult]:
    n = len(df)
    present = set(df.columns)
    checks: list[CheckResult] = []
    missing = [
        c.name
        for c in schema.columns
        if c.name not in present and c.name not in env.absent and c.name not in env.optional
    ]
    for name in missing:
        checks.append(
            CheckResult(
                name=f"{name}.missing_column",
                column=name,
                kind="missing_column",
                status="fail",
                count=n,
                fraction=1.0,
                message=f"column {name!r} is missing",
            )
        )
    if not missing:
        checks.append(
            CheckResult(
                name="columns.missing",
                kind="missing_column",
                status="pass",
                message="every expected column is present",
            )
        )
    for name in env.absent:
        if name in present:
            checks.append(
                CheckResult(
                    name=f"{name}.unexpected_column",
                    column=name,
                    kind="unexpected_column",
                    status="fail",
                    count=n,
                    fraction=1.0,
                    message=f"column {name!r} must be absent here"
                    + (" (it is the label)" if name == schema.label else ""),
                )
            )
    if schema.unexpected_columns != "ignore":
        known = set(schema.column_names)
        extra = [str(c) for c in df.columns if c not in known]
        checks.append(
            CheckResult(
                name="columns.unexpected",
                kind="unexpected_column",
                status=schema.unexpected_columns if extra else "pass",
                count=len(extra),
                examples=list(extra[:EXAMPLES]),
                message=f"{len(extra)} column(s) not in the schema"
                if extra
                else "no unknown columns",
            )
        )
    return checks


def _key_check(df: pd.DataFrame, key: list[str]) -> list[CheckResult]:
    if any(k not in df.columns for k in key):
        return []  # the missing key column is reported already
    if len(key) == 1:
        mask = df[key[0]].duplicated(keep=False).to_numpy()
    else:
        mask = df.duplicated(subset=key, keep=False).to_numpy()
    count = int(np.count_nonzero(mask))
    rows = _first_rows(mask)
    examples: list[JsonValue] = []
    for row in rows:
        values = [_json_value(df[k].iloc[row]) for k in key]
        examples.append(values[0] if len(key) == 1 else values)
    return [key_result(key, count, len(df), examples, rows)]


def key_result(
    key: list[str], count: int, rows: int, examples: list[JsonValue], example_rows: list[int]
) -> CheckResult:
    """The duplicate_keys check: `count` of `rows` rows share their key with another row
    (one function for the in-memory and the streamed validation)."""
    return CheckResult(
        name="key.duplicate_keys",
        column=key[0] if len(key) == 1 else None,
        kind="duplicate_keys",
        status="fail" if count else "pass",
        count=count,
        fraction=count / rows,
        examples=examples,
        example_rows=example_rows,
        message=f"{count} rows share their key {key} with another row"
        if count
        else f"key {key} is unique",
    )


def _custom_check(df: pd.DataFrame, check: CustomCheck) -> CheckResult | None:
    if any(c not in df.columns for c in check.columns_read()):
        return None  # reported as a missing column, or one this environment does without
    try:
        holds, judged = evaluate_expression(check.parsed(), df, check.column)
    except (TypeError, ValueError, KeyError) as e:
        return custom_error(check, _one_line(e))
    bad = judged & ~holds
    rows = _first_rows(bad)
    examples: list[JsonValue] = []
    if check.column is not None:
        examples = [_json_value(v) for v in df[check.column].iloc[rows].to_numpy(dtype=object)]
    return custom_result(
        check, int(np.count_nonzero(bad)), int(np.count_nonzero(judged)), len(df), examples, rows
    )


def custom_error(check: CustomCheck, error: str) -> CheckResult:
    """A custom check whose expression cannot be evaluated on the data."""
    return CheckResult(
        name=f"custom.{check.name}",
        column=check.column,
        kind="custom",
        status="fail",
        message=f"cannot evaluate {check.expression!r}: {error}",
    )


def custom_result(
    check: CustomCheck,
    count: int,
    judged: int,
    rows: int,
    examples: list[JsonValue],
    example_rows: list[int],
) -> CheckResult:
    """A custom check: `count` of the `judged` rows (of `rows`) break it (one function for
    the in-memory and the streamed validation)."""
    return CheckResult(
        name=f"custom.{check.name}",
        column=check.column,
        kind="custom",
        status=check.severity if count else "pass",
        count=count,
        fraction=count / rows,
        examples=examples,
        example_rows=example_rows,
        message=f"{count} row(s) break {check.expression!r}"
        if count
        else f"every row meets {check.expression!r}",
        stats={"rows_judged": judged},
    )
