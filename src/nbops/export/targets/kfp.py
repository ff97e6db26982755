"""`nbops export --target kfp`: the exported pipeline as a Kubeflow Pipelines (v2) pipeline.

Writes `kfp_pipeline.py` next to the package (one lightweight Python component per step, the
package embedded in each with kfp's `embedded_artifact_path`, values passed as typed
artifacts with the serialisation recorded in the manifest, the parameters model as pipeline
parameters, each step's metrics as a Metrics artifact under the names the package's
`collect_metrics` gives them) and compiles it to
`kfp_pipeline.yaml`, ready to upload.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from nbops._version import __version__
from nbops.errors import TargetBuildError
from nbops.export.manifest import StepEntry
from nbops.export.targets import TargetContext

EXTRA = "kfp"
ENGINE = "kfp"
PIPELINE_FILE = "kfp_pipeline.py"
COMPILED_FILE = "kfp_pipeline.yaml"

_ARTIFACT_CLASS = {
    "parquet": "Dataset",
    "parquet-series": "Dataset",
    "npy": "Dataset",
    "skops": "Model",
    "json": "Artifact",
}
_PARAMETER_TYPES = {"int": "int", "float": "float", "str": "str", "bool": "bool"}


def component_name(step: StepEntry) -> str:
    """The Python name of a step's component: `transform:features` -> `transform_features`."""
    return re.sub(r"\W", "_", step.key)


def parameter_type(name: str, type_source: str, where: str) -> str:
    """The KFP pipeline parameter type for a parameters-cell annotation."""
    base = type_source.split("[", 1)[0].strip()
    if base in _PARAMETER_TYPES:
        return _PARAMETER_TYPES[base]
    if base in ("list", "tuple"):
        return "list"
    if base == "dict":
        return "dict"
    raise TargetBuildError(
        f"parameter `{name}` is a {type_source}, which is not a Kubeflow pipeline parameter type",
        location=where,
        fix="give the parameter an int, float, str, bool, list or dict default",
    )


def _output_names(step: StepEntry, ctx: TargetContext) -> dict[str, str]:
    """The step's values that leave it as artifacts -> the component's output argument."""
    taken = {i.name for i in step.inputs} | {p.name for p in ctx.manifest.parameters}
    names: dict[str, str] = {}
    for value in step.outputs:
        if value not in ctx.artifacts:
            continue
        arg = value
        while arg in taken:
            arg += "_out"
        taken.add(arg)
        names[value] = arg
    return names


def _metrics_arg(step: StepEntry, ctx: TargetContext, outputs: dict[str, str]) -> str | None:
    if not ctx.step_metrics(step):
        return None
    arg = "metrics"
    taken = set(outputs.values()) | {i.name for i in step.inputs}
    taken |= {p.name for p in ctx.manifest.parameters}
    while arg in taken:
        arg += "_out"
    return arg


