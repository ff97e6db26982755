"""Champion vs challenger: two bundles' metrics and slice metrics, and the gates' verdict.

Two ways:
- `compare_bundles(champion, challenger)`: the metrics recorded in both manifests side by
  side (no data needed), gates on the challenger with the champion as `baseline.NAME`.
- `compare_on_data(champion, challenger, data)`: both bundles score the same labelled rows;
  per metric and per slice, both values, the difference (challenger - champion) with a
  paired bootstrap interval, its p-value and McNemar's test for accuracy, then the gates
  (`diff.accuracy.ci_low > 0`, `slices.recall.min_diff >= -0.02`, ...). `DataComparison`
  has `.passed`, `.summary()` (a registry event's detail), `.to_dict()` and `.to_html()`.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from nbops.bundle.load import load_bundle
from nbops.config import load_project
from nbops.errors import (
    BundleError,
    BundleIntegrityError,
    BundleSignatureError,
    QualityInputError,
)
from nbops.gates import GateResult, evaluate_gate, parse_gate

if TYPE_CHECKING:
    from nbops.quality.slices import Task

LOWER_IS_BETTER = frozenset({"mae", "rmse"})  # quality.slices' own, without loading pandas

# Deferred import: quality.slices (pandas) in gate_values, only for a bundle that holds slice
# metrics, so `nbops bundle compare` reports a missing bundle before pandas loads.


@dataclass
class BundleComparison:
    rows: list[tuple[str, float | None, float | None]]
    gates: list[GateResult]


def gate_values(manifest: Any) -> dict[str, float]:
    """What gates can name for a bundle: its run's metrics and its slice metrics' values.

    Slice metrics that are not an nbops slice report (`build_bundle` takes any mapping, and
    the model card shows it as given) add no values: a gate naming one fails as unknown."""
    values = dict(manifest.source.metrics)
    if manifest.source.slice_metrics:
        from pydantic import ValidationError

        from nbops.quality.slices import SliceReport

        try:
            report = SliceReport.model_validate(manifest.source.slice_metrics)
        except ValidationError:
            return values
        values.update(report.gate_values())
    return values


def compare_bundles(
    champion: Path, challenger: Path, *, extra_gates: list[str], **trust: Any
) -> BundleComparison:
    """Load (and verify) both bundles; check the project's gates (plus `extra_gates`) on the
    challenger, with the champion's values as `baseline.NAME`. `trust`: load_bundle's
    `trusted_keys` and `require_signature`."""
    a = gate_values(load_bundle(champion, **trust).manifest)
    b = gate_values(load_bundle(challenger, **trust).manifest)
    rows = [(name, a.get(name), b.get(name)) for name in sorted(set(a) | set(b))]
    texts = [*load_project().config.gates, *extra_gates]
    values = {**b, **{f"baseline.{k}": v for k, v in a.items()}}
    return BundleComparison(rows, [evaluate_gate(parse_gate(t), values) for t in texts])


# -- champion vs challenger on labelled data ---------------------------------------------------

MIN_SLICE_ROWS = 30
DEFAULT_GATES = {
    "classification": ["diff.accuracy.ci_low > 0"],
    "regression": ["diff.rmse.ci_high < 0"],
}


@dataclass(frozen=True)
class MetricDiff:
    """One metric of both bundles on the same rows: the values, the challenger's difference
    (challenger - champion), its paired bootstrap interval and p-value, and whether it is
    significant. For accuracy overall, McNemar's p-value too, and `significant` needs both
    (McNemar p < 1 - confidence and an interval that excludes 0)."""

    metric: str
    champion: float | None
    challenger: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool
    rows: int
    mcnemar_p: float | None = None
    reason: str | None = None

    @property
    def better(self) -> bool | None:
        """Whether the challenger is significantly better (None: not significant)."""
        if not self.significant or self.diff is None:
            return None
        return (self.diff < 0) if self.metric in LOWER_IS_BETTER else (self.diff > 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "champion": self.champion,
            "challenger": self.challenger,
            "diff": self.diff,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "significant": self.significant,
            "rows": self.rows,
            "mcnemar_p": self.mcnemar_p,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class SliceDiff:
    """Every metric's comparison on one slice (`too_small`: fewer rows than min_size; shown,
    left out of the `slices.*` gate values)."""

    slice: Any  # nbops.quality.slices.SlicePredicate
    name: str
    rows: int
    too_small: bool
    metrics: dict[str, MetricDiff]

    def to_dict(self) -> dict[str, Any]:
        return {
            "slice": self.name,
            "predicate": self.slice.model_dump(mode="json"),
            "rows": self.rows,
            "too_small": self.too_small,
            "metrics": {name: value.to_dict() for name, value in self.metrics.items()},
        }


@dataclass(frozen=True)
class BundleRef:
    """Which bundle took part: where it is, its name and version."""

    path: str
    name: str
    version: int

    def describe(self) -> str:
        return f"{self.name} v{self.version} ({self.path})"


@dataclass
class DataComparison:
    """The champion and the challenger scored on the same labelled rows (compare_on_data)."""

    champion: BundleRef
    challenger: BundleRef
    data: str | None
    label: str
    task: str
    rows: int
    metrics: dict[str, MetricDiff]
    mcnemar: Any  # nbops.quality.paired.McNemar | None
    slices: list[SliceDiff]
    gates: list[GateResult]
    values: dict[str, float]
    n_resamples: int
    seed: int | None
    confidence: float
    min_size: int
    seconds: float
    weak: list[Any] = field(default_factory=list)  # the challenger's weak segments
    weak_champion: dict[str, float | None] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def headline(self) -> str:
        """One line for a registry event's reason: the first metric's diff and interval."""
        first = next(iter(self.metrics.values()))
        return f"diff.{first.metric} {_signed(first.diff)} [{_signed(first.ci_low)}, " + (
            f"{_signed(first.ci_high)}] over {self.rows} rows"
        )

    def summary(self) -> dict[str, Any]:
        """What promote and retrain record in a registry event's detail: both bundles, the
        data, every overall metric's comparison, McNemar, the worst slice per metric, the
        gates and the verdict (JSON-safe)."""
        worst: dict[str, dict[str, Any]] = {}
        for metric in self.metrics:
            usable = [
                s for s in self.slices if not s.too_small and s.metrics[metric].diff is not None
            ]
            if usable:
                sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
                one = min(usable, key=lambda s: sign * (s.metrics[metric].diff or 0.0))
                worst[metric] = {"slice": one.name, **one.metrics[metric].to_dict()}
        return {
            "champion": asdict(self.champion),
            "challenger": asdict(self.challenger),
            "data": self.data,
            "label": self.label,
            "task": self.task,
            "rows": self.rows,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "confidence": self.confidence,
            "metrics": {name: value.to_dict() for name, value in self.metrics.items()},
            "mcnemar": None if self.mcnemar is None else self.mcnemar.to_dict(),
            "worst_slices": worst,
            "gates": [g.to_dict() for g in self.gates],
            "passed": self.passed,
            "headline": self.headline(),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything (`nbops bundle compare --json`): the summary, every slice, the gate
        values and the weak segments."""
        return {
            **self.summary(),
            "slices": [s.to_dict() for s in self.slices],
            "values": self.values,
            "min_size": self.min_size,
            "seconds": self.seconds,
            "weak": [
                {
                    **row.model_dump(mode="json"),
                    "champion": self.weak_champion.get(row.name),
                }
                for row in self.weak
            ],
        }

    def to_html(self) -> str:
        """A self-contained page: the verdict, the metrics table, the slices and the weak
        segments, in the inspection report's theme-aware table style."""
        from nbops.quality.report import html_page, html_table

        level = f"{self.confidence:.0%}"
        metric_rows = [
            (
                [
                    name,
                    _number(m.champion),
                    _number(m.challenger),
                    _signed(m.diff),
                    _interval(m),
                    _number(m.p_value),
                    _significance(m),
                ],
                _status(m),
            )
            for name, m in self.metrics.items()
        ]
        names = list(self.metrics)
        slice_rows = [
            (
                [s.name, str(s.rows)]
                + [f"{_signed(s.metrics[n].diff)} {_interval(s.metrics[n])}" for n in names],
                "skipped" if s.too_small else _worst_status(s),
            )
            for s in self.slices
        ]
        parts = [
            f"<p>Champion {html.escape(self.champion.describe())}; challenger "
            f"{html.escape(self.challenger.describe())}; {self.rows} rows"
            + (f" of {html.escape(self.data)}" if self.data else "")
            + f", {self.n_resamples} paired bootstrap resamples (seed {self.seed}).</p>",
            f"<h3>Verdict: {'pass' if self.passed else 'fail'}</h3>",
            html_table(
                ["result", "gate", "why"],
                [
                    (["pass" if g.passed else "fail", g.gate, g.reason], _gate_status(g))
                    for g in self.gates
                ],
            ),
            "<h2>Metrics</h2>",
            html_table(
                ["metric", "champion", "challenger", "diff", f"{level} CI", "p", "significant"],
                metric_rows,
            ),
        ]
        if slice_rows:
            parts += [
                "<h2>Slices (challenger - champion)</h2>",
                html_table(["slice", "rows", *names], slice_rows),
            ]
        if self.weak:
            parts += [
                "<h2>Weak segments of the challenger</h2>",
                html_table(
                    ["segment", "rows", "metric", "challenger", "champion", f"{level} CI"],
                    [
                        (
                            [
                                row.name,
                                str(row.count),
                                row.metric,
                                _number(row.value),
                                _number(self.weak_champion.get(row.name)),
                                f"[{_number(row.ci_low)}, {_number(row.ci_high)}]",
                            ],
                            None,
                        )
                        for row in self.weak
                    ],
                ),
            ]
        return html_page("Champion vs challenger", "".join(parts))


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"


