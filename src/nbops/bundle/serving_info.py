"""A bundle's serving path as its manifest records it: the `ServingSpec` a build is given,
checked against the exported package it names and the request schema, becomes the
manifest's `ServingInfo` (nbops.bundle.manifest).

`check_serving` raises BundleError, one line, when the request columns are not distinct
schema columns (or hold the label, or a column absent when serving), the export has no such
step or the step another function, the step needs an input a request cannot provide, its
parameters are not JSON values, or a derived serving path (nbops.bundle.serving_path) lacks
its module, its values file or its input. A spec without a step serves with the model alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.bundle.frozen_values import VALUES_FILE
from nbops.bundle.manifest import CODE_DIR, ServingInfo, ServingSpec
from nbops.bundle.serving_path import SERVING_FUNCTION, SERVING_MODULE
from nbops.bundle.serving_path import SERVING_STEP as DERIVED_STEP
from nbops.errors import BundleError
from nbops.export.manifest import MANIFEST_FILE as EXPORT_MANIFEST
from nbops.export.manifest import ExportManifest

if TYPE_CHECKING:
    from nbops.quality.schema import Schema

__all__ = ["check_serving"]


def _package_of(export_folder: Path) -> tuple[str, ExportManifest]:
    folder = Path(export_folder)
    if not folder.is_dir():
        raise BundleError(f"{folder} is not an exported package folder", fix="export it first")
    candidate = folder / folder.name / EXPORT_MANIFEST
    if not candidate.is_file():
        found = sorted(p for p in folder.glob(f"*/{EXPORT_MANIFEST}") if p.is_file())
        if len(found) != 1:
            raise BundleError(
                f"{folder} holds no single exported package (a NAME/manifest.json)",
                fix="pass the folder `nbops export` wrote (OUT/NAME)",
            )
        candidate = found[0]
    try:
        manifest = ExportManifest.model_validate_json(candidate.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise BundleError(
            f"cannot read the export manifest ({e})", location=str(candidate)
        ) from None
    return candidate.parent.name, manifest


def _derived_info(
    spec: ServingSpec,
    export_folder: Path | None,
    files: dict[str, bytes],
    columns: list[str],
    label: str | None,
) -> ServingInfo:
    """The ServingInfo of a serving path sliced from the notebook (nbops.bundle.serving_path)."""
    if export_folder is None:
        raise BundleError("a sliced serving path needs the exported package")
    package, _ = _package_of(export_folder)
    module_file = f"{CODE_DIR}/{package}/{SERVING_MODULE}.py"
    if module_file not in files or VALUES_FILE not in files or not spec.input:
        raise BundleError(
            "a sliced serving path needs its module, its values file and its input",
            fix="build it with nbops.bundle.from_run.build_from",
        )
    return ServingInfo(
        step=spec.step,
        package=package,
        module=SERVING_MODULE,
        function=SERVING_FUNCTION,
        input=spec.input,
        request_columns=columns,
        label=label,
        values=VALUES_FILE,
        value_types=list(spec.value_types),
        cells=list(spec.cells),
        request_array=spec.request_array,
    )


def check_serving(
    spec: ServingSpec | None,
    export_folder: Path | None,
    schema: Schema,
    files: dict[str, bytes] | None = None,
) -> ServingInfo:
    serving_env = schema.environments.get("serving")
    absent = set(serving_env.absent) if serving_env else set()
    label = spec.label if spec is not None and spec.label is not None else schema.label
    if spec is not None and spec.request_columns:
        columns = [str(c) for c in spec.request_columns]
    else:
        columns = [c for c in schema.column_names if c not in absent and c != label]
    known = set(schema.column_names)
    for column in columns:
        if column not in known:
            raise BundleError(
                f"request column {column!r} is not in the schema",
                fix="infer the schema from the frame the serving step takes",
            )
        if column in absent or (label is not None and column == label):
            raise BundleError(
                f"request column {column!r} is the label or absent when serving",
                fix="leave the label out of the request columns",
            )
    if len(set(columns)) != len(columns) or not columns:
        raise BundleError("the request columns must be distinct and at least one")
    if spec is not None and spec.step == DERIVED_STEP:
        return _derived_info(spec, export_folder, files or {}, columns, label)
    if spec is None or spec.step is None:
        if export_folder is not None:
            _package_of(export_folder)  # a folder that is not an export is refused all the same
        array = spec is not None and spec.request_array
        return ServingInfo(step=None, request_columns=columns, label=label, request_array=array)
    if export_folder is None:
        raise BundleError(
            f"serving step {spec.step!r} needs the exported package",
            fix="pass export_folder (the folder `nbops export` wrote)",
        )
    package, export = _package_of(export_folder)
    entry = next((s for s in export.steps if s.key == spec.step), None)
    if entry is None:
        raise BundleError(
            f"the export has no step {spec.step!r}",
            location=str(export_folder),
            fix="tag the cell mapping raw records to features as transform:features",
        )
    module, _, function = entry.function.partition(":")
    given_module = (spec.module or module).removeprefix(f"{package}.")
    if given_module != module or (spec.function or function) != function:
        raise BundleError(
            f"serving step {spec.step!r} is {module}:{function} in the export, "
            f"not {spec.module}:{spec.function}",
            fix="build the ServingSpec from the export manifest (ServingSpec.from_export)",
        )
    inputs = {i.name: i for i in entry.inputs}
    frame_input = spec.input
    if frame_input is None:
        frames = [i.name for i in entry.inputs if i.source == "step"]
        frame_input = frames[0] if len(frames) == 1 else None
    if frame_input is None or frame_input not in inputs:
        raise BundleError(
            f"serving step {spec.step!r} has no frame input {frame_input!r} "
            f"(its inputs: {', '.join(inputs) or 'none'})",
            fix="set ServingSpec.input to the argument that takes the request frame",
        )
    defaults = {p.name: p.default for p in export.parameters}
    parameters: dict[str, Any] = {}
    setup: list[str] = []
    for input_name, entry_input in inputs.items():
        if input_name == frame_input:
            continue
        if entry_input.source == "setup":
            setup.append(input_name)
        elif input_name in spec.parameters:
            parameters[input_name] = spec.parameters[input_name]
        elif entry_input.source == "parameter":
            parameters[input_name] = defaults.get(input_name)
        else:
            raise BundleError(
                f"serving step {spec.step!r} also needs {input_name!r} from step "
                f"{entry_input.step!r}, which a request cannot provide",
                fix="make the step take only the request frame and parameters",
            )
    unknown = [k for k in spec.parameters if k not in inputs or k == frame_input]
    if unknown:
        raise BundleError(f"serving step {spec.step!r} takes no argument {unknown[0]!r}")
    try:
        json.dumps(parameters, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BundleError(f"serving parameters must be JSON values ({e})") from None
    return ServingInfo(
        step=spec.step,
        package=package,
        module=module,
        function=function,
        input=frame_input,
        parameters=parameters,
        setup=setup,
        request_columns=columns,
        label=label,
        request_array=spec.request_array,
    )
