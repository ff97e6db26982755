"""The serving path of a notebook, sliced from its tagged cells before anything runs.

Real notebooks load a training frame and a test frame (`train.csv`, `test.csv`) and apply the
same cleaning and feature cells to both, then `model.fit(X_train, y)` and
`model.predict(X_test)`. The code that turns the raw test frame into the model's input is
the serving path; nbops finds it by program slicing on the syntax trees of the step cells,
so nobody rewrites the notebook into a single-frame function.

How, in order (`derive_serving_path`):

1. The program is the statements of the step cells (transform, train, evaluate) in the
   order the exported pipeline runs them; imports and display-only lines are left out. A
   loop over a literal list of frames — `for df in (train, test):`, or over `combined`
   when `combined = [train, test]` was bound just before and its frames not rebound since
   — is unrolled into one copy of its body per frame (`df = test` then the body), so the
   iteration on the test frame is a statement of its own.
2. The model input is the argument of the last `M.predict(X)` (or `predict_proba`,
   `predict_log_proba`, `decision_function`) on a model `M` some step fits with
   `M.fit(X_train, y)`. Its request frame is found by walking back along the frame the
   argument is made from (`X_test` <- `test.drop(...)` <- `pd.get_dummies(test)` <- ...)
   to the statement that brings the frame in: one that reads no earlier step value
   (`test = pd.read_csv(...)`: the request is the raw frame it loads), or a split that
   binds the test frame beside others (`X_tr, X_te, ... = train_test_split(...)`). The
   predict call is a serving call only when that statement does not also feed the frame
   `fit` was given (predicting on the training rows is not serving).
3. From there on, the request frame is tracked forward as an object: names bound to it
   (`df = test`), values computed from it, and frames changed in place through any alias
   (`df["Age"] = ...`, `inplace=True`, `del df[...]`) are on the test side.
4. The serving statements are the backward slice from the model input through test-side
   statements only: a statement is kept when it binds, or changes in place, a test-side
   value a kept statement (or the model input) reads. Functions and classes the notebook
   defines in step cells and the kept statements call are kept as code.
5. Inside the kept statements, every maximal sub-expression that reads no test-side value
   but reads a parameter or a value an earlier step computed (`train["Age"].median()`,
   a fitted `LabelEncoder`, `X_train.columns`) is *frozen*: evaluated once when the bundle
   is built, on the training side as the notebook computes it, and stored in the bundle.
   A frozen expression that reads a loop variable of the kept code (`train[col].median()`
   inside `for col in cols:`) is stored once per value of that variable. The receiver of a
   method call is frozen rather than the bound method (`le.transform(...)` freezes `le`).
   Setup names, imports and literals stay code.
6. The capture program is the classical backward slice (all values) from the model input:
   running it reproduces the notebook's raw request frame, the frozen values and the
   notebook's own model input; the bundle checks that the serving path turns the first
   into the last before it is written (nbops.bundle.serving_path).

The label check (`check_label`): the label is the `y` given to `fit` (a name, and the
column it was read from, `train["Survived"]`); a serving statement that reads it is a
ServingPathError naming the cell, raised by the analysis, so `nbops tags`, `nbops export`
and the lab's problems report it before anything runs. The same holds for a
`transform:features` step that reads one frame (the serving step then) and the label.

A notebook without such a test frame (a single frame split in a `transform:features` step,
or a model that is a whole scikit-learn Pipeline) has no derived path:
`derive_serving_path` returns None, and the bundle uses the step or the model alone.
"""

from __future__ import annotations

import ast
import copy
import itertools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nbops.errors import CellLocation, ServingPathError
from nbops.notebook.cellcode import is_display_only
from nbops.notebook.names import cell_names, free_names
from nbops.notebook.tags import Role

if TYPE_CHECKING:
    from nbops.notebook.analysis import StepGraph
    from nbops.notebook.read import Cell

PREDICT_METHODS = frozenset({"predict", "predict_proba", "predict_log_proba", "decision_function"})
FIT_METHODS = frozenset({"fit"})
# Calls whose arguments are only read: an expression statement calling them changes nothing.
_READ_ONLY_CALLS = frozenset(
    {"print", "display", "len", "repr", "str", "type", "isinstance", "sorted", "list", "dict"}
)
# Methods that change their receiver even when their value is used (`X = scaler.fit_transform`).
_FITTING = frozenset({"fit", "partial_fit", "fit_transform", "fit_predict", "fit_resample"})