def _interval(m: MetricDiff) -> str:
    if m.ci_low is None or m.ci_high is None:
        return f"({m.reason})" if m.reason else ""
    return f"[{m.ci_low:+.4f}, {m.ci_high:+.4f}]"


def _significance(m: MetricDiff) -> str:
    text = {True: "better", False: "worse", None: "no"}[m.better]
    if m.mcnemar_p is not None:
        text += f" (McNemar p={m.mcnemar_p:.4g})"
    return text


def _status(m: MetricDiff) -> str | None:
    return {True: "pass", False: "fail", None: None}[m.better]


def _worst_status(s: SliceDiff) -> str | None:
    verdicts = [m.better for m in s.metrics.values()]
    if False in verdicts:
        return "fail"
    return "pass" if True in verdicts else None


def _gate_status(g: GateResult) -> str:
    return "pass" if g.passed else "fail"


def _as_bundle(ref: Any, trust: dict[str, Any]) -> Any:
    """A loaded Bundle as it is; a path or registry reference, resolved and loaded."""
    if hasattr(ref, "manifest") and hasattr(ref, "predict"):
        return ref
    from nbops.bundle.refs import resolve_bundle

    return load_bundle(resolve_bundle(ref).path, **trust)


def _task(bundle: Any) -> str:
    output = bundle.manifest.output
    if output.classes is not None or output.prediction == "class":
        return "classification"
    if output.prediction == "number":
        return "regression"
    raise QualityInputError(
        f"{bundle.name} v{bundle.version} predicts values that are neither classes nor "
        "numbers, so there are no metrics to compare",
        fix="compare classifiers or regressors",
    )


