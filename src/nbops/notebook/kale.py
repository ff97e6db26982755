"""Kale's cell tags, read as nbops roles: a Kale-tagged notebook analyses and exports as it is.

Kale (kubeflow-kale) tags cells with `imports`, `functions`, `pipeline-parameters`,
`pipeline-metrics`, `skip`, `step:NAME` (`block:NAME` before Kale 2) with `prev:NAME`
dependencies, and per-step settings such as `limit:nvidia.com/gpu:1`. This module gives each
code cell the nbops role it has under Kale's own rules:

- `imports`, `functions` -> setup; `pipeline-parameters` (or papermill's `parameters`) ->
  parameters; `skip` -> skip;
- `step:NAME`/`block:NAME` -> a named step, its role from what its cells do: fitting an
  estimator -> train, computing metrics -> evaluate, anything else -> transform. Names are made
  lower-case identifiers (`Load-Data` -> `load_data`);
- `pipeline-metrics` -> the step `evaluate:pipeline_metrics`; the names it prints (Kale allows
  only `print(name)` lines; bare names are accepted too) are the pipeline's metrics;
- an untagged cell continues the block above it, as in Kale: a step, setup, or the metrics;
  `skip` cells are transparent (the cell after one continues the block before it); untagged
  cells after `pipeline-parameters`, or before the first Kale tag, stay untagged (nbops reads
  one parameters cell, like papermill);
- `prev:NAME` must name an earlier step: nbops runs steps in notebook order, and says so when a
  `prev:` tag disagrees, or when a step reads a value from a step its `prev:` tags do not lead
  back to (`prev_disagreements`).

Kale tags are read only when no cell carries an nbops role of its own (setup, transform, train,
evaluate; `parameters` and `skip` mean the same in both): nbops tags always win, so a notebook
converted once with `nbops tag --from-kale` (which adds nbops tags and keeps Kale's) reads its
nbops tags. In either case `limit:` and `cache:` tags on a step's cells become that step's
resources on an orchestrator (`step_resources`), and a `pipeline-metrics` cell names metrics
(`declared_metrics`).
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops._atomic import atomic_write_text
from nbops.errors import CellLocation, ExportError, NotebookReadError, TagError
from nbops.notebook.cellcode import Diagnostic, translate
from nbops.notebook.tags import CellTag, Role

# Deferred import: config (pydantic), only for a step's resources: reading a notebook
# (read.py imports this module) loads no pydantic.

if TYPE_CHECKING:
    from nbops.config import StepResources
    from nbops.notebook.analysis import StepGraph
    from nbops.notebook.read import Cell, NotebookModel

METRICS_STEP = "pipeline_metrics"
_SETUP_TAGS = frozenset({"imports", "functions"})
_PARAMETERS_TAGS = frozenset({"pipeline-parameters", "parameters"})
_METRICS_TAG = "pipeline-metrics"
_SPECIAL = ("skip", "pipeline-parameters", "pipeline-metrics", "imports", "functions")
_KALE_TAG = re.compile(
    r"^(imports|functions|pipeline-parameters|pipeline-metrics"
    r"|(block|step|prev|limit|annotation|label|image|cache|report|secret):.*)$"
)
# nbops roles whose presence means the notebook is tagged for nbops (parameters and skip mean
# the same thing in both vocabularies).
_NBOPS_OWN = frozenset({Role.SETUP, Role.TRANSFORM, Role.TRAIN, Role.EVALUATE})
_GPU_KEYS = ("nvidia.com/gpu", "amd.com/gpu")
_KNOWN_LIMITS = frozenset({"cpu", "memory", *_GPU_KEYS})
_UNCARRIED = frozenset({"annotation", "label", "image", "secret"})  # Kale settings nbops drops
_TRANSFORMER = re.compile(
    r"(Scaler|Encoder|Imputer|Vectorizer|Transformer|Tokenizer|PCA|SVD|Binarizer|Discretizer"
    r"|Normalizer|PolynomialFeatures|Select\w*|VarianceThreshold|Embedding)$"
)
_METRIC_CALL = re.compile(
    r"^(score|evaluate|cross_validate|classification_report|confusion_matrix|\w+_score|\w+_error"
    r"|\w+_loss)$"
)


@dataclass
class _KaleTags:
    """One cell's tags in Kale's language."""

    special: str | None = None  # skip, imports, functions, pipeline-parameters, -metrics
    step: str | None = None  # step:NAME or block:NAME
    prev: list[str] = field(default_factory=list)
    limits: dict[str, str] = field(default_factory=dict)
    caching: bool | None = None


def _parse(tags: Iterable[str]) -> _KaleTags:
    """Kale's reading of a cell's tags: a special tag decides alone; else the step and its
    settings. `block:` with no name is nothing, as in Kale."""
    found = _KaleTags()
    for tag in tags:
        if tag in _SPECIAL:
            return _KaleTags(special=tag)
        head, _, rest = tag.partition(":")
        if head in ("step", "block") and rest:
            found.step = found.step or rest
        elif head == "prev" and rest:
            found.prev.append(rest)
        elif head == "limit" and ":" in rest:
            key, _, value = rest.partition(":")
            found.limits[key] = value
        elif head == "cache" and rest in ("enabled", "disabled"):
            found.caching = rest == "enabled"
    return found


def has_kale_tags(cells: Iterable[Cell]) -> bool:
    """Whether any code cell carries a tag of Kale's language (besides `skip`)."""
    return any(
        _KALE_TAG.match(t)
        for c in cells
        if c.cell_type == "code" and not c.injected
        for t in c.tags
    )


