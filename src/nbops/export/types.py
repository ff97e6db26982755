"""The annotations of the values steps pass on, read from the code where they are certain.

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
from typing import NamedTuple

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
# The types above made once (a ValueType is immutable, compared by value).
_LITERAL_TYPES = {t: ValueType(text) for t, text in _LITERALS.items()}
_BUILTIN_TYPES = {name: ValueType(text) for name, text in _BUILTIN_CALLS.items()}
_INT, _FLOAT = ValueType("int"), ValueType("float")
_LIST, _DICT = ValueType("list"), ValueType("dict")
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
# The methods whose call can have a type other than ANY once the owner's type is known.
_OWNER_METHODS = {"fit", "score"} | _ARRAY_METHODS | _FRAME_METHODS
# The attributes whose call can have a type other than ANY (`pd.read_csv`, `df.drop`).
_ATTRIBUTE_CALLS = _OWNER_METHODS | _PANDAS_FRAME_FUNCTIONS


def value_types(graph: StepGraph) -> dict[str, ValueType]:
    """The one type of each value the steps return, by name (ANY when not certain)."""
    infer = _Inference(graph, _setup_constants(graph))
    infer.returns([a.code.tree for a in graph.setup])
    setup_functions = infer.functions  # each step starts from these (a fresh copy)
    params = {p.name: p.type_source for p in graph.parameters}
    trees: dict[str, _Parsed | None] = {}  # a step cell's exported code, parsed once
    # A step's types depend on the pass only through the types of its inputs from other
    # steps: a step whose inputs kept their types is not inferred again. By step key, each
    # tuple of input types seen with the types found (compared, not hashed: the same
    # objects from one pass to the next, mostly).
    done: dict[str, list[tuple[tuple[ValueType, ...], dict[str, ValueType]]]] = {}
    types: dict[str, ValueType] = {}
    for _ in range(3):  # a later producer can make an earlier inference uncertain
        found: dict[str, list[ValueType]] = {}
        for step in graph.steps:
            known = tuple(types.get(i.name, ANY) for i in step.inputs if i.source == "step")
            tried = done.setdefault(step.key, [])
            step_types = next((kinds for inputs, kinds in tried if inputs == known), None)
            if step_types is None:
                infer.functions = dict(setup_functions)
                step_types = _step_output_types(infer, step, types, params, trees)
                tried.append((known, step_types))
            for name in step.outputs:
                kind = step_types.get(name, ANY)
                kinds = found.get(name)
                if kinds is None:
                    found[name] = [kind]
                else:
                    kinds.append(kind)
        unified = {
            name: (
                kinds[0] if (len(kinds) == 1 or _all_equal(kinds)) and name not in params else ANY
            )
            for name, kinds in found.items()
        }
        if unified == types:
            break
        types = unified
    else:
        types = dict.fromkeys(types, ANY)
    return types


def _all_equal(kinds: list[ValueType]) -> bool:
    """Whether the list holds one type only (`len(set(kinds)) == 1`, without hashing)."""
    first = kinds[0]
    return all(k is first or k == first for k in kinds)


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
        # frame() and array(), made once: expr compares every call's owner with the frame.
        self._frame = self.frame()
        self._array = self.array()

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
        # The usual node types first (a Call or a Name is none of the others), then the rules.
        if type(node) is ast.Call:
            return self._call(node, env)
        if type(node) is ast.Name:
            return env.get(node.id, ANY)
        if isinstance(node, ast.Constant) and type(node.value) in _LITERALS:
            return _LITERAL_TYPES[type(node.value)]
        if isinstance(node, ast.List | ast.ListComp):
            return _LIST
        if isinstance(node, ast.Dict | ast.DictComp):
            return _DICT
        if isinstance(node, ast.Name):
            return env.get(node.id, ANY)
        if isinstance(node, ast.Subscript):
            return self._subscript(node, env)
        if isinstance(node, ast.Call):
            return self._call(node, env)
        return ANY

    def _subscript(self, node: ast.Subscript, env: dict[str, ValueType]) -> ValueType:
        if self.pandas is None:
            return ANY
        owner = self.expr(node.value, env)
        if owner is not self._frame and owner != self._frame:
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
            return self._frame
        return ANY

    def _call(self, node: ast.Call, env: dict[str, ValueType]) -> ValueType:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in _BUILTIN_CALLS and func.id not in self.graph.imports:
                if func.id == "round" and len(node.args) == 1:
                    return _INT
                return _BUILTIN_TYPES[func.id]
            if func.id in self.functions:
                return self.functions[func.id]
            binding = self.graph.imports.get(func.id)
            if binding is None or binding.statement.startswith("import "):
                return ANY
            if binding.module.startswith("sklearn.metrics") and (
                func.id in _METRIC_FUNCTIONS or func.id.endswith(_FLOAT_METRICS)
            ):
                return _FLOAT
            if func.id[:1].isupper() and binding.statement.endswith(f" import {func.id}"):
                return ValueType(func.id, frozenset({func.id}))
            return ANY
        if not isinstance(func, ast.Attribute):
            return ANY
        attr = func.attr
        if attr not in _ATTRIBUTE_CALLS:  # no rule below applies (`math.sqrt(x)`)
            return ANY
        if isinstance(func.value, ast.Name) and func.value.id == self.pandas:
            return self._frame if attr in _PANDAS_FRAME_FUNCTIONS else ANY
        if attr not in _OWNER_METHODS:  # no rule below applies: the owner is not needed
            return ANY
        for k in node.keywords:
            if k.arg == "inplace":
                return ANY
        owner = self.expr(func.value, env)
        if owner is ANY:  # equal to ANY: only the `score` and array rules apply ("Any")
            if attr == "score":
                return _FLOAT
            return self._array if attr in _ARRAY_METHODS else ANY
        if attr == "fit" and owner != ANY and owner.text[:1].isupper():
            return owner  # an estimator's fit returns the estimator
        if attr == "score" and owner.text[:1].isupper():
            return _FLOAT  # an estimator's score
        if attr in _ARRAY_METHODS and owner.text[:1].isupper():
            return self._array
        if attr in _FRAME_METHODS and (owner is self._frame or owner == self._frame):
            return self._frame
        return ANY

    def is_split(self, node: ast.expr) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in self.split
        )


def _step_output_types(
    infer: _Inference,
    step: Step,
    known: dict[str, ValueType],
    params: dict[str, str],
    trees: dict[str, _Parsed | None],
) -> dict[str, ValueType]:
    """The type of each output of this step, from every binding of it in the step's code.
    `infer` knows the return annotations of the setup cells' functions and no other;
    `params`: each parameter's annotation, by name."""
    env: dict[str, ValueType] = {}
    for i in step.inputs:
        if i.source == "parameter" and i.name in params:
            env[i.name] = ValueType(params[i.name]) if params[i.name] != "Any" else ANY
        elif i.source == "step":
            env[i.name] = known.get(i.name, ANY)
    inputs = dict(env)
    seen: dict[str, list[ValueType]] = {}
    for a in step.cells:
        body = a.code.body
        if body in trees:
            parsed = trees[body]
        else:
            parsed = trees[body] = _parsed(body, a.code.tree)
        if parsed is None:
            return {}
        if parsed.functions:
            infer.returns([parsed.tree])
        for name, value, stmt in parsed.assignments:
            if value is not None:  # `name = value`, the usual statement
                kind = infer.expr(value, env)
                if name in seen:
                    seen[name].append(kind)
                else:
                    seen[name] = [kind]
                env[name] = kind
                continue
            for name, kind in _assigned(infer, stmt, env).items():
                seen.setdefault(name, []).append(kind)
                env[name] = kind
        # A binding that is not a plain top-level assignment (loop, with, nested) is unknown.
        for name in parsed.other_bindings:
            seen.setdefault(name, []).append(ANY)
            env[name] = ANY
    result: dict[str, ValueType] = {}
    for name in step.outputs:
        kinds = seen.get(name)  # one type, not ANY (the set of them has one member)
        if not kinds or (len(kinds) > 1 and not _all_equal(kinds)):
            continue
        kind = kinds[0]
        if kind is ANY or kind == ANY:
            continue
        if name not in inputs or inputs[name] == kind:
            result[name] = kind
    return result


