"""export/types.py's value_types as it was before its CPU was cut (nbops 2529cb2), kept
unchanged as the reference tests/export/test_value_types_reference.py compares the fast one
with. Not used by nbops. Its own description of the rules:

The annotations of the values steps pass on, read from the code where they are certain.

A step's outputs get a real type (`pd.DataFrame`, `np.ndarray`, `float`, the estimator class)
only when every assignment of the name in its step says so beyond doubt: a literal, a
`float(...)`/`int(...)` call, `pd.read_csv(...)` and other pandas readers, the DataFrame
methods that return a new DataFrame, `train_test_split` (each part has its input's type),
the constructor of an imported class, `.fit(...)` (it returns the estimator), `.predict(...)`
(an array), `.score(...)` and the sklearn metric functions (a float), and the return
annotation of a function the notebook defines (`def load() -> pd.DataFrame`). Everything
else stays `Any`: a wrong annotation is worse than none. The types come from the code alone,
never from running it, so an export stays deterministic and runs no notebook code. A name several steps return, or a step input, gets one type
for the whole pipeline, `Any` when its producers disagree.

`ValueType.needs` names the notebook imports an annotation reads (`pd` for `pd.DataFrame`),
which the module using it must import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from nbops.notebook.analysis import Step, StepGraph
from nbops.notebook.cellcode import is_display_only


@dataclass(frozen=True)
class ValueType:
    """An annotation's source text and the notebook import names it reads."""

    text: str
    needs: frozenset[str] = frozenset()


ANY = ValueType("Any")

_LITERALS = {bool: "bool", int: "int", float: "float", str: "str"}
_BUILTIN_CALLS = {"float": "float", "int": "int", "str": "str", "bool": "bool"}
_BUILTIN_CALLS.update({"list": "list", "dict": "dict", "len": "int", "round": "float"})
_PANDAS_FRAME_FUNCTIONS = {
    "read_csv", "read_parquet", "read_json", "read_excel", "read_feather", "read_table",
    "DataFrame", "get_dummies", "merge",
}  # fmt: skip
_FRAME_METHODS = {
    "drop", "dropna", "fillna", "copy", "assign", "merge", "join", "rename", "reset_index",
    "sort_values", "head", "tail", "sample", "astype", "select_dtypes", "drop_duplicates",
    "reindex",
}  # fmt: skip
_ARRAY_METHODS = {"predict", "predict_proba", "decision_function"}
_FLOAT_METRICS = ("_score", "_error", "_loss")
_METRIC_FUNCTIONS = {"r2_score", "accuracy_score", "f1_score", "precision_score", "recall_score"}


def value_types(graph: StepGraph) -> dict[str, ValueType]:
    """The one type of each value the steps return, by name (ANY when not certain)."""
    constants = _setup_constants(graph)
    trees: dict[str, _Parsed | None] = {}  # a step cell's exported code, parsed once
    # A step's types depend on the pass only through the types of its inputs from other
    # steps: a step whose inputs kept their types is not inferred again.
    done: dict[tuple[str, tuple[ValueType, ...]], dict[str, ValueType]] = {}
    types: dict[str, ValueType] = {}
    for _ in range(3):  # a later producer can make an earlier inference uncertain
        found: dict[str, list[ValueType]] = {}
        for step in graph.steps:
            known = tuple(types.get(i.name, ANY) for i in step.inputs if i.source == "step")
            step_types = done.get((step.key, known))
            if step_types is None:
                step_types = _step_output_types(graph, step, types, constants, trees)
                done[(step.key, known)] = step_types
            for name in step.outputs:
                found.setdefault(name, []).append(step_types.get(name, ANY))
        params = {p.name for p in graph.parameters}
        unified = {
            name: (kinds[0] if len(set(kinds)) == 1 and name not in params else ANY)
            for name, kinds in found.items()
        }
        if unified == types:
            break
        types = unified
    else:
        types = dict.fromkeys(types, ANY)
    return types