def reads_kale(cells: Sequence[Cell]) -> bool:
    """Whether the notebook is read by its Kale tags: it has some, and no cell has an nbops
    role of its own (nbops tags win)."""
    own = any(c.role in _NBOPS_OWN for c in cells if c.cell_type == "code" and not c.injected)
    return not own and has_kale_tags(cells)


def step_name(kale_name: str) -> str:
    """A Kale step name as an nbops step name: a lower-case identifier (`Load-Data` -> `load_data`)."""
    name = re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]", "_", kale_name.lower())).strip("_")
    if not name or not name[0].isalpha():
        name = f"step_{name}".rstrip("_")
    return f"{name}_step" if keyword.iskeyword(name) else name


# -- reading the notebook --------------------------------------------------------------------


def apply_kale(cells: Sequence[Cell]) -> tuple[list[Cell], bool, list[Diagnostic]]:
    """The cells with the nbops roles Kale's tags give them, whether Kale's tags were read,
    and warnings (a `prev:` that disagrees with the notebook's order, a Kale setting nbops
    does not carry). A notebook read by its nbops tags comes back unchanged."""
    if not reads_kale(cells):
        return list(cells), False, _check_settings(cells)
    out, notes = _kale_roles(cells)
    return out, True, notes + _check_settings(out)


def _kale_roles(cells: Sequence[Cell]) -> tuple[list[Cell], list[Diagnostic]]:
    blocks, notes = _blocks(cells)
    tags = _block_tags(cells, blocks)
    out = []
    for c in cells:
        block = blocks.get(c.index)
        out.append(replace(c, tag=tags[block] if block else None))
    return out, notes


_Block = tuple[str, str]  # ("setup" | "parameters" | "skip" | "metrics" | "step", kale name)


def _blocks(cells: Sequence[Cell]) -> tuple[dict[int, _Block], list[Diagnostic]]:
    """Which Kale block each code cell belongs to, walking the notebook as Kale does."""
    blocks: dict[int, _Block] = {}
    notes: list[Diagnostic] = []
    seen_steps: list[str] = []
    current: _Block | None = None
    for c in cells:
        if c.cell_type != "code" or c.injected:
            continue
        k = _parse(c.tags)
        if k.special == "skip" or c.role is Role.SKIP:
            blocks[c.index] = ("skip", "")
            continue  # transparent: the next untagged cell continues the block before it
        if k.special in _SETUP_TAGS:
            current = ("setup", "")
        elif k.special in _PARAMETERS_TAGS or c.role is Role.PARAMETERS:
            blocks[c.index] = ("parameters", "")
            current = None  # one parameters cell: what follows it is not more parameters
            continue
        elif k.special == _METRICS_TAG:
            current = ("metrics", "")
        elif k.step:
            notes += _check_prev(c, k, seen_steps)
            if k.step not in seen_steps:
                seen_steps.append(k.step)
            current = ("step", k.step)
        if current is not None:
            blocks[c.index] = current
    return blocks, notes