@dataclass(eq=False)
class ProgramStatement:
    """One top-level statement of the step cells (or of an unrolled loop's copy)."""

    node: ast.stmt
    cell: Cell
    step: str
    index: int = 0
    reads: frozenset[str] = frozenset()
    binds: frozenset[str] = frozenset()
    mutates: frozenset[str] = frozenset()
    alias_of: str | None = None
    local: frozenset[str] = frozenset()  # names bound inside a compound statement
    serving_node: ast.stmt | None = None  # a compound statement without its training-only lines

    @property
    def served(self) -> ast.stmt:
        """The statement as the serving code runs it."""
        return self.serving_node if self.serving_node is not None else self.node

    @property
    def location(self) -> CellLocation:
        line = getattr(self.node, "lineno", None)
        return CellLocation(self.cell.location.path, self.cell.number, self.cell.cell_id, line)

    @property
    def defines_code(self) -> bool:
        """A function or class definition, or `name = lambda ...`."""
        node = self.node
        if isinstance(node, ast.Assign):
            return isinstance(node.value, ast.Lambda) and len(self.binds) == 1
        return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)


@dataclass(frozen=True)
class FrozenExpression:
    """A sub-expression of the serving code whose value comes from the training run."""

    key: str
    node: ast.expr
    statement: ProgramStatement
    keys: tuple[str, ...] = ()  # loop variables of the serving code the value depends on

    @property
    def text(self) -> str:
        return ast.unparse(self.node)


@dataclass
class ServingPath:
    """What serves a request, sliced from the notebook (see the module docstring)."""

    request: str
    root: ProgramStatement
    statements: list[ProgramStatement]
    predict: ProgramStatement
    model: str
    model_input: ast.expr
    frozen: dict[int, FrozenExpression]
    capture: list[ProgramStatement]
    static_names: set[str] = field(default_factory=set)
    label: str | None = None
    label_column: str | None = None

    @property
    def cells(self) -> list[int]:
        """Notebook cell numbers the serving statements come from, in order."""
        return sorted({s.cell.number for s in self.statements})


# -- the program -------------------------------------------------------------------------------


def program(graph: StepGraph) -> list[ProgramStatement]:
    """The step cells' statements in pipeline order, loops over literal frame lists unrolled."""
    out: list[ProgramStatement] = []
    for step in graph.steps:
        for analysed in step.cells:
            for node in analysed.code.tree.body:
                if isinstance(node, ast.Import | ast.ImportFrom) or is_display_only(node):
                    continue
                _append(out, node, analysed.cell, step.key)
    for i, stmt in enumerate(out):
        stmt.index = i
    return out


def _append(out: list[ProgramStatement], node: ast.stmt, cell: Cell, step: str) -> None:
    elements = _unrollable(node, out)
    if elements is None:
        out.append(_statement(node, cell, step))
        return
    assert isinstance(node, ast.For) and isinstance(node.target, ast.Name)
    for element in elements:
        alias = ast.Assign(
            targets=[ast.Name(node.target.id, ast.Store())], value=ast.Name(element, ast.Load())
        )
        ast.copy_location(alias, node)
        ast.fix_missing_locations(alias)
        out.append(_statement(alias, cell, step))
        for inner in node.body:
            _append(out, copy.deepcopy(inner), cell, step)


def _unrollable(node: ast.stmt, before: list[ProgramStatement]) -> list[str] | None:
    """The frame names a `for` loop iterates over, when it can be unrolled."""
    if not isinstance(node, ast.For) or node.orelse or not isinstance(node.target, ast.Name):
        return None
    if any(isinstance(n, ast.Break | ast.Continue) for n in _walk_same_loop(node.body)):
        return None
    iterable = node.iter
    if isinstance(iterable, ast.Name):
        # `combined = [train, test]` bound before, its frames not rebound since
        for stmt in reversed(before):
            if iterable.id in stmt.binds:
                n = stmt.node
                if (
                    isinstance(n, ast.Assign)
                    and len(n.targets) == 1
                    and isinstance(n.targets[0], ast.Name)
                    and isinstance(n.value, ast.List | ast.Tuple)
                ):
                    iterable = n.value
                    names = _names_of(iterable)
                    later = before[before.index(stmt) + 1 :]
                    if names and any(set(names) & s.binds for s in later):
                        return None
                break
            if iterable.id in stmt.mutates:
                return None
    if not isinstance(iterable, ast.List | ast.Tuple):
        return None
    names = _names_of(iterable)
    return names if names and len(names) > 1 else None