def _label_of(bundle: Any, label: str | None) -> str:
    if label is not None:
        return label
    named = bundle.manifest.serving.label or getattr(bundle.schema, "label", None)
    if named is None:
        raise QualityInputError(
            f"the champion ({bundle.name} v{bundle.version}) names no label column",
            fix="give --label COL (label=) naming the column that holds the true values",
        )
    return str(named)


def _predictions(bundle: Any, frame: Any, role: str, where: str) -> Any:
    """The bundle's predictions for every row; a row it refuses is a BundleError naming the
    row (found by halving the frame: about 2n rows scored in all)."""
    import numpy as np

    try:
        return np.asarray(bundle.predict(frame))
    except (BundleIntegrityError, BundleSignatureError):
        raise
    except BundleError as whole:
        error: BundleError = whole

    def refuses(start: int, stop: int) -> BundleError | None:
        try:
            bundle.predict(frame.iloc[start:stop])
        except BundleError as e:
            return e
        return None

    where_line = where.lower().endswith((".csv", ".csv.gz"))

    def place(row: int) -> str:
        return f"row {row + 1} of {where}" + (f" (line {row + 2})" if where_line else "")

    text = _text_in_number_column(bundle, frame)
    if text is not None:
        first, column, value = text
        raise BundleError(
            f"the {role} ({bundle.name} v{bundle.version}) refuses {place(first)}: column "
            f"{column!r} holds {value!r}, not a number",
            fix="fix or drop that row: both bundles must score every row",
        )
    start, stop = 0, len(frame)
    while stop - start > 1:
        middle = (start + stop) // 2
        left = refuses(start, middle)
        if left is not None:
            stop, error = middle, left
            continue
        right = refuses(middle, stop)
        if right is None:
            break  # the rows are refused only together
        start, error = middle, right
    if stop - start == 1:
        others = {len(frame) - 1, len(frame) // 2, min(start + 1, len(frame) - 1)} - {start}
        if others and all(refuses(i, i + 1) is not None for i in others):
            rows = f"every row of {where}"  # not one row's fault: a column's type, say
        else:
            rows = place(start)
    else:
        rows = f"rows {start + 1}-{stop} of {where} together"
    fix = "fix or drop that row: both bundles must score every row"
    if rows.startswith("every row"):
        fix = "give the columns as the bundle's schema.json describes them"
    raise BundleError(
        f"the {role} ({bundle.name} v{bundle.version}) refuses {rows}: {error.message}",
        fix=fix,
    ) from None


def _text_in_number_column(bundle: Any, frame: Any) -> tuple[int, str, Any] | None:
    """The first row whose value in a column the schema says is numeric is text that is not
    a number ("abc" read from a CSV makes the whole column text), or None."""
    import numpy as np
    import pandas as pd

    for column in bundle.schema.columns:
        if column.kind not in ("integer", "float") or column.name not in frame.columns:
            continue
        values = frame[column.name]
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values):
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = np.flatnonzero((numbers.isna() & values.notna()).to_numpy())
        if len(bad):
            return int(bad[0]), column.name, values.iloc[int(bad[0])]
    return None


