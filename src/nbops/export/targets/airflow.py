"""`nbops export --target airflow`: the exported pipeline as an Airflow 3 DAG.

Writes `airflow_dag.py` next to the package: a TaskFlow DAG (`airflow.sdk`) with one task per
step, each calling the package's step function, the notebook's parameters as DAG params
(checked by the package's `Params` in every task), values passed between tasks as files with
the serialisation recorded in the manifest (the XCom holds only their paths, and a step's
metrics, named as the package's `collect_metrics` names them), and `[tool.nbops.steps.NAME] retries` as task retries. Also writes an
`.airflowignore`, so Airflow parses the DAG file and not the package's modules.

Nothing is compiled: Airflow reads the DAG file itself.
"""

from __future__ import annotations

import ast
import keyword
import sys
import textwrap
from pathlib import Path
from typing import Any

from nbops._version import __version__
from nbops.errors import TargetBuildError
from nbops.export.manifest import ParameterEntry, StepEntry
from nbops.export.targets import TargetContext

EXTRA = "airflow"
ENGINE = "airflow"
DAG_FILE = "airflow_dag.py"
IGNORE_FILE = ".airflowignore"
ARTIFACT_ROOT_ENV = "NBOPS_ARTIFACT_ROOT"
DEFAULT_ARTIFACT_DIR = "nbops-artifacts"

# JSON schema types of parameter annotations (a name not here leaves the type open: the
# package's Params checks every value anyway).
_JSON_TYPES = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "None": "null",
    "NoneType": "null",
    "list": "array",
    "tuple": "array",
    "set": "array",
    "frozenset": "array",
    "List": "array",
    "Tuple": "array",
    "Set": "array",
    "FrozenSet": "array",
    "Sequence": "array",
    "dict": "object",
    "Dict": "object",
    "Mapping": "object",
}
# Resource settings Airflow's default executors (local processes, Celery) have no use for.
_NOT_APPLIED = (
    "cpu_request",
    "cpu_limit",
    "memory_request",
    "memory_limit",
    "accelerator_type",
    "accelerator_limit",
    "caching",
)


def task_id(step: StepEntry) -> str:
    """The Airflow task id (and Python function name) of a step: `transform:load` ->
    `transform_load`."""
    return step.key.replace(":", "_")


# -- parameters ------------------------------------------------------------------------------


def _annotation_types(node: ast.expr) -> list[str] | None:
    """The JSON schema types an annotation allows; None when it leaves them open."""
    if isinstance(node, ast.Constant) and node.value is None:
        return ["null"]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _annotation_types(node.left), _annotation_types(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Subscript):
        base = _base_name(node.value)
        members = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base in ("Optional", "Union"):
            found: list[str] = ["null"] if base == "Optional" else []
            for member in members:
                types = _annotation_types(member)
                if types is None:
                    return None
                found += types
            return found
        if base == "Literal":
            values = [m.value for m in members if isinstance(m, ast.Constant)]
            return [_json_type(v) for v in values] if len(values) == len(members) else None
        node = node.value
    name = _base_name(node)
    return [_JSON_TYPES[name]] if name in _JSON_TYPES else None


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # typing.Optional, t.List
        return node.attr
    return ""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _json_default(value: Any, name: str, where: str) -> Any:
    """The default as a JSON value (tuples and sets become lists), as a DAG param holds it."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_default(v, name, where) for v in value]
    if isinstance(value, set | frozenset):
        return [_json_default(v, name, where) for v in sorted(value, key=repr)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _json_default(v, name, where) for k, v in value.items()}
    raise TargetBuildError(
        f"parameter `{name}` has the default {value!r}, which an Airflow DAG param cannot "
        "hold (params are JSON)",
        location=where,
        fix="give it a JSON default: a number, string, bool, None, list, or dict with string keys",
    )


def param_schema(parameter: ParameterEntry, where: str) -> tuple[Any, dict[str, Any]]:
    """The default of a DAG param and its JSON schema keywords (`type`, `enum`)."""
    default = _json_default(parameter.default, parameter.name, where)
    try:
        node = ast.parse(parameter.type, mode="eval").body
    except SyntaxError:
        return default, {}
    schema: dict[str, Any] = {}
    types = _annotation_types(node)
    if isinstance(node, ast.Subscript) and _base_name(node.value) == "Literal":
        members = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if all(isinstance(m, ast.Constant) for m in members):
            values = [m.value for m in members if isinstance(m, ast.Constant)]
            schema["enum"] = values if default in values else [*values, default]
    if types is not None:
        types = list(dict.fromkeys([*types, _json_type(default)]))
        if "number" in types and "integer" in types:
            types.remove("integer")  # a JSON number includes the integers
        schema["type"] = types[0] if len(types) == 1 else types
    return default, schema


def _param(parameter: ParameterEntry, where: str) -> str:
    default, schema = param_schema(parameter, where)
    args = [repr(default)] + [f"{key}={value!r}" for key, value in schema.items()]
    if parameter.description:
        args.append(f"description={parameter.description!r}")
    return f"{parameter.name!r}: Param({', '.join(args)})"


# -- tasks -----------------------------------------------------------------------------------


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken or keyword.iskeyword(name):
        name += "_"
    taken.add(name)
    return name


def _upstream(step: StepEntry, ids: dict[str, str]) -> list[str]:
    """The task ids whose values the step reads, in the order of its inputs."""
    found: dict[str, None] = {}
    for i in step.inputs:
        if i.source == "step" and i.step is not None:
            found.setdefault(ids[i.step], None)
    return list(found)


def _is_metrics_step(step: StepEntry, ctx: TargetContext) -> bool:
    return bool(ctx.step_metrics(step))


def _not_applied(step: StepEntry, ctx: TargetContext) -> str:
    """A comment naming the step's resource settings the DAG does not use, if any."""
    res = ctx.resources(step)
    if res is None:
        return ""
    settings = [
        f"{attr}={getattr(res, attr)!r}" for attr in _NOT_APPLIED if getattr(res, attr) is not None
    ]
    if not settings:
        return ""
    return (
        f"# [tool.nbops.steps] {step.key}: {', '.join(settings)} not applied (Airflow's default "
        "executors have no per-task resources; see the module docstring).\n"
    )


