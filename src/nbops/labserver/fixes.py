"""One-click fixes the panel offers for what the analysis reports, as JSON the browser applies
to the open notebook (so the change can be undone, and the user saves it).

A fix is offered only where it is mechanical and checked: the notebook, changed as the fix
says, is analysed again in memory (in partial mode, as the panel reads it: every problem,
not only the first), and the fix is kept only when its problem is gone and every problem
left is one the notebook already had (`known`) or is in a cell the fix did not touch. Every fix is an object with a
`kind` (machine-readable), a `label` (the button's words) and the cells it changes
(`cell_index` from 0 and `cell_id`, null when the file gives the cell no id):

- `tag-cell` (a step reads a name only an untagged or skip cell defines): set the nbops
  tag of cell `cell_index` to `tag` (`current` is its nbops tag now, or null);
- `merge-parameters` (two cells are tagged parameters): append the source of cell
  `from_index` (`from_id`) to the parameters cell `cell_index`, then delete it (not
  offered when both cells set a name: which value to keep is the user's choice);
- `move-to-parameters` (a constant outside the parameters cell that later code passes as a
  hyper-parameter, size, seed or path: suggest.hyper_constants): remove lines `line` to
  `end_line` (from 1), whose text is `source`, from cell `cell_index` and append them to
  the parameters cell `parameters_index` (`parameters_id`);
- `suggest-roles` (nothing is tagged, or no cell is a step): ask for the suggested roles
  (GET /nbops/api/suggest) and accept them all or one by one.

`problem_fix(exc, notebook, known)` is the fix of one analysis problem (or None), `known`
the notebook's problems as the panel found them;
`constant_fixes(notebook, graph)` lists the moves of constants of a notebook that analyses.
`last_export(notebook, out_dir)` is the export of the notebook in its project's export
folder, with whether it was made from the notebook as saved now (the manifest's source
sha256): the panel says when an export is of an older notebook. Nothing here raises for a
notebook's content.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from nbops.errors import (
    CellLocation,
    NbopsError,
    NoTaggedCellsError,
    TagError,
    UntaggedDefinitionError,
)
from nbops.export.render import default_package_name
from nbops.notebook.analysis import StepGraph, analyse
from nbops.notebook.cellwork import Work, read_work
from nbops.notebook.read import Cell, NotebookModel
from nbops.notebook.suggest import apply_tags, hyper_constants, step_name
from nbops.notebook.tags import CellTag, Role

# Bounds, so a large notebook's analysis stays quick: each checked fix analyses it again.
MAX_CONSTANT_FIXES = 8


def problem_fix(
    exc: NbopsError, notebook: NotebookModel, known: Sequence[NbopsError] = ()
) -> dict[str, Any] | None:
    """The one-click fix for a problem the analysis of `notebook` reported, or None.
    `known`: all the problems the (partial) analysis of `notebook` reported."""
    try:
        if isinstance(exc, NoTaggedCellsError):  # NoStepsError too
            return {"kind": "suggest-roles", "label": "Suggest roles for the cells"}
        if isinstance(exc, UntaggedDefinitionError):
            return _tag_defining_cell(exc, notebook, known)
        if isinstance(exc, TagError) and "tagged parameters" in exc.message:
            return _merge_parameters(exc, notebook, known)
    except Exception:  # a fix is a convenience: never let it cost the analysis
        return None
    return None


def constant_fixes(notebook: NotebookModel, graph: StepGraph) -> list[dict[str, Any]]:
    """Moves of hyper-parameter constants from step cells into the parameters cell, each
    checked to analyse; none when the notebook has no parameters cell."""
    try:
        return _constant_fixes(notebook, graph)
    except Exception:  # a fix is a convenience: never let it cost the analysis
        return []


# -- tag the defining cell ----------------------------------------------------------------


def _tag_defining_cell(
    exc: UntaggedDefinitionError, notebook: NotebookModel, known: Sequence[NbopsError]
) -> dict[str, Any] | None:
    defined, using = exc.defined_in, exc.location
    if not isinstance(defined, CellLocation) or defined.number is None:
        return None
    if not isinstance(using, CellLocation) or using.number is None:
        return None
    cell = notebook.cells[defined.number - 1]
    if cell.cell_type != "code" or cell.index >= using.number - 1:
        return None  # defined after its use: moving code is not a one-click fix
    for tag in _candidate_tags(cell, exc.name, notebook):
        changed = apply_tags(notebook, {cell.index: tag})
        if _checks(changed, exc, known, touched={cell.index}):
            current = str(cell.tag.step_tag) if cell.tag else None
            return {
                "kind": "tag-cell",
                "label": f"Tag cell {cell.number} {tag.step_tag}",
                "cell_index": cell.index,
                "cell_id": cell.own_id,
                "tag": str(tag.step_tag),
                "current": current,
            }
    return None


def _candidate_tags(cell: Cell, name: str | None, notebook: NotebookModel) -> list[CellTag]:
    """Tags to try on the defining cell, likeliest first: setup for a cell that only
    defines (constants, functions, configuration), else a transform step named after the
    value, else the plain transform step."""
    work = read_work([cell])[0]
    kinds = {s.kind for s in work.work}
    taken = {c.tag.step_name for c in notebook.code_cells if c.tag and c.tag.role is Role.TRANSFORM}
    candidates: list[CellTag] = []
    if kinds and kinds <= {Work.CONSTANT, Work.DEFINE, Work.CONFIGURE}:
        candidates.append(CellTag(Role.SETUP))
    base = step_name(name, "prepare")
    named = base
    n = 1
    while named in taken:
        n += 1
        named = f"{base}_{n}"
    candidates.append(CellTag(Role.TRANSFORM, named))
    if "transform" not in taken:
        candidates.append(CellTag(Role.TRANSFORM))
    return candidates


# -- merge two parameters cells -----------------------------------------------------------


def _merge_parameters(
    exc: TagError, notebook: NotebookModel, known: Sequence[NbopsError]
) -> dict[str, Any] | None:
    cells = [c for c in notebook.code_cells if c.role is Role.PARAMETERS and not c.injected]
    if len(cells) < 2:
        return None
    first, second = cells[0], cells[1]
    works = read_work([first, second])
    if works[0].value_defines() & works[1].value_defines():
        return None  # both set a name: which value to keep is the user's choice
    merged = _merged_source(first.source, second.source)
    others = tuple(t for t in second.tags if t != str(second.tag.step_tag if second.tag else ""))
    changed = _with_cells(
        notebook,
        {
            first.index: replace(first, source=merged),
            second.index: replace(second, source="", tags=others, tag=None),
        },
    )
    if not _checks(changed, exc, known, touched={first.index, second.index}):
        return None
    return {
        "kind": "merge-parameters",
        "label": f"Merge cell {second.number} into the parameters cell {first.number}",
        "cell_index": first.index,
        "cell_id": first.own_id,
        "from_index": second.index,
        "from_id": second.own_id,
    }


def _merged_source(first: str, second: str) -> str:
    """How the browser merges two cells' sources (fixes.ts): the first, a line break, the
    second."""
    head = first.rstrip("\n")
    return f"{head}\n{second}" if head else second


# -- move constants into the parameters cell ----------------------------------------------


def _constant_fixes(notebook: NotebookModel, graph: StepGraph) -> list[dict[str, Any]]:
    params_cell = graph.parameters_cell.cell if graph.parameters_cell else None
    if params_cell is None:
        return []
    if not any(_sets_a_literal(a.code.tree) for step in graph.steps for a in step.cells):
        return []  # nothing to move: spare reading every cell's work (large notebooks)
    known = {p.name for p in graph.parameters}
    cells = [c for c in notebook.code_cells if not c.injected]
    works = read_work(cells)
    fixes: list[dict[str, Any]] = []
    for position, constant, use in hyper_constants(works):
        cell = cells[position]
        if cell.tag is None or cell.role in (Role.PARAMETERS, Role.SKIP):
            continue  # an untagged cell is exploration; skip is left out on purpose
        if constant.name in known:
            continue
        same_line = [k for k in works[position].constants if k.line == constant.line]
        if len(same_line) != 1:
            continue  # `a = 1; b = 2`: the line holds more than the constant
        lines = cell.source.splitlines()
        count = constant.source.count("\n") + 1
        end = constant.line + count - 1
        block = "\n".join(lines[constant.line - 1 : end]).strip()
        if block != constant.source:
            continue  # the cell's code is not its source as written (magics translated)
        kept = lines[: constant.line - 1] + lines[end:]
        changed = _with_cells(
            notebook,
            {
                cell.index: replace(cell, source="\n".join(kept)),
                params_cell.index: replace(
                    params_cell, source=_merged_source(params_cell.source, constant.source)
                ),
            },
        )
        try:
            analyse(changed)
        except NbopsError:
            continue
        fixes.append(
            {
                "kind": "move-to-parameters",
                "label": f"Move {constant.name} into the parameters cell",
                "message": f"cell {cell.number} sets {constant.name!r}, which it passes as "
                f"{use}: a parameter lets a run change it (-p {constant.name}=...)",
                "name": constant.name,
                "cell_index": cell.index,
                "cell_id": cell.own_id,
                "line": constant.line,
                "end_line": end,
                "source": constant.source,
                "parameters_index": params_cell.index,
                "parameters_id": params_cell.own_id,
            }
        )
        if len(fixes) >= MAX_CONSTANT_FIXES:
            break
    return fixes


def _sets_a_literal(tree: ast.Module) -> bool:
    """Whether a cell's code has a top-level `NAME = <number, text or bool>`."""
    for stmt in tree.body:
        value = stmt.value if isinstance(stmt, ast.Assign | ast.AnnAssign) else None
        if isinstance(value, ast.Constant) and not isinstance(value.value, bytes):
            return True
        if isinstance(value, ast.UnaryOp) and isinstance(value.operand, ast.Constant):
            return True  # -1, -0.5
    return False


