"""Building a bundle from a run (`nbops bundle --run`), from a notebook in one step
(`nbops export NB --bundle`), or from the model in hand (the inspector's button)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from nbops.bundle.allowlist import SUPPORTED_MODELS, check_tree_bounds, disallowed, trusted_types
from nbops.bundle.boosters import check_boosters
from nbops.bundle.manifest import ServingSpec
from nbops.bundle.plan import gather
from nbops.bundle.write import build_bundle
from nbops.config import Project, load_project
from nbops.errors import BundleError, BundleIntegrityError
from nbops.notebook.read import read_notebook
from nbops.quality.plots import slice_plots
from nbops.redact import secret_env_var
from nbops.runs.parameters import REDACTED, convert, parameter_specs
from nbops.runs.pickled_model import FORMAT, RefusedPickle, load_verified
from nbops.runs.record import RunRecord
from nbops.runs.store import RunStore

# Deferred imports: quality.schema and quality.slices (pandas, numpy), and export.render (with
# the notebook analysis it reads), load when a bundle is built, so `nbops bundle --run`
# reports a missing or unfinished run without them.

DEFAULT_OUT = "bundles"


def bundle_from_run(
    ref: str,
    *,
    out: Path | None = None,
    model_name: str | None = None,
    override: bool = False,
    project: Project | None = None,
    export_dir: Path | None = None,
    name: str | None = None,
) -> Path:
    """Bundle the model a run logged (`nbops.log_model`, else the one nbops recorded itself:
    see nbops.notebook.metrics), with the run's notebook version, parameters, metrics, slice
    metrics and gate results. Raises BundleError when the run recorded no model, did not
    complete, or failed a gate (unless `override`).

    The code is exported from the notebook itself when it is unchanged since the run (so the
    export is the one already made: no new version, no stale package), else from the copy
    the run kept. `export_dir` and `name`: where and as what it is exported (default: the
    project's `export_dir`, and the name `nbops export` gives it)."""
    project = project or load_project()
    store = RunStore(project.store_dir)
    record = store.load(ref)
    if record.status != "completed":
        raise BundleError(
            f"run {record.run_id} did not complete ({record.status})",
            fix="bundle a completed run",
        )
    run_dir = store.run_dir(record.run_id)
    model = _run_model(record, run_dir, model_name)
    from nbops.export.render import default_package_name

    return build_from(
        _run_notebook_source(record, run_dir),
        model,
        _plain_parameters(record),
        out=out,
        record=record,
        gates=_recorded_gates(record),
        override=override,
        name=name or default_package_name(Path(record.notebook)),
        project=project,
        export_dir=export_dir,
        workdir=_notebook_folder(record.notebook, project),
    )


def _run_notebook_source(record: RunRecord, run_dir: Path) -> Path:
    """The notebook a run used: the file itself while it is unchanged (its folder holds the
    helper modules and data it reads), else the copy kept with the run."""
    import hashlib

    original = Path(record.notebook)
    with contextlib.suppress(OSError):
        if hashlib.sha256(original.read_bytes()).hexdigest() == record.notebook_sha256:
            return original
    copy = run_dir / f"source{original.suffix or '.ipynb'}"
    return copy if copy.exists() else original


def _notebook_folder(notebook: str, project: Project) -> Path | None:
    """The folder the run's notebook was in (relative data paths are read from there)."""
    path = Path(notebook)
    for candidate in (path, Path.cwd() / path, project.root / path):
        if candidate.is_absolute() and candidate.parent.is_dir():
            return candidate.parent
    return None


def build_from(
    notebook: Path,
    model: Any,
    parameters: dict[str, Any],
    *,
    out: Path | None = None,
    record: RunRecord | None = None,
    gates: list[dict[str, Any]] | None = None,
    slice_report: dict[str, Any] | None = None,
    override: bool = False,
    name: str | None = None,
    project: Project | None = None,
    export_dir: Path | None = None,
    workdir: Path | None = None,
) -> Path:
    """Build a bundle of `model` with the serving path of `notebook` (see nbops.bundle.plan);
    `workdir`: where the notebook's relative data paths are read from (its own folder)."""
    from nbops.quality.schema import infer_schema

    project = project or load_project()
    gates = gates or []
    failed = [str(g.get("gate")) for g in gates if not g.get("passed")]
    if failed and not override:
        raise BundleError(
            f"{len(failed)} gate(s) failed: {'; '.join(failed)}",
            fix="fix the model, or pass --override to bundle anyway (the override is recorded)",
        )
    secret = _secret_values(Path(notebook), parameters, project)
    parameters = {k: v for k, v in parameters.items() if k not in secret}
    inputs = gather(
        Path(notebook),
        model,
        {**parameters, **secret},  # in memory only: the bundle keeps no secret
        name=name,
        project=project,
        export_dir=export_dir,
        workdir=workdir,
    )
    plan = inputs.plan
    kept = sorted(set(plan.parameters) & set(secret))
    if kept:
        raise BundleError(
            f"the serving step reads the secret parameter {kept[0]!r}: a bundle would have to "
            "keep its value",
            location=str(notebook),
            fix="give the serving step (transform:features) only parameters that are not secret",
        )
    serving = ServingSpec(
        step=plan.step,
        module=plan.module,
        function=plan.function,
        input=plan.input,
        parameters=plan.parameters,
        request_columns=inputs.columns,
        label=inputs.label,
        value_types=inputs.value_types,
        cells=list(plan.cells),
        request_array=inputs.request_array,
    )
    schema = with_nullability(infer_schema(inputs.reference, name=inputs.name), inputs.nullable)
    source: dict[str, Any] = {
        "notebook": str(record.notebook if record else notebook),
        "parameters": parameters,
        "prediction_reference": inputs.prediction_reference,
        "python": sys.version.split()[0],
    }
    metrics: dict[str, float] = {}
    if record is not None:
        source.update(
            notebook_sha256=record.notebook_sha256,
            export_version=record.export_version,
            run_id=record.run_id,
            data=[d.model_dump(mode="json") for d in record.data],
            git_commit=record.git.commit,
            git_dirty=record.git.dirty,
        )
        metrics = record.latest_metrics()
        slice_report = slice_report or next(
            (q["report"] for q in record.quality.values() if q["kind"] == "slices"), None
        )
    plots = _slice_plots(slice_report)
    return build_bundle(
        Path(out or project.root / DEFAULT_OUT),
        name=inputs.name,
        model=model,
        export_folder=inputs.export_folder,
        serving=serving,
        schema=schema,
        reference=inputs.reference,
        source=source,
        metrics=metrics,
        slice_metrics=slice_report,
        gates=gates,
        override=bool(override and failed),
        failed_gates=failed if override else [],
        requirements=inputs.requirements,
        plots=plots,
        serving_files=inputs.serving_files,
    )


def _secret_values(notebook: Path, parameters: dict[str, Any], project: Project) -> dict[str, Any]:
    """The secret parameters' values for building a bundle, kept in memory: as given, else
    from their environment variable (NBOPS_PARAM_<NAME>), else the notebook's default.
    Raises BundleError naming the variable when a run's copy of the notebook kept none."""
    specs = parameter_specs(read_notebook(notebook), project.config.secret_params)
    values: dict[str, Any] = {}
    for spec in specs:
        if not spec.secret or spec.computed is not None:
            continue
        variable = secret_env_var(spec.name)
        if spec.name in parameters and parameters[spec.name] != REDACTED:
            values[spec.name] = parameters[spec.name]
        elif variable in os.environ:
            values[spec.name] = convert(spec, os.environ[variable], notebook=str(notebook))
        elif spec.default != REDACTED:
            values[spec.name] = spec.default
        else:
            raise BundleError(
                f"the secret parameter {spec.name!r} has no value: the copy of the notebook "
                "kept with the run holds none",
                location=str(notebook),
                fix=f"set the environment variable {variable} and build the bundle again",
            )
    return values


def with_nullability(schema: Any, accepted: dict[str, bool]) -> Any:
    """The schema with each probed column nullable exactly when the serving code accepts
    nulls in it (the training data's share of nulls then no longer limits requests)."""
    columns = []
    for column in schema.columns:
        if column.name in accepted:
            ok = accepted[column.name]
            column = column.model_copy(update={"nullable": ok, "max_null_fraction": None})
        columns.append(column)
    return schema.model_copy(update={"columns": columns})


def _run_model(record: RunRecord, run_dir: Path, name: str | None) -> Any:
    import skops.io

    models = [m for m in record.models if name is None or m.get("name") == name]
    if not models:
        what = f"a model named {name!r}" if name else "a model"
        raise BundleError(
            f"run {record.run_id} did not record {what}",
            fix="nbops records the estimator the evaluate step predicts with, or the only one "
            "a train step fits; tag those cells, or call nbops.log_model(model) in the train "
            "step, and run it again",
        )
    entry = models[-1]
    path = run_dir / str(entry["path"])
    data = skops_of_pickle(entry, path) if entry.get("format") == FORMAT else path.read_bytes()
    untrusted = skops.io.get_untrusted_types(data=data)
    refused = disallowed(untrusted)
    if refused:
        raise BundleError(
            f"the model run {record.run_id} logged holds the type {refused[0]!r}, which nbops "
            "does not load from bundles",
            location=str(path),
            fix=f"keep the model to {SUPPORTED_MODELS} (no custom functions or classes)",
        )
    trusted = trusted_types(untrusted, untrusted)
    check_boosters(data)
    model = skops.io.loads(data, trusted=trusted)
    check_tree_bounds(model)
    return model


def skops_of_pickle(entry: dict[str, Any], path: Path) -> bytes:
    """The skops bytes of a model the run captured as a pickle (nbops.runs.pickled_model):
    loaded only after its sha256 and every global it references match the run's record and
    nbops's trusted list, then saved with skops, to be checked and loaded as a skops file is.
    Raises BundleIntegrityError (one line) when the file does not pass."""
    import skops.io

    try:
        model = load_verified(path, entry.get("sha256", ""), entry.get("globals") or [])
    except RefusedPickle as e:
        raise BundleIntegrityError(
            f"the captured model is refused: {e}",
            location=str(path),
            fix="the file changed after the run recorded it; run the notebook again",
        ) from None
    try:
        return bytes(skops.io.dumps(model))
    except Exception as e:
        raise BundleError(
            f"skops cannot save the captured model ({type(e).__name__}: {e})",
            location=str(path),
            fix=f"keep the model to {SUPPORTED_MODELS} (no custom functions or classes)",
        ) from None


def _plain_parameters(record: RunRecord) -> dict[str, Any]:
    secret = {p.name for p in record.parameter_schema if p.secret}
    return {k: v for k, v in record.parameters.items() if k not in secret}


def _recorded_gates(record: RunRecord) -> list[dict[str, Any]]:
    """The gate results of the run: `nbops ci`'s, else the inspector's."""
    if record.gates:
        return list(record.gates)
    for entry in record.quality.values():
        if entry["kind"] == "gates":
            return list(entry["report"].get("gates", []))
    return []


def _slice_plots(report: dict[str, Any] | None) -> list[tuple[str, bytes]]:
    if not report:
        return []
    from nbops.quality.slices import SliceReport

    return slice_plots(SliceReport.model_validate(report))
