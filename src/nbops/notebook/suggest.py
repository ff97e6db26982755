"""Suggested roles: tags for an untagged (or partly tagged) notebook that export as it is.

`suggest_roles(notebook)` proposes, for every code cell, a tag (or none) and a one-line
reason, read from the code (`cellwork.py`), never from the prose:

- imports, function and class definitions, seeds and warnings filters -> `setup`;
- the cell that holds only literal constants later code passes as hyper-parameters, sizes,
  seeds or input paths (`n_estimators=N`, `read_csv(PATH)`) -> `parameters`; such constants
  in other cells are listed as lines to gather into it (cells are never rewritten);
- loading, cleaning, feature work and splitting -> `transform:load`, `transform:clean`,
  `transform:features`, `transform:split` (and `scale`, `encode`, ... for preprocessors);
- fitting -> `train:NAME`, named after what it fits; scoring, metrics and reports, and
  cross-validation (which fits and scores) -> `evaluate:NAME`; a cell that fits and then
  scores is tagged by its last statements (`evaluate`), so its score is reported;
- cells that only show, print or plot, and work nothing exported needs (its values feed no
  step) -> left untagged; shell and install cells -> `skip`.

Same-role cells form one step only while they are consecutive: a model fitted again after
`X_train` is redefined gets its own step (`train:knn`, then `train:pca_logreg`).

A suggestion must export: the proposal is applied in memory and analysed
(`analysis.analyse`), and what the analysis reports is resolved — a name only an untagged cell
defines tags that cell too; a name a later step defines splits the step; setup code reading a
parameter or a step's value becomes a transform step — until it analyses or a bound is met.
What cannot be resolved is reported by cell number in `Suggestion.problems`; nothing here
raises for a notebook's content.

Existing nbops tags are kept (unless `force`), and proposals are made only for the other
code cells. Nothing here reads or writes a file; see `tagwrite.py` for writing the tags.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nbops.errors import (
    CellCodeError,
    CellLocation,
    DependencyError,
    LaterStepError,
    NbopsError,
    NoTaggedCellsError,
    TagError,
)
from nbops.notebook.analysis import StepGraph, analyse
from nbops.notebook.cellwork import REPORTS, CellWork, Constant, Statement, Work, read_work
from nbops.notebook.read import Cell, NotebookModel
from nbops.notebook.tags import CellTag, Role, parse_tag

_STEP_ROLES = (Role.TRANSFORM, Role.TRAIN, Role.EVALUATE)
_STEP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MAX_NAME = 40
# Preprocessor classes -> the transform step that fits them.
_PREPROCESS_NAMES = (
    ("Scaler", "scale"),
    ("Normalizer", "scale"),
    ("Encoder", "encode"),
    ("Imputer", "impute"),
    ("Vectorizer", "vectorize"),
    ("Tokenizer", "vectorize"),
    ("PCA", "reduce"),
    ("SVD", "reduce"),
    ("TSNE", "reduce"),
    ("UMAP", "reduce"),
    ("Sampler", "resample"),
    ("SMOTE", "resample"),
)


@dataclass(frozen=True)
class CellSuggestion:
    """The tag proposed for one code cell (or kept on it), and why."""

    index: int  # the cell's position in the notebook, from 0
    cell_id: str
    tag: CellTag | None  # None: leave the cell untagged
    reason: str
    kept: bool = False  # the cell already had this nbops tag; left as it is
    current: CellTag | None = None  # the nbops tag the cell has now

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def label(self) -> str:
        """The tag as written (`train:knn`), or `(untagged)`."""
        return str(self.tag.step_tag) if self.tag else "(untagged)"

    @property
    def changes(self) -> bool:
        """Whether writing this suggestion changes the cell's nbops tag."""
        return not self.kept and self.tag != self.current


@dataclass(frozen=True)
class GatherLine:
    """A constant outside the parameters cell that later code passes as a hyper-parameter:
    a line to move into the parameters cell by hand."""

    index: int  # the cell holding it, from 0
    line: int  # in that cell, from 1
    name: str
    source: str
    use: str  # how later code passes it: `n_estimators=`, `read_csv(`

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass(frozen=True)
class Problem:
    """Something that stops the proposal from exporting and could not be resolved."""

    message: str
    kind: str
    fix: str | None = None
    index: int | None = None  # the cell at fault, from 0, when known

    @property
    def number(self) -> int | None:
        return None if self.index is None else self.index + 1

    def __str__(self) -> str:
        where = f"cell {self.number}: " if self.index is not None else ""
        return f"{where}{self.message}" + (f"; {self.fix}" if self.fix else "")