def _metric_diff(paired: Any, mcnemar_p: float | None, alpha: float) -> MetricDiff:
    significant = paired.significant
    if mcnemar_p is not None:
        significant = significant and mcnemar_p < alpha
    return MetricDiff(
        metric=paired.metric,
        champion=paired.value_a,
        challenger=paired.value_b,
        diff=paired.diff,
        ci_low=paired.ci_low,
        ci_high=paired.ci_high,
        p_value=paired.p_value,
        significant=significant,
        rows=paired.rows,
        mcnemar_p=mcnemar_p,
        reason=paired.reason,
    )


def comparison_values(metrics: dict[str, MetricDiff], slices: list[SliceDiff]) -> dict[str, float]:
    """The gate values of a comparison (see compare_on_data)."""
    values: dict[str, float] = {}
    for name, m in metrics.items():
        for key, value in (
            (f"champion.{name}", m.champion),
            (f"challenger.{name}", m.challenger),
            (f"diff.{name}", m.diff),
            (f"diff.{name}.ci_low", m.ci_low),
            (f"diff.{name}.ci_high", m.ci_high),
            (f"diff.{name}.p_value", m.p_value),
            (f"diff.{name}.mcnemar_p", m.mcnemar_p),
        ):
            if value is not None:
                values[key] = float(value)
        values[f"diff.{name}.significant"] = float(m.significant)
        usable = [s.metrics[name] for s in slices if not s.too_small]
        usable = [d for d in usable if d.diff is not None]
        diffs = [d.diff for d in usable if d.diff is not None]
        if diffs:
            values[f"slices.{name}.min_diff"] = min(diffs)
            values[f"slices.{name}.max_diff"] = max(diffs)
        lows = [d.ci_low for d in usable if d.ci_low is not None]
        if lows:
            values[f"slices.{name}.min_diff_ci_low"] = min(lows)
        values[f"slices.{name}.worse_count"] = float(sum(d.better is False for d in usable))
    return values


