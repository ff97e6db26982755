"""The schema file's model: `Schema` (columns, key, label, environments, custom checks),
`ColumnSchema` (kind, constraints, thresholds), `ReferenceStats` (what drift is measured
against), `RangeTolerance` (how far past its observed range a numeric column may go before
its range check fails outright), `CustomCheck`; JSON load/save with its schema version, and
the default thresholds.

Schema versions: 1, and 2 (adds `range_tolerance` and `range_alpha` to numeric columns). Both
are read; a schema from a newer nbops is refused (`SchemaVersionError`). A version-1 schema has
no learnt tolerance: `ColumnSchema.tolerance()` falls back to one from its stored quantiles.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nbops._atomic import atomic_write_text
from nbops.errors import QualityInputError, SchemaVersionError
from nbops.quality.schema.expressions import expression_names, parse_expression

SCHEMA_VERSION = 2

Kind = Literal["integer", "float", "boolean", "string", "categorical", "datetime"]
NUMERIC_KINDS: frozenset[str] = frozenset({"integer", "float"})
TEXT_KINDS: frozenset[str] = frozenset({"string", "categorical"})

DEFAULT_PSI_WARN = 0.1
DEFAULT_PSI_FAIL = 0.25
DEFAULT_KS_PVALUE = 0.001
DEFAULT_KS_STATISTIC_FAIL = 0.2
DEFAULT_NEW_CATEGORY_SHARE = 0.01
DEFAULT_RANGE_ALPHA = 0.001
# the tail gap a range tolerance is measured in: max - q(0.95), or further in when that is 0
TAIL_QUANTILES_HIGH = ("0.95", "0.75", "0.5")
TAIL_QUANTILES_LOW = ("0.05", "0.25", "0.5")
FALLBACK_TOLERANCE_FACTOR = 2.0  # for schemas without a learnt tolerance: 2 tail gaps


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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


class RangeTolerance(_Model):
    """How far below `min` (`low`) and above `max` (`high`) values may fall, in the column's
    units, before the range check fails whatever their number (see `nbops.quality.validate`)."""

    low: float = Field(ge=0.0)
    high: float = Field(ge=0.0)


def tail_gap(extreme: float, quantiles: Mapping[str, float], keys: tuple[str, ...]) -> float:
    """|extreme - q| for the first of `keys` whose quantile differs from the extreme; 0 if none."""
    for key in keys:
        q = quantiles.get(key)
        if q is not None and q != extreme:
            return abs(float(extreme) - float(q))
    return 0.0


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
    range_tolerance: RangeTolerance | None = Field(default=None, description="learnt")
    range_alpha: float | None = Field(default=None, ge=0.0, le=1.0)
    reference: ReferenceStats | None = None

    def tolerance(self) -> RangeTolerance | None:
        """The learnt `range_tolerance`; for a schema without one, 2 tail gaps from the stored
        quantiles (max - q0.95, min to q0.05); None without quantiles (the range is then hard)."""
        if self.range_tolerance is not None:
            return self.range_tolerance
        q = self.quantiles
        lo, hi = self.min, self.max
        if self.kind not in NUMERIC_KINDS or not q:
            return None
        if not isinstance(lo, int | float) or not isinstance(hi, int | float):
            return None
        factor = FALLBACK_TOLERANCE_FACTOR
        return RangeTolerance(
            low=factor * tail_gap(lo, q, TAIL_QUANTILES_LOW),
            high=factor * tail_gap(hi, q, TAIL_QUANTILES_HIGH),
        )

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
        if self.kind not in NUMERIC_KINDS:
            for field in ("range_tolerance", "range_alpha"):
                if getattr(self, field) is not None:
                    raise ValueError(f"{self.name}: {field} applies to numeric columns")
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
        if self.schema_version < 2 and any(
            c.range_tolerance is not None or c.range_alpha is not None for c in self.columns
        ):
            self.schema_version = 2  # a field of version 2 makes it a version-2 schema
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
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, text)
        except OSError as e:
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


def _environment(schema: Schema, environment: str) -> Environment:
    try:
        return schema.environments[environment]
    except KeyError:
        known = ", ".join(sorted(schema.environments)) or "none"
        raise QualityInputError(
            f"the schema has no environment {environment!r} (it has: {known})"
        ) from None
