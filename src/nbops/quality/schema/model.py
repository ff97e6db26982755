"""Data schemas: what a table should look like, inferred from a reference frame, kept as JSON.

    schema = infer_schema(train_df, label="churned", key="customer_id", name="customers")
    schema.save("schema.json")            # JSON, indent 2, meant to be read and edited
    schema = Schema.load("schema.json")   # a newer schema_version -> SchemaVersionError

A `Schema` holds one `ColumnSchema` per column: its kind ("integer", "float", "boolean",
"string", "categorical", "datetime"), the constraints checked by `nbops.quality.validate`
(nullable and `max_null_fraction`, `min`/`max`, allowed `categories`, `unique`), the observed
statistics they were inferred from, and the reference statistics drift is measured against,
each with its own editable thresholds (`psi_warn`, `psi_fail`, `ks_pvalue`,
`ks_statistic_fail`, `new_category_share`). Fields that do not apply to a column's kind are
left out of the file; add them by hand to turn a check on (e.g. `"min"` on a datetime column,
as an ISO timestamp).

What inference decides, from the reference frame:

- kind: from the dtype; a string column with at most `categorical_max` distinct values (or
  a pandas categorical with at most that many categories) is "categorical" with those
  `categories` allowed, otherwise "string" (no value constraint, no drift);
- nulls: a column without nulls is not `nullable`; one with a null fraction f may have up to
  `max_null_fraction = min(1, 1.5 f + 0.01)`;
- range: numeric `min`/`max` are the observed extremes (finite values only); datetimes get
  no range (time moves on: add one by hand if it should not);
- `unique` is never inferred (a column unique in a sample is often unique by chance); set it
  by hand, or give `key=` (the key must be unique in the reference, and is checked as a whole;
  key columns get no range, categories or drift reference, as new data brings new keys);
- numeric drift reference: `bin_edges` at the reference's `bins`-quantiles with the
  proportion of rows in each bin (`x <= e1`, `e1 < x <= e2`, ..., `x > ek`), for the PSI; and
  the reference's empirical CDF at (up to) 1000 of its quantiles (`cdf_values`, `cdf`, exact
  at those points), for the Kolmogorov-Smirnov test: validation evaluates the new data's
  empirical CDF at the same points, takes the largest gap D, and its p-value from the
  two-sample asymptotic distribution with the reference's and the new data's row counts.
  D is the true two-sample statistic's maximum over those points (a lower bound of it, off
  by at most the reference's 1/1000 quantile steps), so the test errs on the quiet side;
- categorical and boolean drift reference: each category's frequency.

The label column is required in the "training" environment and must be absent in "serving"
(`environments`); other environments can be added to the file with their own `absent` and
`optional` column lists.

Custom checks (`CustomCheck`) are one restricted expression each, parsed with Python's own
parser and checked against a small grammar, never evaluated as code: comparisons (`< <= >
>= == !=`, chained, and `in`/`not in` a literal list) of numbers, strings, `value` (the
check's column), other columns by name (or `col("a name with spaces")`) and `+ - * /`
arithmetic over them, joined with `and`, `or`, `not`. Rows where a column the check reads
is null are not judged (the nulls check covers them).

`to_pandera(schema)` and `from_pandera(pandera_schema)` translate the basic constraints
(dtype, nullable, inclusive ranges, `isin` categories, unique, a frame-level unique key) to
and from a `pandera.pandas.DataFrameSchema`; thresholds and drift have no pandera form.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nbops.errors import QualityInputError, SchemaVersionError, require_extra

if TYPE_CHECKING:
    import pandera.pandas as pa

SCHEMA_VERSION = 1

Kind = Literal["integer", "float", "boolean", "string", "categorical", "datetime"]
NUMERIC_KINDS: frozenset[str] = frozenset({"integer", "float"})
TEXT_KINDS: frozenset[str] = frozenset({"string", "categorical"})

DEFAULT_PSI_WARN = 0.1
DEFAULT_PSI_FAIL = 0.25
DEFAULT_KS_PVALUE = 0.001
DEFAULT_KS_STATISTIC_FAIL = 0.2
DEFAULT_NEW_CATEGORY_SHARE = 0.01
KS_POINTS = 1000
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_ROUND = 8  # decimals kept for proportions and CDF values in the file


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- custom checks ---------------------------------------------------------------------------

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_GRAMMAR = "a comparison such as 'value >= 0', 'value <= other_column' or 'value in (\"a\", \"b\")'"


def parse_expression(text: str) -> ast.Expression:
    """Parse a custom check's expression; ValueError says what is not allowed."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"{text!r} is not a valid expression ({e.msg}); write {_GRAMMAR}") from e
    _check_boolean(tree.body)
    return tree


