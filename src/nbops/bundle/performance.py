"""The performance part of `nbops monitor`: a bundle, recent rows and a labelled reference
in, a `PerformanceReport` out (see `nbops.quality.estimate`).

- classifier with `predict_proba` and a labelled reference: calibration checked on the
  reference (isotonic/Platt when it fails), CBPE overall, per slice (the reference's slices:
  categorical request columns by value, numbers in 4 quantile bins) and per window;
- labels (a frame with a key and a label column) joined to the recent rows on the logged
  `keys` (or a key column of the records): realised metrics per slice, compared with the
  reference's realised metrics and with the estimate on the same rows;
- regressors: a note that estimation needs class probabilities; realised mae/rmse/r2 with
  labels still work.

Windows: `window` "1h"/"1d"/any pandas frequency over the timestamps (empty windows are
skipped), or a number of rows per window ("500"); `windows` N equal-count windows in time
order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from nbops.errors import QualityInputError
from nbops.quality.estimate import (
    Slicer,
    calibrate,
    compare_realised,
    estimate_performance,
    realised_classification,
    realised_regression,
)
from nbops.quality.estimate.cbpe import METRICS
from nbops.quality.estimate.performance import PerformanceReport, Window
from nbops.quality.estimate.realised import REGRESSION_METRICS

# Deferred import: nbops.quality.plots (matplotlib) inside `performance`, only when a report
# wants its plots (--html).


def _canon(value: Any) -> str:
    """A value's text for matching labels, classes and keys: 3, 3.0 and "3" alike."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _class_codes(values: Any, classes: Sequence[Any], what: str) -> np.ndarray:
    lookup = {_canon(c): i for i, c in enumerate(classes)}
    texts = [_canon(v) for v in values]
    codes = np.array([lookup.get(t, -1) for t in texts], dtype=np.int64)
    if (codes < 0).any():
        unknown = sorted({t for t, c in zip(texts, codes, strict=True) if c < 0})[:5]
        raise QualityInputError(
            f"{what} holds values that are not classes of the model {list(classes)}: {unknown}",
            fix="check --label names the label column",
        )
    return codes


def _label_column(bundle: Any, frame: pd.DataFrame, label: str | None, where: str) -> str:
    if label is None:
        serving = getattr(bundle.manifest, "serving", None)
        label = getattr(serving, "label", None) or getattr(bundle.schema, "label", None)
    if label is None:
        raise QualityInputError(
            "the bundle names no label column", location=where, fix="give --label COL"
        )
    if label not in frame.columns:
        raise QualityInputError(
            f"no label column {label!r} (columns: {', '.join(map(str, frame.columns[:10]))})",
            location=where,
            fix="give --label COL",
        )
    if frame[label].isna().any():
        raise QualityInputError(
            f"the label column {label!r} has {int(frame[label].isna().sum())} missing values",
            location=where,
            fix="drop the unlabelled rows",
        )
    return label


def segments(
    n: int, timestamps: Sequence[Any] | None, window: str | None, windows: int | None
) -> list[tuple[str, str | None, str | None, np.ndarray]]:
    """(label, start, end, row indices) per window; [] when neither option is given."""
    if window is None and windows is None:
        return []
    times = None
    if timestamps is not None and any(t is not None for t in timestamps):
        times = pd.to_datetime(
            pd.Series(list(timestamps)), utc=True, errors="coerce", format="ISO8601"
        )
    order = np.argsort(times.to_numpy(), kind="stable") if times is not None else np.arange(n)
    if windows is not None or (window is not None and window.isdigit()):
        if windows is not None:
            if windows < 1:
                raise QualityInputError(f"--windows must be at least 1, got {windows}")
            chunks = np.array_split(order, min(windows, max(n, 1)))
        else:
            size = int(window or 0)
            if size < 1:
                raise QualityInputError(f"--window must be at least 1 row, got {window}")
            chunks = [order[i : i + size] for i in range(0, n, size)]
        out = []
        for i, rows in enumerate(chunks):
            start = end = None
            if times is not None and len(rows):
                start, end = str(times.iloc[rows[0]]), str(times.iloc[rows[-1]])
            out.append((f"{i + 1}", start, end, rows))
        return out
    if times is None or times.isna().all():
        raise QualityInputError(
            f"--window {window} needs timestamps: the request log has them, a data file not",
            fix="use --windows N or --window ROWS, or monitor the request log (--log)",
        )
    try:
        offset = pd.tseries.frequencies.to_offset(window)
    except ValueError:
        raise QualityInputError(
            f"--window {window!r} is neither a number of rows nor a time span",
            fix="use e.g. 1h, 30min, 1d or 500",
        ) from None
    keyed = pd.Series(np.arange(n), index=pd.DatetimeIndex(times))
    keyed = keyed[keyed.index.notna()]
    out = []
    for start, group in keyed.resample(offset):
        if len(group):
            stamp = pd.Timestamp(start)
            label = stamp.strftime("%Y-%m-%d %H:%M")
            out.append((label, stamp.isoformat(), (stamp + offset).isoformat(), group.to_numpy()))
    return out


