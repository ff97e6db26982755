"""What the panel shows of a notebook: its cells, parameters, steps, problems and warnings,
read as far as they can be (a problem in the notebook is reported, never raised), and the
parameters of the run form.

Problems never hide the rest: the analysis runs in partial mode (nbops.notebook.analysis),
so every step is listed, those that analyse cleanly with all their inputs and outputs. A
problem names cells by number (`cell 5`, never the raw id, which the problem's `cell_id`
carries for linking), and lists in `related` the other cells it concerns (the cell defining
a name the problem's cell uses), each as `{"cell_index", "cell_id"}`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError, TagError
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
    from nbops.labserver.fixes import constant_fixes
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
    tag_problems: list[TagError] = []
    try:
        nb = read_notebook(path, tag_problems=tag_problems)
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
    # A cell whose tags cannot be understood is read as untagged, its tags a problem.
    result["tagged"] = bool(nb.tagged_cells or tag_problems)
    result["sha256"] = nb.sha256
    problems: list[NbopsError] = [*tag_problems]
    try:
        graph = analyse(nb, problems=problems)
    except NbopsError as exc:
        if not tag_problems:  # else nothing tagged is left but the bad tags: those say it
            problems.append(exc)
        result["problems"] = _problems_with_fixes(problems, nb, root, path)
        result["parameters"] = _parameters_if_readable(nb)
        return result
    result["problems"] = _problems_with_fixes(problems, nb, root, path)
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
            "inputs": [{"name": i.name, "source": i.source, "step": i.step} for i in s.inputs]
            # A name a cell that cannot be read may define (partial analysis).
            + [{"name": n, "source": "unknown", "step": None} for n in s.unknown_inputs],
            "outputs": list(s.outputs),
        }
        for s in graph.steps
    ]
    result["warnings"] = [panel_warning(d) for d in graph.diagnostics]
    # Moving constants is offered once the notebook analyses (each move is checked so).
    result["fixes"] = [] if problems else constant_fixes(nb, graph)
    return result


def _problems_with_fixes(
    problems: list[NbopsError], nb: Any, root: Path, path: Path
) -> list[dict[str, Any]]:
    """The problems as the panel shows them, each with its one-click fix when it has one
    (checked against the notebook's other problems: see fixes.py)."""
    from nbops.labserver.fixes import problem_fix

    shown = []
    for exc in problems:
        problem = _problem(exc, root, path)
        quick_fix = problem_fix(exc, nb, known=problems)
        if quick_fix is not None:
            problem["quick_fix"] = quick_fix
        shown.append(problem)
    return shown


def _run_output(path: Path, root: Path) -> dict[str, Any] | None:
    output = find_run_output(path, root)
    if output is None:
        return None
    source = relative_to_root(output.source, root) if output.source else None
    return {"run_id": output.run_id, "source": source}


# `cell 5 (id 3f2a...)` in a message: the panel names the cell by number only.
_CELL_WITH_ID = re.compile(r"\b(cells? \d+) \(id [^()\s]*\)")


def _problem(exc: NbopsError, root: Path, notebook: Path) -> dict[str, Any]:
    fields = error_fields(exc, root, notebook)
    fields["message"] = _CELL_WITH_ID.sub(r"\1", fields["message"])
    if fields.get("fix"):
        fields["fix"] = _CELL_WITH_ID.sub(r"\1", fields["fix"])
    fields["related"] = [
        {
            "cell_index": loc.number - 1 if loc.number is not None else None,
            "cell_id": loc.cell_id or None,
        }
        for loc in exc.related
    ]
    return fields


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
