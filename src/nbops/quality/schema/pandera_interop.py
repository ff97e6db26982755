"""`to_pandera` and `from_pandera`: the basic constraints (dtype, nullable, inclusive ranges,
`isin` categories, unique, a frame-level unique key) to and from a pandera DataFrameSchema
(pandera is an optional extra, imported on use).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nbops.errors import QualityInputError, require_extra
from nbops.quality.schema.expressions import evaluate_expression
from nbops.quality.schema.infer import _scalar_kind
from nbops.quality.schema.model import (
    NUMERIC_KINDS,
    TEXT_KINDS,
    ColumnSchema,
    CustomCheck,
    Environment,
    Kind,
    Schema,
    _environment,
    _timestamp,
)

if TYPE_CHECKING:
    import pandera.pandas as pa

_PANDERA_DEFAULT_DTYPE = {
    "integer": "int64",
    "float": "float64",
    "boolean": "bool",
    "string": "str",
    "categorical": "str",
    "datetime": "datetime64[ns]",
}


def to_pandera(schema: Schema, *, environment: str = "training") -> pa.DataFrameSchema:
    """The schema's basic constraints as a pandera DataFrameSchema.

    Translated: dtype (the reference's dtype), nullable, min/max (`in_range`, `ge`, `le`),
    categories (`isin`), unique, the key (frame-level `unique`), and custom checks (as
    frame-level checks). Not translated: `max_null_fraction`, thresholds, drift. Columns absent
    in `environment` are left out; optional ones are not required.
    """
    require_extra("pandera", "pandera")
    import pandera.pandas as pa

    env = _environment(schema, environment)
    columns: dict[str, pa.Column] = {}
    for column in schema.columns:
        if column.name in env.absent:
            continue
        checks: list[pa.Check] = []
        lo, hi = _pandera_bound(column, column.min), _pandera_bound(column, column.max)
        if lo is not None and hi is not None:
            checks.append(pa.Check.in_range(lo, hi))
        elif lo is not None:
            checks.append(pa.Check.ge(lo))
        elif hi is not None:
            checks.append(pa.Check.le(hi))
        if column.categories is not None:
            checks.append(pa.Check.isin(column.categories))
        columns[column.name] = pa.Column(
            _pandera_dtype(column),
            checks=checks,
            nullable=column.nullable,
            unique=column.unique,
            required=column.name not in env.optional,
            name=column.name,
        )
    frame_checks = [_pandera_custom_check(pa, check) for check in schema.checks]
    return pa.DataFrameSchema(
        columns,
        checks=frame_checks,
        unique=list(schema.key) if schema.key else None,
        name=schema.name,
    )


def _pandera_bound(column: ColumnSchema, bound: int | float | str | None) -> Any:
    if bound is None:
        return None
    return _timestamp(bound) if column.kind == "datetime" else bound


def _pandera_dtype(column: ColumnSchema) -> Any:
    from pandera.engines import pandas_engine

    for candidate in (column.dtype, _PANDERA_DEFAULT_DTYPE[column.kind]):
        if candidate is None:
            continue
        try:
            return pandas_engine.Engine.dtype(candidate)
        except (TypeError, ValueError):
            continue
    return None


def _pandera_custom_check(pa: Any, check: CustomCheck) -> Any:
    tree = check.parsed()

    def holds(frame: pd.DataFrame) -> pd.Series:
        ok, judged = evaluate_expression(tree, frame, check.column)
        return pd.Series(ok | ~judged, index=frame.index)

    return pa.Check(holds, name=f"custom.{check.name}", error=check.expression)


def from_pandera(pandera_schema: pa.DataFrameSchema, *, name: str | None = None) -> Schema:
    """A Schema from a pandera DataFrameSchema's basic constraints.

    Read: each column's dtype (its kind), nullable, unique, required (optional columns),
    inclusive range checks (`in_range`, `ge`, `le`: the tightest wins), `isin` on a text
    column (categories), and a frame-level `unique` (the key). Other checks (strict bounds,
    `notin`, custom functions) have no nbops form and are left out; the result has no drift
    reference (infer one from data for that).
    """
    require_extra("pandera", "pandera")
    import pandera.pandas as pa

    if not isinstance(pandera_schema, pa.DataFrameSchema):
        raise QualityInputError(
            f"from_pandera needs a pandera DataFrameSchema, not {type(pandera_schema).__name__}"
        )
    columns: list[ColumnSchema] = []
    optional: list[str] = []
    for key, col in pandera_schema.columns.items():
        if not isinstance(key, str) or getattr(col, "regex", False):
            raise QualityInputError(
                f"pandera column {key!r}: only plain string names are supported"
            )
        columns.append(_column_from_pandera(key, col))
        if not col.required:
            optional.append(key)
    if not columns:
        raise QualityInputError("the pandera schema has no columns")
    unique = pandera_schema.unique
    keys = [unique] if isinstance(unique, str) else list(unique) if unique else None
    environments = {env: Environment(optional=optional) for env in ("training", "serving")}
    return Schema(
        name=name if name is not None else pandera_schema.name,
        key=keys,
        environments=environments,
        columns=columns,
    )


def _column_from_pandera(name: str, col: Any) -> ColumnSchema:
    lo: Any = None
    hi: Any = None
    categories: list[str] | None = None
    for check in col.checks:
        stats = check.statistics or {}
        if check.name == "in_range":
            if stats.get("include_min", True):
                lo = _tighter(lo, stats.get("min_value"), max)
            if stats.get("include_max", True):
                hi = _tighter(hi, stats.get("max_value"), min)
        elif check.name == "greater_than_or_equal_to":
            lo = _tighter(lo, stats.get("min_value"), max)
        elif check.name == "less_than_or_equal_to":
            hi = _tighter(hi, stats.get("max_value"), min)
        elif check.name == "isin":
            categories = [str(v) for v in stats.get("allowed_values", [])]
    dtype_text = str(col.dtype) if col.dtype is not None else None
    kind = _kind_from_dtype(dtype_text, has_range=lo is not None or hi is not None)
    if kind == "string" and categories is not None:
        kind = "categorical"
    if kind not in TEXT_KINDS:
        categories = None
    if kind == "datetime":
        lo, hi = (pd.Timestamp(b).isoformat() if b is not None else None for b in (lo, hi))
    elif kind not in NUMERIC_KINDS:
        lo = hi = None
    else:
        lo, hi = (_plain_number(b) for b in (lo, hi))
    return ColumnSchema(
        name=name,
        kind=kind,
        dtype=dtype_text,
        nullable=bool(col.nullable),
        min=lo,
        max=hi,
        categories=categories,
        unique=bool(col.unique),
    )


def _tighter(current: Any, new: Any, pick: Callable[[Any, Any], Any]) -> Any:
    if new is None:
        return current
    return new if current is None else pick(current, new)


def _plain_number(value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QualityInputError(f"a range bound {value!r} is not a number")
    return value if isinstance(value, int) or math.isfinite(value) else None


def _kind_from_dtype(dtype_text: str | None, *, has_range: bool) -> Kind:
    if dtype_text is None:
        return "float" if has_range else "string"
    try:
        dtype = pd.api.types.pandas_dtype(dtype_text)
    except (TypeError, ValueError):
        return "string"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    return _scalar_kind(dtype) or "string"