def _check_prev(cell: Cell, k: _KaleTags, seen: list[str]) -> list[Diagnostic]:
    return [
        Diagnostic(
            f"Kale tag 'prev:{p}' names no earlier step; nbops runs the steps in notebook "
            f"order, so step {k.step!r} runs after the steps above it and before those below",
            cell.location,
        )
        for p in k.prev
        if p not in seen
    ]


def _block_tags(cells: Sequence[Cell], blocks: dict[int, _Block]) -> dict[_Block, CellTag]:
    """The nbops tag of each block; a step's role comes from all of its cells."""
    trees = {c.index: tree for c in cells if (tree := _tree(c.source)) is not None}
    setup = [trees[i] for i, b in blocks.items() if b[0] == "setup" and i in trees]
    fitters, scorers = _helper_functions(setup)
    constructors = _constructors(trees.values())
    steps: dict[str, list[ast.Module]] = {}
    for index, block in blocks.items():
        if block[0] == "step":
            steps.setdefault(block[1], []).extend([trees[index]] if index in trees else [])
    tags: dict[_Block, CellTag] = {
        ("setup", ""): CellTag(Role.SETUP),
        ("parameters", ""): CellTag(Role.PARAMETERS),
        ("skip", ""): CellTag(Role.SKIP),
    }
    taken: set[str] = set()
    for kale_name, step_trees in steps.items():
        role = _step_role(step_trees, fitters, scorers, constructors)
        tags[("step", kale_name)] = CellTag(role, _unique(step_name(kale_name), taken))
    tags[("metrics", "")] = CellTag(Role.EVALUATE, _unique(METRICS_STEP, taken))
    return tags


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def _tree(source: str) -> ast.Module | None:
    try:
        return translate(source, CellLocation("")).tree
    except Exception:  # a cell nbops cannot read gets its error from the analysis
        return None


# -- what a step does: fit, score or transform ---------------------------------------------------


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def _constructors(trees: Iterable[ast.AST]) -> dict[str, str]:
    """`name = SomeClass(...)` anywhere in the notebook: name -> class name."""
    found: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                cls = _call_name(node.value)
                for target in node.targets:
                    if isinstance(target, ast.Name) and cls:
                        found[target.id] = cls
    return found


def _fits_estimator(call: ast.Call, constructors: dict[str, str]) -> bool:
    """`model.fit(X, y)`: a fit that is not a transformer's (`scaler.fit(X)`)."""
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in ("fit", "partial_fit"):
        return False
    receiver = func.value
    if isinstance(receiver, ast.Call):
        cls = _call_name(receiver)
    elif isinstance(receiver, ast.Name):
        cls = constructors.get(receiver.id)
    else:
        cls = None
    if cls is not None:
        return not _TRANSFORMER.search(cls)
    return len(call.args) >= 2 or any(k.arg == "y" for k in call.keywords)


def _calls(tree: ast.AST) -> Iterable[ast.Call]:
    return (n for n in ast.walk(tree) if isinstance(n, ast.Call))


def _helper_functions(setup: list[ast.Module]) -> tuple[set[str], set[str]]:
    """Functions of the `functions` cells that fit an estimator, and those that score."""
    constructors = _constructors(setup)
    fitters: set[str] = set()
    scorers: set[str] = set()
    for tree in setup:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                calls = list(_calls(node))
                if any(_fits_estimator(c, constructors) for c in calls):
                    fitters.add(node.name)
                if any(_METRIC_CALL.match(_call_name(c) or "") for c in calls):
                    scorers.add(node.name)
    return fitters, scorers


def _step_role(
    trees: list[ast.Module], fitters: set[str], scorers: set[str], constructors: dict[str, str]
) -> Role:
    calls = [c for tree in trees for c in _calls(tree)]
    names = {_call_name(c) for c in calls}
    if any(_fits_estimator(c, constructors) for c in calls) or names & fitters:
        return Role.TRAIN
    if any(_METRIC_CALL.match(n or "") for n in names) or names & scorers:
        return Role.EVALUATE
    return Role.TRANSFORM


# -- prev: tags against the values the steps pass ------------------------------------------------


