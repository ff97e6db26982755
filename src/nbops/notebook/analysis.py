"""From tagged cells to a StepGraph: the steps in order, with their inputs and outputs.

Rules, in the user's words:
- cells with the same step tag form one step; steps run in the order of their first cell;
- a step's inputs are the names it reads that a parameter or an earlier step provides (the
  latest earlier step that defines the name wins, as in a notebook run top to bottom);
- a step's outputs are the names a later step reads from it; `train` and `evaluate` steps also
  return every value they define (the model, the metrics), unless its name starts with `_`;
- `setup` cells become module-level code (imports, helpers, constants) every step can use;
- imports anywhere in the notebook, untagged cells included, are carried to the modules that
  need them;
- the cell papermill injects into an executed notebook (tagged `injected-parameters`, the
  run's parameter values) is not read at all: an executed notebook analyses as its source;
- the serving path (the `transform:features` step, or the statements sliced from the
  notebook that prepare the test frame, nbops.notebook.slicing) must not read the label
  given to `fit`: a ServingPathError naming the cell.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Literal

from nbops.errors import (
    DependencyError,
    LaterStepError,
    NoTaggedCellsError,
    ServingPathError,
    TagError,
    UndefinedNameError,
    UntaggedDefinitionError,
)
from nbops.notebook.cellcode import CellCode, Diagnostic, ImportBinding, translate
from nbops.notebook.names import CellNames, cell_names
from nbops.notebook.parameters import Parameter, read_parameters
from nbops.notebook.read import Cell, NotebookModel
from nbops.notebook.tags import Role

_BUILTINS = frozenset(dir(builtins)) | {"__name__", "__file__", "display", "get_ipython"}
# Roles whose steps return every value they define, not only what later steps read.
_RESULT_ROLES = frozenset({Role.TRAIN, Role.EVALUATE})

InputSource = Literal["parameter", "step", "setup"]


@dataclass(frozen=True)
class StepInput:
    """A name a step reads, and where the pipeline gets it from."""

    name: str
    source: InputSource
    step: str | None = None  # the producing step's key when source == "step"


@dataclass
class AnalysedCell:
    """A code cell with its translated code and the names it defines and uses."""

    cell: Cell
    code: CellCode
    names: CellNames


@dataclass
class Step:
    """One exported function: the cells sharing a step tag, in notebook order."""

    role: Role
    name: str
    tag: str
    cells: list[AnalysedCell]
    inputs: list[StepInput] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    uses_setup: list[str] = field(default_factory=list)
    uses_imports: list[str] = field(default_factory=list)
    input_names: set[str] = field(default_factory=set, repr=False)
    _defines: dict[str, str] | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        """Unique in a notebook: the tag, e.g. `transform:features` or `train`."""
        return self.tag

    def defines(self) -> dict[str, str]:
        """Every name the step's cells bind, with its kind, in first-bound order."""
        if self._defines is None:
            self._defines = {}
            for c in self.cells:
                for name, kind in c.names.defines.items():
                    self._defines[name] = kind  # the latest kind; first-bound order
        return self._defines


