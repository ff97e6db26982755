"""From tagged cells to a StepGraph: the steps in order, with their inputs and outputs.

Rules, in the user's words:
- cells with the same step tag form one step; steps run in the order of their first cell;
- a step's inputs are the names it reads that a parameter or an earlier step provides (the
  latest earlier step that defines the name wins, as in a notebook run top to bottom);
- a step's outputs are the names a later step reads from it; `train` and `evaluate` steps also
  return every value they define (the model, the metrics), unless its name starts with `_`;
- `setup` cells become module-level code (imports, helpers, constants) every step can use;
- a step may not set a parameter again (`n_estimators = 200` after the parameters cell):
  `-p` would do nothing, so it is an error, or a warning when it only may (see reassign.py);
- imports anywhere in the notebook, untagged cells included, are carried to the modules that
  need them; modules imported from the notebook's own folder are found (localmods.py) so the
  exporter copies them, and a package that is not installed is warned about;
- a `pipeline-metrics` cell (Kale's) in an evaluate step also returns the names it prints;
- a notebook with no step (only setup, parameters, skip or other tags) analyses, but
  `require_steps` (the export's check) refuses it, listing the tags it has: never an empty
  package;
- the cell papermill injects into an executed notebook (tagged `injected-parameters`, the
  run's parameter values) and the cells `nbops run` adds (`nbops-capture`) are not read at
  all: an executed notebook analyses as its source;
- the last bare expression of an evaluate cell (`knn.score(X_test, y_test)`) is kept as a
  value named after it (`knn_score`), so the step returns it (see metrics.py for the rule).
- the serving path (the `transform:features` step, or the statements sliced from the
  notebook that prepare the test frame, nbops.notebook.slicing) must not read the label
  given to `fit`: a ServingPathError naming the cell.

Partial mode (`analyse(nb, problems=[])`, what the JupyterLab panel shows): an error about
one cell or one step is kept in the list instead of raised and the analysis goes on, so the
steps that analyse cleanly are still there. A cell whose code cannot be read joins its step
with no code; a name such a cell may define is one of a step's `unknown_inputs`, not a
second problem. Likewise a name only a second `parameters` cell sets is read as a parameter
(the problem is the second cell, whose fix merges it into the first), not as a name no cell
defines. Such a graph is for showing, never for exporting.
"""

from __future__ import annotations

import ast
import builtins
import keyword
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nbops.errors import (
    CellLocation,
    DependencyError,
    LaterStepError,
    NbopsError,
    NoStepsError,
    NoTaggedCellsError,
    ParameterError,
    ServingPathError,
    TagError,
    UndefinedNameError,
    UntaggedDefinitionError,
)
from nbops.notebook.cellcode import (
    CellCode,
    Diagnostic,
    ImportBinding,
    keep_last_value,
    keep_printed_values,
    translate,
    translate_cell,
)
from nbops.notebook.kale import declared_metrics, prev_disagreements
from nbops.notebook.localmods import find_local_modules, is_installed
from nbops.notebook.metrics import (
    Headline,
    expression_name,
    headline_statement,
    printed_metric_name,
    printed_metrics,
    unkept_prints,
)
from nbops.notebook.names import CellNames, cell_names
from nbops.notebook.parameters import Parameter, read_parameters
from nbops.notebook.read import Cell, NotebookModel
from nbops.notebook.reassign import parameter_reassignments
from nbops.notebook.slicing import check_label
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
    headline: Headline | None = None  # the kept last expression, in train and evaluate cells
    printed: list[Headline] = field(default_factory=list)  # printed metrics kept, evaluate cells
    unreadable: bool = False  # partial mode: the code could not be read; kept empty


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
    # Partial mode only: names read that a cell which cannot be read may define.
    unknown_inputs: list[str] = field(default_factory=list)
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
    # Modules the exported code imports from the notebook's folder: name -> file or folder.
    local_modules: dict[str, Path] = field(default_factory=dict)

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


class _Report:
    """Raises an error, or in partial mode (a list given) keeps it so the analysis goes on."""

    def __init__(self, problems: list[NbopsError] | None) -> None:
        self.problems = problems

    @property
    def partial(self) -> bool:
        return self.problems is not None

    def __call__(self, error: NbopsError) -> None:
        if self.problems is None:
            raise error
        self.problems.append(error)


