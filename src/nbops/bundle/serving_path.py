"""A derived serving path in a bundle: the sliced code, the values frozen from the run, and
the check that they reproduce the notebook.

`nbops.notebook.slicing` finds, before anything runs, the statements that turn the raw test
frame into the model's input and the sub-expressions whose values come from the training
side. Building a bundle then:

1. runs the capture program (the notebook's own statements the model input depends on, in
   the notebook's folder, with the run's parameters) once, in this process, recording the
   raw request frame right after it is loaded, each frozen value where the test-side
   statement reads it (per loop value for those inside a loop), and the model input the
   notebook computes;
2. writes `code/<package>/serving.py`: `serve(<request>, _nbops_frozen)` holding the sliced
   statements, each frozen sub-expression replaced by `_nbops_frozen("vN")`, `.drop(...)`
   calls made tolerant of columns a request does not carry (`errors="ignore"`), and the
   model input returned;
3. stores the frozen values in `serving/values.json` and `serving/vN.skops`
   (nbops.bundle.frozen_values: tagged JSON, and skops for fitted scikit-learn objects,
   never pickle). Any other value is a BundleError naming the expression and its cell;
4. checks that `serve` on a copy of the recorded request frame, with the values read back
   from their serialised form, gives exactly the notebook's model input; a BundleError
   names the difference otherwise.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from nbops.errors import BundleError

if TYPE_CHECKING:
    from nbops.notebook.analysis import StepGraph
    from nbops.notebook.slicing import FrozenExpression, ProgramStatement, ServingPath

SERVING_MODULE = "serving"
SERVING_FUNCTION = "serve"
SERVING_STEP = "serving-path"
_FROZEN = "_nbops_frozen"
_FREEZE = "_nbops_freeze"
_REQUEST = "_nbops_request"
_MODEL_INPUT = "_nbops_model_input"


# -- rendering -----------------------------------------------------------------------------------


def _rewrite(node: ast.AST, replace: Callable[[ast.AST], ast.AST | None]) -> Any:
    """A copy of `node` in which `replace` may substitute any sub-node (None: keep it)."""
    substitute = replace(node)
    if substitute is not None:
        return substitute
    new = copy.copy(node)
    for name, value in ast.iter_fields(node):
        if isinstance(value, list):
            setattr(
                new,
                name,
                [_rewrite(v, replace) if isinstance(v, ast.AST) else v for v in value],
            )
        elif isinstance(value, ast.AST):
            setattr(new, name, _rewrite(value, replace))
    return new


def _frozen_call(function: str, frozen: FrozenExpression, value: ast.expr | None) -> ast.expr:
    args: list[ast.expr] = [ast.Constant(frozen.key)]
    if value is not None:
        args.append(value)
    if frozen.keys or value is not None:
        args.append(ast.Tuple([ast.Name(k, ast.Load()) for k in frozen.keys], ast.Load()))
    return ast.Call(ast.Name(function, ast.Load()), args, [])


def _serving_replacer(path: ServingPath) -> Callable[[ast.AST], ast.AST | None]:
    def replace(node: ast.AST) -> ast.AST | None:
        frozen = path.frozen.get(id(node))
        if frozen is not None:
            return _frozen_call(_FROZEN, frozen, None)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "drop"
            and not any(k.arg == "errors" for k in node.keywords)
        ):
            call = _rewrite(node, lambda n: None if n is node else replace(n))
            call.keywords = [*call.keywords, ast.keyword("errors", ast.Constant("ignore"))]
            return call
        return None

    return replace


def _capture_replacer(path: ServingPath) -> Callable[[ast.AST], ast.AST | None]:
    def replace(node: ast.AST) -> ast.AST | None:
        frozen = path.frozen.get(id(node))
        if frozen is not None:
            inner = _rewrite(node, lambda n: None if n is node else replace(n))
            return _frozen_call(_FREEZE, frozen, inner)
        return None

    return replace


def serving_source(path: ServingPath, graph: StepGraph, notebook: str) -> str:
    """The generated `serving.py` of a bundle's package (see the module docstring)."""
    replace = _serving_replacer(path)
    body: list[str] = [f"    {path.request} = {path.request}.copy()"]
    cell = None
    for stmt in path.statements:
        if stmt.cell.number != cell:
            cell = stmt.cell.number
            body.append(f"    # cell {cell}")
        code = ast.unparse(ast.fix_missing_locations(_rewrite(stmt.served, replace)))
        body.extend(f"    {line}" if line else "" for line in code.splitlines())
    returned = ast.unparse(ast.fix_missing_locations(_rewrite(path.model_input, replace)))
    body.append(f"    # cell {path.predict.cell.number}: {path.model}.predict(...)")
    body.append(f"    return {returned}")
    used = _names_read(path)
    imports = [graph.imports[n].statement for n in sorted(used) if n in graph.imports]
    setup = sorted(n for n in used if n in graph.setup_names and n not in graph.imports)
    cells = ", ".join(str(c) for c in path.cells) or "none"
    lines = [
        f'"""The serving path of {Path(notebook).name}, sliced by nbops from its cells '
        f"{cells} (generated: do not edit).",
        "",
        f"{SERVING_FUNCTION}({path.request}, {_FROZEN}) returns what the notebook gives "
        f"{path.model}.predict; `{_FROZEN}(key)`",
        "is a value computed on the training side when the bundle was built.",
        '"""',
        "",
        "# ruff: noqa",
        *imports,
    ]
    if setup:
        lines.append(f"from .common import {', '.join(setup)}")
    lines += ["", "", f"def {SERVING_FUNCTION}({path.request}, {_FROZEN}):", *body, ""]
    return "\n".join(lines)


