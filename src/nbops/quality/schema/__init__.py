"""Data schemas: what a table should look like, inferred from a reference frame, kept as JSON.

    schema = infer_schema(train_df, label="churned", key="customer_id", name="customers")
    schema.save("schema.json")            # JSON, indent 2, meant to be read and edited
    schema = Schema.load("schema.json")   # a newer schema_version -> SchemaVersionError

A `Schema` holds one `ColumnSchema` per column: its kind ("integer", "float", "boolean",
"string", "categorical", "datetime"), the constraints checked by `nbops.quality.validate`
(nullable and `max_null_fraction`, `min`/`max`, allowed `categories`, `unique`), the observed
statistics they were inferred from, and the reference statistics drift is measured against,
each with its own editable thresholds (`psi_warn`, `psi_fail`, `ks_pvalue`,
`ks_statistic_fail`, `new_category_share`, `range_alpha`, `range_tolerance`). Fields that do not apply to a column's kind are
left out of the file; add them by hand to turn a check on (e.g. `"min"` on a datetime column,
as an ISO timestamp).

What inference decides, from the reference frame:

- kind: from the dtype; a string column with at most `categorical_max` distinct values (or
  a pandas categorical with at most that many categories) is "categorical" with those
  `categories` allowed, otherwise "string" (no value constraint, no drift);
- nulls: a column without nulls is not `nullable`; one with a null fraction f may have up to
  `max_null_fraction = min(1, 1.5 f + 0.01)`;
- range: numeric `min`/`max` are the observed extremes (finite values only), with a
  `range_tolerance` learnt on random half splits of the reference (how far past them new
  values may go before the check fails whatever their number; `infer` module docstring) and
  `range_alpha` (0.001: the count test's level); datetimes get no range (time moves on: add
  one by hand if it should not);
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

from nbops.quality.schema.expressions import evaluate_expression, expression_names, parse_expression
from nbops.quality.schema.infer import (
    KS_POINTS,
    QUANTILES,
    boolean_counts,
    boolean_reference,
    category_counts,
    column_family,
    counts_by_text,
    infer_schema,
    null_count,
    numeric_reference,
    reference_for,
    sorted_finite,
    value_counts,
)
from nbops.quality.schema.model import (
    DEFAULT_KS_PVALUE,
    DEFAULT_KS_STATISTIC_FAIL,
    DEFAULT_NEW_CATEGORY_SHARE,
    DEFAULT_PSI_FAIL,
    DEFAULT_PSI_WARN,
    NUMERIC_KINDS,
    SCHEMA_VERSION,
    TEXT_KINDS,
    ColumnSchema,
    CustomCheck,
    Environment,
    Kind,
    ReferenceStats,
    Schema,
)
from nbops.quality.schema.pandera_interop import from_pandera, to_pandera

__all__ = [
    "DEFAULT_KS_PVALUE",
    "DEFAULT_KS_STATISTIC_FAIL",
    "DEFAULT_NEW_CATEGORY_SHARE",
    "DEFAULT_PSI_FAIL",
    "DEFAULT_PSI_WARN",
    "KS_POINTS",
    "NUMERIC_KINDS",
    "QUANTILES",
    "SCHEMA_VERSION",
    "TEXT_KINDS",
    "ColumnSchema",
    "CustomCheck",
    "Environment",
    "Kind",
    "ReferenceStats",
    "Schema",
    "boolean_counts",
    "boolean_reference",
    "category_counts",
    "column_family",
    "counts_by_text",
    "evaluate_expression",
    "expression_names",
    "from_pandera",
    "infer_schema",
    "null_count",
    "numeric_reference",
    "parse_expression",
    "reference_for",
    "sorted_finite",
    "to_pandera",
    "value_counts",
]
