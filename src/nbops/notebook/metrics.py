"""Which values of a notebook's steps are its metrics: one rule for the exported package and
for the run.

The exported package's `collect_metrics` and what `nbops run` records without any logging
call are both read from `metric_sources(graph)` on the same analysis, so a run and
`python -m PKG` report the same names and values. The rule, in the user's words:

- The last bare expression of an evaluate cell (`knn.score(X_test, y_test)`, `scores.mean()`,
  `accuracy_score(y_test, pred)`, `grid.best_score_`) is the cell's headline: the export keeps
  it as a value named after it (`knn_score`, `scores_mean`, `accuracy_score`,
  `grid_best_score`). Displays (`df`, `df.head()`, `X.shape`), prints, plots, predictions,
  reshaped tables (`results.sort_values(...)`) and constructors (`pd.DataFrame(...)`) stay
  display-only. In a train cell (fit and score in one cell) the last expression is kept only
  when it looks like a metric (see below).
- An evaluate step's values are metrics, except what is plainly not one: constants,
  predictions and transformed data (`.predict(`, `.transform(`), fitted models, figures, and
  sizes or plot bounds (`len(`, `.shape`, `.min()`/`.max()` of data, `range`, `np.linspace`).
- A train step's values are metrics when they look like one: computed by a metrics function
  (`accuracy_score(`, `mean_squared_error(`), `.score(`, `best_score_`, the `.mean()` of
  cross-validation scores, or named like one (`acc`, `f1_macro`, `val_loss`, `r2`).
- Only numbers count when the values are read (a dict of numbers is flattened as
  `name.key`): a value that turns out to be an array or a string is no metric. A dict
  literal that only gathers the step's other metrics under their own names
  (`scores = {"mae": mae, "r2": r2}`) is not reported again as `scores.mae`.
- A metric name that two steps report is kept once per step, qualified by the step's name
  (`knn.accuracy`, `logreg.accuracy`); gates and MLflow accept such names as they are.
- A metric an evaluate cell only prints with a top-level `print`
  (`print("R2: %.2f" % r2_score(y_test, pred))`) is kept as well (`printed_metrics`): the
  export assigns it before the print (`r2 = r2_score(y_test, pred)`, named by
  `printed_metric_name`), and a run evaluates the expression once more after the cell.
- A train cell that prints a metric it does not keep (`print(accuracy_score(y, pred))`), or
  an evaluate cell whose printed metric cannot be kept (its inputs change later in the cell,
  the print sits in a loop), gets a warning naming the cell (`unkept_prints`).

The model a run records without `nbops.log_model` is found by model.py (`model_source`,
re-exported here).

Pure functions of the syntax trees: nothing here runs notebook code.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nbops.notebook.cellcode import Diagnostic, is_display_only
from nbops.notebook.model import ModelSource as ModelSource  # re-exported
from nbops.notebook.model import model_source as model_source  # re-exported
from nbops.notebook.tags import Role

if TYPE_CHECKING:
    from nbops.notebook.analysis import Step, StepGraph

# Words that make a name look like a metric (`test_acc`, `f1_macro`, `best_score_`, `valLoss`).
_METRIC_WORD = re.compile(
    r"(acc|accuracy|auc|roc|f1|fbeta|precision|recall|r2|mse|mae|rmse|rmsle|mape|smape|"
    r"loss|error|err|score|scores|logloss|kappa|mcc|jaccard|iou|brier|deviance|specificity|"
    r"sensitivity|silhouette|ndcg|bleu|rouge|perplexity)\d*"
)
# Methods whose result is data or a model, never a metric.
_PREDICTIONS = frozenset(
    {
        "predict", "predict_proba", "predict_log_proba", "decision_function", "transform",
        "fit_transform", "inverse_transform", "fit", "fit_predict", "kneighbors",
    }
)  # fmt: skip
# Calls and attributes that give sizes, ranges and bounds (plot limits), not metrics.
_SIZES = frozenset(
    {
        "min", "max", "amin", "amax", "nanmin", "nanmax", "len", "range", "arange", "linspace",
        "meshgrid", "quantile", "percentile", "argmin", "argmax", "ptp", "shape", "size",
        "ndim", "columns", "index", "enumerate", "zip", "reshape", "ravel",
    }
)  # fmt: skip
# Calls that only show something: a cell ending with one has no headline value.
_SHOWS = frozenset(
    {
        "print", "display", "pprint", "show", "figure", "subplots", "subplot", "imshow",
        "scatter", "hist", "bar", "barh", "legend", "savefig", "heatmap", "title", "xlabel",
        "ylabel", "set_title", "set_xlabel", "set_ylabel", "colorbar", "contour", "contourf",
        "pcolormesh", "tight_layout", "annotate", "text", "grid", "xlim", "ylim", "xticks",
        "yticks", "axis", "suptitle", "clf", "close", "render", "Markdown", "HTML",
    }
)  # fmt: skip
# Methods and functions that reshape tables: a cell ending with one shows a table.
_TABLES = frozenset(
    {
        "sort_values", "sort_index", "groupby", "pivot_table", "pivot", "crosstab", "concat",
        "merge", "join", "reset_index", "set_index", "rename", "drop", "query", "melt", "agg",
        "aggregate", "to_frame", "astype", "copy", "nlargest", "nsmallest", "transpose",
    }
)  # fmt: skip
# Tracking libraries: `nbops.log_metric("acc", acc)` records a value, it is not one.
_TRACKING_ROOTS = frozenset({"nbops", "mlflow", "wandb", "neptune", "comet_ml", "dvclive"})
_PLOT_ROOTS = frozenset({"plt", "pyplot", "sns", "px", "go", "ax", "axes", "axs", "fig", "mpl"})
# Builtins and numpy functions that wrap a value without changing what it is.
_WRAPPERS = frozenset({"round", "float", "int", "abs", "asarray", "array", "float64", "item"})
_REDUCTIONS = frozenset({"mean", "median", "std", "sum", "average", "var", "nanmean"})


@dataclass(frozen=True)
class Headline:
    """A cell's last bare expression, kept as a value: `knn_score = knn.score(X, y)`."""

    variable: str  # the name the export assigns it to
    metric: str  # the metric's name before any qualification by step
    expression: str  # its source text