@dataclass(frozen=True)
class Suggestion:
    """The tags proposed for a notebook, and whether the proposal exports."""

    notebook: NotebookModel
    cells: tuple[CellSuggestion, ...]
    parameters_cell: int | None  # index of the parameters cell (kept or proposed)
    gather: tuple[GatherLine, ...]
    problems: tuple[Problem, ...]
    steps: tuple[str, ...]  # the steps of the proposal, when it analyses
    warnings: tuple[str, ...]  # what the analysis warns about the proposal

    @property
    def exports(self) -> bool:
        """Whether the notebook, tagged as proposed, passes the export's analysis."""
        return not self.problems

    def tags(self) -> dict[int, CellTag | None]:
        """Cell index -> the tag to write, for the cells whose nbops tag changes."""
        return {c.index: c.tag for c in self.cells if c.changes}

    def applied(self) -> NotebookModel:
        """The notebook with the proposed tags, as the analysis reads it."""
        return apply_tags(self.notebook, {c.index: c.tag for c in self.cells})

    def to_json(self) -> dict[str, Any]:
        """The suggestion as JSON (`nbops tag --suggest --json` and the lab endpoint)."""
        return {
            "notebook": self.notebook.path.as_posix(),
            "exports": self.exports,
            "cells": [
                {
                    "index": c.index,
                    "number": c.number,
                    "id": c.cell_id,
                    "tag": str(c.tag.step_tag) if c.tag else None,
                    "role": c.tag.role.value if c.tag else None,
                    "name": c.tag.name if c.tag else None,
                    "reason": c.reason,
                    "kept": c.kept,
                    "current": str(c.current.step_tag) if c.current else None,
                    "changes": c.changes,
                }
                for c in self.cells
            ],
            "parameters_cell": self.parameters_cell,
            "gather": [
                {
                    "index": g.index,
                    "number": g.number,
                    "line": g.line,
                    "name": g.name,
                    "source": g.source,
                    "use": g.use,
                }
                for g in self.gather
            ],
            "problems": [
                {
                    "message": p.message,
                    "kind": p.kind,
                    "fix": p.fix,
                    "index": p.index,
                    "number": p.number,
                }
                for p in self.problems
            ],
            "steps": list(self.steps),
            "warnings": list(self.warnings),
        }


def apply_tags(notebook: NotebookModel, tags: dict[int, CellTag | None]) -> NotebookModel:
    """The notebook with these cells' nbops tags replaced (other tags kept), in memory."""
    cells = []
    for cell in notebook.cells:
        if cell.index in tags and cell.cell_type == "code":
            tag = tags[cell.index]
            others = tuple(t for t in cell.tags if not is_nbops_tag(t))
            cell = replace(cell, tags=others + ((str(tag.step_tag),) if tag else ()), tag=tag)
        cells.append(cell)
    return replace(notebook, cells=tuple(cells))


def is_nbops_tag(tag: str) -> bool:
    """Whether a tag is an nbops role tag (malformed ones, `transform:Bad Name`, included)."""
    try:
        return parse_tag(tag, CellLocation("")) is not None
    except TagError:
        return True


# -- the plan: one entry per code cell ----------------------------------------------------


@dataclass
class _Plan:
    work: CellWork
    role: Role | None = None
    base: str | None = None  # the step name before it is made unique
    reason: str = ""
    anchor: bool = False  # exported whether or not a step needs what it defines
    included: bool = False
    kept: bool = False
    kept_tag: CellTag | None = None
    break_before: bool = False  # start a new step here even after a same-named cell
    why_needed: list[str] = field(default_factory=list)

    @property
    def cell(self) -> Cell:
        return self.work.cell