class _Parsed(NamedTuple):
    """A step cell's exported code, parsed, with the names it binds other than by a plain
    top-level assignment (in walk order), found once for every pass of value_types."""

    tree: ast.Module
    other_bindings: tuple[str, ...]
    # Whether a top-level function has a return annotation (infer.returns has work).
    functions: bool = False
    # The top-level statements _assigned reads, in order: (name, value, statement) for
    # `name = value`, ("", None, statement) for any other Assign or AnnAssign.
    assignments: tuple[tuple[str, ast.expr | None, ast.stmt], ...] = ()


def _parsed(body: str, cell_tree: ast.Module) -> _Parsed | None:
    """`body` parsed; the cell's own tree when the body is all of the cell (no import or
    display-only statement was left out), since it has the same statements."""
    tree = cell_tree
    scanned = _scan(cell_tree, cell=True)
    if scanned is None:
        try:
            tree = ast.parse(body)
        except SyntaxError:
            return None
        scanned = _scan(tree, cell=False)
        assert scanned is not None  # only a cell's tree can have a statement left out
    functions, plain, assignments = scanned
    if plain and not _may_bind_inside(body):  # _plain_bindings_only(tree, body)
        return _Parsed(tree, (), functions, assignments)
    targets = {id(t) for stmt in tree.body for t in _plain_targets(stmt)}
    other = tuple(n.id for n in _bound_names(tree) if id(n) not in targets)
    return _Parsed(tree, other, functions, assignments)


def _scan(
    tree: ast.Module, *, cell: bool
) -> tuple[bool, bool, tuple[tuple[str, ast.expr | None, ast.stmt], ...]] | None:
    """One look at each top-level statement: whether a function has a return annotation,
    whether every statement is one _plain_bindings_only accepts, and _Parsed.assignments.
    None, for a cell's tree (`cell`), when the exported body leaves a statement out (an
    import or a display-only statement, in which case the body is parsed on its own)."""
    functions = False
    plain = True
    assignments: list[tuple[str, ast.expr | None, ast.stmt]] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            target = stmt.targets[0] if len(stmt.targets) == 1 else None
            if isinstance(target, ast.Name):
                assignments.append((target.id, stmt.value, stmt))
                continue
            assignments.append(("", None, stmt))
            if plain and not (
                isinstance(target, ast.Tuple | ast.List)
                and all(isinstance(e, ast.Name) for e in target.elts)
            ):
                plain = False
        elif isinstance(stmt, ast.Expr):
            if cell and is_display_only(stmt):
                return None
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            if cell:
                return None
        elif not isinstance(stmt, ast.Pass):
            plain = False
            if isinstance(stmt, ast.AnnAssign):
                assignments.append(("", None, stmt))
            elif isinstance(stmt, ast.FunctionDef) and stmt.returns is not None:
                functions = True
    return functions, plain, tuple(assignments)


# The keywords that bind names inside statements and expressions (`for` loops and
# comprehensions, `with ... as`, `del`); `:=` binds too.
_BINDING_KEYWORDS = ("for", "with", "del")
_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")


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
            after = code[at + len(word) : at + len(word) + 1]  # "" at the end
            if (not at or code[at - 1] not in _NAME_START) and after not in _NAME_CHARS:
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
