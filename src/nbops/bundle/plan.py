"""Planning a bundle's serving path: which code turns a request into the model's input, and
what else the bundle needs from a notebook, a model and (optionally) a run (`gather`).

The serving rule, for data scientists, in the order nbops applies it:

1. A step tagged `transform:features` that reads one frame maps raw records to the model's
   features. That frame is the request; its other inputs may only be parameters (or setup values);
   its first output goes to the model. Keep the label out of it.
2. Otherwise, a notebook that loads a training and a test frame and prepares both (the
   Titanic / House-prices shape: `for df in (train, test): ...`, fill values taken from
   `train`, `pd.get_dummies` on each, encoders fit on train and applied to test, columns
   aligned) serves through the statements that turn the raw test frame into what it gives
   `model.predict`, sliced from the notebook (nbops.notebook.slicing) with the values
   computed on the training side frozen from this run (nbops.bundle.serving_path).
   Requests are raw test-frame records.
3. Otherwise the model alone is the serving path (all feature work inside a scikit-learn
   Pipeline), and requests are the frame the train step fit the model on.

Request columns are the ones the serving code needs (each left out in turn changes or
breaks its output); a column is nullable when the serving code and the model accept a
request whose column is all null, whatever the share of nulls in the training data.

A notebook that trains on a 2-D numpy array (`X, y = load_iris(return_X_y=True)`,
`X = iris.data`, `X = df.values`) still takes requests as named columns; the bundle turns
the request frame into that array, columns in order (`ServingInfo.request_array`). Every
column is a request column (the array is positional). The names are what the notebook
knows: the columns of a frame among its values that holds the same rows
(`pd.DataFrame(iris.data, columns=iris.feature_names)`), else the `feature_names` of a
dataset it loaded (a scikit-learn Bunch), else `x0`, `x1`, ... (scikit-learn's own names for
array columns). Any other model input (a sparse matrix, a 1-D array, a list, a frame whose
column names are not text) is a BundleError naming it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from nbops.bundle import frozen_values as fv
from nbops.bundle import serving_path as sp
from nbops.bundle.manifest import CODE_DIR
from nbops.config import Project, load_project
from nbops.errors import BundleError, NbopsError
from nbops.notebook.read import read_notebook

# Deferred imports: export.exporter, notebook.analysis and notebook.slicing (the export
# machinery and the notebook analysis, about a third of a second to import) load when a
# bundle's serving path is worked out, so `nbops bundle --run` reports a missing or
# unfinished run (nbops.bundle.from_run imports this module) without them.

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
    cells: tuple[int, ...] = ()


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


def _model_alone_plan(manifest: Any) -> ServingPlan | None:
    """Rule 2's plan (the model alone, on the frame its train step reads), or None."""
    train = next((s for s in manifest.steps if s.role == "train"), None)
    frames = [i for i in (train.inputs if train else []) if i.source == "step"]
    return ServingPlan(None, None, None, frames[0].name, {}) if frames else None


def _single_frame_step(manifest: Any) -> bool:
    """Whether the notebook has a `transform:features` step reading one frame (rule 1)."""
    step = next((s for s in manifest.steps if s.key == SERVING_STEP), None)
    return step is not None and len([i for i in step.inputs if i.source == "step"]) == 1


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


def nullable_columns(transform: Any, model: Any, requests: Any) -> dict[str, bool]:
    """Per request column, whether the serving code and the model take a request in which
    that column is all null (each column probed in turn on a sample)."""
    import numpy as np
    import pandas as pd

    sample = requests.head(min(len(requests), 20)).copy()
    accepted: dict[str, bool] = {}
    for column in sample.columns:
        probe = sample.copy()
        numeric = pd.api.types.is_numeric_dtype(probe[column].dtype) and not (
            pd.api.types.is_bool_dtype(probe[column].dtype)
        )
        probe[column] = np.nan if numeric else None
        try:
            with contextlib.redirect_stdout(sys.stderr):
                predictions = np.asarray(model.predict(transform(probe)))
            ok = not (predictions.dtype.kind in "fc" and bool(np.isnan(predictions).any()))
        except Exception:
            ok = False
        accepted[str(column)] = ok
    return accepted


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
    nullable: dict[str, bool] = field(default_factory=dict)
    serving_files: dict[str, bytes] = field(default_factory=dict)
    value_types: list[str] = field(default_factory=list)
    label: str | None = None
    request_array: bool = False


def request_frame(reference: Any, name: str, known: dict[str, Any]) -> tuple[Any, bool]:
    """The request frame for a model input `reference` (named `name` in the notebook), and
    whether the model takes it as a numpy array; `known`: the notebook's other values, where
    column names for an array are looked for (module docstring)."""
    import numpy as np
    import pandas as pd

    if isinstance(reference, pd.DataFrame):
        unnamed = [c for c in reference.columns if not isinstance(c, str)]
        if unnamed:
            shown = ", ".join(repr(c) for c in unnamed[:3])
            raise BundleError(
                f"the model's input {name!r} has columns without text names ({shown}), which "
                "requests cannot carry as JSON fields",
                fix=f"name its columns (pd.DataFrame(..., columns=[...])) or fit on "
                f"{name}.to_numpy()",
            )
        return reference, False
    if not isinstance(reference, np.ndarray) or reference.ndim != 2 or reference.shape[1] < 1:
        shape = f" of shape {reference.shape}" if isinstance(reference, np.ndarray) else ""
        raise BundleError(
            f"the model's input {name!r} is a {type(reference).__name__}{shape}, which nbops "
            "cannot take requests for",
            fix="fit the model on a pandas DataFrame or a 2-D numpy array of features",
        )
    names = array_column_names(reference, known)
    return pd.DataFrame(reference, columns=names), True