def suggest_roles(notebook: NotebookModel, *, force: bool = False) -> Suggestion:
    """Propose a tag and a reason for every code cell of `notebook`, resolved until the
    proposal analyses (see the module docstring). With `force`, existing nbops tags are
    replaced too; without it they are kept and only the other cells get proposals."""
    cells = [c for c in notebook.code_cells if not c.injected]
    plans = [_Plan(work=w) for w in read_work(cells)]
    for p in plans:
        if p.cell.tag is not None and not force:
            p.kept, p.kept_tag, p.included = True, p.cell.tag, True
            p.role, p.reason = p.cell.tag.role, "already tagged: kept (--force suggests anew)"
        else:
            _guess(p)
    params_index, gather = _choose_parameters(plans)
    _include_live(plans)
    graph, problems = _resolve(notebook, plans)
    tags = _tags(plans)
    suggestions = tuple(
        CellSuggestion(
            index=p.cell.index,
            cell_id=p.cell.cell_id,
            tag=tags[i],
            reason=_final_reason(p, tags[i]),
            kept=p.kept,
            current=p.cell.tag,
        )
        for i, p in enumerate(plans)
    )
    return Suggestion(
        notebook=notebook,
        cells=suggestions,
        parameters_cell=params_index,
        gather=tuple(gather),
        problems=tuple(problems),
        steps=tuple(s.key for s in graph.steps) if graph else (),
        warnings=tuple(str(d) for d in graph.diagnostics) if graph else (),
    )


# -- first guess, from one cell's work ----------------------------------------------------


def _guess(p: _Plan) -> None:
    """The role a cell's own work suggests (see the module docstring)."""
    w = p.work
    if w.shell:
        p.role, p.reason, p.anchor = Role.SKIP, w.shell, True
        return
    if w.error is not None:
        p.reason = f"cannot be exported as it is ({w.error})"
        return
    work = w.work
    kinds = {s.kind for s in work}
    if not work:
        _guess_without_work(p)
        return
    if Work.CROSS_VALIDATE in kinds:
        s = _last(work, Work.CROSS_VALIDATE)
        p.role, p.base, p.anchor = Role.EVALUATE, s.subject or "cross_validation", True
        p.reason = (
            f"cross-validates {_what(s.subject, 'a model')} ({_calls(s)}): it fits and "
            "scores, and its value is the headline score"
        )
    elif Work.FIT in kinds:
        _guess_fit(p, work)
    elif Work.METRIC in kinds and _plots_a_report(w):
        reports = {c for s in work if s.kind is Work.METRIC for c in s.calls}
        p.reason = f"plots a report ({', '.join(sorted(reports))}), which is not a number to track"
    elif Work.METRIC in kinds:
        metrics = [s for s in work if s.kind is Work.METRIC]
        s = metrics[-1]
        p.role, p.base, p.anchor = Role.EVALUATE, s.subject or "metrics", True
        p.reason = f"scores {_what(s.subject, 'the model')} ({_calls(*metrics)})"
        if all(m.shown_only for m in metrics):
            p.reason += "; it only prints the value: assign it to a name to keep it as a metric"
    elif Work.PREDICT in kinds:
        s = _last(work, Work.PREDICT)
        p.role, p.base = Role.EVALUATE, s.subject or "predictions"
        p.reason = f"predicts with {_what(s.subject, 'the model')} ({_calls(s)})"
    elif Work.SPLIT in kinds:
        p.role, p.base = Role.TRANSFORM, "split"
        p.reason = f"splits the data ({_calls(_last(work, Work.SPLIT))})"
    elif Work.LOAD in kinds:
        p.role, p.base = Role.TRANSFORM, "load"
        p.reason = f"reads the data ({_calls(*[s for s in work if s.kind is Work.LOAD])})"
    elif Work.MODEL in kinds:
        s = _last(work, Work.MODEL)
        p.role, p.base = Role.TRAIN, s.subject or "model"
        p.reason = f"builds {_what(s.subject, 'a model')}, which later code fits"
    elif Work.PREPROCESS in kinds:
        s = _last(work, Work.PREPROCESS)
        p.role, p.base = Role.TRANSFORM, _preprocess_name(s.subject)
        p.reason = f"prepares features with {s.subject or 'a preprocessor'} ({_calls(s)})"
    elif kinds & {Work.CLEAN, Work.FEATURES}:
        cleaning = sum(s.kind is Work.CLEAN for s in work)
        p.role = Role.TRANSFORM
        if cleaning * 2 >= len(work):
            p.base = "clean"
            p.reason = f"cleans the data ({_calls(*[s for s in work if s.kind is Work.CLEAN])})"
        else:
            p.base = "features"
            p.reason = f"prepares the data ({_bound(w)})"
    elif kinds <= {Work.CONSTANT}:
        p.role = Role.SETUP
        p.reason = f"literal constants ({', '.join(c.name for c in w.constants)})"
    else:  # definitions and configuration, maybe with constants
        p.role, p.anchor = Role.SETUP, True
        defs = [s.subject for s in work if s.kind is Work.DEFINE and s.subject]
        if defs:
            p.reason = f"defines {', '.join(defs[:4])}" + (" ..." if len(defs) > 4 else "")
        else:
            p.reason = f"configures the session ({_calls(*work)})"