def _component(step: StepEntry, ctx: TargetContext) -> str:
    name = ctx.name
    module, function = step.function.split(":")
    types = {p.name: p.type for p in ctx.manifest.parameters}
    secret = {p.name for p in ctx.manifest.parameters if p.secret}
    outputs = _output_names(step, ctx)
    metrics = _metrics_arg(step, ctx, outputs)
    args: list[str] = []
    call: list[str] = []
    step_params = [i.name for i in step.inputs if i.source == "parameter"]
    for i in step.inputs:
        if i.source == "parameter":
            call.append(f"{i.name}=params.{i.name}")
            if i.name in secret:  # read by Params from the component's environment
                continue
            ptype = parameter_type(i.name, types[i.name], ctx.source)
            args.append(f"{i.name}: {ptype}")
        elif i.source == "step":
            entry = ctx.artifacts[i.name]
            args.append(f"{i.name}: Input[{_ARTIFACT_CLASS[entry.codec]}]")
            trusted = f", {entry.trusted!r}" if entry.trusted else ""
            call.append(f"{i.name}=io.load({i.name}.path, {entry.codec!r}{trusted})")
    for value, arg in outputs.items():
        args.append(f"{arg}: Output[{_ARTIFACT_CLASS[ctx.artifacts[value].codec]}]")
    if metrics:
        args.append(f"{metrics}: Output[Metrics]")
    lines = [
        f'"""Step `{step.key}`: {name}.{module}.{function}."""',
        f"from {name} import _nbops_io as io",
        f"from {name}.{module} import {function} as step",
    ]
    if step_params:
        lines.append(f"from {name}.params import Params")
    if ctx.configure:
        lines.append(f"from {name}.common import configure")
        lines.append("")
        lines.append("configure()")
    if step_params:
        lines.append("")
        passed = [p for p in step_params if p not in secret]
        lines.append("params = Params(" + ", ".join(f"{p}={p}" for p in passed) + ")")
    lines.append("")
    result = "result" if step.outputs else "_"
    lines.append(f"{result} = step(" + ", ".join(call) + ")")
    for value, arg in outputs.items():
        codec = ctx.artifacts[value].codec
        got = "result" if len(step.outputs) == 1 else f"result.{value}"
        lines.append(f"io.save({got}, {arg}.path, {codec!r})")
        lines.append(f"{arg}.metadata['serialisation'] = {codec!r}")
    if metrics:
        values = {
            name: ("result" if len(step.outputs) == 1 else f"result.{value}")
            for name, value in ctx.step_metrics(step).items()
        }
        mapping = "{" + ", ".join(f"{v!r}: {g}" for v, g in values.items()) + "}"
        lines.append(f"for key, number in io.metric_values({mapping}).items():")
        lines.append(f"    {metrics}.log_metric(key, number)")
    body = "\n".join(("    " + line) if line else "" for line in lines)
    signature = ",\n    ".join(args)
    return (
        f"@dsl.component(**COMPONENT)\ndef {component_name(step)}(\n    {signature}\n):\n{body}\n"
        if args
        else f"@dsl.component(**COMPONENT)\ndef {component_name(step)}():\n{body}\n"
    )


def _pipeline(ctx: TargetContext) -> str:
    manifest = ctx.manifest
    where = ctx.source
    params = ", ".join(
        f"{p.name}: {parameter_type(p.name, p.type, where)} = {p.default!r}"
        for p in manifest.parameters
        if not p.secret  # a secret is no pipeline parameter: its value would be kept by KFP
    )
    secret = {p.name for p in manifest.parameters if p.secret}
    producers: dict[tuple[str, str], str] = {}  # (step key, value) -> output argument
    task_var: dict[str, str] = {}
    lines: list[str] = []
    last_metrics: str | None = None
    for step in manifest.steps:
        var = f"{component_name(step)}_task"
        task_var[step.key] = var
        kwargs = []
        for i in step.inputs:
            if i.source == "parameter" and i.name not in secret:
                kwargs.append(f"{i.name}={i.name}")
            elif i.source == "step" and i.step is not None:
                source = task_var[i.step]
                arg = producers[(i.step, i.name)]
                kwargs.append(f'{i.name}={source}.outputs["{arg}"]')
        lines.append(f"{var} = {component_name(step)}({', '.join(kwargs)})")
        lines.append(f'{var}.set_display_name("{step.key}")')
        outputs = _output_names(step, ctx)
        for value, arg in outputs.items():
            producers[(step.key, value)] = arg
        metrics = _metrics_arg(step, ctx, outputs)
        if metrics:
            last_metrics = f'{var}.outputs["{metrics}"]'
        res = ctx.resources(step)
        if res is not None:
            for attr in (
                "cpu_request",
                "cpu_limit",
                "memory_request",
                "memory_limit",
                "accelerator_type",
            ):
                value = getattr(res, attr)
                if value is not None:
                    lines.append(f"{var}.set_{attr}({value!r})")
            if res.accelerator_limit is not None:
                lines.append(f"{var}.set_accelerator_limit({res.accelerator_limit})")
            if res.retries is not None:
                lines.append(f"{var}.set_retry(num_retries={res.retries})")
            if res.caching is not None:
                lines.append(f"{var}.set_caching_options({res.caching})")
    returns = " -> Metrics" if last_metrics else ""
    if last_metrics:
        lines.append(f"return {last_metrics}")
    body = "\n".join("    " + line for line in lines)
    pipeline_name = ctx.name.replace("_", "-").lower()
    doc = f"The {ctx.name} pipeline, export version {manifest.version}."
    return (
        f'@dsl.pipeline(name="{pipeline_name}", description="{doc}")\n'
        f"def {ctx.name}_pipeline({params}){returns}:\n"
        f'    """{doc}"""\n{body}\n'
    )