def prev_disagreements(graph: StepGraph) -> list[Diagnostic]:
    """Warnings where a Kale step reads a value from a step its `prev:` tags do not lead back
    to: Kale passes values only down `prev:` edges, so Kale's own pipeline would miss it,
    while nbops (steps in notebook order) passes it."""
    keys: dict[str, str] = {}  # Kale step name -> nbops step key
    prev: dict[str, set[str]] = {}
    read: dict[tuple[str, ...], _KaleTags] = {}  # a notebook's cells share a few tag lists
    for c in graph.notebook.code_cells:
        k = read.get(c.tags)
        if k is None:
            k = read[c.tags] = _parse(c.tags)
        if k.step and c.tag is not None:
            key = keys.setdefault(k.step, str(c.tag.step_tag))
            prev.setdefault(key, set()).update(k.prev)
    if not any(prev.values()):
        return []
    ancestors = {key: _ancestors(key, prev, keys) for key in prev}
    notes = []
    for step in graph.steps:
        if step.key not in ancestors:
            continue
        for i in step.inputs:
            if i.source == "step" and i.step is not None and i.step not in ancestors[step.key]:
                notes.append(
                    Diagnostic(
                        f"step {step.tag!r} reads {i.name!r} from step {i.step!r}, which its "
                        "Kale prev: tags do not lead back to (Kale would not pass it; nbops "
                        "runs the steps in notebook order, so it does)",
                        step.cells[0].cell.location,
                    )
                )
    return notes


def _ancestors(key: str, prev: dict[str, set[str]], keys: dict[str, str]) -> set[str]:
    seen: set[str] = set()
    todo = [keys[p] for p in prev.get(key, ()) if p in keys]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(keys[p] for p in prev.get(current, ()) if p in keys)
    return seen


# -- metrics and resources, in either reading ---------------------------------------------------


def metric_names_in(source: str) -> list[str]:
    """The names a `pipeline-metrics` cell reports: `print(name)` lines, as Kale reads them,
    and bare names. Other lines report nothing."""
    tree = _tree(source)
    if tree is None:
        return []
    names: list[str] = []
    for stmt in tree.body:
        if not isinstance(stmt, ast.Expr):
            continue
        value = stmt.value
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "print"
            and len(value.args) == 1
            and not value.keywords
        ):
            value = value.args[0]
        if isinstance(value, ast.Name) and value.id not in names:
            names.append(value.id)
    return names


def declared_metrics(notebook: NotebookModel) -> dict[str, list[str]]:
    """Step key -> the metric names its `pipeline-metrics` cells report."""
    found: dict[str, list[str]] = {}
    for c in notebook.code_cells:
        if _METRICS_TAG in c.tags and c.tag is not None and c.role is Role.EVALUATE:
            names = found.setdefault(str(c.tag.step_tag), [])
            names.extend(n for n in metric_names_in(c.source) if n not in names)
    return found


def _resource_fields(k: _KaleTags) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in k.limits.items():
        if key in _GPU_KEYS:
            fields.update(accelerator_type=key, accelerator_limit=int(value))
        elif key == "cpu":
            fields["cpu_limit"] = value
        elif key == "memory":
            fields["memory_limit"] = value
    if k.caching is not None:
        fields["caching"] = k.caching
    return fields


def step_resources(notebook: NotebookModel) -> dict[str, StepResources]:
    """Step key -> what its `limit:` and `cache:` tags ask of an orchestrator, the same settings
    `[tool.nbops.steps.NAME]` holds (`limit:nvidia.com/gpu:1` -> accelerator_type and
    accelerator_limit, `limit:cpu:2` -> cpu_limit, `limit:memory:4Gi` -> memory_limit)."""
    from nbops.config import StepResources

    fields: dict[str, dict[str, Any]] = {}
    for c in notebook.code_cells:
        if c.tag is None or c.role not in (Role.TRANSFORM, Role.TRAIN, Role.EVALUATE):
            continue
        got = _resource_fields(_parse(c.tags))
        if got:
            fields.setdefault(str(c.tag.step_tag), {}).update(got)
    return {key: StepResources(**value) for key, value in fields.items()}


def _check_settings(cells: Sequence[Cell]) -> list[Diagnostic]:
    notes = []
    for c in cells:
        if c.cell_type != "code" or c.role not in (Role.TRANSFORM, Role.TRAIN, Role.EVALUATE):
            continue
        k = _parse(c.tags)
        dropped = [f"limit:{key}:{v}" for key, v in k.limits.items() if key not in _KNOWN_LIMITS]
        dropped += [t for t in c.tags if t.split(":", 1)[0] in _UNCARRIED]
        bad = [v for key, v in k.limits.items() if key in _GPU_KEYS and not v.isdigit()]
        if bad:
            raise TagError(
                f"Kale tag 'limit:{next(x for x in _GPU_KEYS if x in k.limits)}:{bad[0]}' is not "
                "a whole number of GPUs",
                location=c.location,
                fix="write it as e.g. 'limit:nvidia.com/gpu:1'",
            )
        if dropped:
            notes.append(
                Diagnostic(
                    f"Kale settings {', '.join(dropped)} are not carried to the exported "
                    "pipeline (nbops reads limit:cpu, limit:memory, GPU limits and cache:)",
                    c.location,
                )
            )
    return notes