def _guess_without_work(p: _Plan) -> None:
    kinds = set(p.work.kinds)
    if Work.IMPORT in kinds and Work.DISPLAY not in kinds:
        p.role, p.anchor, p.reason = Role.SETUP, True, "imports"
    elif Work.DISPLAY in kinds:
        shown = [c for s in p.work.statements for c in s.calls if s.kind is Work.DISPLAY]
        what = f" ({', '.join(dict.fromkeys(shown[:3]))})" if shown else ""
        p.reason = f"only shows, prints or plots{what}"
        if Work.IMPORT in kinds:
            p.reason += "; its imports reach the exported code anyway"
    elif p.work.dropped:
        p.reason = "only configures the interactive session (" + p.work.dropped[0] + ")"
    else:
        p.reason = "empty"


def _guess_fit(p: _Plan, work: list[Statement]) -> None:
    fits = [i for i, s in enumerate(work) if s.kind is Work.FIT]
    last_fit = work[fits[-1]]
    after = [s for s in work[fits[-1] + 1 :] if s.kind is Work.METRIC]
    before = [s for s in work[: fits[-1]] if s.kind is Work.METRIC]
    subject = last_fit.subject or "model"
    if after:
        p.role, p.base, p.anchor = Role.EVALUATE, after[-1].subject or subject, True
        p.reason = (
            f"fits {subject} and scores it ({_calls(*after)}); tagged by its last "
            "statements, so the score is reported"
        )
        return
    p.role, p.base, p.anchor = Role.TRAIN, subject, True
    p.reason = f"fits {subject} ({_calls(last_fit)})"
    if before:
        p.reason += (
            f"; the score on line {before[-1].line} is computed before the last fit, and a "
            "train step does not report it: move it to a cell after the fit"
        )


def _plots_a_report(w: CellWork) -> bool:
    """A cell that draws a confusion matrix or a curve and computes no other metric."""
    plots = any(
        s.kind is Work.DISPLAY and set(s.calls) - {"print", "pprint", "display"}
        for s in w.statements
    )
    metric_calls = {c for s in w.work if s.kind is Work.METRIC for c in s.calls}
    return plots and bool(metric_calls) and metric_calls <= REPORTS


def _last(statements: list[Statement], kind: Work) -> Statement:
    return [s for s in statements if s.kind is kind][-1]


def _calls(*statements: Statement) -> str:
    names = list(dict.fromkeys(c for s in statements for c in s.calls if c))
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "") if names else "code"


def _what(subject: str | None, default: str) -> str:
    return subject or default


def _bound(w: CellWork) -> str:
    names = sorted(w.value_defines(), key=list(w.names.defines).index)
    return (
        "defines " + ", ".join(names[:4]) + (" ..." if len(names) > 4 else "") if names else "code"
    )


def _preprocess_name(cls: str | None) -> str:
    for suffix, name in _PREPROCESS_NAMES:
        if cls and cls.endswith(suffix):
            return name
    return "features"


# -- the parameters cell ------------------------------------------------------------------