@dataclass
class StepGraph:
    """What nbops will export from a notebook."""

    notebook: NotebookModel
    setup: list[AnalysedCell]
    parameters: list[Parameter]
    parameters_cell: AnalysedCell | None
    steps: list[Step]
    imports: dict[str, ImportBinding]
    star_imports: list[str]
    diagnostics: list[Diagnostic]

    @property
    def setup_names(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for c in self.setup:
            out.update({n: k for n, k in c.names.defines.items() if k != "import"})
        return out

    def setup_imports(self) -> list[str]:
        """Import names the setup code itself reads."""
        wanted: dict[str, None] = {}
        for c in self.setup:
            for name in c.names.uses:  # imported names stay uses (see names.py)
                if name in self.imports and name not in self.setup_names:
                    wanted.setdefault(name, None)
        return list(wanted)

    def outputs_of(self, role_filter: set[Role] | None = None) -> list[tuple[Step, str]]:
        return [
            (s, o)
            for s in self.steps
            for o in s.outputs
            if not role_filter or s.role in role_filter
        ]


def analyse(notebook: NotebookModel) -> StepGraph:
    """Analyse a notebook's tagged cells into a StepGraph.

    Raises NoTaggedCellsError, TagError, CellCodeError (syntax, magics, parameters) and
    DependencyError subclasses naming the cell and the name at fault.
    """
    if not notebook.tagged_cells:
        raise NoTaggedCellsError(
            "no cell is tagged for nbops, so there is nothing to export",
            location=str(notebook.path),
            fix="tag cells with setup, parameters, transform, train or evaluate "
            "(JupyterLab: the nbops cell toolbar, or View > Cell Toolbar > Tags)",
        )
    analysed, untagged_defs, diagnostics = _analyse_cells(notebook)
    setup = [a for a in analysed if a.cell.role is Role.SETUP]
    params_cells = [a for a in analysed if a.cell.role is Role.PARAMETERS]
    if len(params_cells) > 1:
        first, second = params_cells[0].cell, params_cells[1].cell
        raise TagError(
            f"two cells are tagged parameters (cells {first.number} and {second.number})",
            location=second.location,
            fix="papermill reads only the first parameters cell: merge them into one",
        )
    params_cell = params_cells[0] if params_cells else None
    parameters = (
        read_parameters(params_cell.code.tree, params_cell.code.source, params_cell.cell.location)
        if params_cell
        else []
    )
    imports, star = _collect_imports(analysed)
    graph = StepGraph(
        notebook=notebook,
        setup=setup,
        parameters=parameters,
        parameters_cell=params_cell,
        steps=_group_steps(analysed),
        imports=imports,
        star_imports=star,
        diagnostics=diagnostics,
    )
    _check_setup(graph)
    _resolve(graph, untagged_defs)
    graph.diagnostics.extend(_untagged_rebinds(graph, analysed))
    _check_serving_rule(graph)
    return graph


def _check_serving_rule(graph: StepGraph) -> None:
    """The serving path must not read the label (nbops.notebook.slicing.check_label)."""
    from nbops.notebook.slicing import check_label

    try:
        check_label(graph)
    except ServingPathError:
        raise
    except Exception:  # a notebook shape the slicer does not follow
        return  # only a label read stops an export here; bundling reports the rest


def _untagged_rebinds(graph: StepGraph, analysed: list[AnalysedCell]) -> list[Diagnostic]:
    """Warn where exploration code changes a value a later step reads: the notebook's
    results then depend on a cell the export leaves out."""
    first_cell = {s.key: s.cells[0].cell.index for s in graph.steps}
    readers: dict[str, list[tuple[Step, StepInput]]] = {}
    for step in graph.steps:
        for i in step.inputs:
            readers.setdefault(i.name, []).append((step, i))
    warnings: list[Diagnostic] = []
    for a in analysed:
        if a.cell.tag is not None:
            continue
        for name, kind in a.names.defines.items():
            if kind != "value":
                continue
            for step, i in readers.get(name, []):
                read_later = first_cell[step.key] > a.cell.index
                produced_before = i.source == "parameter" or (
                    i.step is not None and first_cell[i.step] < a.cell.index
                )
                if read_later and produced_before:
                    warnings.append(
                        Diagnostic(
                            f"this untagged cell changes {name!r}, which step {step.tag!r} "
                            "reads; the exported pipeline will not see that change (tag the "
                            "cell, or give the new value another name)",
                            a.cell.location,
                        )
                    )
                    break
    return warnings


def _analyse_cells(
    notebook: NotebookModel,
) -> tuple[list[AnalysedCell], dict[str, Cell], list[Diagnostic]]:
    """Translate and name-analyse every code cell; untagged cells only for their names.
    Papermill's injected-parameters cell is left out."""
    analysed: list[AnalysedCell] = []
    untagged_defs: dict[str, Cell] = {}
    diagnostics: list[Diagnostic] = []
    for cell in notebook.code_cells:
        if cell.injected:
            continue
        exported = cell.tag is not None and cell.role is not Role.SKIP
        try:
            code = translate(cell.source, cell.location)
        except Exception:
            if exported:
                raise
            continue  # exploration code need not be exportable
        names = cell_names(code.tree)
        if exported:
            analysed.append(AnalysedCell(cell, code, names))
            diagnostics.extend(code.diagnostics)
        else:
            for name, kind in names.defines.items():
                if kind != "import":
                    untagged_defs.setdefault(name, cell)
            analysed.append(AnalysedCell(cell, code, names))
    return analysed, untagged_defs, diagnostics


def _collect_imports(analysed: list[AnalysedCell]) -> tuple[dict[str, ImportBinding], list[str]]:
    """Top-level import bindings from every cell; a later binding of a name wins."""
    imports: dict[str, ImportBinding] = {}
    star: dict[str, None] = {}
    for a in analysed:
        for binding in a.code.imports:
            imports[binding.name] = binding
        if a.code.star_import:
            for stmt in a.code.tree.body:
                if getattr(stmt, "names", None) and any(n.name == "*" for n in stmt.names):  # type: ignore[attr-defined]
                    star.setdefault(f"from {stmt.module} import *", None)  # type: ignore[attr-defined]
    return imports, list(star)


def _group_steps(analysed: list[AnalysedCell]) -> list[Step]:
    steps: dict[str, Step] = {}
    for a in analysed:
        tag = a.cell.tag
        if tag is None or tag.role in (Role.SETUP, Role.PARAMETERS, Role.SKIP):
            continue
        key = str(tag.step_tag)
        if key not in steps:
            steps[key] = Step(role=tag.role, name=tag.step_name, tag=key, cells=[])
        steps[key].cells.append(a)
    return list(steps.values())


def _check_setup(graph: StepGraph) -> None:
    """Setup code runs before the parameters and the steps, so it may not read them."""
    params = {p.name for p in graph.parameters}
    step_names = {n for s in graph.steps for n in s.defines()}
    for a in graph.setup:
        for name in a.names.uses:
            if name in params or (name in step_names and name not in graph.setup_names):
                what = "a parameter" if name in params else "defined by a step"
                raise DependencyError(
                    f"setup code uses {name!r}, which is {what}",
                    location=a.cell.location,
                    fix="setup cells hold imports, helpers and constants; pass the value to "
                    "the helper as an argument, or tag this cell as a transform step",
                )


def _resolve(graph: StepGraph, untagged_defs: dict[str, Cell]) -> None:
    """Fill each step's inputs and outputs (see the module docstring)."""
    params = {p.name for p in graph.parameters}
    setup_names = graph.setup_names
    producer: dict[str, str] = {}  # name -> key of the latest step defining it so far
    later_defs = _later_definitions(graph.steps)
    readers: dict[str, set[str]] = {s.key: set() for s in graph.steps}
    for index, step in enumerate(graph.steps):
        bound: set[str] = set()
        for a in step.cells:
            for name in a.names.uses:
                if name in bound:
                    continue
                step_input = _resolve_name(
                    name, a, step, producer, params, setup_names, graph, untagged_defs,
                    later_defs[index],
                )  # fmt: skip
                _record(step, step_input, name, readers)
            bound.update(n for n, k in a.names.defines.items() if k != "import")
        for name, kind in step.defines().items():
            if kind != "import":
                producer[name] = step.key
    for step in graph.steps:
        outputs = readers[step.key]
        if step.role in _RESULT_ROLES:
            loops = set().union(*(c.names.loop_targets for c in step.cells))
            outputs |= {
                n
                for n, kind in step.defines().items()
                if kind == "value" and not n.startswith("_") and n not in loops
            }
        order = {name: i for i, name in enumerate(step.defines())}
        step.outputs = sorted(outputs, key=order.__getitem__)


def _record(
    step: Step, step_input: StepInput | str | None, name: str, readers: dict[str, set[str]]
) -> None:
    if isinstance(step_input, StepInput):
        if name not in step.input_names:
            step.inputs.append(step_input)
            step.input_names.add(name)
        if step_input.step:
            readers[step_input.step].add(name)
    elif step_input == "setup" and name not in step.uses_setup:
        step.uses_setup.append(name)
    elif step_input == "import" and name not in step.uses_imports:
        step.uses_imports.append(name)


def _resolve_name(
    name: str,
    cell: AnalysedCell,
    step: Step,
    producer: dict[str, str],
    params: set[str],
    setup_names: dict[str, str],
    graph: StepGraph,
    untagged_defs: dict[str, Cell],
    later: dict[str, Step],
) -> StepInput | str | None:
    """Where a name a step reads comes from: a StepInput, "setup", "import" or None (builtin)."""
    rebinds = name in step.defines()
    if name in producer:
        return StepInput(name, "step", producer[name])
    if name in params:
        return StepInput(name, "parameter")
    if name in setup_names:
        # A step that reads and rebinds a module-level name gets it as an argument, since
        # assigning to it inside the step's function makes it local.
        return StepInput(name, "setup") if rebinds else "setup"
    if name in graph.imports:
        return "import"
    if name in _BUILTINS:
        return None
    if name in later:
        other = later[name]
        first_cell = next(c.cell for c in other.cells if name in c.names.defines)
        raise LaterStepError(
            f"step {step.tag!r} uses {name!r}, which is first defined by the later step "
            f"{other.tag!r} (cell {first_cell.number}, id {first_cell.cell_id})",
            location=cell.cell.location,
            fix=f"move the definition of {name!r} into this step or an earlier one",
        )
    if name in untagged_defs:
        source = untagged_defs[name]
        kind = "a cell tagged skip" if source.role is Role.SKIP else "an untagged cell"
        raise UntaggedDefinitionError(
            f"step {step.tag!r} uses {name!r}, which is defined only in {kind}: "
            f"cell {source.number} (id {source.cell_id})",
            location=cell.cell.location,
            fix=f"tag cell {source.number} (e.g. transform), or move the definition of "
            f"{name!r} into a tagged cell",
        )
    if rebinds:
        first_cell = next(c.cell for c in step.cells if name in c.names.defines)
        raise LaterStepError(
            f"step {step.tag!r} uses {name!r} before it defines it "
            f"(in cell {first_cell.number}, id {first_cell.cell_id})",
            location=cell.cell.location,
            fix=f"define {name!r} before it is used, or in an earlier step",
        )
    if graph.star_imports:
        return "import"  # may come from `from x import *`; nbops cannot tell
    raise UndefinedNameError(
        f"step {step.tag!r} uses {name!r}, which no cell of the notebook defines",
        location=cell.cell.location,
        fix=f"define or import {name!r} in a tagged cell",
    )


def _later_definitions(steps: list[Step]) -> list[dict[str, Step]]:
    """For each step index, the names first defined by a step after it."""
    result: list[dict[str, Step]] = []
    for i in range(len(steps)):
        later: dict[str, Step] = {}
        for s in steps[i + 1 :]:
            for name in s.defines():
                later.setdefault(name, s)
        result.append(later)
    return result