def compare_on_data(
    champion: Any,
    challenger: Any,
    data: Any,
    *,
    label: str | None = None,
    slices: Sequence[str] = (),
    cross: Sequence[Sequence[str]] = (),
    bins: Mapping[str, int] | None = None,
    min_size: int = MIN_SLICE_ROWS,
    n_resamples: int = 2000,
    seed: int | None = 0,
    confidence: float = 0.95,
    gates: Sequence[str] | None = None,
    trust: Mapping[str, Any] | None = None,
    weak: bool | Mapping[str, Any] = False,
    metrics: Sequence[str] | None = None,
) -> DataComparison:
    """Score both bundles on the same labelled rows and compare them with statistics.

    `champion`, `challenger`: loaded Bundles, bundle paths or registry references
    (`penguins@production`), loaded with `trust` (load_bundle's `trusted_keys`,
    `require_signature`). `data`: a DataFrame or a .csv/.parquet path holding the request
    columns and the label (`label`, default: the champion's serving label, else its schema's).
    Both bundles predict every row (a row either refuses: BundleError 28 naming the row).

    Per metric (classification: accuracy, precision, recall, f1 as slice_metrics defines
    them; regression: mae, rmse, r2), overall and per slice (`slices`, `cross`, `bins` as in
    slice_metrics): both values, diff = challenger - champion, its paired bootstrap interval
    and p-value (quality.paired: `n_resamples` resamples of the rows, `seed`) and whether it
    is significant; McNemar's test for accuracy (there `significant` needs McNemar's p <
    1 - confidence as well as an interval excluding 0). `weak=True` (or weak_segments
    options) adds the challenger's weak segments, with the champion's value on each.

    Gates (`gates`; None: the project's `promote_gates`; none at all: `diff.accuracy.ci_low
    > 0` for classifiers, `diff.rmse.ci_high < 0` for regressors) see the challenger's
    manifest values, the champion's as `baseline.NAME`, and `champion.M`, `challenger.M`,
    `diff.M`, `diff.M.ci_low`, `diff.M.ci_high`, `diff.M.p_value`, `diff.M.significant`
    (0/1), `diff.accuracy.mcnemar_p`, and over slices with at least `min_size` rows
    `slices.M.min_diff`, `.max_diff`, `.min_diff_ci_low` and `.worse_count` (slices where
    the challenger is significantly worse). The result's `passed` is the verdict; raising
    on a failure is the caller's choice (the CLI exits 40)."""
    import numpy as np
    import pandas as pd

    from nbops.quality.paired import _mcnemar_counts, paired_bootstrap
    from nbops.quality.slices.columns import _families, _slice_frame

    started = time.perf_counter()
    texts = list(load_project().config.promote_gates if gates is None else gates)
    parsed = [parse_gate(text) for text in texts]  # a bad gate is refused before any work
    trust = dict(trust or {})
    a = _as_bundle(champion, trust)
    b = _as_bundle(challenger, trust)
    task = _task(a)
    if _task(b) != task:
        raise QualityInputError(
            f"the champion is a {task} model but the challenger is not",
            fix="compare two classifiers or two regressors",
        )
    where = "the data"
    if isinstance(data, pd.DataFrame):
        frame = data
    else:
        from nbops.quality.validate import read_frame

        where = str(data)
        frame = read_frame(Path(data))
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise QualityInputError(f"{where} has no rows", fix="give labelled rows to compare on")
    column = _label_of(a, label)
    if column not in frame.columns:
        raise QualityInputError(
            f"{where} has no label column {column!r}",
            fix=f"give --label COL (label=) naming the column of true values; it has "
            f"{', '.join(map(str, frame.columns[:12]))}",
        )
    y = frame[column].to_numpy()
    missing = np.flatnonzero(pd.isna(frame[column]).to_numpy())
    if len(missing):
        first = ", ".join(str(i + 1) for i in missing[:5])
        raise QualityInputError(
            f"the label column {column!r} of {where} has {len(missing)} missing value(s) "
            f"(rows {first})",
            fix="drop the rows without a label",
        )
    pred_a = _predictions(a, frame, "champion", where)
    pred_b = _predictions(b, frame, "challenger", where)
    n = len(frame)
    slice_frame, columns = _slice_frame(list(slices), frame, n)
    families = _families(slice_frame, columns, [tuple(c) for c in cross], bins)
    common: dict[str, Any] = {
        "task": task,
        "metrics": metrics,
        "n_resamples": n_resamples,
        "seed": seed,
        "confidence": confidence,
    }
    overall_result = None
    alpha = 1.0 - float(confidence)
    right_a = right_b = None
    if task == "classification":
        right_a, right_b = pred_a == y, pred_b == y
    slice_diffs: list[SliceDiff] = []
    for family in families:
        result = paired_bootstrap(
            y, pred_a, pred_b, codes=family.codes, n_slices=family.size, **common
        )
        overall_result = overall_result or result
        tests: list[float | None] = [None] * family.size
        if right_a is not None and right_b is not None and "accuracy" in result.metrics:
            only_a = np.bincount(family.codes[right_a & ~right_b], minlength=family.size)
            only_b = np.bincount(family.codes[~right_a & right_b], minlength=family.size)
            tests = [
                _mcnemar_counts(int(x), int(z)).p_value for x, z in zip(only_a, only_b, strict=True)
            ]
        for index, predicate in enumerate(family.predicates):
            one = result.slices[index]
            rows = next(iter(one.values())).rows
            slice_diffs.append(
                SliceDiff(
                    slice=predicate,
                    name=predicate.to_expression(),
                    rows=rows,
                    too_small=rows < min_size,
                    metrics={
                        name: _metric_diff(
                            value, tests[index] if name == "accuracy" else None, alpha
                        )
                        for name, value in one.items()
                    },
                )
            )
    if overall_result is None:
        overall_result = paired_bootstrap(y, pred_a, pred_b, **common)
    test = overall_result.mcnemar
    overall = {
        name: _metric_diff(
            value, test.p_value if test is not None and name == "accuracy" else None, alpha
        )
        for name, value in overall_result.overall.items()
    }
    values = {
        **gate_values(b.manifest),
        **{f"baseline.{k}": v for k, v in gate_values(a.manifest).items()},
        **comparison_values(overall, slice_diffs),
    }
    if not parsed:
        parsed = [parse_gate(text) for text in DEFAULT_GATES[task]]
    weak_rows: list[Any] = []
    weak_champion: dict[str, float | None] = {}
    if weak is not False and weak is not None:
        weak_rows, weak_champion = _weak(weak, y, pred_a, pred_b, frame, column, a, task)
    return DataComparison(
        champion=BundleRef(str(a.path), a.name, a.version),
        challenger=BundleRef(str(b.path), b.name, b.version),
        data=None if isinstance(data, pd.DataFrame) else where,
        label=column,
        task=task,
        rows=n,
        metrics=overall,
        mcnemar=test,
        slices=slice_diffs,
        gates=[evaluate_gate(gate, values) for gate in parsed],
        values=values,
        n_resamples=int(n_resamples),
        seed=None if seed is None else int(seed),
        confidence=float(confidence),
        min_size=min_size,
        seconds=time.perf_counter() - started,
        weak=weak_rows,
        weak_champion=weak_champion,
    )