def join_labels(
    frame: pd.DataFrame,
    keys: pd.DataFrame | None,
    labels: pd.DataFrame,
    key: str,
    label: str,
    where: str,
) -> tuple[np.ndarray, list[Any]]:
    """The recent rows that have a label (indices) and their labels, joined on `key`: the
    log's `keys` when they hold it, else a column of the records."""
    if keys is not None and key in keys.columns:
        row_keys = keys[key]
    elif key in frame.columns:
        row_keys = frame[key]
    else:
        raise QualityInputError(
            f"the recent rows carry no key {key!r} (neither in the log's keys nor a column)",
            location=where,
            fix="log the key (declare it as the schema's key) or give --key a column they carry",
        )
    if key not in labels.columns:
        raise QualityInputError(
            f"the labels file has no key column {key!r}", location=where, fix="give --key COL"
        )
    by_key: dict[str, Any] = {}
    for k, value in zip(labels[key], labels[label], strict=True):
        if k is not None and k == k and value is not None and value == value:
            by_key[_canon(k)] = value
    matched, values = [], []
    for i, k in enumerate(row_keys):
        if k is None or (isinstance(k, float) and math.isnan(k)):
            continue
        text = _canon(k)
        if text in by_key:
            matched.append(i)
            values.append(by_key[text])
    if not matched:
        raise QualityInputError(
            f"no recent row's {key!r} matches a key in the labels file",
            location=where,
            fix="check --key and that the labels belong to the logged requests",
        )
    return np.asarray(matched, dtype=np.int64), values


