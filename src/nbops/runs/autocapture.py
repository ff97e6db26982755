"""What a run records from a notebook that calls no nbops function: its metrics and model.

`nbops run` adds cells tagged `nbops-capture` to the copy of the notebook it executes (see
capture_plan.py); each calls `record()` in the kernel with what the rule of
nbops.notebook.metrics found in the step before it: the names of its metric values, the
metric a cell's last expression holds, the model. They are written to the run's sidecar as
events marked `auto`, and the run record lets an explicit `nbops.log_metric` or
`nbops.log_model` of the same name win (record.py).

The value of a cell's last expression is read from IPython's output history (`Out`), as
Jupyter showed it: the expression is never evaluated a second time. A metric a cell only
prints (`print("r2: %.2f" % r2_score(y, p))`) is the one value evaluated again, from its
expression, in the notebook's globals. Only numbers are
recorded (dicts of numbers are flattened as `name.key`), by the same rule as the exported
package's `collect_metrics`.

Recording never fails a run: a problem is printed to the capture cell's stderr. This module
imports only the standard library: it runs inside the user's kernel.
"""

from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Mapping
from typing import Any

from nbops.runs import capture

MODEL_NAME = "model"
MODEL_FILE = "captured-model.skops"
PICKLE_FILE = "captured-model.pkl"  # when every global is trusted: runs/pickled_model.py


def record(
    namespace: Mapping[str, Any],
    step: str,
    metrics: Mapping[str, str] | None = None,
    *,
    output: str | None = None,
    evaluate: Mapping[str, str] | None = None,
    model: str | None = None,
    data: Mapping[str, str] | None = None,
    data_paths: Mapping[str, str] | None = None,
) -> None:
    """Record what step `step` computed, reading the notebook's global `namespace`:

    - `metrics`: metric name -> the global holding its value (a missing global is skipped);
    - `output`: the metric name of the value the cell just before showed (its last
      expression), read from `Out`;
    - `evaluate`: metric name -> an expression the cell before printed without keeping it,
      evaluated again in `namespace` (one that fails is skipped, with a line on stderr);
    - `model`: the global holding the model, saved as the run's model: a pickle whose every
      global nbops trusts (runs/pickled_model.py; no skops import in the kernel), else skops;
    - `data`: data set name -> the global holding the path of the file the step read, and
      `data_paths`: data set name -> that path, written in the code: each file is
      fingerprinted as `nbops.track_data(path, name)` does (a value that is not the path of
      a file, such as a URL or a buffer, is skipped).
    """
    try:
        values = {name: namespace[var] for name, var in (metrics or {}).items() if var in namespace}
        if output is not None and (shown := _last_output(namespace)) is not None:
            values[output] = shown
        for name, expression in (evaluate or {}).items():
            try:
                values[name] = eval(f"({expression})", dict(namespace))
            except Exception as exc:
                print(f"nbops: could not record {name!r} of step {step!r}: {exc}", file=sys.stderr)
        for name, number in metric_numbers(values).items():
            capture._emit_metric(name, number, None, auto=True)
        if model is not None and model in namespace:
            capture._save_model(
                namespace[model], MODEL_NAME, MODEL_FILE, auto=True, pickle_file=PICKLE_FILE
            )
        paths = {name: namespace.get(var) for name, var in (data or {}).items()}
        paths.update(data_paths or {})
        for name, path in paths.items():
            if isinstance(path, str | os.PathLike) and os.path.isfile(path):
                capture.track_data(path, name)
    except Exception as exc:  # a capture problem must not fail the user's run
        print(f"nbops: could not record step {step!r}: {exc}", file=sys.stderr)


def _last_output(namespace: Mapping[str, Any]) -> Any:
    """The value the previous cell showed, from IPython's history: `Out[n - 1]` while cell n
    runs (`In` holds the inputs up to the current cell, after an empty `In[0]`)."""
    inputs, outputs = namespace.get("In"), namespace.get("Out")
    if not isinstance(inputs, list) or not isinstance(outputs, Mapping):
        return None
    return outputs.get(len(inputs) - 2)


def metric_numbers(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers among `values`, dicts of numbers flattened as `name.key` (booleans are
    not numbers): the rule of the exported package's `collect_metrics`."""
    found: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            found[f"{prefix}{key}"] = float(value)
        elif isinstance(value, Mapping):
            found.update(metric_numbers(value, f"{prefix}{key}."))
    return found