@dataclass(frozen=True)
class MetricSource:
    """One metric: the name it is reported under, and the step value it is read from."""

    name: str  # 'accuracy', or 'knn.accuracy' when two steps report 'accuracy'
    step: str  # the step's key: 'evaluate:knn'
    value: str  # the name of the value the step returns
    headline: int | None = None  # the cell index, when the value is that cell's headline
    expression: str | None = None  # the headline's (or printed value's) source text
    printed: int | None = None  # the cell index, when the value is a metric that cell prints


# -- words -----------------------------------------------------------------------------------


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in spaced.lower().split("_") if w]


def looks_like_metric_name(name: str) -> bool:
    """Whether a name reads as a metric: `acc`, `test_accuracy`, `f1_macro`, `valLoss`."""
    return any(_METRIC_WORD.fullmatch(w) for w in _words(name))


def _identifiers(node: ast.AST) -> list[str]:
    """Every name, attribute and called function in an expression."""
    found = []
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.append(child.id)
        elif isinstance(child, ast.Attribute):
            found.append(child.attr)
    return found


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def looks_like_metric_expression(node: ast.AST) -> bool:
    """Whether an expression computes something that reads as a metric: a metrics function
    (`accuracy_score(`), `.score(`, `best_score_`, or the `.mean()` of `scores`."""
    return any(looks_like_metric_name(n) for n in _identifiers(node))


# -- what is plainly not a metric -------------------------------------------------------------


