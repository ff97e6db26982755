"""Slice predicates: serialisable conditions (`island == "Biscoe"`, `x in (a, b]`, `sex is
missing`, and conjunctions of them) that recompute a slice's rows with `mask(frame)`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import Field

from nbops.errors import QualityInputError
from nbops.quality.slices._common import Scalar, _Model
from nbops.quality.slices.inputs import _numeric_values


def _literal(value: Scalar) -> str:
    """How a value is written in an expression: strings JSON-quoted, numbers as Python does."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _frame_column(frame: pd.DataFrame, column: str) -> pd.Series:
    if not isinstance(frame, pd.DataFrame):
        raise QualityInputError(
            f"a slice predicate needs a pandas DataFrame, not {type(frame).__name__}"
        )
    if column not in frame.columns:
        raise QualityInputError(
            f"column {column!r} of the slice predicate is not in the frame",
            fix=f"the frame has columns {list(frame.columns)}",
        )
    series = frame[column]
    if isinstance(series, pd.DataFrame):
        raise QualityInputError(f"the frame has more than one column named {column!r}")
    return series


def _bool_array(values: Any) -> npt.NDArray[np.bool_]:
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=bool, na_value=False)
    return np.asarray(values, dtype=bool)


class Equals(_Model):
    """Rows whose `column` equals `value`: `island == "Biscoe"`."""

    op: Literal["=="] = "=="
    column: str
    value: Scalar

    def to_expression(self) -> str:
        """The condition as text, e.g. `island == "Biscoe"`."""
        return f"{self.column} == {_literal(self.value)}"

    def mask(self, frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """One boolean per row of `frame`: True where the condition holds (missing: False)."""
        series = _frame_column(frame, self.column)
        try:
            return _bool_array(series.eq(self.value))
        except TypeError:  # a value of another type than the column's: no row matches
            return np.zeros(len(series), dtype=bool)


class InInterval(_Model):
    """Rows whose numeric `column` lies in an interval: `age in (30.0, 40.0]`.

    `closed="right"` is `(lower, upper]`, `closed="both"` is `[lower, upper]` (the lowest
    quantile bin, as `pd.qcut` makes it)."""

    op: Literal["in"] = "in"
    column: str
    lower: float
    upper: float
    closed: Literal["right", "both"] = "right"

    def to_expression(self) -> str:
        """The condition as text, e.g. `age in (30.0, 40.0]`."""
        left = "[" if self.closed == "both" else "("
        return f"{self.column} in {left}{self.lower!r}, {self.upper!r}]"

    def mask(self, frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """One boolean per row of `frame`: True where the value is in the interval."""
        values = _numeric_values(_frame_column(frame, self.column), self.column)
        above = values >= self.lower if self.closed == "both" else values > self.lower
        return np.asarray(above & (values <= self.upper), dtype=bool)


class IsMissing(_Model):
    """Rows where `column` is missing (None, NaN, NaT, pd.NA): `sex is missing`."""

    op: Literal["is missing"] = "is missing"
    column: str

    def to_expression(self) -> str:
        """The condition as text, e.g. `sex is missing`."""
        return f"{self.column} is missing"

    def mask(self, frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """One boolean per row of `frame`: True where the value is missing."""
        return _bool_array(_frame_column(frame, self.column).isna())


Condition = Annotated[Equals | InInterval | IsMissing, Field(discriminator="op")]


class SlicePredicate(_Model):
    """A slice: the rows where every condition holds (one condition, or one per crossed column)."""

    conditions: list[Condition] = Field(min_length=1)

    @property
    def columns(self) -> list[str]:
        """The columns the predicate reads, in order."""
        return list(dict.fromkeys(condition.column for condition in self.conditions))

    def to_expression(self) -> str:
        """The predicate as text: `sex == "male" and island == "Biscoe"`."""
        return " and ".join(condition.to_expression() for condition in self.conditions)

    def mask(self, frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """One boolean per row of `frame`, True for the rows of this slice.

        Raises QualityInputError when the frame lacks a column the predicate reads, or an
        interval's column is not numeric."""
        result = np.ones(len(frame), dtype=bool)
        for condition in self.conditions:
            result &= condition.mask(frame)
        return result
