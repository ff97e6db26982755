"""Validate a frame, or a .csv/.parquet file, against a Schema: one report of every check.

    report = validate(df, schema)                          # environment="training"
    report = validate("batch.parquet", "schema.json", environment="serving")
    report.passed, report.failed_checks, report.gate_values()

Checks, each reported as pass, warn or fail with the count and fraction of offending rows,
up to five example values (and row positions) and a message:

- file inputs: `file_format` (a supported extension that parses into rows; a bad file is a
  failed check, not a traceback) and `file_size` (against the schema's `max_file_bytes`);
- `missing_column`, `unexpected_column` (columns the schema does not know: the schema's
  `unexpected_columns` says fail, warn or ignore; a column that must be absent in the
  environment, like the label in "serving", always fails);
- per column: `dtype` (the kind's dtypes; integers stored as floats pass when every value is
  whole, as CSV files with nulls hold them), `nulls` (`nullable`, `max_null_fraction`),
  `range` (`min`/`max`), `categories` (allowed values), `unique`; and the key as a whole
  (`duplicate_keys`); `custom` checks;
- `range` on numbers, when the schema has a tolerance (learnt, or 2 tail gaps from the
  quantiles of a version-1 schema): values within [min, max] pass; any value beyond
  [min - tolerance.low, max + tolerance.high] fails; otherwise the k values past the max are
  judged by the exact count test — with n reference and m new values drawn alike,
  P(K >= k) = C(m, k) / C(n + m, k) — failing when p < range_alpha / 2 (each end gets half)
  and warning otherwise (the same below the min). Without quantiles or reference statistics
  (a hand-written range) and on datetimes, any value outside fails;
- `nulls` past limits the schema inferred (it records the reference's null fraction and
  rows) are judged the same way: nulls where the reference had none by the count test,
  more nulls than `max_null_fraction` by the hypergeometric tail of the new rows' share of
  all nulls; below `NULL_ALPHA` (0.001) fails, else warns. Hand-set limits stay hard;
- drift, when the schema (or `reference=`) has reference statistics and `drift=True`:
  numbers get `drift_psi` (chi-square test of the counts in the reference bins, adjacent
  bins merged until each expects 5 rows; PSI over those bins, each proportion floored at
  1e-4, as the effect size) and `drift_ks` (Kolmogorov-Smirnov: the largest gap between the
  data's and the reference's CDF at the reference's stored quantiles, and its asymptotic
  two-sample p-value); categories and booleans get `drift_categories` (the chi-square test
  over the categories and the count test for values never seen; PSI and total-variation
  distance alongside) and categories `new_categories` (share of values in a category the
  reference never had: above `new_category_share` fails, any warns). The drift tests of one
  validation are judged together by Holm's step-down (family-wise alpha 0.001): significant
  with a material effect (PSI above `psi_fail`, KS gap of `ks_statistic_fail` or more)
  fails, significant with a smaller one warns, not significant passes (see `drift`).

Everything is vectorised: one pass per column and check, masks built one column at a time,
and the frame is never copied (drift places each value among the reference's points a
block at a time, without sorting; known categories of Arrow text are counted from its
buffers). On large
frames the columns are checked in threads (`workers=`); the report does not depend on it.
"""

from nbops.quality.validate.drift import PSI_EPSILON
from nbops.quality.validate.files import read_frame
from nbops.quality.validate.report import (
    DRIFT_KINDS,
    REPORT_VERSION,
    CheckKind,
    CheckResult,
    ReportSummary,
    Status,
    ValidationReport,
)
from nbops.quality.validate.run import PARALLEL_MIN_CELLS, _workers, validate
from nbops.quality.validate.values import CHUNK, EXAMPLES

__all__ = [
    "CHUNK",
    "DRIFT_KINDS",
    "EXAMPLES",
    "PARALLEL_MIN_CELLS",
    "PSI_EPSILON",
    "REPORT_VERSION",
    "CheckKind",
    "CheckResult",
    "ReportSummary",
    "Status",
    "ValidationReport",
    "_workers",
    "read_frame",
    "validate",
]