def _names_of(node: ast.List | ast.Tuple) -> list[str] | None:
    if all(isinstance(e, ast.Name) for e in node.elts):
        return [e.id for e in node.elts]  # type: ignore[attr-defined]
    return None


def _walk_same_loop(body: list[ast.stmt]) -> list[ast.AST]:
    out: list[ast.AST] = []
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, ast.For | ast.While | ast.FunctionDef | ast.AsyncFunctionDef):
            continue  # a break there belongs to that loop
        stack.extend(ast.iter_child_nodes(node))
    return out


def _statement(node: ast.stmt, cell: Cell, step: str) -> ProgramStatement:
    names = cell_names(ast.Module(body=[node], type_ignores=[]))
    mutates = _mutations(node)
    binds = {n for n, kind in names.defines.items() if kind != "import"} - mutates
    alias = None
    if (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Name)
    ):
        alias = node.value.id
    local: set[str] = set()
    if isinstance(node, ast.For | ast.While | ast.If | ast.With | ast.Try):
        local = _bound_inside(node)
    reads = set(names.uses) | mutates
    return ProgramStatement(
        node=node,
        cell=cell,
        step=step,
        reads=frozenset(reads),
        binds=frozenset(binds | (_rebound(node) & mutates)),
        mutates=frozenset(mutates),
        alias_of=alias,
        local=frozenset(local),
    )


def _rebound(node: ast.stmt) -> set[str]:
    """Names a statement binds outright even though it also changes them in place."""
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    return set()


def _mutations(node: ast.stmt) -> set[str]:
    """Names whose object a statement may change in place."""
    out: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = (
                child.targets if isinstance(child, ast.Assign | ast.Delete) else [child.target]
            )
            for target in targets:
                for t in _flatten_targets(target):
                    if isinstance(t, ast.Subscript | ast.Attribute):
                        base = base_name(t)
                        if base:
                            out.add(base)
        elif isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
            inplace = any(
                k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in child.keywords
            )
            if inplace or child.func.attr in _FITTING:
                base = base_name(child.func.value)
                if base:
                    out.add(base)
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        call = node.value
        if not _read_only_call(call):
            if isinstance(call.func, ast.Attribute):
                base = base_name(call.func.value)
                if base:
                    out.add(base)
            for arg in [*call.args, *(k.value for k in call.keywords)]:
                if isinstance(arg, ast.Name):
                    out.add(arg.id)
    return out


