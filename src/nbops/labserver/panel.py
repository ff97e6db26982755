"""What the panel shows of a notebook: its cells, parameters, steps, problems and warnings,
read as far as they can be (a problem in the notebook is reported, never raised), and the
parameters of the run form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbops.errors import CellLocation, NbopsError, TagError
from nbops.labserver.jobs import error_fields, find_run_output, relative_to_root

# Deferred imports: the notebook analysis and the run parameters load when the panel first
# asks, not when Jupyter loads the extension at every server start.


def analyse_for_panel(path: Path, root: Path) -> dict[str, Any]:
    """The cells, parameters, steps, problems and warnings of a notebook, as far as they can
    be read: a problem in the notebook is reported in `problems`, never raised. A problem
    with a one-click fix carries it in `quick_fix`; `fixes` holds the fixes not tied to a
    problem (see fixes.py); `sha256` is the file's, to tell an export of it from one of an
    older notebook (the export's manifest records its source's).

    `run_output` is null for a source notebook; for a run's output notebook (see
    find_run_output) it is `{"run_id", "source"}`, the source relative to the server root
    (null when unknown or outside the root): the panel exports and runs the source instead.
    """
    from nbops.labserver.fixes import constant_fixes, problem_fix
    from nbops.notebook.analysis import analyse
    from nbops.notebook.read import read_notebook

    result: dict[str, Any] = {
        "cells": [],
        "parameters": [],
        "steps": [],
        "problems": [],
        "warnings": [],
        "tagged": False,
        "run_output": _run_output(path, root),
        "sha256": None,  # the saved file's, as an export's manifest records its source's
        "fixes": [],  # one-click fixes not tied to a problem (labserver/fixes.py)
    }
    try:
        nb = read_notebook(path)
    except TagError:
        # A cell's tags cannot be understood: list the cells anyway, each bad one a problem.
        cells, problems = _cells_leniently(path, root)
        result.update(cells=cells, problems=problems, tagged=True)
        return result
    except NbopsError as exc:
        result["problems"] = [_problem(exc, root, path)]
        return result
    result["cells"] = [
        {
            "index": c.index,
            "id": c.cell_id,
            "type": c.cell_type,
            "role": c.role.value if c.role else None,
            "tag": str(c.tag.step_tag) if c.tag else None,
        }
        for c in nb.cells
    ]
    result["tagged"] = bool(nb.tagged_cells)
    result["sha256"] = nb.sha256
    try:
        graph = analyse(nb)
    except NbopsError as exc:
        problem = _problem(exc, root, path)
        quick_fix = problem_fix(exc, nb)
        if quick_fix is not None:
            problem["quick_fix"] = quick_fix
        result["problems"] = [problem]
        result["parameters"] = _parameters_if_readable(nb)
        return result
    result["parameters"] = [
        {"name": p.name, "type": p.type_source, "default": p.default, "description": p.description}
        for p in graph.parameters
    ]
    result["steps"] = [
        {
            "key": s.key,
            "role": s.role.value,
            "name": s.name,
            "cells": [{"index": a.cell.index, "id": a.cell.cell_id} for a in s.cells],
            "inputs": [{"name": i.name, "source": i.source, "step": i.step} for i in s.inputs],
            "outputs": list(s.outputs),
        }
        for s in graph.steps
    ]
    result["warnings"] = [panel_warning(d) for d in graph.diagnostics]
    result["fixes"] = constant_fixes(nb, graph)
    return result


def _run_output(path: Path, root: Path) -> dict[str, Any] | None:
    output = find_run_output(path, root)
    if output is None:
        return None
    source = relative_to_root(output.source, root) if output.source else None
    return {"run_id": output.run_id, "source": source}


def _problem(exc: NbopsError, root: Path, notebook: Path) -> dict[str, Any]:
    return error_fields(exc, root, notebook)


def panel_warning(diagnostic: Any) -> dict[str, Any]:
    location = diagnostic.location
    number = getattr(location, "number", None)
    return {
        "message": diagnostic.message,
        "cell_index": number - 1 if number is not None else None,
        "cell_id": getattr(location, "cell_id", None) or None,
        "line": getattr(location, "line", None),
    }


def _parameters_if_readable(nb: Any) -> list[dict[str, Any]]:
    from nbops.runs.parameters import parameter_specs

    try:
        specs = parameter_specs(nb)
    except NbopsError:
        return []
    return [
        {"name": s.name, "type": s.type, "default": s.default, "description": s.description}
        for s in specs
    ]


def run_form_parameters(path: Path, secret_names: list[str]) -> list[dict[str, Any]]:
    """The run form's parameters; a secret's default is not sent (null): leave it empty to
    use the notebook's value."""
    from nbops.notebook.read import read_notebook
    from nbops.runs.parameters import parameter_specs

    specs = parameter_specs(read_notebook(path), secret_names)
    return [
        {
            "name": s.name,
            "type": s.type,
            "default": None if s.secret else s.default,
            "description": s.description,
            "secret": s.secret,
        }
        for s in specs
    ]


def _cells_leniently(path: Path, root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every cell with its role where its tags can be read, and a problem for each cell
    whose tags cannot (read_notebook stops at the first)."""
    from nbops.notebook import read as reading
    from nbops.notebook.tags import cell_tag

    try:
        raw = path.read_bytes()
        nb = (
            reading._read_percent_script(raw, path)
            if path.suffix == ".py"
            else reading._read_ipynb(raw, path)
        )
    except (OSError, NbopsError) as exc:
        error = exc if isinstance(exc, NbopsError) else NbopsError(str(exc))
        return [], [_problem(error, root, path)]
    cells: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for index, c in enumerate(nb.cells):
        cid = str(c.get("id") or "")
        tag = None
        if c.cell_type == "code":
            tags = [str(t) for t in c.get("metadata", {}).get("tags", [])]
            try:
                tag = cell_tag(tags, CellLocation(str(path), index + 1, cid))
            except TagError as exc:
                problems.append(_problem(exc, root, path))
        cells.append(
            {
                "index": index,
                "id": cid,
                "type": c.cell_type,
                "role": tag.role.value if tag else None,
                "tag": str(tag.step_tag) if tag else None,
            }
        )
    return cells, problems
