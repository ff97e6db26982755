"""Gathering what a bundle needs from a notebook, a model and (optionally) a run.

The serving rule, for data scientists: the step tagged `transform:features` maps raw records
to the model's features. Its one frame input is the request; its other inputs may only be
parameters (or setup values); its first output goes to the model. Keep the label out of it.
Without such a step, the model alone is the serving path (all feature work inside a
scikit-learn Pipeline), and requests are the frame the train step fit the model on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from nbops.config import Project, load_project
from nbops.errors import BundleError

SERVING_STEP = "transform:features"
_PROBE_ROWS = 200


@dataclass(frozen=True)
class ServingPlan:
    """Which exported step serves requests, and what it needs besides the request frame."""

    step: str | None
    module: str | None
    function: str | None
    input: str
    parameters: dict[str, Any]


def import_exported_package(folder: Path, name: str) -> ModuleType:
    """Import an exported package from its folder under a private module name."""
    alias = f"_nbops_pkg_{uuid.uuid4().hex[:8]}_{name}"
    init = folder / name / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        alias, init, submodule_search_locations=[str(init.parent)]
    )
    if spec is None or spec.loader is None:  # pragma: no cover - a missing file raises below
        raise BundleError(f"cannot import the exported package {name}", location=str(folder))
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def serving_plan(manifest: Any, parameters: dict[str, Any]) -> ServingPlan:
    """The serving plan from an export manifest (see the module docstring for the rule)."""
    steps = {s.key: s for s in manifest.steps}
    step = steps.get(SERVING_STEP)
    if step is None:
        train = next((s for s in manifest.steps if s.role == "train"), None)
        frames = [i for i in (train.inputs if train else []) if i.source == "step"]
        if not frames:
            raise BundleError(
                "the notebook has no transform:features step and its train step reads no frame",
                fix="tag the cell that maps raw records to features as transform:features",
            )
        return ServingPlan(None, None, None, frames[0].name, {})
    frames = [i for i in step.inputs if i.source == "step"]
    if len(frames) != 1:
        names = ", ".join(i.name for i in frames) or "none"
        raise BundleError(
            f"the serving step {SERVING_STEP} must read exactly one frame from earlier steps "
            f"(it reads: {names})",
            fix="make transform:features take only the raw records (and parameters)",
        )
    params = {i.name: parameters[i.name] for i in step.inputs if i.source == "parameter"}
    module, function = step.function.split(":")
    return ServingPlan(SERVING_STEP, module, function, frames[0].name, params)


def serving_function(package: ModuleType, plan: ServingPlan) -> Any:
    """The callable that maps a request frame to model features (identity without a step)."""
    if plan.step is None:
        return lambda frame: frame
    module = importlib.import_module(f"{package.__name__}.{plan.module}")
    fn = getattr(module, str(plan.function))

    def transform(frame: Any) -> Any:
        out = fn(**{plan.input: frame}, **plan.parameters)
        return out[0] if isinstance(out, tuple) else out

    return transform


def request_columns(transform: Any, reference: Any) -> list[str]:
    """The columns the serving step needs: those without which it fails or changes output,
    found by leaving each out of a sample of the reference in turn."""
    import pandas as pd

    sample = reference.head(_PROBE_ROWS)
    expected = transform(sample)
    needed = []
    for column in sample.columns:
        try:
            out = transform(sample.drop(columns=[column]))
            same = isinstance(out, pd.DataFrame) and out.equals(expected)
            same = same or (not isinstance(out, pd.DataFrame) and _equal(out, expected))
        except Exception:
            same = False
        if not same:
            needed.append(str(column))
    return needed


def _equal(a: Any, b: Any) -> bool:
    import numpy as np

    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except Exception:
        return False


@dataclass
class BundleInputs:
    """Everything `build_bundle` is given, gathered from a notebook, model and run."""

    name: str
    export_folder: Path
    plan: ServingPlan
    columns: list[str]
    reference: Any
    requirements: list[str]
    prediction_reference: dict[str, Any]


def gather(
    notebook: Path,
    model: Any,
    parameters: dict[str, Any],
    *,
    name: str | None = None,
    project: Project | None = None,
    export_dir: Path | None = None,
) -> BundleInputs:
    """Export the notebook (as it is) to `export_dir` (default: the project's), run its
    pipeline with these parameters to get the reference request frame, and work out the
    serving plan and the request columns."""
    from nbops.export.exporter import export_notebook

    project = project or load_project()
    folder = export_dir if export_dir is not None else project.root / project.config.export_dir
    export = export_notebook(notebook, folder, name=name)
    manifest = export.manifest
    plan = serving_plan(manifest, parameters)
    package = import_exported_package(export.folder, export.name)
    known = {p.name for p in manifest.parameters}
    with contextlib.redirect_stdout(sys.stderr):  # what the steps print is not our output
        results = package.run(**{k: v for k, v in parameters.items() if k in known})
    reference = getattr(results, plan.input, None)
    if reference is None:
        raise BundleError(
            f"the pipeline's results have no {plan.input!r} to serve from",
            location=str(notebook),
            fix="make the serving step's input a value an earlier step returns",
        )
    transform = serving_function(package, plan)
    columns = (
        request_columns(transform, reference) if plan.step else [str(c) for c in reference.columns]
    )
    requests = reference[columns]
    predictions = model.predict(transform(requests))
    return BundleInputs(
        name=export.name,
        export_folder=export.folder,
        plan=plan,
        columns=columns,
        reference=requests,
        requirements=list(manifest.requirements),
        prediction_reference=prediction_distribution(requests, predictions),
    )


def prediction_distribution(
    frame: Any, predictions: Any, max_categories: int = 20
) -> dict[str, Any]:
    """How predictions are distributed overall and per value of each categorical request
    column: class shares for classifiers, quantiles for regressors."""
    import numpy as np
    import pandas as pd

    values = pd.Series(np.asarray(predictions)).reset_index(drop=True)
    frame = frame.reset_index(drop=True)
    numeric = values.dtype.kind in "fc"

    def describe(part: pd.Series) -> dict[str, Any]:
        if numeric:
            qs = part.quantile([0.1, 0.25, 0.5, 0.75, 0.9])
            return {
                "rows": int(part.size),
                "mean": float(part.mean()),
                "quantiles": [float(q) for q in qs],
            }
        shares = part.astype(str).value_counts(normalize=True)
        return {"rows": int(part.size), "shares": {str(k): float(v) for k, v in shares.items()}}

    slices: dict[str, Any] = {}
    for column in frame.columns:
        col = frame[column]
        if col.dtype.kind in "fc" or col.nunique(dropna=True) > max_categories:
            continue
        for value, index in col.astype(str).groupby(col.astype(str)).groups.items():
            slices[f"{column} == {value!r}"] = describe(values.loc[index])
    return {
        "kind": "regression" if numeric else "classification",
        "overall": describe(values),
        "slices": slices,
    }