def _read_only_call(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in _READ_ONLY_CALLS
    root = base_name(func)
    return root in {"plt", "sns", "px", "go", "alt", "nbops", "mlflow", "display"}


def _flatten_targets(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, ast.Tuple | ast.List):
        return [t for e in target.elts for t in _flatten_targets(e)]
    if isinstance(target, ast.Starred):
        return _flatten_targets(target.value)
    return [target]


def base_name(node: ast.expr) -> str | None:
    """`df` of `df["a"].loc[0]`, `df.x`; None when the chain does not start at a name."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


# -- finding the serving call ------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    stmt: ProgramStatement
    model: str
    first: ast.expr
    second: ast.expr | None


def _calls(stmts: list[ProgramStatement], methods: frozenset[str]) -> list[_Call]:
    found = []
    for stmt in stmts:
        for node in ast.walk(stmt.node):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in methods
                and isinstance(node.func.value, ast.Name)
            ):
                args = list(node.args)
                kw = {k.arg: k.value for k in node.keywords if k.arg}
                first = args[0] if args else kw.get("X")
                second = args[1] if len(args) > 1 else kw.get("y")
                if first is not None:
                    found.append(_Call(stmt, node.func.value.id, first, second))
    return found


def _may_call(graph: StepGraph, methods: frozenset[str]) -> bool:
    """Whether a step cell's code names one of these methods at all: without that it cannot
    call one, and building the program (every statement's names) is skipped."""
    sources = [a.code.source for s in graph.steps for a in s.cells]
    # One substring test of all the code first: most notebooks of many cells name no such
    # method in most cells (a name holds no newline, so a hit is a hit in one cell's code).
    joined = "\n".join(sources)
    if not any(m in joined for m in methods):
        return False
    pattern = re.compile(r"\b(?:" + "|".join(sorted(methods)) + r")\b")
    return any(  # a substring test first: a regex search of every cell cost more
        any(m in source for m in methods) and pattern.search(source) for source in sources
    )


def derive_serving_path(graph: StepGraph) -> ServingPath | None:
    """The serving path of a notebook with a test frame (module docstring), or None when it
    has none. Raises ServingPathError when a serving call is found but cannot be traced."""
    if not _may_call(graph, FIT_METHODS):
        return None
    stmts = program(graph)
    fits = _calls(stmts, FIT_METHODS)
    fitted = {f.model: f for f in fits}
    if not fitted:
        return None
    for call in reversed(_calls(stmts, PREDICT_METHODS)):
        fit = fitted.get(call.model)
        if fit is None:
            continue
        found = _request_of(call, stmts)
        if found is None:
            continue
        root, request = found
        try:
            train_side = _request_of(fit, stmts)
        except ServingPathError:
            train_side = None
        if train_side == (root, request):
            continue  # predicting on the rows the model was fit on
        return _build(graph, stmts, call, fit, root, request)
    return None


def _loads(expr: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(expr):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(
            node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
        ):
            names.update(free_names(node))
    return names


def _binder(stmts: list[ProgramStatement], name: str, before: int) -> ProgramStatement | None:
    for stmt in reversed(stmts[:before]):
        if name in stmt.binds:
            return stmt
    return None


def _primary(expr: ast.expr, values: set[str]) -> str | None:
    """The frame an expression is made from: its receiver, else its first frame argument."""
    if isinstance(expr, ast.Name):
        return expr.id if expr.id in values else None
    if isinstance(expr, ast.Attribute | ast.Subscript | ast.Starred):
        return _primary(expr.value, values)
    if isinstance(expr, ast.Call):
        if isinstance(expr.func, ast.Attribute):
            found = _primary(expr.func.value, values)
            if found:
                return found
        for arg in [*expr.args, *(k.value for k in expr.keywords)]:
            found = _primary(arg, values)
            if found:
                return found
        return None
    if isinstance(expr, ast.BinOp):
        return _primary(expr.left, values) or _primary(expr.right, values)
    if isinstance(expr, ast.List | ast.Tuple):
        for element in expr.elts:
            found = _primary(element, values)
            if found:
                return found
    return None


def _request_of(call: _Call, stmts: list[ProgramStatement]) -> tuple[ProgramStatement, str] | None:
    """The statement bringing in the request frame of a predict call, and its name."""
    values = {n for s in stmts for n in s.binds}
    name = _primary(call.first, values)
    position = call.stmt.index
    for _ in range(len(stmts)):
        if name is None:
            return None
        stmt = _binder(stmts, name, position)
        if stmt is None:
            return None
        node = stmt.node
        if stmt.alias_of is not None:
            name, position = stmt.alias_of, stmt.index
            continue
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            if isinstance(node, ast.AnnAssign) and node.value is not None:
                node = ast.Assign(targets=[node.target], value=node.value)
            else:
                raise ServingPathError(
                    f"cannot trace the frame {name!r} given to {call.model}.predict back to "
                    "where it is loaded: it is bound inside a compound statement",
                    location=stmt.location,
                    fix=f"bind {name!r} with a plain assignment",
                )
        target, value = node.targets[0], node.value
        if isinstance(target, ast.Tuple | ast.List):
            names = [t.id if isinstance(t, ast.Name) else None for t in target.elts]
            if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(names):
                value = value.elts[names.index(name)]
            elif name in _loads(value):
                name, position = name, stmt.index  # `train, test = train.align(test)`
                continue
            else:
                return stmt, name  # a split: the test frame is one of its targets
        earlier = {n for s in stmts[: stmt.index] for n in s.binds}
        following = _primary(value, earlier)
        if following is None:
            return stmt, name
        name, position = following, stmt.index
    return None


# -- slicing -------------------------------------------------------------------------------------


def _backward(
    stmts: list[ProgramStatement],
    end: int,
    seeds: set[str],
    allowed: set[int] | None,
    stop: int = -1,
) -> list[ProgramStatement]:
    """Statements before `end` (and after `stop`) that `seeds` depend on; only statements
    whose index is in `allowed` when it is given."""
    ids = _object_ids(stmts)
    needed = set(seeds)
    kept: list[ProgramStatement] = []
    for stmt in reversed(stmts[stop + 1 : end]):
        if allowed is not None and stmt.index not in allowed:
            continue
        after = ids[stmt.index + 1]
        before = ids[stmt.index]
        changed = {before.get(m) for m in stmt.mutates} - {None}
        hit = bool(stmt.binds & needed) or any(after.get(n) in changed for n in needed)
        if not hit:
            continue
        kept.append(stmt)
        needed -= stmt.binds - stmt.reads
        needed |= stmt.reads
    kept.reverse()
    return kept


def _object_ids(stmts: list[ProgramStatement]) -> list[dict[str, int]]:
    """For each position (0..n), which object each name is bound to there."""
    counter = itertools.count()
    env: dict[str, int] = {}
    out = [dict(env)]
    for stmt in stmts:
        for name in stmt.reads:
            if name not in env:
                env[name] = next(counter)
        if stmt.alias_of is not None:
            target = next(iter(stmt.binds))
            env[target] = env.setdefault(stmt.alias_of, next(counter))
        else:
            for name in stmt.binds:
                env[name] = next(counter)
        out.append(dict(env))
    return out


def _tainted(
    stmts: list[ProgramStatement], root: ProgramStatement, request: str, end: int
) -> list[set[str]]:
    """For each position from the root on, the names bound to test-side values there."""
    ids = _object_ids(stmts)
    tainted_ids = {ids[root.index + 1][request]}
    names: list[set[str]] = [set() for _ in range(len(stmts) + 1)]
    for stmt in stmts[root.index + 1 : end + 1]:
        before = ids[stmt.index]
        now = {n for n, i in before.items() if i in tainted_ids}
        names[stmt.index] = now
        if stmt.reads & now:
            after = ids[stmt.index + 1]
            reached = _inner_taint([stmt.node], set(now)) if stmt.local else None
            for name in stmt.binds:
                if reached is None or name in reached:
                    tainted_ids.add(after[name])
            for name in stmt.mutates:
                if name in before and (reached is None or name in reached):
                    tainted_ids.add(before[name])
    names[root.index] = set()
    return names


def _inner_taint(body: list[ast.stmt], tainted: set[str]) -> set[str]:
    """The names test-side values reach through the statements inside a compound one (loop
    bodies twice, for what one iteration hands the next)."""
    for node in body:
        if isinstance(node, ast.For | ast.While):
            if isinstance(node, ast.For) and _loads(node.iter) & tainted:
                tainted |= _bound_inside(node.target)
            for _ in range(2):
                tainted = _inner_taint([*node.body, *node.orelse], tainted)
        elif isinstance(node, ast.If | ast.With | ast.Try):
            parts = [*getattr(node, "body", []), *getattr(node, "orelse", [])]
            parts += [*getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                parts += handler.body
            tainted = _inner_taint(parts, tainted)
        else:
            names = cell_names(ast.Module(body=[node], type_ignores=[]))
            if set(names.uses) & tainted:
                tainted |= set(names.defines) | _mutations(node)
    return tainted


def _build(
    graph: StepGraph,
    stmts: list[ProgramStatement],
    call: _Call,
    fit: _Call,
    root: ProgramStatement,
    request: str,
) -> ServingPath:
    end = call.stmt.index
    taint = _tainted(stmts, root, request, end)
    test_side = {s.index for s in stmts[root.index + 1 : end] if s.reads & taint[s.index]}
    seeds = _loads(call.first) & taint[end]
    serving = _backward(stmts, end, seeds, test_side, stop=root.index)
    static = set(graph.setup_names) | set(graph.imports) | _BUILTIN_NAMES
    code_defs = {
        n: s for s in stmts if s.defines_code for n in s.binds
    }  # step-defined functions and classes
    kept_ids = {s.index for s in serving}
    freezer = _Freezer(stmts, kept_ids, root, request, static, code_defs)
    # Functions the kept code calls become code too (with their own frozen values).
    pending = list(serving)
    included = list(serving)
    while pending:
        stmt = pending.pop()
        for name in stmt.reads:
            definition = _binder(stmts, name, stmt.index) if name in code_defs else None
            if definition is not None and definition.index not in kept_ids:
                kept_ids.add(definition.index)
                included.append(definition)
                pending.append(definition)
    included.sort(key=lambda s: s.index)
    freezer.kept = kept_ids
    for stmt in included:
        if stmt.local:
            stmt.serving_node = _prune(stmt.node, stmt, freezer)
        freezer.statement(stmt)
    freezer.expression(call.first, call.stmt, set())
    capture = _backward(stmts, end, _loads(call.first), None)
    capture = sorted({*capture, *included, root}, key=lambda s: s.index)
    label, column = _label_of(stmts, fit, _string_constants(graph))
    return ServingPath(
        request=request,
        root=root,
        statements=included,
        predict=call.stmt,
        model=call.model,
        model_input=call.first,
        frozen=freezer.frozen,
        capture=capture,
        static_names=static,
        label=label,
        label_column=column,
    )


class _Freezer:
    """Picks the sub-expressions of the serving code whose values come from the run."""

    def __init__(
        self,
        stmts: list[ProgramStatement],
        kept: set[int],
        root: ProgramStatement,
        request: str,
        static: set[str],
        code_defs: dict[str, ProgramStatement],
    ) -> None:
        self.stmts = stmts
        self.kept = kept
        self.root = root
        self.request = request
        self.static = static
        self.code_defs = code_defs
        self.frozen: dict[int, FrozenExpression] = {}

    def _served(self, name: str, at: ProgramStatement) -> bool:
        """Whether `name`, read at `at`, is bound by the serving code itself."""
        if name in self.static or name in self.code_defs:
            return True
        binder = _binder(self.stmts, name, at.index)
        if binder is None:
            return False
        if binder is self.root:
            return name == self.request
        return binder.index in self.kept

    def statement(self, stmt: ProgramStatement) -> None:
        node = stmt.served
        local = set(stmt.local)
        if isinstance(node, ast.Assign) and stmt.defines_code:
            self.expression(node.value, stmt, local)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            local |= _bound_inside(node)
            for child in node.body:
                self._walk_statement(child, stmt, local)
            return
        self._walk_statement(node, stmt, local)

    def _walk_statement(self, node: ast.AST, stmt: ProgramStatement, local: set[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                if isinstance(child, ast.Name) and not isinstance(child.ctx, ast.Load):
                    continue
                if isinstance(child, ast.Subscript | ast.Attribute | ast.Tuple | ast.List) and (
                    not isinstance(child.ctx, ast.Load)
                ):
                    self._walk_statement(child, stmt, local)  # a target is never frozen
                    continue
                self.expression(child, stmt, local)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self._walk_statement(child, stmt, local | _bound_inside(child))
            else:
                self._walk_statement(child, stmt, local)

    def expression(
        self, expr: ast.expr, stmt: ProgramStatement, local: set[str], func: bool = False
    ) -> None:
        names = _loads(expr)
        free = {n for n in names if n not in local}
        outside = {n for n in free if not self._served(n, stmt)}
        if not outside:
            return
        scoped = (names & local) - stmt.local  # lambda, comprehension or function variables
        split = (
            len(outside) < len(free)
            or bool(scoped)
            or isinstance(expr, ast.Lambda)
            or (func and isinstance(expr, ast.Attribute))
        )
        if not split:
            keys = tuple(n for n in _ordered_loads(expr) if n in local)
            key = f"v{len(self.frozen) + 1}"
            self.frozen[id(expr)] = FrozenExpression(key, expr, stmt, keys)
            return
        inner = local
        if isinstance(expr, _SCOPE_EXPRS):
            inner = local | _bound_inside(expr)
        if isinstance(expr, ast.Call):
            self.expression(expr.func, stmt, inner, func=True)
            for arg in [*expr.args, *(k.value for k in expr.keywords)]:
                self.expression(arg, stmt, inner)
            return
        for child in ast.iter_child_nodes(expr):
            if isinstance(child, ast.expr):
                if isinstance(child, ast.Name) and not isinstance(child.ctx, ast.Load):
                    continue
                self.expression(child, stmt, inner)
            elif isinstance(child, ast.comprehension):
                for part in [child.iter, *child.ifs]:
                    self.expression(part, stmt, inner)
            elif isinstance(child, ast.arguments):
                for default in [*child.defaults, *(d for d in child.kw_defaults if d)]:
                    self.expression(default, stmt, local)


_SCOPE_EXPRS = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _prune(node: ast.stmt, stmt: ProgramStatement, freezer: _Freezer) -> ast.stmt:
    """A compound statement without the lines that only change training-side values
    (`train[col] = ...` inside a loop that also prepares `test`); the kept lines are the
    same nodes, so what is frozen in them is frozen in the notebook's own run too."""
    if not isinstance(node, ast.For | ast.While | ast.If | ast.With | ast.Try):
        return node

    def side(name: str) -> bool:
        return name in stmt.local or freezer._served(name, stmt)

    def keep(inner: ast.stmt) -> bool:
        if isinstance(inner, ast.For | ast.While | ast.If | ast.With | ast.Try):
            return True
        names = cell_names(ast.Module(body=[inner], type_ignores=[]))
        targets = set(names.defines) | _mutations(inner)
        if targets:
            return any(side(t) for t in targets)
        return any(side(n) and n not in freezer.static for n in names.uses)

    new = copy.copy(node)
    for name in ("body", "orelse", "finalbody"):
        statements = getattr(node, name, None)
        if statements is None:
            continue
        kept = [_prune(s, stmt, freezer) for s in statements if keep(s)]
        if name == "body" and not kept:
            kept = [ast.copy_location(ast.Pass(), node)]
        setattr(new, name, kept)
    return new


def _ordered_loads(expr: ast.AST) -> list[str]:
    seen: dict[str, None] = {}
    for node in ast.walk(expr):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            seen.setdefault(node.id, None)
    return list(seen)


def _bound_inside(node: ast.AST) -> set[str]:
    out: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and not isinstance(child.ctx, ast.Load):
            out.add(child.id)
        elif isinstance(child, ast.arg):
            out.add(child.arg)
    return out


_BUILTIN_NAMES: set[str] = set(dir(__import__("builtins")))


# -- the label -----------------------------------------------------------------------------------


def _string_constants(graph: StepGraph) -> dict[str, str]:
    """`NAME = "text"` at the top level of the setup and parameters cells (not in `program`)."""
    cells = [*graph.setup, *([graph.parameters_cell] if graph.parameters_cell else [])]
    found: dict[str, str] = {}
    for analysed in cells:
        for node in analysed.code.tree.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found[node.targets[0].id] = node.value.value
    return found


def _label_of(
    stmts: list[ProgramStatement], fit: _Call, constants: dict[str, str] | None = None
) -> tuple[str | None, str | None]:
    """The label given to `fit`: its name, and the column it was read from. The column is
    followed through plain assignments and `train_test_split` (`X_tr, X_te, y_tr, y_te =
    train_test_split(X, y)`: `y_tr` is read from `y`), and a column named by a constant
    (`df[TARGET]` with `TARGET = "species"`) counts as read."""
    y = fit.second
    if y is None:
        return None, None
    consts = _Constants(stmts, constants or {})
    name = y.id if isinstance(y, ast.Name) else None
    if name is None:
        return None, _column_read(y, consts, fit.stmt.index)
    return name, _column_of_name(consts, name, fit.stmt.index, depth=0)


@dataclass
class _Constants:
    """String constants a label column may be named by: bound in the steps, or in setup."""

    stmts: list[ProgramStatement]
    outside: dict[str, str]

    def value(self, name: str, before: int) -> str | None:
        binder = _binder(self.stmts, name, before)
        if binder is None:
            return self.outside.get(name)
        node = binder.node
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
        return None


def _column_of_name(consts: _Constants, name: str, before: int, depth: int) -> str | None:
    binder = _binder(consts.stmts, name, before)
    if binder is None or not isinstance(binder.node, ast.Assign) or depth > 8:
        return None
    target, value = binder.node.targets[0], binder.node.value
    if isinstance(target, ast.Name):
        return _column_read(value, consts, binder.index)
    source = _split_source(target, value, name)
    if isinstance(source, ast.Name):
        return _column_of_name(consts, source.id, binder.index, depth + 1)
    return _column_read(source, consts, binder.index) if source is not None else None


def _split_source(target: ast.expr, value: ast.expr, name: str) -> ast.expr | None:
    """The array `name` is a part of in `a_train, a_test, b_train, b_test =
    train_test_split(a, b, ...)`: each array passed gives two outputs, in order."""
    if not (isinstance(target, ast.Tuple) and isinstance(value, ast.Call)):
        return None
    func = value.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    names = [e.id if isinstance(e, ast.Name) else None for e in target.elts]
    arrays = [a for a in value.args if not isinstance(a, ast.Starred)]
    if called != "train_test_split" or name not in names or len(names) != 2 * len(arrays):
        return None
    return arrays[names.index(name) // 2]


def _column_read(expr: ast.expr, consts: _Constants | None = None, before: int = 0) -> str | None:
    if isinstance(expr, ast.Subscript):
        key = expr.slice
        if isinstance(key, ast.Name) and consts is not None:
            return consts.value(key.id, before)
        if isinstance(key, ast.Constant):
            return key.value if isinstance(key.value, str) else None
        return None
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        if expr.attr not in ("values", "copy"):
            return expr.attr
        return _column_read(expr.value, consts, before)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
        if expr.func.attr == "pop" and expr.args and isinstance(expr.args[0], ast.Constant):
            value = expr.args[0].value
            return value if isinstance(value, str) else None
        return _column_read(expr.func.value, consts, before)
    return None


def label_reads(path: ServingPath) -> list[tuple[ProgramStatement, str]]:
    """Serving statements that read the label: its name anywhere, or its column outside the
    values frozen from the training side (a target encoding may read the training labels)."""
    found: list[tuple[ProgramStatement, str]] = []
    for stmt in [*path.statements, path.predict]:
        node: ast.AST = path.model_input if stmt is path.predict else stmt.served
        for child in _walk_outside(node, set(path.frozen)):
            if (
                path.label
                and isinstance(child, ast.Name)
                and isinstance(child.ctx, ast.Load)
                and child.id == path.label
                and child.id not in stmt.local
            ):
                found.append((stmt, f"the label {path.label!r}"))
            elif (
                path.label_column
                and isinstance(child, ast.Subscript)
                and isinstance(child.ctx, ast.Load)
                and isinstance(child.slice, ast.Constant)
                and child.slice.value == path.label_column
                and id(child) not in path.frozen
            ):
                found.append((stmt, f"the label column {path.label_column!r}"))
    return found


def _walk_outside(node: ast.AST, frozen: set[int]) -> list[ast.AST]:
    """Every node under `node`; inside frozen sub-expressions only the names."""
    out: list[ast.AST] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in frozen:
            out.extend(n for n in ast.walk(current) if isinstance(n, ast.Name))
            continue
        out.append(current)
        stack.extend(ast.iter_child_nodes(current))
    return out


def check_label(graph: StepGraph) -> None:
    """ServingPathError when the serving path reads the label given to `fit`, naming the
    cell: the path sliced from the notebook, or else the `transform:features` step (which
    serves when it reads one frame, or when nothing is sliced). Nothing without a fit."""
    if not any(s.role is Role.TRAIN for s in graph.steps) or not _may_call(graph, FIT_METHODS):
        return
    features = next((s for s in graph.steps if s.key == "transform:features"), None)
    single = features is not None and len([i for i in features.inputs if i.source == "step"]) == 1
    path = None
    if not single:
        try:
            path = derive_serving_path(graph)
        except ServingPathError:
            path = None  # reported when a bundle is built; an export needs no serving path
    if path is not None:
        found = label_reads(path)
        if found:
            stmt, what = found[0]
            raise _label_error(stmt.location, what, "the serving path")
        return
    if features is None:
        return
    stmts = program(graph)
    fit = next(iter(_calls(stmts, FIT_METHODS)), None)
    label = _label_of(stmts, fit)[0] if fit is not None else None
    if label is None or label not in features.input_names:
        return
    cell = next(a.cell for a in features.cells if label in a.names.uses)
    raise _label_error(cell.location, f"the label {label!r}", "transform:features")


def _label_error(location: CellLocation, what: str, where: str) -> ServingPathError:
    return ServingPathError(
        f"{where} reads {what}, which a request does not carry (it is the y given to fit)",
        location=location,
        fix="compute the label outside the code that prepares the test frame, or drop it "
        "before the features are made",
    )