def _names_read(path: ServingPath) -> set[str]:
    names: set[str] = set()
    for node in [*(s.served for s in path.statements), path.model_input]:
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
                names.add(child.id)
    return names


def capture_program(path: ServingPath) -> list[tuple[ProgramStatement, ast.Module]]:
    """The capture program, one compiled-ready module per statement."""
    replace = _capture_replacer(path)
    served = {id(s) for s in path.statements}
    out: list[tuple[ProgramStatement, ast.Module]] = []
    for stmt in path.capture:
        node = _rewrite(stmt.node, replace) if id(stmt) in served else stmt.node
        body: list[ast.stmt] = [node]
        if stmt is path.root:
            body.append(_call_stmt(_REQUEST, ast.Name(path.request, ast.Load())))
        out.append((stmt, ast.fix_missing_locations(ast.Module(body=body, type_ignores=[]))))
    final = _rewrite(path.model_input, replace)
    module = ast.Module(body=[_call_stmt(_MODEL_INPUT, final)], type_ignores=[])
    out.append((path.predict, ast.fix_missing_locations(module)))
    return out


def _call_stmt(function: str, arg: ast.expr) -> ast.stmt:
    call = ast.Call(ast.Name(function, ast.Load()), [arg], [])
    stmt = ast.Expr(call)
    return ast.fix_missing_locations(
        ast.copy_location(stmt, arg) if hasattr(arg, "lineno") else stmt
    )


# -- running the capture -------------------------------------------------------------------------


@dataclass
class Captured:
    """What the capture program recorded."""

    request: Any = None
    model_input: Any = None
    values: dict[str, Any] = field(default_factory=dict)
    keyed: dict[str, dict[tuple[Any, ...], Any]] = field(default_factory=dict)
    namespace: dict[str, Any] = field(default_factory=dict)  # the program's names, after it