def analyse(notebook: NotebookModel, *, problems: list[NbopsError] | None = None) -> StepGraph:
    """Analyse a notebook's tagged cells into a StepGraph.

    Raises NoTaggedCellsError, TagError, CellCodeError (syntax, magics, parameters) and
    DependencyError subclasses naming the cell and the name at fault. With `problems`
    (partial mode, see the module docstring) only NoTaggedCellsError is raised: the others
    are appended to the list, in notebook order of discovery, and the graph holds every step.
    """
    report = _Report(problems)
    # `notebook.tagged_cells` is empty: no tagged code cell, papermill's and nbops's own left out
    if not any(c.tag is not None and not c.injected for c in notebook.code_cells):
        raise NoTaggedCellsError(
            f"no cell is tagged for nbops, so there is nothing to export ({_tags_found(notebook)})",
            location=str(notebook.path),
            fix="tag cells with setup, parameters, transform, train or evaluate "
            "(JupyterLab: the nbops cell toolbar, or View > Cell Toolbar > Tags)",
        )
    analysed, untagged_defs, diagnostics = _analyse_cells(notebook, report)
    setup: list[AnalysedCell] = []
    params_cells: list[AnalysedCell] = []
    for a in analysed:
        tag = a.cell.tag
        role = tag.role if tag is not None else None
        if role is Role.SETUP:
            setup.append(a)
        elif role is Role.PARAMETERS:
            params_cells.append(a)
    if len(params_cells) > 1:
        first, second = params_cells[0].cell, params_cells[1].cell
        report(
            TagError(
                f"two cells are tagged parameters (cells {first.number} and {second.number})",
                location=second.location,
                fix="papermill reads only the first parameters cell: merge them into one",
                related=(first.location,),
            )
        )
    params_cell = params_cells[0] if params_cells else None
    parameters: list[Parameter] = []
    if params_cell is not None:
        try:
            parameters = read_parameters(
                params_cell.code.tree, params_cell.code.source, params_cell.cell.location
            )
        except ParameterError as exc:
            report(exc)
            params_cell.unreadable = True
    imports, star = _collect_imports(analysed)
    _keep_headlines(analysed, imports)
    graph = StepGraph(
        notebook=notebook,
        setup=setup,
        parameters=parameters,
        parameters_cell=params_cell,
        steps=_group_steps(analysed),
        imports=imports,
        star_imports=star,
        diagnostics=[*notebook.notes, *diagnostics],
    )
    _check_setup(graph, report)
    graph.diagnostics.extend(_check_reassigned_parameters(graph, report))
    unknown_ok = report.partial and any(a.unreadable for a in analysed)
    # Partial mode: the names a second parameters cell sets are parameters-to-be (its fix
    # merges it into the first), not names "no cell defines": the TagError above is the
    # one problem. (The export stops at that TagError before resolving any name.)
    pending = {
        name for a in params_cells[1:] for name, kind in a.names.defines.items() if kind != "import"
    }
    _resolve(graph, untagged_defs, report, unknown_ok, pending)
    graph.diagnostics.extend(_untagged_rebinds(graph, analysed))
    graph.diagnostics.extend(unkept_prints(graph))
    graph.diagnostics.extend(_check_imported_modules(graph, analysed))
    graph.diagnostics.extend(prev_disagreements(graph))
    _check_serving_rule(graph, report)
    return graph


def require_steps(graph: StepGraph) -> None:
    """Raise NoStepsError when the graph has no step, so an export would be empty; the
    message lists the tags the notebook has (other tools' tags included)."""
    if not graph.steps:
        raise NoStepsError(
            "no cell is tagged as a step (transform, train or evaluate), so there is nothing "
            f"to export ({_tags_found(graph.notebook)})",
            location=str(graph.notebook.path),
            fix="tag the cells that load, fit and score as transform, train and evaluate "
            "(Kale notebooks: step:NAME or block:NAME cells are read as steps)",
        )


def _tags_found(notebook: NotebookModel) -> str:
    """The distinct tags of the notebook's cells, in order, for an error message."""
    found = dict.fromkeys(t for c in notebook.cells for t in c.tags)
    return "tags found: " + ", ".join(found) if found else "the notebook's cells have no tags"