def _is_constant(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp):
        return _is_constant(node.operand)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(_is_constant(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(v is not None and _is_constant(v) for v in node.values)
    return False


def _peel(node: ast.expr) -> ast.expr:
    """The value an expression is built around: `X[:, 0].min() - 1` → `X[:, 0].min()`,
    `round(knn.score(X, y), 3)` → `knn.score(X, y)`, `proba[:, 1]` → `proba`."""
    while True:
        if isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.BinOp) and (_is_constant(node.left) or _is_constant(node.right)):
            node = node.right if _is_constant(node.left) else node.left
        elif isinstance(node, ast.UnaryOp):
            node = node.operand
        elif isinstance(node, ast.Call) and node.args and _callee(node) in _WRAPPERS:
            node = node.args[0]
        else:
            return node


def _callee(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _is_show(node: ast.expr) -> bool:
    """A call that draws or prints: `plt.plot(...)`, `sns.heatmap(...)`, `print(...)`."""
    if not isinstance(node, ast.Call):
        return False
    name = _callee(node)
    if name in _SHOWS or "plot" in name.lower() or name.endswith("Display"):
        return True
    root = _root(node.func)
    return root in _PLOT_ROOTS or (root or "").endswith("Display")


def _is_data_or_model(node: ast.expr) -> bool:
    """Predictions, transformed data, fitted models or figures: `model.predict(X)`,
    `model.predict_proba(X)[:, 1]`, `plt.subplots()`."""
    core = _peel(node)
    if isinstance(core, ast.Call) and _callee(core) in _PREDICTIONS:
        return True
    if isinstance(node, ast.Tuple | ast.List):
        return any(_is_data_or_model(e) for e in node.elts)
    return _is_show(core)


def _is_size_or_bound(node: ast.expr) -> bool:
    """Sizes, ranges, plot bounds: `X[:, 0].min() - 1`, `len(X_test)`, `X.shape[0]`."""
    if isinstance(node, ast.Tuple | ast.List):
        return bool(node.elts) and all(_is_size_or_bound(e) for e in node.elts)
    core = _peel(node)
    if isinstance(core, ast.Call):
        return _callee(core) in _SIZES
    return isinstance(core, ast.Attribute) and core.attr in _SIZES


def _is_constructor(node: ast.expr) -> bool:
    """`pd.DataFrame(...)`, `ConfusionMatrixDisplay(...)`: a call of a class, by its name."""
    return isinstance(node, ast.Call) and _callee(node)[:1].isupper()


# Clock readings: they differ between any two runs, so they are never metrics (a model
# comparison loop's `start = time.time()` would make the run and the package disagree).
_CLOCKS = frozenset(
    {
        "time", "perf_counter", "monotonic", "process_time", "thread_time", "time_ns",
        "perf_counter_ns", "monotonic_ns", "now", "utcnow", "today", "default_timer",
    }
)  # fmt: skip


def _reads_clock(node: ast.expr) -> bool:
    """`time.time()`, `time.perf_counter() - start`, `datetime.now()`, anywhere inside."""
    return any(isinstance(n, ast.Call) and _callee(n) in _CLOCKS for n in ast.walk(node))


def is_metric_value(name: str, value: ast.expr | None, role: Role) -> bool:
    """Whether a value a step of this role binds to `name` (from `value`, None when bound
    another way) is one of its metrics (see the module docstring)."""
    if value is not None and (
        _is_constant(value) or _is_data_or_model(value) or _reads_clock(value)
    ):
        return False
    if looks_like_metric_name(name) or (value is not None and looks_like_metric_expression(value)):
        return True
    if role is not Role.EVALUATE:
        return False
    return value is None or not (_is_size_or_bound(value) or _is_constructor(value))


# -- headlines -------------------------------------------------------------------------------


def headline_statement(tree: ast.Module, source: str, role: Role) -> ast.Expr | None:
    """The last statement of a cell, when it is a bare expression the rule keeps as a value
    in a step of this role (see the module docstring); None otherwise."""
    if not tree.body or role not in (Role.EVALUATE, Role.TRAIN):
        return None
    stmt = tree.body[-1]
    if not isinstance(stmt, ast.Expr) or _ends_with_semicolon(source):
        return None
    value = stmt.value
    if isinstance(value, ast.Name | ast.Constant | ast.JoinedStr | ast.Tuple | ast.List):
        return None
    if isinstance(value, ast.Dict | ast.Set | ast.Lambda | ast.Await | ast.Yield | ast.NamedExpr):
        return None
    if isinstance(value, ast.BinOp) and isinstance(getattr(value.left, "value", None), str):
        return None  # "acc: %.2f" % acc
    if isinstance(value, ast.Call) and is_display_only(stmt):
        return None  # df.head(), scores.describe()
    if isinstance(value, ast.Call) and _is_tracking_call(value):
        return None  # nbops.log_metric("acc", acc): the value it records is kept already
    if _is_show(value) or _is_constructor(value) or _is_data_or_model(value):
        return None
    if isinstance(value, ast.Call) and _callee(value) in _TABLES:
        return None  # results.sort_values("mean_test_score")
    if looks_like_metric_expression(value):
        return stmt
    if role is not Role.EVALUATE or _is_size_or_bound(value) or is_display_only(stmt):
        return None
    return stmt


def _is_tracking_call(node: ast.Call) -> bool:
    """`nbops.log_metric(...)`, `mlflow.log_metrics(...)`, `log_metric(...)`: a call that
    records values (and returns None)."""
    return _callee(node).startswith("log_") or _root(node.func) in _TRACKING_ROOTS


def _ends_with_semicolon(source: str) -> bool:
    """`knn.score(X, y);` — IPython shows nothing, and nbops keeps nothing either."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    skip = {tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER}
    skip |= {tokenize.INDENT, tokenize.DEDENT}
    significant = [t for t in tokens if t.type not in skip]
    return bool(significant) and significant[-1].string == ";"


def expression_name(node: ast.expr, namespaces: frozenset[str] = frozenset()) -> str:
    """A value name read off an expression: `knn.score(X, y)` → `knn_score`,
    `np.mean(scores)` → `scores_mean`, `grid.best_score_` → `grid_best_score`.

    `namespaces` are the imported module names (`np`, `metrics`), left out of the name.
    """
    raw = _raw_name(node, namespaces)
    name = re.sub(r"_+", "_", re.sub(r"\W", "_", raw)).strip("_")[:60].rstrip("_")
    if not name or name[0].isdigit():
        name = f"value_{name}".rstrip("_")
    return name


def _raw_name(node: ast.expr, namespaces: frozenset[str]) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_raw_name(node.value, namespaces)}_{node.attr.strip('_')}"
    if isinstance(node, ast.Subscript):
        key = node.slice
        base = _raw_name(node.value, namespaces)
        if isinstance(key, ast.Constant) and isinstance(key.value, str | int):
            return f"{base}_{key.value}"
        return base
    if isinstance(node, ast.Call):
        return _call_name(node, namespaces)
    if isinstance(node, ast.BinOp):
        side = node.right if _is_constant(node.left) else node.left
        return _raw_name(side, namespaces)
    if isinstance(node, ast.UnaryOp):
        return _raw_name(node.operand, namespaces)
    if isinstance(node, ast.Compare):
        return _raw_name(node.left, namespaces)
    return "value"


def _call_name(node: ast.Call, namespaces: frozenset[str]) -> str:
    func = node.func
    first = node.args[0] if node.args else None
    if isinstance(func, ast.Name):
        if func.id in _WRAPPERS and first is not None:
            return _raw_name(first, namespaces)
        return func.id
    if not isinstance(func, ast.Attribute):
        return "value"
    if isinstance(func.value, ast.Name) and func.value.id in namespaces:
        if func.attr in _WRAPPERS and first is not None:
            return _raw_name(first, namespaces)
        if func.attr in _REDUCTIONS and first is not None:
            return f"{_raw_name(first, namespaces)}_{func.attr}"
        return func.attr
    if func.attr in _WRAPPERS:
        return _raw_name(func.value, namespaces)
    return f"{_raw_name(func.value, namespaces)}_{func.attr}"


# -- the metrics of a step graph --------------------------------------------------------------


def bindings(stmts: list[ast.stmt]) -> dict[str, ast.expr | None]:
    """The expression each name was last bound to in these statements (None when bound
    another way: a `with`, an `except`), looking into compound statements but not into
    function or class definitions. `a, b = x, y` binds a to x and b to y."""
    found: dict[str, ast.expr | None] = {}
    for stmt in stmts:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                found.update(_bind(target, stmt.value))
        elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
            if stmt.value is not None:
                found.update(_bind(stmt.target, stmt.value))
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            for item in stmt.items:
                if item.optional_vars is not None:
                    found.update(dict.fromkeys(_target_names(item.optional_vars)))
        if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.update(bindings(_child_statements(stmt)))
    return found


def _child_statements(stmt: ast.stmt) -> list[ast.stmt]:
    children: list[ast.stmt] = []
    for name in ("body", "orelse", "finalbody"):
        block = getattr(stmt, name, None)
        if isinstance(block, list):
            children.extend(s for s in block if isinstance(s, ast.stmt))
    for clause in [*getattr(stmt, "handlers", []), *getattr(stmt, "cases", [])]:
        children.extend(clause.body)
    return children


def _bind(target: ast.expr, value: ast.expr) -> dict[str, ast.expr | None]:
    if isinstance(target, ast.Name):
        return {target.id: value}
    if isinstance(target, ast.Starred):
        return dict.fromkeys(_target_names(target))
    if isinstance(target, ast.Tuple | ast.List):
        elts = value.elts if isinstance(value, ast.Tuple | ast.List) else []
        starred = any(isinstance(e, ast.Starred) for e in [*target.elts, *elts])
        if len(elts) == len(target.elts) and not starred:
            found: dict[str, ast.expr | None] = {}
            for t, v in zip(target.elts, elts, strict=True):
                found.update(_bind(t, v))
            return found
        return dict.fromkeys(_target_names(target), value)
    return {}


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [n for e in target.elts for n in _target_names(e)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def step_metric_values(step: Step) -> list[str]:
    """The values of one step that are metrics, in the order the step returns them."""
    if step.role not in (Role.EVALUATE, Role.TRAIN):
        return []
    bound = bindings([s for c in step.cells for s in c.code.tree.body])
    headlines = {c.headline.variable for c in step.cells if c.headline is not None}
    headlines |= {p.variable for c in step.cells for p in c.printed}
    defines = step.defines()
    found = [
        name
        for name in step.outputs
        if defines.get(name) == "value"
        and (name in headlines or is_metric_value(name, bound.get(name), step.role))
    ]
    return [name for name in found if not _repeats_metrics(bound.get(name), found)]


def _repeats_metrics(value: ast.expr | None, metrics: list[str]) -> bool:
    """Whether a value is a dict literal of the step's other metrics under their own names
    (`scores = {"mae": mae, "r2": r2}`): reporting it would report each of them twice."""
    if not isinstance(value, ast.Dict) or not value.values:
        return False
    return all(
        isinstance(k, ast.Constant)
        and isinstance(v, ast.Name)
        and k.value == v.id
        and v.id in metrics
        for k, v in zip(value.keys, value.values, strict=True)
    )


def metric_sources(graph: StepGraph) -> list[MetricSource]:
    """Every metric of the notebook's steps, in step order (see the module docstring)."""
    found: list[tuple[Step, str, str, int | None, str | None, int | None]] = []
    for step in graph.steps:
        headlines = {c.headline.variable: c for c in step.cells if c.headline is not None}
        printed = {p.variable: (c.cell.index, p) for c in step.cells for p in c.printed}
        for value in step_metric_values(step):
            cell = headlines.get(value)
            if cell is not None and cell.headline is not None:
                h = cell.headline
                found.append((step, h.metric, value, cell.cell.index, h.expression, None))
            elif value in printed:
                index, p = printed[value]
                found.append((step, p.metric, value, None, p.expression, index))
            else:
                found.append((step, value, value, None, None, None))
    steps_of: dict[str, dict[str, Step]] = {}
    for step, name, *_ in found:
        steps_of.setdefault(name, {})[step.key] = step
    return [
        MetricSource(
            name=_qualified(name, step, list(steps_of[name].values())),
            step=step.key,
            value=value,
            headline=cell,
            expression=expression,
            printed=printed_in,
        )
        for step, name, value, cell, expression, printed_in in found
    ]


def _qualified(name: str, step: Step, sharing: list[Step]) -> str:
    """`name`, or when other steps report it too, `STEP.name`: the step's name (`knn`, or
    `evaluate` for an unnamed evaluate step), with its role in front when two of the steps
    sharing the metric have the same name (`train_knn.score`, `evaluate_knn.score`)."""
    if len(sharing) == 1:
        return name
    if [s.name for s in sharing].count(step.name) > 1:
        return f"{step.role.value}_{step.name}.{name}"
    return f"{step.name}.{name}"


# -- printed, not kept ------------------------------------------------------------------------


def unkept_prints(graph: StepGraph) -> list[Diagnostic]:
    """Warnings for train and evaluate cells that print a metric they do not keep
    (`print(accuracy_score(y_test, pred))`): the value reaches neither the run nor the
    package. Each names the cell and how to keep the value."""
    warnings: list[Diagnostic] = []
    for step in graph.steps:
        if step.role not in (Role.EVALUATE, Role.TRAIN):
            continue
        # `print(` needs the name in the code: most cells are not walked at all.
        printed = [
            (cell, _printed(cell.code.tree) if "print" in cell.code.source else [])
            for cell in step.cells
        ]
        if not any(exprs for _, exprs in printed):
            continue  # nothing printed: no need to unparse every value the step binds
        kept = {
            ast.unparse(v)
            for c in step.cells
            for v in bindings(list(c.code.tree.body)).values()
            if v is not None
        }
        kept |= {c.headline.expression for c in step.cells if c.headline is not None}
        for cell, exprs in printed:
            for expr in exprs:
                text = ast.unparse(expr)
                inner = _unrounded(expr)
                if text in kept or _presents_a_value(inner) or ast.unparse(inner) in kept:
                    continue
                if not looks_like_metric_expression(expr) or _is_data_or_model(expr):
                    continue
                kept.add(text)
                name = printed_metric_name(expr)
                if isinstance(expr, ast.Call) and _callee(expr) == name:
                    name = f"{name}_value"  # not `mean_squared_error = mean_squared_error(...)`
                warnings.append(
                    Diagnostic(
                        f"step {step.tag!r} prints {text} without keeping it, so it is not a "
                        f"metric of the run or the package: assign it ({name} = {text}) "
                        "or end the cell with it",
                        cell.cell.location,
                    )
                )
    return warnings


def printed_metric_name(expr: ast.expr) -> str:
    """The metric name of a printed value: `expression_name`, without the `_score` of a
    metrics function (`r2_score(...)` → `r2`, `accuracy_score(...)` → `accuracy`,
    `mean_squared_error(...)` → `mean_squared_error`, `knn.score(...)` → `knn_score`)."""
    name = expression_name(expr)
    core = _unrounded(expr)
    if isinstance(core, ast.Call) and _callee(core) == name and name.endswith("_score"):
        return name.removesuffix("_score")
    return name


def printed_metrics(tree: ast.Module) -> list[tuple[ast.Expr, ast.expr]]:
    """The metrics an evaluate cell only prints, to keep: each value shown by a top-level
    `print(...)` (plain argument, `%`-format, `.format`, f-string field) that looks like a
    metric and is no data or model, is not a name, is not bound in the cell, and whose
    names the cell does not rebind after the print (so it can be evaluated again after the
    cell). In order, with the print statement each is shown by; each expression once."""
    found: list[tuple[ast.Expr, ast.expr]] = []
    seen: set[str] = set()
    bound: set[str] | None = None  # read at the first print: most cells print nothing
    for i, stmt in enumerate(tree.body):
        if not (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Call)
            and getattr(stmt.value.func, "id", None) == "print"
        ):
            continue
        if bound is None:
            bound = {ast.unparse(v) for v in bindings(list(tree.body)).values() if v is not None}
        later = set(bindings(tree.body[i + 1 :]))
        for arg in stmt.value.args:
            for expr in _shown_values(arg):
                text, inner = ast.unparse(expr), _unrounded(expr)
                if text in seen or text in bound or ast.unparse(inner) in bound:
                    continue
                if _presents_a_value(inner) or not looks_like_metric_expression(expr):
                    continue
                if _is_data_or_model(expr) or later & set(_identifiers(expr)):
                    continue
                seen.add(text)
                found.append((stmt, expr))
    return found


_FORMATTING = frozenset({"round", "float", "int", "str", "abs"})


def _presents_a_value(expr: ast.expr) -> bool:
    """A name, or arithmetic on names and numbers only (`acc * 100`, `1 - error`): a way of
    showing a value kept elsewhere, not a new metric."""
    return not any(
        isinstance(n, ast.Call | ast.Attribute | ast.Subscript) for n in ast.walk(expr)
    ) and any(isinstance(n, ast.Name) for n in ast.walk(expr))


def _unrounded(expr: ast.expr) -> ast.expr:
    """The value a print shows, without the rounding or conversion around it:
    `round(train_accuracy, 3)` shows `train_accuracy`, which may already be kept."""
    while (
        isinstance(expr, ast.Call)
        and expr.args
        and (getattr(expr.func, "id", None) or getattr(expr.func, "attr", None)) in _FORMATTING
    ):
        expr = expr.args[0]
    return expr


def _printed(tree: ast.Module) -> list[ast.expr]:
    """The values a cell's top-level code prints (f-string fields and `%`/`.format` args too)."""
    values: list[ast.expr] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"):
            continue
        for arg in node.args:
            values.extend(_shown_values(arg))
    return values


def _shown_values(arg: ast.expr) -> list[ast.expr]:
    if isinstance(arg, ast.JoinedStr):
        return [v.value for v in arg.values if isinstance(v, ast.FormattedValue)]
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod):
        right = arg.right
        return list(right.elts) if isinstance(right, ast.Tuple) else [right]
    if (
        isinstance(arg, ast.Call)
        and isinstance(arg.func, ast.Attribute)
        and arg.func.attr == "format"
        and isinstance(arg.func.value, ast.Constant)
    ):
        return list(arg.args)
    if isinstance(arg, ast.Constant):
        return []
    return [arg]