# -- converting once: `nbops tag --from-kale` ----------------------------------------------------


@dataclass(frozen=True)
class KaleConversion:
    """The nbops tag `nbops tag --from-kale` gives one code cell, next to its Kale tags."""

    number: int
    cell_id: str
    kale_tags: tuple[str, ...]
    nbops_tag: str
    first_line: str


def convert_kale(notebook: NotebookModel) -> list[KaleConversion]:
    """The nbops tag each code cell gets from its Kale tags (cells that already carry it, and
    cells Kale leaves out of every step, are not listed).

    Raises TagError when the notebook has no Kale tags, or already has nbops tags (which
    nbops reads instead of Kale's).
    """
    if not has_kale_tags(notebook.cells):
        raise TagError(
            "no cell has a Kale tag (imports, functions, pipeline-parameters, "
            "pipeline-metrics, step:NAME, block:NAME)",
            location=str(notebook.path),
            fix="--from-kale converts notebooks tagged for Kale; tag others with nbops tag",
        )
    if not notebook.kale:
        if _already_converted(notebook.cells):
            return []
        own = next(c for c in notebook.code_cells if c.role in _NBOPS_OWN)
        raise TagError(
            f"the notebook already has nbops tags (cell {own.number}: "
            f"{own.tag.step_tag if own.tag else ''!s}), which nbops reads instead of Kale's",
            location=str(notebook.path),
            fix="remove the nbops tags first to convert from Kale again, or edit them by hand",
        )
    return [
        KaleConversion(
            number=c.number,
            cell_id=c.cell_id,
            kale_tags=tuple(t for t in c.tags if _KALE_TAG.match(t) or t == "skip"),
            nbops_tag=str(c.tag.step_tag),
            first_line=next((ln for ln in c.source.splitlines() if ln.strip()), ""),
        )
        for c in notebook.code_cells
        if c.tag is not None and not c.injected and str(c.tag.step_tag) not in c.tags
    ]


def _already_converted(cells: Sequence[Cell]) -> bool:
    """Whether every code cell's nbops tag is the one its Kale tags give (a second
    `--from-kale` has nothing to do)."""
    own_tags = {str(c.tag.step_tag) for c in cells if c.role in _NBOPS_OWN and c.tag}
    kale_only = [
        replace(c, tags=tuple(t for t in c.tags if t not in own_tags), tag=None)
        if c.role in _NBOPS_OWN
        else c
        for c in cells
    ]
    mapped, _ = _kale_roles(kale_only)
    return all(m.tag == c.tag for m, c in zip(mapped, cells, strict=True) if c.cell_type == "code")


def write_conversion(path: Path, conversions: Sequence[KaleConversion]) -> None:
    """Add each conversion's nbops tag to its cell's `metadata.tags`, after the Kale tags
    (which stay, so nothing is lost: nbops reads its own tags first; Kale itself refuses tags
    outside its language, so it cannot compile the converted file). Only `.ipynb` files;
    the rest of the file is kept as it was (ids are not added, outputs stay), and the file is
    replaced whole, so an interrupted write leaves the original."""
    if path.suffix != ".ipynb":
        raise ExportError(
            "--from-kale --write writes .ipynb notebooks only",
            location=str(path),
            fix="convert the notebook to .ipynb (jupytext --to ipynb), or add the tags by hand",
        )
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise NotebookReadError(
            f"cannot read the notebook again to write it ({exc})",
            location=str(path),
            fix="check the file",
        ) from None
    by_number = {c.number: c for c in conversions}
    for number, cell in enumerate(data.get("cells", []), start=1):
        if number in by_number:
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            tags.append(by_number[number].nbops_tag)
    text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise ExportError(
            f"cannot write the notebook ({exc.strerror or exc})",
            location=str(path),
            fix="check that the file and its folder are writable",
        ) from None