@contextlib.contextmanager
def _working_directory(folder: Path | None) -> Iterator[None]:
    if folder is None:
        yield
        return
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def run_capture(
    path: ServingPath,
    graph: StepGraph,
    common: ModuleType,
    parameters: dict[str, Any],
    *,
    workdir: Path | None = None,
) -> Captured:
    """Run the capture program (module docstring) in a namespace made from the exported
    package's `common` module, the notebook's imports and the parameters."""
    captured = Captured()

    def freeze(key: str, value: Any, keys: tuple[Any, ...] = ()) -> Any:
        if keys:
            captured.keyed.setdefault(key, {})[tuple(keys)] = value
        else:
            captured.values[key] = value
        return value

    def request(frame: Any) -> None:
        captured.request = frame.copy() if hasattr(frame, "copy") else copy.deepcopy(frame)

    def model_input(value: Any) -> None:
        captured.model_input = value

    namespace: dict[str, Any] = {
        k: v for k, v in vars(common).items() if not k.startswith("__") or k == "__builtins__"
    }
    namespace["__name__"] = "__nbops_capture__"
    for binding in graph.imports.values():
        with contextlib.suppress(Exception):
            exec(binding.statement, namespace)  # the notebook's own imports
    for statement in graph.star_imports:
        with contextlib.suppress(Exception):
            exec(statement, namespace)
    namespace.update(parameters)
    namespace.update({_FREEZE: freeze, _REQUEST: request, _MODEL_INPUT: model_input})
    notebook = str(graph.notebook.path)
    with _working_directory(workdir), contextlib.redirect_stdout(sys.stderr):
        for stmt, module in capture_program(path):
            try:
                exec(compile(module, notebook, "exec"), namespace)
            except Exception as e:
                raise BundleError(
                    f"running the notebook's code to freeze the serving values failed "
                    f"({type(e).__name__}: {e})",
                    location=stmt.location,
                    fix="bundle a notebook that runs top to bottom from its folder",
                ) from None
    if captured.request is None:  # pragma: no cover - the root always runs
        raise BundleError("the request frame was not recorded", location=path.root.location)
    captured.namespace = namespace
    return captured


# -- the generated module, imported for the check --------------------------------------------------


def import_serving_module(package: ModuleType, source: str) -> ModuleType:
    """`serving.py` as a submodule of the (already imported) exported package."""
    import importlib.util

    name = f"{package.__name__}.{SERVING_MODULE}_{uuid.uuid4().hex[:6]}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = package.__name__
    exec(compile(source, f"<{SERVING_MODULE}.py>", "exec"), module.__dict__)
    return module


def check_reproduces(path: ServingPath, serve: Callable[[Any], Any], captured: Captured) -> Any:
    """Serve a copy of the recorded request; BundleError unless it equals the notebook's
    model input. Returns the served model input."""
    import numpy as np
    import pandas as pd

    try:
        served = serve(captured.request.copy())
    except Exception as e:
        raise BundleError(
            f"the sliced serving path fails on the notebook's own test frame "
            f"({type(e).__name__}: {e})",
            location=path.predict.location,
            fix="report this notebook shape to nbops; meanwhile tag a transform:features step",
        ) from None
    expected = captured.model_input
    problem = None
    if isinstance(expected, pd.DataFrame):
        if not isinstance(served, pd.DataFrame):
            problem = f"it gives a {type(served).__name__}, the notebook a DataFrame"
        else:
            buffer = io.StringIO()
            try:
                pd.testing.assert_frame_equal(served, expected)
            except AssertionError as e:
                buffer.write(" ".join(str(e).split())[:300])
                problem = buffer.getvalue()
    else:
        try:
            same = np.array_equal(np.asarray(served), np.asarray(expected), equal_nan=True)
        except (TypeError, ValueError):
            same = np.array_equal(np.asarray(served), np.asarray(expected))
        if not same:
            problem = "the values differ"
    if problem:
        raise BundleError(
            f"the sliced serving path does not reproduce the notebook's input to "
            f"{path.model}.predict: {problem}",
            location=path.predict.location,
            fix="report this notebook shape to nbops; meanwhile tag a transform:features step",
        )
    return served