def _choose_parameters(plans: list[_Plan]) -> tuple[int | None, list[GatherLine]]:
    """Pick the parameters cell and list the hyper-parameter constants outside it."""
    hyper = hyper_constants([p.work for p in plans])
    kept = next((p for p in plans if p.kept and p.role is Role.PARAMETERS), None)
    chosen = kept
    if chosen is None:
        best = 0
        for position, p in enumerate(plans):
            if p.kept or p.role is not Role.SETUP or not p.work.constants:
                continue
            if any(s.kind not in (Work.CONSTANT, Work.IMPORT) for s in p.work.statements):
                continue
            count = sum(1 for (i, _, _) in hyper if i == position)
            if count > best:
                chosen, best = p, count
    if chosen is not None and not chosen.kept:
        uses = {c.name: use for (i, c, use) in hyper if plans[i] is chosen}
        chosen.role, chosen.anchor = Role.PARAMETERS, True
        passed = ", ".join(f"{n} as {u}" for n, u in list(uses.items())[:3])
        chosen.reason = f"literal constants later code passes as hyper-parameters ({passed})"
    gather = [
        GatherLine(plans[i].cell.index, c.line, c.name, c.source, use)
        for (i, c, use) in hyper
        if plans[i] is not chosen and not plans[i].kept
    ]
    index = chosen.cell.index if chosen is not None else None
    return index, gather


def hyper_constants(works: Sequence[CellWork]) -> list[tuple[int, Constant, str]]:
    """(position in `works`, constant, use) for each scalar constant defined once in the
    notebook and passed by later code (its own cell or a later one) as a hyper-parameter,
    size, seed or input path: what belongs in the parameters cell."""
    defined_in: dict[str, int] = {}
    for w in works:
        for name in w.value_defines():
            defined_in[name] = defined_in.get(name, 0) + 1
    found = []
    for i, w in enumerate(works):
        if not w.exportable:
            continue
        for c in w.constants:
            if not c.scalar or defined_in.get(c.name) != 1:
                continue
            if sum(1 for k in w.constants if k.name == c.name) != 1:
                continue
            use = next(
                (q.hyper_uses[c.name] for q in works[i:] if c.name in q.hyper_uses),
                None,
            )
            if use is not None:
                found.append((i, c, use))
    return found


# -- which cells are exported -------------------------------------------------------------


def _include_live(plans: list[_Plan]) -> None:
    """Anchors are exported; any other cell with a role only when a later exported cell reads
    a value it defines (backwards liveness, as a notebook run top to bottom sees it)."""
    live: set[str] = set()
    for p in reversed(plans):
        if p.kept:
            exported = p.role not in (None, Role.SKIP)
        elif p.role is None or p.role is Role.SKIP:
            exported = False
            p.included = p.role is Role.SKIP
        else:
            needed = (p.work.value_defines() | p.work.mutates) & live
            p.included = p.anchor or bool(needed)
            exported = p.included
            if needed and not p.anchor:
                p.why_needed = sorted(needed)
        if exported:
            uses = set(p.work.names.uses)
            live -= p.work.value_defines() - uses - p.work.mutates
            live |= uses | p.work.mutates


# -- from the plan to tags ----------------------------------------------------------------


def _tags(plans: list[_Plan]) -> list[CellTag | None]:
    """Each cell's tag: consecutive cells of the same role and name share a step; a name
    used again later gets a suffix (`train:knn_2`). Cleaning and feature cells that
    alternate (clean, features, clean) form one step rather than a string of suffixes."""
    taken: dict[Role, set[str]] = {r: set() for r in _STEP_ROLES}
    for p in plans:
        if p.kept and p.kept_tag and p.kept_tag.role in _STEP_ROLES:
            taken[p.kept_tag.role].add(p.kept_tag.step_name)
    tags: list[CellTag | None] = [None] * len(plans)
    for i, p in enumerate(plans):
        if p.kept:
            tags[i] = p.kept_tag
        elif p.included and p.role is not None and p.role not in _STEP_ROLES:
            tags[i] = CellTag(p.role)
    breaks = {i for i, p in enumerate(plans) if p.break_before}
    for role, base, members in _merge_alternating(_runs(plans), breaks):
        name = _unique(base, taken[role])
        taken[role].add(name)
        for i in members:
            tags[i] = CellTag(role, name)
    return tags


_Run = tuple[Role, str, list[int]]  # role, base name, plan positions
_PREPARE = ("clean", "features")


def _runs(plans: list[_Plan]) -> list[_Run]:
    """Consecutive step cells of the same role and base name (cells without a step between
    them do not interrupt a run; a kept step cell does)."""
    runs: list[_Run] = []
    previous: tuple[Role, str] | None = None
    for i, p in enumerate(plans):
        if p.kept:
            if p.kept_tag and p.kept_tag.role in _STEP_ROLES:
                previous = None
            continue
        if not p.included or p.role not in _STEP_ROLES:
            continue
        assert p.role is not None
        base = step_name(p.base, p.role.value)
        if previous == (p.role, base) and not p.break_before:
            runs[-1][2].append(i)
        else:
            runs.append((p.role, base, [i]))
            previous = (p.role, base)
    return runs