def _task(step: StepEntry, ctx: TargetContext, ids: dict[str, str]) -> str:
    name = ctx.name
    module, function = step.function.split(":")
    upstream = _upstream(step, ids)
    step_params = [i.name for i in step.inputs if i.source == "parameter"]
    lines = [
        f'"""Step `{step.key}`: {name}.{module}.{function}."""',
        f"from {name}.{module} import {function} as step",
    ]
    if upstream or _is_metrics_step(step, ctx):
        lines.insert(1, f"from {name} import _nbops_io as io")
    if ctx.configure:
        lines.append(f"from {name}.common import configure")
    lines.append("")
    if ctx.configure:
        lines.append("configure()")
    if step_params:
        lines.append("params = _params()")
    call: list[str] = []
    for i in step.inputs:
        if i.source == "parameter":
            call.append(f"{i.name}=params.{i.name}")
        elif i.source == "step" and i.step is not None:
            entry = ctx.artifacts[i.name]
            trusted = f", {entry.trusted!r}" if entry.trusted else ""
            path = f"{ids[i.step]}['paths'][{i.name!r}]"
            call.append(f"{i.name}=io.load({path}, {entry.codec!r}{trusted})")
    if ctx.configure or step_params:
        lines.append("")
    returned = {v: ("result" if len(step.outputs) == 1 else f"result.{v}") for v in step.outputs}
    invoke = "step(" + ", ".join(call) + ")"
    lines.append(f"result = {invoke}" if step.outputs else invoke)
    saved = ", ".join(
        f"{v!r}: ({got}, {ctx.artifacts[v].codec!r})"
        for v, got in returned.items()
        if v in ctx.artifacts
    )
    out = [f'"paths": _save({{{saved}}})' if saved else '"paths": {}']
    if _is_metrics_step(step, ctx):
        values = ", ".join(
            f"{name!r}: {returned[value]}" for name, value in ctx.step_metrics(step).items()
        )
        out.append(f'"metrics": io.metric_values({{{values}}})')
    lines.append("return {" + ", ".join(out) + "}")
    body = "\n".join(("    " + line) if line else "" for line in lines)
    args = ", ".join(f"{u}: dict[str, Any]" for u in upstream)
    res = ctx.resources(step)
    decorator = "@task" if res is None or res.retries is None else f"@task(retries={res.retries})"
    return (
        f"{_not_applied(step, ctx)}{decorator}\n"
        f"def {ids[step.key]}({args}) -> dict[str, Any]:\n{body}\n"
    )


def _dag(ctx: TargetContext, ids: dict[str, str]) -> str:
    manifest = ctx.manifest
    where = ctx.source
    taken = set(ids.values())
    function = _fresh(f"{ctx.name}_dag", taken)
    read = {u for step in manifest.steps for u in _upstream(step, ids)}
    outputs: dict[str, str] = {}
    lines: list[str] = []
    for step in manifest.steps:
        tid = ids[step.key]
        call = f"{tid}(" + ", ".join(f"{u}={outputs[u]}" for u in _upstream(step, ids)) + ")"
        if tid in read:
            outputs[tid] = _fresh(f"{tid}_out", taken)
            call = f"{outputs[tid]} = {call}"
        lines.append(call)
    # A secret is no DAG param (Airflow would show and keep its value): each task's `Params`
    # reads it from the worker's environment.
    params = "".join(f"        {_param(p, where)},\n" for p in manifest.parameters if not p.secret)
    doc = f"The {ctx.name} pipeline, export version {manifest.version}."
    body = "\n".join("    " + line for line in lines)
    return (
        "@dag(\n"
        f"    dag_id={ctx.name!r},\n"
        f"    description={doc!r},\n"
        "    doc_md=__doc__,\n"
        f"    schedule={ctx.options.schedule!r},\n"
        "    catchup=False,\n"
        '    tags=["nbops"],\n'
        f"    params={{\n{params}    }},\n"
        ")\n"
        f"def {function}() -> None:\n"
        f'    """{doc}"""\n{body}\n\n\n'
        f"{function}()\n"
    )


