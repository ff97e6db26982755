"""The request model: a pydantic model of one record, generated from the bundle's schema.

`request_model(schema, columns)` gives one field per request column, typed from the column's
kind, required unless the column is nullable, categories as a `Literal`, integers bounded by
the column's dtype; fields that are not request columns are ignored. `reference_record` builds
one record from the schema alone (what `/health` predicts at start-up), and `_example` the
typical value of a column that both it and the OpenAPI examples show.
"""

import keyword
import math
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

from nbops.bundle.serve.frame import _numpy_dtype
from nbops.errors import BundleError, NbopsError
from nbops.quality.schema import ColumnSchema, Schema


def request_model(
    schema: Schema,
    columns: Sequence[str],
    *,
    name: str = "Record",
    strict: bool = True,
    open_categories: Collection[str] = (),
) -> type[BaseModel]:
    """A pydantic model of one request record: a field per column, typed from the schema.

    integer → int, float → float (integers accepted), boolean → bool, string → str,
    categorical → `Literal[...]` of its categories (str when it has none, or when the column
    is in `open_categories`: the model scores categories the training data lacked, as
    `Bundle.predict` does; the schema lists the known ones), datetime →
    datetime (ISO 8601 text). A nullable column is optional (default None); any other is
    required. Fields that are not request columns are ignored (extra columns of raw records,
    as `Bundle.predict` ignores them); NaN and infinities are refused. With `strict` (the default)
    values are not converted between types: "3" is not an integer and 1 is not a boolean.
    Fields are looked up by the column's own name (an alias when it is not a usable Python
    identifier); `model_dump(by_alias=True)` gives the records back keyed by column.
    """
    if not columns:
        raise BundleError("the bundle names no request columns, so there is nothing to serve")
    if len(set(columns)) != len(columns):
        raise BundleError(f"the request columns name a column twice: {list(columns)}")
    fields: dict[str, Any] = {}
    for i, column_name in enumerate(columns):
        try:
            column = schema.column(column_name)
        except NbopsError as e:
            raise BundleError(
                f"request column {column_name!r} is not in the bundle's schema",
                fix="rebuild the bundle so its schema covers every column the model reads",
            ) from e
        is_open = column_name in open_categories
        python_type, constrained = _python_type(column, is_open)
        options: dict[str, Any] = {"alias": column_name}
        if is_open and column.categories:
            options["description"] = (
                f"seen in training: {', '.join(map(str, column.categories))} (others are "
                "scored too, and reported by nbops monitor)"
            )
        if strict and not constrained:
            options["strict"] = True
        if column.kind == "integer":  # what the frame's integer dtype holds
            low, high = _integer_range(column)
            options["ge"], options["le"] = low, high
        example = _example(column)
        if example is not None:
            options["examples"] = [example]
        if column.nullable:
            fields[_attribute(column_name, i)] = (python_type | None, Field(None, **options))
        else:
            fields[_attribute(column_name, i)] = (python_type, Field(..., **options))
    config = ConfigDict(
        extra="ignore",
        allow_inf_nan=False,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )
    model: type[BaseModel] = create_model(name, __config__=config, **fields)
    return model


def _python_type(column: ColumnSchema, is_open: bool = False) -> tuple[Any, bool]:
    """The field type for a column, and whether it is a Literal (which takes no `strict`)."""
    kind = column.kind
    if kind == "integer":
        return int, False
    if kind == "float":
        return float, False
    if kind == "boolean":
        return bool, False
    if kind == "categorical" and column.categories and not is_open:
        return Literal.__getitem__(tuple(column.categories)), True
    if kind in ("string", "categorical"):
        return str, False
    # datetime: ISO text is accepted (strict mode would refuse text from parsed JSON)
    return datetime, True


def _attribute(column_name: str, index: int) -> str:
    """The Python attribute name of a column's field: its own name when that is usable."""
    usable = (
        column_name.isidentifier()
        and not keyword.iskeyword(column_name)
        and not column_name.startswith(("_", "model_"))
        and not hasattr(BaseModel, column_name)
    )
    return column_name if usable else f"field_{index}"


def _integer_range(column: ColumnSchema) -> tuple[int, int]:
    dtype = _numpy_dtype(column.dtype)
    if dtype is None or dtype.kind not in "iu":
        dtype = np.dtype(np.int64)
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _example(column: ColumnSchema) -> Any:
    """A typical value of a column, from its schema alone (deterministic): the median of a
    number, the most frequent category or text, False, the earliest timestamp; None when the
    schema tells nothing of a text column."""
    kind = column.kind
    frequencies = column.reference.frequencies if column.reference is not None else None
    if kind in ("categorical", "string"):
        known = [c for c in (frequencies or {}) if not column.categories or c in column.categories]
        if known:
            assert frequencies is not None
            return max(sorted(known), key=lambda c: frequencies[c])
        return column.categories[0] if column.categories else None
    if kind in ("integer", "float"):
        middle: Any = (column.quantiles or {}).get("0.5")
        if middle is None:
            middle = column.min
        if isinstance(middle, int | float) and math.isfinite(middle):
            if kind == "integer":
                low, high = _integer_range(column)
                return min(max(round(middle), low), high)
            return float(middle)
        return 0 if kind == "integer" else 0.0
    if kind == "boolean":
        return False
    if kind == "datetime":
        return str(column.min) if isinstance(column.min, str) else "2024-01-01T00:00:00"
    return None


def reference_record(schema: Schema, columns: Sequence[str]) -> dict[str, Any]:
    """One request record built from the schema (`_example` of each column, "" for a text
    column the schema says nothing of): what `/health` predicts at start-up."""
    record: dict[str, Any] = {}
    for name in columns:
        column = schema.column(name)
        value = _example(column)
        if value is None and not column.nullable:
            value = ""
        record[name] = value
    return record


def _fields_by_column(model: type[BaseModel]) -> list[tuple[str, str]]:
    return [(info.alias or attr, attr) for attr, info in model.model_fields.items()]