def _check_boolean(node: ast.expr) -> None:
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check_boolean(value)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check_boolean(node.operand)
    elif isinstance(node, ast.Compare):
        _check_operand(node.left)
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.Tuple | ast.List | ast.Set) or not all(
                    _is_literal(e) for e in right.elts
                ):
                    raise ValueError(f"'in' needs a literal list, not {ast.unparse(right)!r}")
            elif type(op) in _COMPARE:
                _check_operand(right)
            else:
                raise ValueError(f"{ast.unparse(node)!r}: only < <= > >= == != in, not in")
    else:
        raise ValueError(f"{ast.unparse(node)!r} is not a condition; write {_GRAMMAR}")


def _is_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, bool | int | float | str)


def _check_operand(node: ast.expr) -> None:
    if _is_literal(node) or isinstance(node, ast.Name) or _column_call(node) is not None:
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check_operand(node.operand)
    elif isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        _check_operand(node.left)
        _check_operand(node.right)
    else:
        raise ValueError(f"{ast.unparse(node)!r} is not allowed in a check; write {_GRAMMAR}")


def _column_call(node: ast.expr) -> str | None:
    """The name in `col("name")`, or None if the node is not such a call."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "col"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def expression_names(tree: ast.Expression) -> list[str]:
    """The names an expression reads, in order ("value" included as such)."""
    names: list[str] = []
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        name = _column_call(node) if isinstance(node, ast.Call) else None
        if name is None and isinstance(node, ast.Name) and id(node) not in calls:
            name = node.id
        if name is not None and name not in names:
            names.append(name)
    return names


def evaluate_expression(
    tree: ast.Expression, frame: pd.DataFrame, value_column: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate a parsed check over a frame, vectorised: (holds, judged) boolean arrays.

    `judged` is False on rows where a column the check reads is null; raises KeyError for a
    column the frame lacks and TypeError/ValueError for operands that cannot be compared.
    """
    n = len(frame)
    series: dict[str, pd.Series] = {}
    for name in expression_names(tree):
        column = value_column if name == "value" else name
        if column is None:
            raise KeyError("value")
        series[name] = frame[column]
    judged = np.ones(n, dtype=bool)
    for s in series.values():
        judged &= ~np.asarray(s.isna())
    holds = _as_bool(_eval(tree.body, series), n)
    return holds, judged


def _as_bool(x: Any, n: int) -> np.ndarray:
    if isinstance(x, pd.Series):
        return x.to_numpy(dtype=bool, na_value=False)
    if isinstance(x, np.ndarray):
        return x.astype(bool, copy=False)
    return np.full(n, bool(x))