def _check_name(name: str) -> None:
    """The DAG file puts its folder first on sys.path: the package must not hide a module."""
    if name == "airflow" or name in sys.stdlib_module_names:
        raise TargetBuildError(
            f"the package name `{name}` is also the name of a module Airflow or Python needs: "
            "the DAG file puts the package first on the import path",
            fix="export under another name: nbops export NOTEBOOK --name NAME --target airflow",
        )


def render(ctx: TargetContext) -> dict[str, str]:
    """`airflow_dag.py` and `.airflowignore`, next to the package."""
    manifest, name = ctx.manifest, ctx.name
    _check_name(name)
    ids = {step.key: task_id(step) for step in manifest.steps}
    tasks = "\n\n".join(_task(step, ctx, ids) for step in manifest.steps)
    requirements = textwrap.fill(
        ", ".join(ctx.requirements) or "none",
        width=95,
        initial_indent="    ",
        subsequent_indent="    ",
        break_on_hyphens=False,
    )
    text = f'''# Generated by nbops {__version__} from {Path(manifest.source.path).name}, export version {manifest.version}.
# Do not edit: change the notebook and run `nbops export --target airflow` again.
"""The {name} pipeline on Airflow: one task per step of the notebook.

Put this folder (this file and the `{name}` package next to it) in Airflow's DAG folder, or
make it the DAG folder, then trigger the DAG `{name}`. Its params are the notebook's
parameters; every task checks them with the package's `Params`, as `python -m {name}` does.
The workers need the Python packages the steps import:

{requirements}

Values pass between tasks as files, with the serialisation recorded in
{name}/manifest.json (parquet, npy, skops, JSON; never pickle), written to

    $NBOPS_ARTIFACT_ROOT/<dag id>/<run id>/<task id>/<value>.<ext>

and a task's XCom holds only their paths (and the metrics its step computes).
NBOPS_ARTIFACT_ROOT defaults to `$AIRFLOW_HOME/{DEFAULT_ARTIFACT_DIR}/` (out of the export
folder, which a new export replaces); when tasks run on several machines (Celery or
Kubernetes executors) it must be a folder they all share.

Of `[tool.nbops.steps.NAME]`, only `retries` applies here (as the task's retries). The cpu,
memory, accelerator and caching settings are not used: Airflow's default executors (local,
Celery) run tasks as plain processes on the workers, with no per-task resources; on the
Kubernetes executor, set them with a task's `executor_config`.
"""

import os
import sys
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

HERE = Path(__file__).resolve().parent
# The {name} package sits next to this file. Its modules are imported inside the tasks, so
# that parsing this file (which Airflow does often) stays light.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def _params() -> Any:
    """The run's parameters (the DAG params, with the run's conf), checked by `Params`."""
    from {name}.params import Params

    return Params.model_validate(dict(get_current_context()["params"]))


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def _save(values: dict[str, tuple[Any, str]]) -> dict[str, str]:
    """Write a step's values (name -> (value, serialisation)) for this task run; their paths."""
    from {name} import _nbops_io as io

    context = get_current_context()
    root = Path(os.environ.get({ARTIFACT_ROOT_ENV!r}) or _airflow_home() / {DEFAULT_ARTIFACT_DIR!r})
    folder = root / context["dag"].dag_id / context["run_id"] / context["ti"].task_id
    folder.mkdir(parents=True, exist_ok=True)
    paths = {{}}
    for value_name, (value, codec) in values.items():
        path = str(folder / f"{{value_name}}{{io.EXTENSIONS[codec]}}")
        io.save(value, path, codec)
        paths[value_name] = path
    return paths


{tasks}

{_dag(ctx, ids)}'''
    ignore = (
        "# Generated by nbops: in this folder only airflow_dag.py is a DAG file.\n"
        f"{name}/\ntest_pipeline.py\n"
    )
    files = {DAG_FILE: text, IGNORE_FILE: ignore}
    if ctx.options.loop is not None:  # Deferred import: only an export with --loop needs it
        from nbops.export.targets.airflow_loop import LOOP_FILE, render_loop

        files[LOOP_FILE] = render_loop(ctx, ctx.options.loop)
    return files


def build(ctx: TargetContext, folder: Path) -> dict[str, str]:
    """Nothing to compile: Airflow reads `airflow_dag.py` itself (and ruff has parsed it)."""
    return {}