def _merge_alternating(runs: list[_Run], breaks: set[int]) -> list[_Run]:
    """Adjacent clean/features runs in which a name comes back merge into one `features`
    run (one step), so `clean, features, clean_2, features_2` does not happen; never across
    a split the resolution made (`breaks`)."""
    merged: list[_Run] = []
    i = 0
    while i < len(runs):
        j = i
        while (
            j + 1 < len(runs)
            and runs[j + 1][2][0] not in breaks
            and all(r[0] is Role.TRANSFORM and r[1] in _PREPARE for r in (runs[j], runs[j + 1]))
        ):
            j += 1
        group = runs[i : j + 1]
        bases = [r[1] for r in group]
        if len(group) > 1 and len(set(bases)) < len(bases):
            members = [m for r in group for m in r[2]]
            merged.append((Role.TRANSFORM, "features", members))
        else:
            merged.extend(group)
        i = j + 1
    return merged


def step_name(raw: str | None, default: str) -> str:
    """A valid step name (`^[a-z][a-z0-9_]*$`) from a variable or class label."""
    name = re.sub(r"[^a-z0-9_]+", "_", (raw or "").lower())
    name = re.sub(r"_+", "_", name).strip("_")
    name = re.sub(r"^[0-9_]+", "", name)[:_MAX_NAME].rstrip("_")
    return name if _STEP_NAME.match(name) else default


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def _final_reason(p: _Plan, tag: CellTag | None) -> str:
    reason = p.reason
    if tag is None and p.role is not None and not p.kept and p.role is not Role.SKIP:
        defined = sorted(p.work.value_defines(), key=list(p.work.names.defines).index)
        what = f" ({', '.join(defined[:3])})" if defined else ""
        reason += f"; but no exported cell reads what it defines{what}: left as exploration"
    elif p.why_needed and tag is not None:
        reason += f"; later steps read {', '.join(p.why_needed[:3])}"
    return reason


# -- resolving what the analysis reports --------------------------------------------------


def _resolve(notebook: NotebookModel, plans: list[_Plan]) -> tuple[StepGraph | None, list[Problem]]:
    """Analyse the proposal and fix what the analysis reports, until it analyses, nothing
    can be fixed, or the bound (a few rounds per cell) is met."""
    by_index = {p.cell.index: p for p in plans}
    seen: set[tuple[str, int | None, str]] = set()
    bound = 3 * len(plans) + 10
    for _ in range(bound):
        tags = _tags(plans)
        model = apply_tags(notebook, {p.cell.index: t for p, t in zip(plans, tags, strict=True)})
        try:
            return analyse(model), []
        except NbopsError as exc:
            index = _cell_index(exc)
            key = (type(exc).__name__, index, exc.message)
            if key in seen or not _fix(
                exc, by_index.get(index) if index is not None else None, plans, tags, model
            ):
                return None, [_problem(exc, plans, index)]
            seen.add(key)
    return None, [
        Problem(
            "the suggestion did not settle within its bound of rounds",
            kind="SuggestionBound",
            fix="tag the cells the problems name by hand, then run `nbops tags`",
        )
    ]


def _cell_index(exc: NbopsError) -> int | None:
    location = exc.location
    if isinstance(location, CellLocation) and location.number is not None:
        return location.number - 1
    return None


def _problem(exc: NbopsError, plans: list[_Plan], index: int | None) -> Problem:
    if isinstance(exc, NoTaggedCellsError):
        return Problem(
            "no cell does work nbops can export (no loading, feature, fitting or scoring code "
            "was found)",
            kind=type(exc).__name__,
            fix="tag the cells by hand: setup, parameters, transform, train, evaluate",
        )
    return Problem(exc.message, kind=type(exc).__name__, fix=exc.fix, index=index)