def _eval(node: ast.expr, env: Mapping[str, pd.Series]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Call):
        return env[_column_call(node) or ""]
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, env)
        if isinstance(node.op, ast.Not):
            return ~_as_bool(operand, _length(env))
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        return _ARITHMETIC[type(node.op)](_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, ast.BoolOp):
        n = _length(env)
        parts = [_as_bool(_eval(v, env), n) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        return combine.reduce(parts)
    if isinstance(node, ast.Compare):
        n = _length(env)
        result = np.ones(n, dtype=bool)
        left = _eval(node.left, env)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                assert isinstance(comparator, ast.Tuple | ast.List | ast.Set)
                values = [ast.literal_eval(e) for e in comparator.elts]
                inside = (
                    _as_bool(left.isin(values), n)
                    if isinstance(left, pd.Series)
                    else np.full(n, left in values)
                )
                result &= inside if isinstance(op, ast.In) else ~inside
                continue
            right = _eval(comparator, env)
            result &= _as_bool(_COMPARE[type(op)](left, right), n)
            left = right
        return result
    raise ValueError(f"{ast.unparse(node)!r} is not allowed")  # parse_expression rules it out


def _length(env: Mapping[str, pd.Series]) -> int:
    return len(next(iter(env.values()))) if env else 1


class CustomCheck(_Model):
    """A rule of one expression over a row, e.g. `value >= 0` or `value <= col("upper")`."""

    name: str = Field(min_length=1)
    column: str | None = Field(default=None, description="what `value` means in the expression")
    expression: str
    severity: Literal["fail", "warn"] = "fail"
    description: str = ""

    @field_validator("expression")
    @classmethod
    def _parses(cls, text: str) -> str:
        parse_expression(text)
        return text

    @model_validator(mode="after")
    def _value_needs_a_column(self) -> CustomCheck:
        if self.column is None and "value" in expression_names(self.parsed()):
            raise ValueError(f"check {self.name!r} uses 'value' but names no column")
        return self

    def parsed(self) -> ast.Expression:
        return parse_expression(self.expression)

    def columns_read(self) -> list[str]:
        """The frame columns the expression reads (`value` resolved to `column`)."""
        out: list[str] = []
        for name in expression_names(self.parsed()):
            column = self.column if name == "value" else name
            if column is not None and column not in out:
                out.append(column)
        return out


# -- the schema --------------------------------------------------------------------------------


class ReferenceStats(_Model):
    """What drift is measured against: bins and a CDF for numbers, frequencies for categories."""

    rows: int = Field(ge=1, description="non-null reference values these statistics describe")
    bin_edges: list[float] | None = None
    proportions: list[float] | None = None
    cdf_values: list[float] | None = None
    cdf: list[float] | None = None
    frequencies: dict[str, float] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ReferenceStats:
        if (self.bin_edges is None) != (self.proportions is None):
            raise ValueError("bin_edges and proportions go together")
        if self.bin_edges is not None and self.proportions is not None:
            if len(self.proportions) != len(self.bin_edges) + 1:
                raise ValueError("proportions needs one entry more than bin_edges")
            if any(b <= a for a, b in zip(self.bin_edges, self.bin_edges[1:], strict=False)):
                raise ValueError("bin_edges must increase")
            if any(p < 0 for p in self.proportions):
                raise ValueError("proportions cannot be negative")
        if (self.cdf_values is None) != (self.cdf is None):
            raise ValueError("cdf_values and cdf go together")
        if self.cdf_values is not None and self.cdf is not None:
            if len(self.cdf_values) != len(self.cdf):
                raise ValueError("cdf_values and cdf must have the same length")
            if any(b <= a for a, b in zip(self.cdf_values, self.cdf_values[1:], strict=False)):
                raise ValueError("cdf_values must increase")
            if any(not 0 <= c <= 1 for c in self.cdf):
                raise ValueError("cdf values must be within [0, 1]")
        if self.frequencies is not None and any(f < 0 for f in self.frequencies.values()):
            raise ValueError("frequencies cannot be negative")
        return self


class ColumnSchema(_Model):
    """One column: its kind, its constraints, what was observed, and its drift reference."""

    name: str
    kind: Kind
    dtype: str | None = Field(default=None, description="the reference's pandas dtype")
    nullable: bool = True
    null_fraction: float | None = Field(default=None, ge=0.0, le=1.0, description="observed")
    max_null_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    min: int | float | str | None = None
    max: int | float | str | None = None
    categories: list[str] | None = None
    unique: bool = False
    psi_warn: float | None = Field(default=None, ge=0.0)
    psi_fail: float | None = Field(default=None, ge=0.0)
    ks_pvalue: float | None = Field(default=None, ge=0.0, le=1.0)
    ks_statistic_fail: float | None = Field(default=None, ge=0.0, le=1.0)
    new_category_share: float | None = Field(default=None, ge=0.0, le=1.0)
    quantiles: dict[str, float] | None = Field(default=None, description="observed")
    reference: ReferenceStats | None = None

    @model_validator(mode="after")
    def _coherent(self) -> ColumnSchema:
        if (
            self.psi_warn is not None
            and self.psi_fail is not None
            and self.psi_warn > self.psi_fail
        ):
            raise ValueError(f"{self.name}: psi_warn must not exceed psi_fail")
        bounds: list[Any] = [b for b in (self.min, self.max) if b is not None]
        if bounds and self.kind in NUMERIC_KINDS:
            if any(isinstance(b, str | bool) for b in bounds):
                raise ValueError(f"{self.name}: min and max of a numeric column are numbers")
        elif bounds and self.kind == "datetime":
            try:
                bounds = [_timestamp(b) for b in bounds]
            except (TypeError, ValueError) as e:
                raise ValueError(f"{self.name}: min and max are ISO timestamps ({e})") from e
        elif bounds:
            raise ValueError(f"{self.name}: min and max apply to numeric and datetime columns")
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            raise ValueError(f"{self.name}: min is above max")
        if self.categories is not None and self.kind not in TEXT_KINDS:
            raise ValueError(f"{self.name}: categories apply to categorical and string columns")
        return self


def _timestamp(value: Any) -> pd.Timestamp:
    if isinstance(value, bool) or not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return pd.Timestamp(value)


class Environment(_Model):
    """Where data is validated: columns that must be absent there, and ones that may be."""

    absent: list[str] = Field(default_factory=list)
    optional: list[str] = Field(default_factory=list)


def _default_environments() -> dict[str, Environment]:
    return {"training": Environment(), "serving": Environment()}


class Schema(_Model):
    """A table's expected columns and constraints, with drift references and custom checks."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    kind: Literal["nbops.schema"] = "nbops.schema"
    name: str | None = None
    rows: int | None = Field(default=None, description="rows of the reference it was inferred from")
    key: list[str] | None = None
    label: str | None = None
    environments: dict[str, Environment] = Field(default_factory=_default_environments)
    unexpected_columns: Literal["fail", "warn", "ignore"] = "warn"
    max_file_bytes: int | None = Field(default=None, ge=0)
    columns: list[ColumnSchema] = Field(min_length=1)
    checks: list[CustomCheck] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_resolve(self) -> Schema:
        names = [c.name for c in self.columns]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"columns: {name!r} appears twice")
            seen.add(name)
        if self.key is not None:
            if not self.key:
                raise ValueError("key: give at least one column, or null")
            for name in self.key:
                if name not in seen:
                    raise ValueError(f"key: {name!r} is not one of the columns")
        if self.label is not None and self.label not in seen:
            raise ValueError(f"label: {self.label!r} is not one of the columns")
        for env_name, env in self.environments.items():
            for name in [*env.absent, *env.optional]:
                if name not in seen:
                    raise ValueError(f"environments.{env_name}: {name!r} is not one of the columns")
        check_names: set[str] = set()
        for check in self.checks:
            if check.name in check_names:
                raise ValueError(f"checks: two checks are named {check.name!r}")
            check_names.add(check.name)
            for name in check.columns_read():
                if name not in seen:
                    raise ValueError(f"checks.{check.name}: {name!r} is not one of the columns")
        return self

    def column(self, name: str) -> ColumnSchema:
        for column in self.columns:
            if column.name == name:
                return column
        raise QualityInputError(f"the schema has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_json(self) -> str:
        """The schema as the JSON `save` writes (fields that do not apply left out)."""
        data = self.model_dump(mode="json")
        data["columns"] = [_drop_none(c) for c in data["columns"]]
        data["checks"] = [_drop_none(c) for c in data["checks"]]
        return _dumps(data) + "\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the schema as JSON (indent 2), atomically: a temporary file, then a rename."""
        target = Path(path)
        text = self.to_json()
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise QualityInputError(f"cannot write the schema to {target}: {e}") from e
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Schema:
        """Read a schema file; errors name the field at fault."""
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise QualityInputError(
                f"{source}: no such schema file", fix="infer one with infer_schema(df).save(path)"
            ) from e
        except (OSError, UnicodeDecodeError) as e:
            raise QualityInputError(f"{source}: cannot read the schema file: {e}") from e
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise QualityInputError(
                f"{source}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})",
                fix="correct the file, or infer the schema again",
            ) from e
        return cls.from_dict(data, source=str(source))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "schema") -> Schema:
        """Validate a schema held as a dict (the parsed JSON of a schema file)."""
        if not isinstance(data, dict):
            raise QualityInputError(
                f"{source}: a schema is a JSON object, not {type(data).__name__}"
            )
        version = data.get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{source}: schema_version {version} was written by a newer nbops "
                f"(this one reads up to {SCHEMA_VERSION})",
                fix="upgrade nbops (pip install -U nbops)",
            )
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            problems = [_describe_error(err, data) for err in e.errors()[:3]]
            more = f" (and {e.error_count() - 3} more)" if e.error_count() > 3 else ""
            raise QualityInputError(
                f"{source}: invalid schema: {'; '.join(problems)}{more}",
                fix="correct the field, or infer the schema again",
            ) from e