def _weak(
    options: bool | Mapping[str, Any],
    y: Any,
    pred_a: Any,
    pred_b: Any,
    frame: Any,
    label: str,
    champion: Any,
    task: str,
) -> tuple[list[Any], dict[str, float | None]]:
    """The challenger's weak segments over the data's columns (not the label or the schema
    key), and the champion's value on each segment's rows."""
    import numpy as np

    from nbops.quality.slices import slice_metrics
    from nbops.quality.slices.weak import weak_segments

    chosen: dict[str, Any] = {} if isinstance(options, bool) else dict(options)
    key = list(getattr(champion.schema, "key", None) or [])
    chosen.setdefault("exclude", [label, *key])
    labels: list[Any] | None = None
    if task == "classification":
        labels = sorted(
            {*np.unique(y).tolist(), *np.unique(pred_a).tolist(), *np.unique(pred_b).tolist()}
        )
        chosen.setdefault("labels", labels)
    found = weak_segments(y, pred_b, data=frame, task=cast("Task", task), **chosen)
    champion_values: dict[str, float | None] = {}
    for row in found:
        mask = row.slice.mask(frame)
        report = slice_metrics(
            y[mask],
            pred_a[mask],
            task=cast("Task", task),
            metrics=[row.metric],
            ci=None,
            labels=labels,
        )
        champion_values[row.name] = report.overall.get(row.metric)
    return list(found), champion_values