def _fix(
    exc: NbopsError,
    plan: _Plan | None,
    plans: list[_Plan],
    tags: list[CellTag | None],
    model: NotebookModel,
) -> bool:
    """Change the plan so the analysis no longer reports `exc`; False when it cannot."""
    if plan is None or isinstance(exc, TagError):
        return False
    if isinstance(exc, CellCodeError):
        if plan.kept:
            return False
        plan.included, plan.anchor = False, False
        plan.reason = f"cannot be exported as it is ({exc.message})"
        plan.role = None
        return True
    if not isinstance(exc, DependencyError):
        return False
    if type(exc) is DependencyError:  # setup code reads a parameter or a step's value
        return _setup_to_transform(plan, plans)
    if _SERVING_STEP in exc.message:  # the serving rule: transform:features reads the label
        return _rename_serving_step(plans, tags)
    return _pull_in_definitions(plan, plans, tags) or (
        isinstance(exc, LaterStepError) and _split_before(plan, plans, tags)
    )


_SERVING_STEP = "transform:features"


def _rename_serving_step(plans: list[_Plan], tags: list[CellTag | None]) -> bool:
    """A proposed `transform:features` step is what a bundle serves; when it reads the
    label, it is renamed `transform:prepare` (a step like any other)."""
    renamed = False
    for p, tag in zip(plans, tags, strict=True):
        if not p.kept and tag is not None and str(tag.step_tag) == _SERVING_STEP:
            p.base, renamed = "prepare", True
    return renamed


def _setup_to_transform(plan: _Plan, plans: list[_Plan]) -> bool:
    if plan.kept:
        return False
    position = plans.index(plan)
    later_uses = {n for p in plans[position + 1 :] if p.included for n in p.work.names.uses}
    if not plan.work.value_defines() & later_uses:
        plan.role, plan.included, plan.anchor = None, False, False
        plan.reason += "; it reads values of steps or parameters, and no step uses it"
        return True
    defines_functions = Work.DEFINE in plan.work.kinds
    plan.role, plan.base = Role.TRANSFORM, "helpers" if defines_functions else "features"
    plan.anchor = plan.included = True
    plan.reason += "; a transform step, not setup, because it reads a parameter or a step's value"
    return True


def _pull_in_definitions(plan: _Plan, plans: list[_Plan], tags: list[CellTag | None]) -> bool:
    """Tag the nearest earlier untagged cell that defines a name this cell reads and no
    exported cell before it provides."""
    position = plans.index(plan)
    for name in _missing_names(plan, plans, tags):
        for earlier in reversed(plans[:position]):
            if name not in earlier.work.value_defines():
                continue
            if earlier.kept or tags[plans.index(earlier)] is not None:
                break  # it is exported already: the name is not what is missing
            if not earlier.work.exportable:
                return False
            _pull_in(earlier, name, plan)
            return True
    return False


def _missing_names(plan: _Plan, plans: list[_Plan], tags: list[CellTag | None]) -> list[str]:
    """Names a cell reads that no exported cell before it defines, and that some
    non-exported cell before it does."""
    position = plans.index(plan)
    provided: set[str] = set()
    for p, tag in zip(plans[:position], tags[:position], strict=True):
        if tag is not None and tag.role is not Role.SKIP:
            provided |= p.work.value_defines()
    defined_elsewhere: set[str] = set()
    for p, tag in zip(plans[:position], tags[:position], strict=True):
        if tag is None or tag.role is Role.SKIP:
            defined_elsewhere |= p.work.value_defines()
    return [n for n in plan.work.names.uses if n not in provided and n in defined_elsewhere]


def _pull_in(p: _Plan, name: str, needed_by: _Plan) -> None:
    if p.role in (None, Role.SKIP, Role.PARAMETERS):
        kinds = {s.kind for s in p.work.work}
        only_setup = bool(kinds) and kinds <= {Work.CONSTANT, Work.DEFINE, Work.CONFIGURE}
        p.role = Role.SETUP if only_setup else Role.TRANSFORM
        p.base = "features" if not only_setup else None
    p.included = p.anchor = True
    p.reason += f"; tagged because cell {needed_by.cell.number} reads {name!r} from it"


def _split_before(plan: _Plan, plans: list[_Plan], tags: list[CellTag | None]) -> bool:
    """Start a new step at this cell, when it shares a step with earlier cells."""
    if plan.kept or plan.break_before:
        return False
    position = plans.index(plan)
    tag = tags[position]
    if tag is None or not any(t == tag for t in tags[:position]):
        return False
    plan.break_before = True
    return True