def performance(
    bundle: Any,
    frame: pd.DataFrame,
    predictions: Any,
    *,
    reference: pd.DataFrame | None = None,
    label: str | None = None,
    timestamps: Sequence[Any] | None = None,
    window: str | None = None,
    windows: int | None = None,
    labels: pd.DataFrame | None = None,
    key: str | None = None,
    keys: pd.DataFrame | None = None,
    pos_label: Any = None,
    max_drop: float = 0.05,
    n_resamples: int = 1000,
    seed: int = 0,
    plots: bool = True,
) -> PerformanceReport:
    """Estimated (and, with `labels`, realised) performance of `bundle` on `frame`."""
    columns = [c for c in bundle.request_columns if c in frame.columns]
    classes = bundle.classes
    classifier = classes is not None and len(classes) >= 2 and bundle.has_proba
    report = PerformanceReport(
        task="classification" if classes is not None else "regression",
        metrics=list(METRICS) if classes is not None else list(REGRESSION_METRICS),
        classes=list(classes) if classes is not None else None,
        max_drop=max_drop,
    )
    y_label = None
    if reference is not None:
        y_label = _label_column(bundle, reference, label, "--reference")
        missing = [c for c in bundle.request_columns if c not in reference.columns]
        if missing:
            raise QualityInputError(
                f"the reference lacks the request column(s) {', '.join(missing)}",
                location="--reference",
                fix="give labelled rows with the columns a request carries",
            )
    slicer = Slicer.from_reference(
        (reference if reference is not None else frame)[columns], columns
    )
    pos = None
    if classes is not None and len(classes) == 2:
        pos = 1 if pos_label is None else int(_class_codes([pos_label], classes, "--pos-label")[0])
        report.positive = classes[pos]
    calibration = None
    if classes is None or not classifier:
        report.notes.append(
            "estimation needs class probabilities (a classifier with predict_proba); "
            "realised metrics with --labels still work"
        )
    elif reference is None:
        report.notes.append(
            "no labelled reference: give --reference FILE (the bundle's held-out test data) "
            "to estimate performance without labels"
        )
    n = len(frame)
    if classes is not None:
        yhat = _class_codes(predictions, classes, "the predictions")
    else:
        yhat = np.asarray(predictions, dtype=np.float64)
    if reference is not None and y_label is not None:
        ref_families = slicer.families(reference)
        ref_pred = np.asarray(bundle.predict(reference[columns]))
        if classes is not None:
            y_ref = _class_codes(reference[y_label], classes, f"the reference's {y_label!r}")
            ref_codes = _class_codes(ref_pred, classes, "the reference predictions")
            report.reference = realised_classification(
                y_ref, ref_codes, len(classes), families=ref_families, positive=pos
            )
            if classifier:
                P_ref = np.asarray(bundle.predict_proba(reference[columns]), dtype=np.float64)
                calibration = calibrate(P_ref, y_ref, ref_codes, seed=seed)
                report.calibration = calibration
                report.warnings.extend(calibration.warnings)
        else:
            report.reference = realised_regression(
                pd.to_numeric(reference[y_label]), ref_pred, families=ref_families
            )
    families = slicer.families(frame)
    cuts = segments(n, timestamps, window, windows)
    rows_of = {name: rows for name, _, _, rows in cuts}
    Q = None
    if calibration is not None:
        P = np.asarray(bundle.predict_proba(frame[columns]), dtype=np.float64)
        Q = calibration.apply(P)
        options = {"positive": pos, "n_resamples": n_resamples, "seed": seed}
        report.estimate = estimate_performance(Q, yhat, families=families, **options)  # type: ignore[arg-type]
        for name, start, end, rows in cuts:
            estimate = estimate_performance(Q[rows], yhat[rows], **options)[0]  # type: ignore[arg-type]
            report.windows.append(Window(name, start, end, estimate))
    if labels is not None:
        if key is None:
            raise QualityInputError("--labels needs --key COL to join the labels on")
        l_label = _label_column(bundle, labels, label, "--labels")
        matched, values = join_labels(frame, keys, labels, key, l_label, "--labels")
        report.labels_matched, report.labels_unmatched = len(matched), n - len(matched)
        sub_families = [(names, codes[matched]) for names, codes in families]
        if classes is not None:
            y_new = _class_codes(values, classes, f"the labels' {l_label!r}")
            report.realised = realised_classification(
                y_new, yhat[matched], len(classes), families=sub_families, positive=pos
            )
            estimated = []
            if Q is not None:
                estimated = estimate_performance(
                    Q[matched], yhat[matched], families=sub_families, positive=pos,
                    n_resamples=n_resamples, seed=seed,
                )  # fmt: skip
            report.comparisons = compare_realised(report.realised, report.reference, estimated)
            report.weak = _weak(frame, matched, y_new, yhat[matched], bundle, "classification")
            position = np.full(n, -1, dtype=np.int64)
            position[matched] = np.arange(len(matched))
            for w in report.windows:
                rows = position[rows_of[w.label]]
                rows = rows[rows >= 0]
                if len(rows):
                    w.realised = realised_classification(
                        y_new[rows], yhat[matched][rows], len(classes), positive=pos
                    )[0]
        else:
            y_num = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
            report.realised = realised_regression(y_num, yhat[matched], families=sub_families)
            report.comparisons = compare_realised(report.realised, report.reference)
            report.weak = _weak(frame, matched, y_num, yhat[matched], bundle, "regression")
    if plots and report.windows:
        from nbops.quality.plots import estimate_over_windows

        for metric in report.metrics:
            series = [w.estimate.metrics[metric] for w in report.windows]
            realised = None
            if any(w.realised for w in report.windows):
                realised = [
                    w.realised.metrics[metric].value if w.realised else None for w in report.windows
                ]
            svg = estimate_over_windows(
                metric,
                [w.label for w in report.windows],
                [i.value for i in series],
                [i.ci_low for i in series],
                [i.ci_high for i in series],
                report.reference_value(metric),
                report.threshold(metric),
                realised,
            )
            report.plots.append((metric, svg))
    return report


def _weak(
    frame: pd.DataFrame, matched: Any, y_true: Any, y_pred: Any, bundle: Any, task: str
) -> list[Any]:
    """The weak segments of the labelled rows (quality.slices.weak): where the model does
    worst on the request columns, single columns and pairs; none when the search cannot
    run on these rows (too few, or no usable column)."""
    from nbops.quality.slices.weak import weak_segments

    columns = [c for c in bundle.request_columns if c in frame.columns]
    data = frame.iloc[np.asarray(matched)][columns].reset_index(drop=True)
    try:
        return list(
            weak_segments(y_true, y_pred, data=data, task=task, top_k=5)  # type: ignore[arg-type]
        )
    except QualityInputError:
        return []
