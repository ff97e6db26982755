"""request_checks: the checks that can refuse a served request (columns present, dtypes,
nulls), each exactly as validate reports it, and no others."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nbops.quality.schema import infer_schema
from nbops.quality.validate import validate
from nbops.quality.validate.run import request_checks

REFUSING = {"missing_column", "dtype", "nulls"}


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {"a": rng.normal(size=500), "b": rng.integers(0, 9, 500), "c": rng.choice(["x", "y"], 500)}
    )
    bad = train.head(40).copy()
    bad.loc[3, "a"] = np.nan  # a null where the reference had none
    bad["b"] = bad["b"].astype(str)  # a wrong type
    bad["c"] = "z"  # an unknown category (not a refusing check)
    return train, bad


def test_request_checks_are_validates_refusing_checks_exactly() -> None:
    train, bad = frames()
    schema = infer_schema(train, name="t")
    for frame in (train.head(50), bad, bad.drop(columns=["c"])):
        report = validate(frame, schema, environment="serving", drift=False)
        expected = [c for c in report.checks if c.kind in REFUSING]
        assert request_checks(frame, schema) == expected


def test_request_checks_leave_out_range_and_category_checks() -> None:
    train, bad = frames()
    kinds = {c.kind for c in request_checks(bad, infer_schema(train, name="t"))}
    assert kinds <= REFUSING and "dtype" in kinds and "nulls" in kinds