def _describe_error(err: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """`columns[2] ('age').psi_warn: Input should be ...` for one pydantic error."""
    parts: list[str] = []
    node: Any = data
    for item in err["loc"]:
        if isinstance(item, int):
            label = f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                label += f" ({node['name']!r})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{''.join(parts)}: {message}" if parts else message


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def _dumps(value: Any, level: int = 0) -> str:
    """JSON with an indent of 2, but lists of plain values on one line (long numeric lists)."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        items = [f"{inner}{_dumps(v, level + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, allow_nan=False, ensure_ascii=False)


# -- inference ---------------------------------------------------------------------------------


def _scalar_kind(dtype: Any) -> Literal["boolean", "integer", "float", "datetime"] | None:
    """The kind of a boolean, integer, float or datetime dtype; None for any other."""
    if ptypes.is_bool_dtype(dtype):
        return "boolean"
    if ptypes.is_integer_dtype(dtype):
        return "integer"
    if ptypes.is_float_dtype(dtype):
        return "float"
    if ptypes.is_datetime64_any_dtype(dtype):
        return "datetime"
    return None


def column_family(s: pd.Series) -> str:
    """What a column holds, from its dtype: a kind, "category", "object-boolean" or "other:..."."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if (kind := _scalar_kind(dtype)) is not None:
        return kind
    if isinstance(dtype, pd.StringDtype) or (
        isinstance(dtype, pd.ArrowDtype) and ptypes.is_string_dtype(dtype)
    ):
        return "string"
    if dtype == np.dtype(object):
        inferred = ptypes.infer_dtype(s, skipna=True)
        if inferred in ("string", "empty"):
            return "string"
        if inferred == "boolean":
            return "object-boolean"
        return f"other:{inferred}"
    return f"other:{dtype}"


def null_count(s: pd.Series) -> int:
    """Nulls in a column, without building more than one boolean array."""
    dtype = s.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind in "iub":
            return 0
        if dtype.kind == "f":
            return int(np.count_nonzero(np.isnan(s.to_numpy())))
    return int(np.count_nonzero(np.asarray(s.isna())))


def _check_frame(df: Any, what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise QualityInputError(f"{what} needs a pandas DataFrame, not {type(df).__name__}")
    if df.shape[1] == 0:
        raise QualityInputError(f"{what}: the frame has no columns")
    if len(df) == 0:
        raise QualityInputError(f"{what}: the frame has no rows")
    names = list(df.columns)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise QualityInputError(
            f"{what}: column names must be strings, not {bad[0]!r}",
            fix="rename them, e.g. df.columns = df.columns.astype(str)",
        )
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise QualityInputError(f"{what}: column {dup!r} appears twice")
    return df


def infer_schema(
    df: pd.DataFrame,
    *,
    label: str | None = None,
    key: str | Sequence[str] | None = None,
    categorical_max: int = 50,
    bins: int = 10,
    name: str | None = None,
) -> Schema:
    """Infer a schema, with drift references, from a reference frame (e.g. the training data)."""
    df = _check_frame(df, "infer_schema")
    if (
        isinstance(categorical_max, bool)
        or not isinstance(categorical_max, int)
        or categorical_max < 1
    ):
        raise QualityInputError(
            f"categorical_max must be a positive integer, not {categorical_max!r}"
        )
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= KS_POINTS:
        raise QualityInputError(f"bins must be an integer from 2 to {KS_POINTS}, not {bins!r}")
    if label is not None and label not in df.columns:
        raise QualityInputError(f"label {label!r} is not a column of the frame")
    keys = [key] if isinstance(key, str) else list(key) if key is not None else None
    if keys is not None:
        missing = [k for k in keys if k not in df.columns]
        if not keys or missing:
            raise QualityInputError(f"key {missing or keys!r} is not a column of the frame")
        duplicates = int(np.count_nonzero(df.duplicated(subset=keys).to_numpy()))
        if duplicates:
            raise QualityInputError(
                f"key {keys} is not unique in the frame: {duplicates} duplicate row(s)",
                fix="give columns that identify a row, or no key",
            )
    columns = [
        _infer_column(c, df[c], categorical_max, bins, is_key=c in (keys or ())) for c in df.columns
    ]
    environments = {
        "training": Environment(),
        "serving": Environment(absent=[label] if label is not None else []),
    }
    return Schema(
        name=name,
        rows=len(df),
        key=keys,
        label=label,
        environments=environments,
        columns=columns,
    )


def _infer_column(
    name: str, s: pd.Series, categorical_max: int, bins: int, *, is_key: bool = False
) -> ColumnSchema:
    n = len(s)
    nulls = null_count(s)
    fraction = nulls / n
    base: dict[str, Any] = {
        "name": name,
        "dtype": str(s.dtype),
        "nullable": nulls > 0,
        "null_fraction": round(fraction, 6),
        "max_null_fraction": min(1.0, round(1.5 * fraction + 0.01, 6)) if nulls else None,
    }
    family = column_family(s)
    if is_key and family in (*NUMERIC_KINDS, "string", "category", "datetime"):
        # a key identifies rows: new data brings new keys, so no range, categories or drift
        return ColumnSchema(kind=_KEY_KINDS[family], **base)
    if family in NUMERIC_KINDS:
        values = sorted_finite(s)
        if values.size:
            lo, hi = values[0].item(), values[-1].item()
            base.update(min=lo, max=hi, quantiles=_quantiles(values))
            base.update(reference=numeric_reference(values, bins), **_numeric_thresholds())
        return ColumnSchema(kind="integer" if family == "integer" else "float", **base)
    if family in ("boolean", "object-boolean"):
        reference = boolean_reference(s)
        if reference is not None:
            base.update(reference=reference, psi_warn=DEFAULT_PSI_WARN, psi_fail=DEFAULT_PSI_FAIL)
        return ColumnSchema(kind="boolean", **base)
    if family == "datetime":
        return ColumnSchema(kind="datetime", **base)
    if family in ("string", "category"):
        observed = value_counts(s)
        is_category = isinstance(s.dtype, pd.CategoricalDtype)
        if len(observed) > categorical_max or (
            is_category and len(s.dtype.categories) > categorical_max
        ):
            return ColumnSchema(kind="string", **base)
        counts = counts_by_text(observed)
        declared = [str(c) for c in s.dtype.categories] if is_category else sorted(counts)
        total = sum(counts.values())
        if total:
            frequencies = {k: round(v / total, _ROUND) for k, v in counts.items()}
            base["reference"] = ReferenceStats(rows=total, frequencies=frequencies)
            base.update(
                psi_warn=DEFAULT_PSI_WARN,
                psi_fail=DEFAULT_PSI_FAIL,
                new_category_share=DEFAULT_NEW_CATEGORY_SHARE,
            )
        return ColumnSchema(kind="categorical", categories=declared, **base)
    raise QualityInputError(
        f"column {name!r} holds {family.removeprefix('other:')} values, which nbops cannot check",
        fix="convert it (e.g. astype('str') or pd.to_datetime) or drop it before inferring",
    )


_KEY_KINDS: dict[str, Kind] = {
    "integer": "integer",
    "float": "float",
    "string": "string",
    "category": "string",
    "datetime": "datetime",
}


def _numeric_thresholds() -> dict[str, float]:
    return {
        "psi_warn": DEFAULT_PSI_WARN,
        "psi_fail": DEFAULT_PSI_FAIL,
        "ks_pvalue": DEFAULT_KS_PVALUE,
        "ks_statistic_fail": DEFAULT_KS_STATISTIC_FAIL,
    }


def sorted_finite(s: pd.Series) -> np.ndarray:
    """A column's finite values, sorted (one copy of the column)."""
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return np.sort(s.to_numpy())
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        x = s.to_numpy()
        values = x[np.isfinite(x)]
    elif ptypes.is_integer_dtype(dtype):
        values = s.dropna().to_numpy(dtype=np.int64)
    else:
        x = s.to_numpy(dtype=np.float64, na_value=np.nan)
        values = x[np.isfinite(x)]
    values.sort()
    return values


def _quantiles(values: np.ndarray) -> dict[str, float]:
    """Linear-interpolated quantiles (numpy's default method) of sorted values."""
    positions = np.asarray(QUANTILES) * (values.size - 1)
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, values.size - 1)
    low, high = values[below].astype(np.float64), values[above].astype(np.float64)
    result = low + (positions - below) * (high - low)
    return {str(q): float(v) for q, v in zip(QUANTILES, result, strict=True)}


def numeric_reference(values: np.ndarray, bins: int) -> ReferenceStats:
    """Bins and CDF points of sorted finite values (see the module docstring)."""
    n = values.size
    x = values.astype(np.float64, copy=False)
    cuts = np.ceil(np.arange(1, bins) / bins * n).astype(np.int64) - 1
    edges = np.unique(x[np.clip(cuts, 0, n - 1)])
    below = np.searchsorted(x, edges, side="right")
    proportions = np.diff(np.concatenate(([0], below, [n]))) / n
    points = min(KS_POINTS, n)
    grid_at = np.ceil(np.arange(1, points + 1) / points * n).astype(np.int64) - 1
    grid = np.unique(x[np.clip(grid_at, 0, n - 1)])
    cdf = np.searchsorted(x, grid, side="right") / n
    return ReferenceStats(
        rows=n,
        bin_edges=edges.tolist(),
        proportions=np.round(proportions, _ROUND).tolist(),
        cdf_values=grid.tolist(),
        cdf=np.round(cdf, _ROUND).tolist(),
    )


def value_counts(s: pd.Series) -> pd.Series:
    """Non-null values' counts, most frequent first, values never seen left out (one pass)."""
    counts = s.value_counts(dropna=True, sort=True)
    if isinstance(s.dtype, pd.CategoricalDtype):
        counts = counts[counts.to_numpy() > 0]
    return counts


def counts_by_text(counts: pd.Series) -> dict[str, int]:
    """Value counts keyed by each value's text (what the schema's categories hold)."""
    out: dict[str, int] = {}
    for value, count in zip(counts.index, counts.to_numpy(), strict=True):
        key = str(value)
        out[key] = out.get(key, 0) + int(count)
    return out


def category_counts(s: pd.Series) -> dict[str, int]:
    return counts_by_text(value_counts(s))


def boolean_reference(s: pd.Series) -> ReferenceStats | None:
    counts = boolean_counts(s)
    total = sum(counts.values())
    if not total:
        return None
    frequencies = {k: round(v / total, _ROUND) for k, v in counts.items()}
    return ReferenceStats(rows=total, frequencies=frequencies)


def boolean_counts(s: pd.Series) -> dict[str, int]:
    if isinstance(s.dtype, np.dtype) and s.dtype.kind == "b":
        trues = int(np.count_nonzero(s.to_numpy()))
        return {"False": len(s) - trues, "True": trues}
    counts = category_counts(s)
    return {"False": counts.get("False", 0), "True": counts.get("True", 0)} | counts


def reference_for(column: ColumnSchema, s: pd.Series, bins: int = 10) -> ReferenceStats | None:
    """Drift reference statistics of a column of another frame, for `column`'s kind."""
    if column.kind in NUMERIC_KINDS:
        if column_family(s) not in NUMERIC_KINDS:
            return None
        values = sorted_finite(s)
        edges = column.reference.bin_edges if column.reference else None
        n_bins = len(edges) + 1 if edges else bins
        return numeric_reference(values, max(2, n_bins)) if values.size else None
    if column.kind == "boolean":
        return boolean_reference(s)
    if column.kind == "categorical":
        counts = category_counts(s)
        total = sum(counts.values())
        if not total:
            return None
        return ReferenceStats(rows=total, frequencies={k: v / total for k, v in counts.items()})
    return None


# -- pandera -------------------------------------------------------------------------------------

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


def _environment(schema: Schema, environment: str) -> Environment:
    try:
        return schema.environments[environment]
    except KeyError:
        known = ", ".join(sorted(schema.environments)) or "none"
        raise QualityInputError(
            f"the schema has no environment {environment!r} (it has: {known})"
        ) from None


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