# -- checking a fix -----------------------------------------------------------------------


def _with_cells(notebook: NotebookModel, cells: dict[int, Cell]) -> NotebookModel:
    return replace(notebook, cells=tuple(cells.get(c.index, c) for c in notebook.cells))


def _checks(
    changed: NotebookModel, before: NbopsError, known: Sequence[NbopsError], touched: set[int]
) -> bool:
    """Whether the fix removes its problem from the changed notebook without bringing a new
    one into a cell it touched or outside any cell. The changed notebook is analysed in
    partial mode, so the problems it has left are all seen: one the notebook already had
    (`known`, by kind and message) is not the fix's doing, and a new one in a cell the fix
    did not touch is progress (that problem has a fix of its own)."""
    after: list[NbopsError] = []
    try:
        analyse(changed, problems=after)
    except NbopsError as raised:
        after.append(raised)
    had = {_key(p) for p in (*known, before)}
    for problem in after:
        if _key(problem) == _key(before):
            return False  # the fix did not fix it
        if _key(problem) in had:
            continue
        location = problem.location
        index = (
            location.number - 1
            if isinstance(location, CellLocation) and location.number is not None
            else None
        )
        if index is None or index in touched:
            return False
    return True


def _key(exc: NbopsError) -> tuple[type, str]:
    return type(exc), exc.message


# -- the notebook's last export -----------------------------------------------------------


def last_export(notebook: Path, out_dir: Path) -> dict[str, Any] | None:
    """The current export of `notebook` in `out_dir` (`<out_dir>/<name>/<name>/manifest.json`,
    the package name from the notebook's file name), or None when there is none, it is of
    another notebook of the same name, or its manifest cannot be read.

    `{"name", "version", "folder" (out_dir/name), "source_sha256", "current"}`: `current`
    says whether the notebook file is byte for byte the one the export read.
    """
    try:
        name = default_package_name(notebook)
        folder = out_dir / name
        manifest = json.loads((folder / name / "manifest.json").read_text("utf-8"))
        source = manifest["source"]
        read = (folder / source["path"]).resolve()
        if os.path.normcase(read) != os.path.normcase(notebook.resolve()):
            return None  # another notebook with the same file name
        digest = hashlib.sha256(notebook.read_bytes()).hexdigest()
        return {
            "name": name,
            "version": int(manifest["version"]),
            "folder": folder,
            "source_sha256": str(source["sha256"]),
            "current": digest == source["sha256"],
        }
    except (OSError, ValueError, KeyError, TypeError, NbopsError):
        return None