def _keep_headlines(analysed: list[AnalysedCell], imports: dict[str, ImportBinding]) -> None:
    """Turn the headline of each train and evaluate cell into an assignment (metrics.py).

    The value's name is read off the expression and made unique among every name of the
    notebook (`accuracy_score(...)` is kept as `accuracy_score_value` when the function is
    imported under that name); the metric keeps the plain name.
    """
    before = [a.names for a in analysed]  # every name, as the cells are before any is kept
    built: list[set[str]] = []

    def taken() -> set[str]:  # built at the first value kept: most cells keep none
        if not built:
            found = set(_BUILTINS) | set(imports)
            for names in before:
                found.update(names.defines)
                found.update(names.uses)
            built.append(found)
        return built[0]

    namespaces = frozenset(n for n, b in imports.items() if b.statement.startswith("import "))
    per_step: dict[str, set[str]] = {}
    for a in analysed:
        tag = a.cell.tag
        if tag is None or tag.role not in (Role.TRAIN, Role.EVALUATE):
            continue
        used = per_step.setdefault(str(tag.step_tag), set())
        if tag.role is Role.EVALUATE:
            _keep_printed(a, used, taken)
        stmt = headline_statement(a.code.tree, a.code.source, tag.role)
        if stmt is None:
            continue
        metric = _numbered(expression_name(stmt.value, namespaces), used)
        used.add(metric)
        variable = metric if metric not in taken() else _numbered(f"{metric}_value", taken())
        expression = ast.get_source_segment(a.code.source, stmt.value) or ast.unparse(stmt.value)
        a.code = keep_last_value(a.code, variable)
        a.names = cell_names(a.code.tree)
        a.headline = Headline(variable=variable, metric=metric, expression=expression)


def _keep_printed(a: AnalysedCell, used: set[str], taken: Callable[[], set[str]]) -> None:
    """Keep the metrics an evaluate cell only prints (metrics.printed_metrics) as values
    assigned before the print, named as the unkept-print warning proposes, unique per step."""
    kept: list[tuple[ast.stmt, ast.expr, str]] = []
    for stmt, value in printed_metrics(a.code.tree):
        metric = _numbered(printed_metric_name(value), used)
        used.add(metric)
        variable = metric if metric not in taken() else _numbered(f"{metric}_value", taken())
        kept.append((stmt, value, variable))
        a.printed.append(Headline(variable=variable, metric=metric, expression=ast.unparse(value)))
    if kept:
        a.code = keep_printed_values(a.code, kept)
        a.names = cell_names(a.code.tree)