def render(ctx: TargetContext) -> dict[str, str]:
    """`kfp_pipeline.py`, next to the package (and `kfp_schedule.py` with --schedule)."""
    manifest, name = ctx.manifest, ctx.name
    packages = ctx.requirements if ctx.options.install_packages else []
    components = "\n\n".join(_component(step, ctx) for step in manifest.steps)
    text = f'''# Generated by nbops {__version__} from {Path(manifest.source.path).name}, export version {manifest.version}.
# Do not edit: change the notebook and run `nbops export --target kfp` again.
"""The {name} pipeline on Kubeflow Pipelines: one component per step of the notebook.

Compile it (this writes {COMPILED_FILE} next to this file, ready to upload):

    python {PIPELINE_FILE}

Each component embeds the `{name}` package, so it runs the very code `python -m {name}`
runs. Values pass between steps as artifacts with the serialisation in
{name}/manifest.json (parquet, npy, skops, JSON; never pickle).
"""

import argparse
import atexit
import shutil
import tempfile
from pathlib import Path

from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

BASE_IMAGE = {ctx.options.base_image!r}
# Installed when a component starts; empty when the image already has them (--no-install).
PACKAGES = {packages!r}
INSTALL_KFP = {ctx.options.install_packages!r}


def _embedded_package() -> str:
    """A clean copy of the {name} package for kfp to embed in every component."""
    folder = tempfile.mkdtemp(prefix="nbops-kfp-")
    atexit.register(shutil.rmtree, folder, True)
    shutil.copytree(
        Path(__file__).resolve().parent / {name!r},
        Path(folder) / {name!r},
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return folder


COMPONENT = {{
    "base_image": BASE_IMAGE,
    "packages_to_install": PACKAGES,
    "install_kfp_package": INSTALL_KFP,
    "embedded_artifact_path": _embedded_package(),
}}


{components}

{_pipeline(ctx)}

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Compile the {name} pipeline for Kubeflow.")
    parser.add_argument(
        "--output", default=str(Path(__file__).with_name({COMPILED_FILE!r})), help="YAML file"
    )
    args = parser.parse_args(argv)
    compiler.Compiler().compile(pipeline_func={name}_pipeline, package_path=args.output)


if __name__ == "__main__":
    main()
'''
    unused = {"Artifact", "Dataset", "Model", "Input", "Output", "Metrics"}
    for cls in list(unused):
        if re.search(rf"\b{cls}\[|\[{cls}\]|-> {cls}\b", text.split("def _embedded_package")[1]):
            unused.discard(cls)
    if unused:
        kept = sorted({"Artifact", "Dataset", "Input", "Metrics", "Model", "Output"} - unused)
        imports = f"from kfp.dsl import {', '.join(kept)}\n" if kept else ""
        text = text.replace(
            "from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output\n", imports
        )
    files = {PIPELINE_FILE: text}
    if ctx.options.schedule:  # Deferred import: only an export with --schedule needs it
        from nbops.export.targets.kfp_schedule import SCHEDULE_FILE, render_schedule

        files[SCHEDULE_FILE] = render_schedule(ctx, ctx.options.schedule)
    return files


def build(ctx: TargetContext, folder: Path) -> dict[str, str]:
    """Compile `kfp_pipeline.py` in `folder` to `kfp_pipeline.yaml`."""
    output = folder / COMPILED_FILE
    proc = subprocess.run(
        [sys.executable, str(folder / PIPELINE_FILE), "--output", str(output)],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not output.exists():
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise TargetBuildError(
            "kfp could not compile the pipeline: " + (lines[-1] if lines else "no output"),
            location=str(folder / PIPELINE_FILE),
            fix="report this as an nbops bug, with the notebook",
        )
    return {COMPILED_FILE: output.read_text("utf-8")}