def array_column_names(array: Any, known: dict[str, Any]) -> list[str]:
    """Names for the columns of a 2-D array: from a frame holding the same rows, else a
    dataset's `feature_names`, else `x0`, `x1`, ... (module docstring)."""
    import numpy as np
    import pandas as pd

    width = int(array.shape[1])

    def usable(names: Any) -> list[str] | None:
        try:
            listed = [str(n) for n in list(names)]
        except TypeError:
            return None
        if len(listed) != width or len(set(listed)) != width or not all(listed):
            return None
        return listed

    if len(array):
        first = np.asarray(array[0])
        for value in known.values():
            if not isinstance(value, pd.DataFrame) or value.shape[1] != width:
                continue
            with contextlib.suppress(Exception):
                rows = value.to_numpy()
                if (rows == first).all(axis=1).any() and all(isinstance(c, str) for c in value):
                    return [str(c) for c in value.columns]
    for value in known.values():
        names = value.get("feature_names") if isinstance(value, dict) else None
        names = usable(names) if names is not None else None
        if names is not None:
            return names
    return [f"x{i}" for i in range(width)]


def _on_array(transform: Any) -> Any:
    """`transform` taking a request frame as the numpy array the notebook used."""

    def on_frame(frame: Any) -> Any:
        return transform(frame.to_numpy())

    return on_frame


def gather(
    notebook: Path,
    model: Any,
    parameters: dict[str, Any],
    *,
    name: str | None = None,
    project: Project | None = None,
    export_dir: Path | None = None,
    workdir: Path | None = None,
) -> BundleInputs:
    """Export the notebook (as it is) to `export_dir` (default: the project's), then work out
    the serving path (module docstring), its reference request frame and request columns.
    `workdir`: the folder relative data paths are read from (default: the notebook's)."""
    from nbops.export.exporter import export_notebook

    project = project or load_project()
    folder = export_dir if export_dir is not None else project.root / project.config.export_dir
    export = export_notebook(notebook, folder, name=name)
    manifest = export.manifest
    package = import_exported_package(export.folder, export.name)
    if not _single_frame_step(manifest):
        derived = _gather_derived(
            notebook, model, parameters, export, package, workdir or notebook.parent
        )
        if derived is not None:
            return derived
    plan = serving_plan(manifest, parameters)
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
    values = {f.name: getattr(results, f.name) for f in dataclasses.fields(results)}
    try:
        reference, array = request_frame(reference, plan.input, values)
    except BundleError:
        # A `transform:features` step whose input is no table (a dataset object such as
        # sklearn's Bunch, split into X and y there) cannot take requests: serve the model
        # alone, on the frame or array the train step fits it on (rule 2).
        fallback = _model_alone_plan(manifest) if plan.step else None
        reference = getattr(results, fallback.input, None) if fallback else None
        if fallback is None or reference is None:
            raise
        plan = fallback
        reference, array = request_frame(reference, plan.input, values)
    transform = serving_function(package, plan)
    if array:
        transform = _on_array(transform)
    if plan.step and not array:
        columns = request_columns(transform, reference)
    else:
        columns = [str(c) for c in reference.columns]
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
        nullable=nullable_columns(transform, model, requests),
        request_array=array,
    )


def _gather_derived(
    notebook: Path,
    model: Any,
    parameters: dict[str, Any],
    export: Any,
    package: ModuleType,
    workdir: Path,
) -> BundleInputs | None:
    """BundleInputs for a serving path sliced from the notebook; None when it has none."""
    from nbops.notebook.analysis import analyse
    from nbops.notebook.slicing import derive_serving_path

    graph = analyse(read_notebook(notebook))
    try:
        path = derive_serving_path(graph)
    except NbopsError:
        raise
    except Exception as e:  # a notebook shape the slicer does not follow: say so, no traceback
        raise BundleError(
            f"nbops could not slice the serving path from the notebook ({type(e).__name__}: {e})",
            location=str(notebook),
            fix="tag the cell that maps raw records to features as transform:features",
        ) from None
    if path is None:
        return None
    values = {p.name: p.default for p in export.manifest.parameters}
    values.update({k: v for k, v in parameters.items() if k in values})
    common = importlib.import_module(f"{package.__name__}.common")
    captured = sp.run_capture(path, graph, common, values, workdir=workdir)
    source = sp.serving_source(path, graph, f"{export.name} notebook")
    data, files, types = fv.encode_values(captured, path)
    frozen = fv.decode_values(data, files, types)  # served as a bundle will read them back
    module = sp.import_serving_module(package, source)

    def transform(frame: Any) -> Any:
        return getattr(module, sp.SERVING_FUNCTION)(frame, frozen)

    sp.check_reproduces(path, transform, captured)
    reference, array = request_frame(captured.request, path.request, captured.namespace)
    if array:
        transform = _on_array(transform)
        columns = [str(c) for c in reference.columns]  # an array's columns are positional
    else:
        columns = request_columns(transform, reference)
    requests = reference[columns]
    predictions = model.predict(transform(requests))
    plan = ServingPlan(
        sp.SERVING_STEP,
        sp.SERVING_MODULE,
        sp.SERVING_FUNCTION,
        path.request,
        {},
        tuple(path.cells),
    )
    return BundleInputs(
        name=export.name,
        export_folder=export.folder,
        plan=plan,
        columns=columns,
        reference=requests,
        requirements=list(export.manifest.requirements),
        prediction_reference=prediction_distribution(requests, predictions),
        nullable=nullable_columns(transform, model, requests),
        serving_files={
            f"{CODE_DIR}/{export.name}/{sp.SERVING_MODULE}.py": source.encode("utf-8"),
            fv.VALUES_FILE: data,
            **files,
        },
        value_types=types,
        label=path.label_column,
        request_array=array,
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