def _numbered(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3` ... the first not taken."""
    candidate, n = name, 1
    while candidate in taken or keyword.iskeyword(candidate):
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _check_imported_modules(graph: StepGraph, analysed: list[AnalysedCell]) -> list[Diagnostic]:
    """Find the modules exported code imports from the notebook's folder (they are copied
    into the package), and warn about each other top-level package that is not installed."""
    users: dict[str, str] = {}  # import name -> what uses it first
    for name in graph.setup_imports():
        users.setdefault(name, "setup code")
    for step in graph.steps:
        for name in step.uses_imports:
            users.setdefault(name, f"step {step.tag!r}")
    imported: dict[str, tuple[str, str]] = {}  # top-level module -> (import key, user)
    for name, user in users.items():
        found = graph.imports.get(name)
        if found is not None and not found.module.startswith("."):
            imported.setdefault(found.module.split(".")[0], (name, user))
    if users:
        for star in graph.star_imports:
            module = star.split()[1]
            if not module.startswith("."):
                imported.setdefault(module.split(".")[0], (f"*{module}", "exported code"))
    folder = graph.notebook.path.parent
    graph.local_modules = find_local_modules(folder, imported)
    missing = [
        (top, key, user)
        for top, (key, user) in imported.items()
        if top not in graph.local_modules and not is_installed(top)
    ]
    if not missing:
        return []
    cell_of = _importing_cells(analysed)
    warnings = []
    for top, key, user in missing:
        cell = cell_of.get(key)
        warnings.append(
            Diagnostic(
                f"{user} imports {top!r}, which is not installed here and is not a module "
                "beside the notebook; install it where the pipeline runs",
                cell.location if cell else CellLocation(str(graph.notebook.path)),
            )
        )
    return warnings


def _importing_cells(analysed: list[AnalysedCell]) -> dict[str, Cell]:
    """Import name, or `*module` for a star import -> the cell importing it (the last cell
    binding a name; the first star-importing a module)."""
    cell_of: dict[str, Cell] = {}
    for a in analysed:
        for binding in a.code.imports:
            cell_of[binding.name] = a.cell
        if not a.code.star_import:  # set when a top-level `from ... import *` is in the tree
            continue
        for stmt in a.code.tree.body:
            if isinstance(stmt, ast.ImportFrom) and any(n.name == "*" for n in stmt.names):
                cell_of.setdefault(f"*{stmt.module}", a.cell)
    return cell_of


def _check_serving_rule(graph: StepGraph, report: _Report) -> None:
    """The serving path must not read the label (nbops.notebook.slicing.check_label)."""
    try:
        check_label(graph)
    except ServingPathError as exc:
        report(exc)
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
    notebook: NotebookModel, report: _Report
) -> tuple[list[AnalysedCell], dict[str, Cell], list[Diagnostic]]:
    """Translate and name-analyse every code cell; untagged cells only for their names.
    Papermill's injected-parameters cell is left out. In partial mode a tagged cell that
    cannot be translated is reported and kept with no code (`unreadable`)."""
    analysed: list[AnalysedCell] = []
    untagged_defs: dict[str, Cell] = {}
    diagnostics: list[Diagnostic] = []
    for cell in notebook.code_cells:
        if cell.injected:
            continue
        tag = cell.tag
        exported = tag is not None and tag.role is not Role.SKIP
        try:
            code = translate_cell(cell)
        except NbopsError as exc:
            if not exported:
                continue  # exploration code need not be exportable
            report(exc)
            empty = translate("", cell.location)
            analysed.append(AnalysedCell(cell, empty, cell_names(empty.tree), unreadable=True))
            continue
        except Exception:
            if exported:
                raise
            continue
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


def _check_setup(graph: StepGraph, report: _Report) -> None:
    """Setup code runs before the parameters and the steps, so it may not read them."""
    if not any(a.names.uses for a in graph.setup):
        return  # setup code that reads nothing (imports, constants) reads neither
    params = {p.name for p in graph.parameters}
    definer: dict[str, Cell] = {}  # name -> the first step cell defining it
    if graph.parameters_cell is not None:
        definer.update(dict.fromkeys(params, graph.parameters_cell.cell))
    for s in reversed(graph.steps):
        for c in reversed(s.cells):
            for n in c.names.defines:
                if n not in params:
                    definer[n] = c.cell
    setup_names = graph.setup_names
    for a in graph.setup:
        for name in a.names.uses:
            if name in params or (name in definer and name not in setup_names):
                what = "a parameter" if name in params else "defined by a step"
                source = definer.get(name)
                report(
                    DependencyError(
                        f"setup code uses {name!r}, which is {what}",
                        location=a.cell.location,
                        fix="setup cells hold imports, helpers and constants; pass the value "
                        "to the helper as an argument, or tag this cell as a transform step",
                        related=(source.location,) if source else (),
                    )
                )


def _check_reassigned_parameters(graph: StepGraph, report: _Report) -> list[Diagnostic]:
    """A step that sets a parameter again makes `-p NAME=VALUE` do nothing: an error when it
    always does (see reassign.py), a warning when it may."""
    warnings: list[Diagnostic] = []
    params = [p.name for p in graph.parameters]
    for step in graph.steps:
        for a in step.cells:
            if a.names.defines.keys().isdisjoint(params):
                continue  # a cell that binds no parameter's name sets none again
            for r in parameter_reassignments(a.code.tree, a.code.source, params):
                where = CellLocation(a.cell.path, a.cell.number, a.cell.own_id, r.line)
                if not r.conditional:
                    params_cell = graph.parameters_cell
                    report(
                        ParameterError(
                            f"step {step.tag!r} sets the parameter {r.name!r} again "
                            f"(`{r.statement}`), so a value given for it (-p {r.name}=...) "
                            "would have no effect",
                            location=where,
                            fix=f"set {r.name!r} only in the parameters cell, or give this "
                            "value another name",
                            related=(params_cell.cell.location,) if params_cell else (),
                        )
                    )
                    continue
                warnings.append(
                    Diagnostic(
                        f"step {step.tag!r} may set the parameter {r.name!r} again "
                        f"(`{r.statement}`); when it does, a value given for it is lost",
                        where,
                    )
                )
    return warnings


def _resolve(
    graph: StepGraph,
    untagged_defs: dict[str, Cell],
    report: _Report,
    unknown_ok: bool,
    pending_params: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Fill each step's inputs and outputs (see the module docstring). In partial mode a
    name that cannot be resolved is reported and left out of the step's inputs;
    `pending_params` (the names a second parameters cell sets) are read as parameters."""
    params = {p.name for p in graph.parameters} | set(pending_params)
    setup_names = graph.setup_names
    producer: dict[str, str] = {}  # name -> key of the latest step defining it so far
    later_defs = _later_definitions(graph.steps)
    declared = declared_metrics(graph.notebook)
    readers: dict[str, set[str]] = {s.key: set() for s in graph.steps}
    for index, step in enumerate(graph.steps):
        # Names the step's cells bind before reading them again, and names already resolved
        # in this step: within a step a name resolves the same way in every cell (the
        # producers change only between steps) and recording it again changes nothing, so
        # each is resolved once. A name that fails is tried again in each cell that reads it:
        # the error names the cell.
        skip: set[str] = set()
        for a in step.cells:
            for name in a.names.uses:
                if name in skip:
                    continue
                try:
                    step_input = _resolve_name(
                        name, a, step, producer, params, setup_names, graph, untagged_defs,
                        later_defs[index], unknown_ok,
                    )  # fmt: skip
                except DependencyError as exc:
                    report(exc)
                    continue
                _record(step, step_input, name, readers)
                skip.add(name)
            for bound, how in a.names.defines.items():
                if how != "import":
                    skip.add(bound)
        key = step.key
        for name, kind in step.defines().items():
            if kind != "import":
                producer[name] = key
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
        for name in declared.get(step.key, []):  # Kale's pipeline-metrics: what it prints
            if name in step.input_names or name in order:
                outputs.add(name)
                order.setdefault(name, len(order))
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
    elif step_input == "unknown" and name not in step.unknown_inputs:
        step.unknown_inputs.append(name)


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
    unknown_ok: bool = False,
) -> StepInput | str | None:
    """Where a name a step reads comes from: a StepInput, "setup", "import" or None (builtin).
    With `unknown_ok` (partial mode, a cell could not be read), a name defined nowhere else
    is "unknown" (Step.unknown_inputs)."""
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
            f"{other.tag!r} ({first_cell.label})",
            location=cell.cell.location,
            fix=f"move the definition of {name!r} into this step or an earlier one",
            related=(first_cell.location,),
        )
    if name in untagged_defs:
        source = untagged_defs[name]
        kind = "a cell tagged skip" if source.role is Role.SKIP else "an untagged cell"
        error = UntaggedDefinitionError(
            f"step {step.tag!r} uses {name!r}, which is defined only in {kind}: {source.label}",
            location=cell.cell.location,
            fix=f"tag cell {source.number} (e.g. transform), or move the definition of "
            f"{name!r} into a tagged cell",
            related=(source.location,),
        )
        error.name, error.defined_in = name, source.location
        raise error
    if rebinds:
        first_cell = next(c.cell for c in step.cells if name in c.names.defines)
        raise LaterStepError(
            f"step {step.tag!r} uses {name!r} before it defines it (in {first_cell.label})",
            location=cell.cell.location,
            fix=f"define {name!r} before it is used, or in an earlier step",
            related=(first_cell.location,) if first_cell is not cell.cell else (),
        )
    if graph.star_imports:
        return "import"  # may come from `from x import *`; nbops cannot tell
    if unknown_ok:
        return "unknown"
    raise UndefinedNameError(
        f"step {step.tag!r} uses {name!r}, which no cell of the notebook defines",
        location=cell.cell.location,
        fix=f"define or import {name!r} in a tagged cell",
    )


def _later_definitions(steps: list[Step]) -> list[dict[str, Step]]:
    """For each step index, the names first defined by a step after it."""
    result: list[dict[str, Step]] = []
    later: dict[str, Step] = {}  # name -> the first step after the current one defining it
    for step in reversed(steps):
        result.append(dict(later))
        later.update(dict.fromkeys(step.defines(), step))
    return result[::-1]
