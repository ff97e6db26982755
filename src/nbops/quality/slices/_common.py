"""The vocabulary every slices module shares: metric names, the slice-count limit, the
task and interval names, array and scalar types, and the base of the report models.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse", "r2")
LOWER_IS_BETTER: frozenset[str] = frozenset({"mae", "rmse"})
MAX_SLICES_PER_COLUMN = 10_000
"""A slice column (or a cross of columns) with more distinct values than this is refused."""

Task = Literal["classification", "regression"]
CiMethod = Literal["wilson", "bootstrap"]
Scalar = bool | int | float | str
_Array = npt.NDArray[Any]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")