def _setup_constants(graph: StepGraph) -> dict[str, object]:
    """The setup cells' names bound once to a str or a list of str literal (`TARGET`)."""
    values: dict[str, object] = {}
    counts: dict[str, int] = {}
    for a in graph.setup:
        for node in ast.walk(a.code.tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                counts[node.id] = counts.get(node.id, 0) + 1
        for stmt in a.code.tree.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                try:
                    values[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                except ValueError:
                    continue
    return {k: v for k, v in values.items() if counts.get(k) == 1}


class _Inference:
    def __init__(self, graph: StepGraph, constants: dict[str, object]) -> None:
        self.graph = graph
        self.constants = constants
        self.pandas = self._alias("pandas")
        self.numpy = self._alias("numpy")
        self.functions: dict[str, ValueType] = {}
        self.split = {
            n for n, b in graph.imports.items() if b.statement.endswith(" train_test_split")
        }

    def returns(self, trees: list[ast.Module]) -> None:
        """Learn the return annotations of the functions these cells define."""
        for tree in trees:
            for stmt in tree.body:
                if isinstance(stmt, ast.FunctionDef) and stmt.returns is not None:
                    self.functions[stmt.name] = self.annotation(stmt.returns)

    def annotation(self, node: ast.expr) -> ValueType:
        """A written annotation this module can name: the pandas and numpy types, builtins."""
        if isinstance(node, ast.Name) and node.id in {"float", "int", "str", "bool"}:
            return ValueType(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == self.pandas and node.attr == "DataFrame":
                return self.frame()
            if node.value.id == self.pandas and node.attr == "Series":
                return self.series()
            if node.value.id == self.numpy and node.attr == "ndarray":
                return self.array()
        return ANY

    def _alias(self, module: str) -> str | None:
        for name, binding in sorted(self.graph.imports.items()):
            if binding.module == module and binding.statement in (
                f"import {module} as {name}",
                f"import {module}",
            ):
                return name
        return None

    def frame(self) -> ValueType:
        if self.pandas is None:
            return ANY
        return ValueType(f"{self.pandas}.DataFrame", frozenset({self.pandas}))

    def series(self) -> ValueType:
        if self.pandas is None:
            return ANY
        return ValueType(f"{self.pandas}.Series", frozenset({self.pandas}))

    def array(self) -> ValueType:
        if self.numpy is None:
            return ANY
        return ValueType(f"{self.numpy}.ndarray", frozenset({self.numpy}))

    def expr(self, node: ast.expr, env: dict[str, ValueType]) -> ValueType:
        if isinstance(node, ast.Constant) and type(node.value) in _LITERALS:
            return ValueType(_LITERALS[type(node.value)])
        if isinstance(node, ast.List | ast.ListComp):
            return ValueType("list")
        if isinstance(node, ast.Dict | ast.DictComp):
            return ValueType("dict")
        if isinstance(node, ast.Name):
            return env.get(node.id, ANY)
        if isinstance(node, ast.Subscript):
            return self._subscript(node, env)
        if isinstance(node, ast.Call):
            return self._call(node, env)
        return ANY

    def _subscript(self, node: ast.Subscript, env: dict[str, ValueType]) -> ValueType:
        if self.expr(node.value, env) != self.frame() or self.pandas is None:
            return ANY
        key: object = None
        if isinstance(node.slice, ast.Constant | ast.List):
            try:
                key = ast.literal_eval(node.slice)
            except ValueError:
                return ANY
        elif isinstance(node.slice, ast.Name):
            key = self.constants.get(node.slice.id)
        if isinstance(key, str):
            return self.series()
        if isinstance(key, list) and all(isinstance(k, str) for k in key):
            return self.frame()
        return ANY

    def _call(self, node: ast.Call, env: dict[str, ValueType]) -> ValueType:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in _BUILTIN_CALLS and func.id not in self.graph.imports:
                if func.id == "round" and len(node.args) == 1:
                    return ValueType("int")
                return ValueType(_BUILTIN_CALLS[func.id])
            if func.id in self.functions:
                return self.functions[func.id]
            binding = self.graph.imports.get(func.id)
            if binding is None or binding.statement.startswith("import "):
                return ANY
            if binding.module.startswith("sklearn.metrics") and (
                func.id in _METRIC_FUNCTIONS or func.id.endswith(_FLOAT_METRICS)
            ):
                return ValueType("float")
            if func.id[:1].isupper() and binding.statement.endswith(f" import {func.id}"):
                return ValueType(func.id, frozenset({func.id}))
            return ANY
        if not isinstance(func, ast.Attribute):
            return ANY
        if isinstance(func.value, ast.Name) and func.value.id == self.pandas:
            return self.frame() if func.attr in _PANDAS_FRAME_FUNCTIONS else ANY
        if any(k.arg == "inplace" for k in node.keywords):
            return ANY
        owner = self.expr(func.value, env)
        if func.attr == "fit" and owner != ANY and owner.text[:1].isupper():
            return owner  # an estimator's fit returns the estimator
        if func.attr == "score" and owner.text[:1].isupper():
            return ValueType("float")  # an estimator's score
        if func.attr in _ARRAY_METHODS and owner.text[:1].isupper():
            return self.array()
        if owner == self.frame() and func.attr in _FRAME_METHODS:
            return self.frame()
        return ANY

    def is_split(self, node: ast.expr) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in self.split
        )


def _step_output_types(
    graph: StepGraph,
    step: Step,
    known: dict[str, ValueType],
    constants: dict[str, object],
    trees: dict[str, _Parsed | None],
) -> dict[str, ValueType]:
    """The type of each output of this step, from every binding of it in the step's code."""
    infer = _Inference(graph, constants)
    infer.returns([a.code.tree for a in graph.setup])
    env: dict[str, ValueType] = {}
    params = {p.name: p.type_source for p in graph.parameters}
    for i in step.inputs:
        if i.source == "parameter" and i.name in params:
            env[i.name] = ValueType(params[i.name]) if params[i.name] != "Any" else ANY
        elif i.source == "step":
            env[i.name] = known.get(i.name, ANY)
    inputs = dict(env)
    seen: dict[str, list[ValueType]] = {}
    for a in step.cells:
        if a.code.body not in trees:
            trees[a.code.body] = _parsed(a.code.body, a.code.tree)
        parsed = trees[a.code.body]
        if parsed is None:
            return {}
        tree = parsed.tree
        infer.returns([tree])
        for stmt in tree.body:
            for name, kind in _assigned(infer, stmt, env).items():
                seen.setdefault(name, []).append(kind)
                env[name] = kind
        # A binding that is not a plain top-level assignment (loop, with, nested) is unknown.
        for name in parsed.other_bindings:
            seen.setdefault(name, []).append(ANY)
            env[name] = ANY
    result: dict[str, ValueType] = {}
    for name in step.outputs:
        kinds = set(seen.get(name, []))
        if len(kinds) != 1 or ANY in kinds:
            continue
        kind = kinds.pop()
        if name not in inputs or inputs[name] == kind:
            result[name] = kind
    return result


@dataclass(frozen=True)
class _Parsed:
    """A step cell's exported code, parsed, with the names it binds other than by a plain
    top-level assignment (in walk order), found once for every pass of value_types."""

    tree: ast.Module
    other_bindings: tuple[str, ...]


def _parsed(body: str, cell_tree: ast.Module) -> _Parsed | None:
    """`body` parsed; the cell's own tree when the body is all of the cell (no import or
    display-only statement was left out), since it has the same statements."""
    if any(
        isinstance(s, ast.Import | ast.ImportFrom) or is_display_only(s) for s in cell_tree.body
    ):
        try:
            tree = ast.parse(body)
        except SyntaxError:
            return None
    else:
        tree = cell_tree
    if _plain_bindings_only(tree, body):
        return _Parsed(tree, ())
    plain = {id(t) for stmt in tree.body for t in _plain_targets(stmt)}
    return _Parsed(tree, tuple(n.id for n in _bound_names(tree) if id(n) not in plain))


# The keywords that bind names inside statements and expressions (`for` loops and
# comprehensions, `with ... as`, `del`); `:=` binds too.
_BINDING_KEYWORDS = ("for", "with", "del")


def _may_bind_inside(code: str) -> bool:
    """Whether the code may hold one of _BINDING_KEYWORDS or `:=`. A keyword is never
    preceded by an ASCII letter or `_`, nor followed by an ASCII letter, digit or `_` (it
    would be part of a name); a match in a string or comment, or in a name such as `x1for`,
    only costs the full walk. Substring searches: a regex search cost more per cell."""
    if ":=" in code:
        return True
    for word in _BINDING_KEYWORDS:
        at = code.find(word)
        while at != -1:
            before = code[at - 1] if at else " "
            after = code[at + len(word) : at + len(word) + 1]
            if not (before.isascii() and (before.isalpha() or before == "_")) and not (
                after.isascii() and (after.isalnum() or after == "_")
            ):
                return True
            at = code.find(word, at + 1)
    return False


def _plain_bindings_only(tree: ast.Module, code: str) -> bool:
    """Whether `_bound_names` would find only `_plain_targets`, known without walking the
    tree: every statement is an expression, an import, `pass` or an assignment to one name
    or a tuple of names, and `_may_bind_inside` finds nothing (the other ways to bind a
    name: augmented and annotated assignments and compound statements are statements)."""
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1:
                return False
            target = stmt.targets[0]
            if not isinstance(target, ast.Name) and not (
                isinstance(target, ast.Tuple | ast.List)
                and all(isinstance(e, ast.Name) for e in target.elts)
            ):
                return False
        elif not isinstance(stmt, ast.Expr | ast.Import | ast.ImportFrom | ast.Pass):
            return False
    return not _may_bind_inside(code)


def _bound_names(tree: ast.AST) -> list[ast.Name]:
    """The Name nodes that bind or delete, in ast.walk's order (breadth first), found by a
    walk that skips ast.walk's generator layers."""
    found: list[ast.Name] = []
    queue = [tree]
    for node in queue:  # grows while it is read: breadth first
        if type(node) is ast.Name:
            if type(node.ctx) is not ast.Load:
                found.append(node)
            continue
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                queue.extend(v for v in value if isinstance(v, ast.AST))
            elif isinstance(value, ast.AST):
                queue.append(value)
    return found


def _plain_targets(stmt: ast.stmt) -> list[ast.Name]:
    """The names a top-level `a = ...` or `a, b = ...` binds."""
    if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
        return []
    target = stmt.targets[0]
    if isinstance(target, ast.Name):
        return [target]
    if isinstance(target, ast.Tuple | ast.List):
        return [e for e in target.elts if isinstance(e, ast.Name)]
    return []


def _assigned(infer: _Inference, stmt: ast.stmt, env: dict[str, ValueType]) -> dict[str, ValueType]:
    """Names a top-level assignment binds, with their types."""
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return {stmt.target.id: ANY}
    if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
        if isinstance(stmt, ast.Assign):
            return {n.id: ANY for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        return {}
    target = stmt.targets[0]
    if isinstance(target, ast.Name):
        return {target.id: infer.expr(stmt.value, env)}
    names = [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    if not isinstance(target, ast.Tuple | ast.List) or not all(
        isinstance(e, ast.Name) for e in target.elts
    ):
        return dict.fromkeys(names, ANY)
    elts = [e.id for e in target.elts if isinstance(e, ast.Name)]
    value = stmt.value
    if isinstance(value, ast.Tuple) and len(value.elts) == len(elts):
        return {n: infer.expr(v, env) for n, v in zip(elts, value.elts, strict=True)}
    if (
        infer.is_split(value)
        and isinstance(value, ast.Call)
        and not any(isinstance(a, ast.Starred) for a in value.args)
        and len(elts) == 2 * len(value.args)
    ):  # train_test_split(X, y): X_train, X_test, y_train, y_test, each of its input's type
        return {n: infer.expr(value.args[k // 2], env) for k, n in enumerate(elts)}
    return dict.fromkeys(elts, ANY)
