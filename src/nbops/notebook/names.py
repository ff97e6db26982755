"""Which names a cell's code defines and which it uses, found from its syntax tree.

Uses are the names a cell reads before binding them itself, in execution order; free
variables of the functions, lambdas and classes it defines count as uses too (unless the
cell binds them somewhere), because calling those functions later reads them. A name that is
read and then rebound (`df = df.dropna()`) is both used and defined: an in-place update.
Item and attribute assignment (`df["x"] = ...`) and `inplace=True` calls update their base
name, so they count as a use and a definition of it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

DefinitionKind = Literal["value", "function", "class", "import"]

_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ClassDef,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)

# Unions isinstance tests on every node, built once (`ast.Load | ast.Del` builds one per call).
_LOAD_OR_DEL = (ast.Load, ast.Del)
_SEQUENCES = (ast.Tuple, ast.List)
_PARTS = (ast.Attribute, ast.Subscript)


@dataclass
class CellNames:
    """The names a piece of module-level code defines and uses, in first-seen order."""

    uses: dict[str, None] = field(default_factory=dict)
    defines: dict[str, DefinitionKind] = field(default_factory=dict)
    loop_targets: set[str] = field(default_factory=set)
    _deferred: dict[str, None] = field(default_factory=dict)

    def load(self, name: str) -> None:
        # Imported names stay uses: the exporter hoists imports out of the cells.
        if self.defines.get(name, "import") == "import":
            self.uses.setdefault(name, None)

    def store(self, name: str, kind: DefinitionKind = "value") -> None:
        self.defines[name] = kind

    def defer(self, names: list[str]) -> None:
        for name in names:
            self._deferred.setdefault(name, None)

    def finish(self) -> CellNames:
        for name in self._deferred:
            if self.defines.get(name, "import") == "import":
                self.uses.setdefault(name, None)
        self._deferred.clear()
        return self


def cell_names(tree: ast.Module) -> CellNames:
    """The names defined and used by module-level code (a cell)."""
    visitor = _ModuleScope()
    for stmt in tree.body:
        visitor.visit(stmt)
    return visitor.names.finish()


class _ModuleScope(ast.NodeVisitor):
    """Walks module-level statements in execution order."""

    def __init__(self) -> None:
        self.names = CellNames()

    # -- dispatch: ast.NodeVisitor's, with the method looked up once per node class --------
    _methods: ClassVar[dict[type, Callable[[_ModuleScope, ast.AST], object]]] = {}

    def visit(self, node: ast.AST) -> None:
        method = self._methods.get(type(node))
        if method is None:
            found = getattr(type(self), "visit_" + type(node).__name__, None)
            method = found if found is not None else type(self).generic_visit
            self._methods[type(node)] = method
        method(self, node)

    def generic_visit(self, node: ast.AST) -> None:
        for name in node._fields:  # what ast.iter_fields yields, in its order
            value = getattr(node, name, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def _leaf(self, node: ast.AST) -> None:  # nodes without child nodes
        return

    visit_Constant = visit_Load = visit_Store = visit_Del = _leaf

    # -- expressions -------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, _LOAD_OR_DEL):
            self.names.load(node.id)
        else:
            self.names.store(node.id)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.names.store(node.target.id)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
            self.visit(default)
        self.names.defer(free_names(node))

    def _visit_comprehension(self, node: ast.expr) -> None:
        for name in free_names(node):
            self.names.load(name)
        # `(x := ...)` inside a comprehension binds x in the enclosing scope.
        for child in ast.walk(node):
            if isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
                self.names.store(child.target.id)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        # `df.drop(..., inplace=True)` changes `df`: an update of the base name.
        inplace = any(
            k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in node.keywords
        )
        if inplace and isinstance(node.func, ast.Attribute):
            base = _base_name(node.func.value)
            if base:
                self.names.store(base)

    # -- assignment targets ------------------------------------------------------------
    def _store_target(self, target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.names.defines[target.id] = "value"  # CellNames.store, inlined
        elif isinstance(target, _SEQUENCES):
            for elt in target.elts:
                self._store_target(elt)
        elif isinstance(target, ast.Starred):
            self._store_target(target.value)
        elif isinstance(target, _PARTS):
            # Updating part of an object reads the object and changes it.
            self.visit(target.value)
            if isinstance(target, ast.Subscript):
                self.visit(target.slice)
            base = _base_name(target.value)
            if base:
                self.names.store(base)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._visit_value(node.value)
        for target in node.targets:
            self._store_target(target)

    def visit_Expr(self, node: ast.Expr) -> None:
        self._visit_value(node.value)

    def _visit_value(self, node: ast.expr) -> None:
        """Visit an expression; one that only reads names (`_reads`) without the visitor's
        dispatch for every node."""
        reads = _reads(node)
        if reads is None:
            self.visit(node)
            return
        uses, defines = self.names.uses, self.names.defines
        if not defines:  # nothing bound yet (a cell's first statement): every name is a use
            uses.update(dict.fromkeys(reads))  # first-seen order kept, as setdefault keeps it
            return
        for name in reads:  # CellNames.load, inlined
            if defines.get(name, "import") == "import":
                uses.setdefault(name, None)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.names.load(node.target.id)
        self._store_target(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self._store_target(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._store_target(node.target)
        self.names.loop_targets.update(_target_names(node.target))
        for stmt in [*node.body, *node.orelse]:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._store_target(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.names.store(node.name)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self.visit(target)

    # -- definitions -------------------------------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for expr in _definition_time_exprs(node):
            self.visit(expr)
        self.names.store(node.name, "function")
        self.names.defer(free_names(node))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        body_reads, method_reads = _class_names(node)
        for name in body_reads:  # the class body runs now
            self.names.load(name)
        self.names.defer(method_reads)  # methods run later
        self.names.store(node.name, "class")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.names.store(alias.asname or alias.name.split(".")[0], "import")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.names.store(alias.asname or alias.name, "import")

    def visit_Global(self, node: ast.Global) -> None:  # meaningless at module level
        return

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        return

    # -- match statements --------------------------------------------------------------
    def visit_match_case(self, node: ast.match_case) -> None:
        for name in _pattern_names(node.pattern):
            self.names.store(name)
        for child in ast.walk(node.pattern):
            if isinstance(child, ast.MatchValue):
                self.visit(child.value)
            elif isinstance(child, ast.MatchClass):
                self.visit(child.cls)
            elif isinstance(child, ast.MatchMapping):
                for key in child.keys:
                    self.visit(key)
        if node.guard is not None:
            self.visit(node.guard)
        for stmt in node.body:
            self.visit(stmt)


# Expressions `_reads` leaves to the visitor: they bind names or open a scope.
_NOT_PLAIN = (
    ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr,
)  # fmt: skip
# The node classes `_reads` tests for, bound once: the test is one identity check each.
_Name, _Constant, _Attribute, _Call, _keyword = (
    ast.Name, ast.Constant, ast.Attribute, ast.Call, ast.keyword,
)  # fmt: skip
_BinOp, _Subscript, _Tuple, _List, _UnaryOp, _Compare, _BoolOp, _Store, _AST = (
    ast.BinOp, ast.Subscript, ast.Tuple, ast.List, ast.UnaryOp, ast.Compare, ast.BoolOp,
    ast.Store, ast.AST,
)  # fmt: skip


def _reads(node: ast.expr) -> list[str] | None:
    """The names an expression reads, in the order the visitor loads them (its fields in
    order, depth first), when visiting it would only load names: None when it holds a
    scope, a `:=`, a name it stores, or an `inplace=` keyword (the visitor's own cases).

    The usual node classes push their child nodes themselves, in field order reversed
    (operators and `ctx` nodes hold no names, so they are left out), and go on with the
    first child at once rather than pushing and popping it; any other node pushes what
    `generic_visit` would visit (tests/notebook/test_names.py checks both agree)."""
    found: list[str] = []
    stack: list[ast.AST] = []
    pop, push, extend = stack.pop, stack.append, stack.extend
    n: ast.AST = node
    while True:
        kind = type(n)
        if kind is _Attribute:
            n = n.value  # type: ignore[attr-defined]
            continue
        if kind is _Name:
            if type(n.ctx) is _Store:  # type: ignore[attr-defined]
                return None
            found.append(n.id)  # type: ignore[attr-defined]
        elif kind is _Call:
            keywords: list[ast.keyword] = n.keywords  # type: ignore[attr-defined]
            if keywords:
                for k in keywords:
                    if k.arg == "inplace":
                        return None
                extend(keywords[::-1])
            args: list[ast.expr] = n.args  # type: ignore[attr-defined]
            if args:
                extend(args[::-1])
            n = n.func  # type: ignore[attr-defined]
            continue
        elif kind is _Constant:
            pass
        elif kind is _BinOp:
            push(n.right)  # type: ignore[attr-defined]
            n = n.left  # type: ignore[attr-defined]
            continue
        elif kind is _keyword:
            n = n.value  # type: ignore[attr-defined]
            continue
        elif kind is _Subscript:
            push(n.slice)  # type: ignore[attr-defined]
            n = n.value  # type: ignore[attr-defined]
            continue
        elif kind is _Tuple or kind is _List:
            extend(n.elts[::-1])  # type: ignore[attr-defined]
        elif kind is _UnaryOp:
            n = n.operand  # type: ignore[attr-defined]
            continue
        elif kind is _Compare:
            extend(n.comparators[::-1])  # type: ignore[attr-defined]
            n = n.left  # type: ignore[attr-defined]
            continue
        elif kind is _BoolOp:
            extend(n.values[::-1])  # type: ignore[attr-defined]
        elif isinstance(n, _NOT_PLAIN):
            return None
        else:  # what generic_visit visits, in its order
            children: list[ast.AST] = []
            for field in n._fields:
                value = getattr(n, field, None)
                if isinstance(value, list):
                    children.extend(v for v in value if isinstance(v, _AST))
                elif isinstance(value, _AST):
                    children.append(value)
            extend(reversed(children))
        if not stack:
            return found
        n = pop()


def _definition_time_exprs(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
    """What Python evaluates when it runs a `def`: decorators, defaults and annotations."""
    args = node.args
    exprs: list[ast.expr] = [*node.decorator_list, *args.defaults]
    exprs += [d for d in args.kw_defaults if d is not None]
    all_args = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    exprs += [a.annotation for a in all_args if a is not None and a.annotation is not None]
    if node.returns is not None:
        exprs.append(node.returns)
    return exprs


def free_names(node: ast.AST) -> list[str]:
    """Names a function, lambda, class or comprehension reads from the scopes around it."""
    local: set[str] = set()
    loads: dict[str, None] = {}
    declared_global: set[str] = set()
    body: list[ast.AST]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        args = node.args
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None:
                local.add(a.arg)
        body = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
    elif isinstance(node, ast.ClassDef):
        body = list(node.body)
    elif isinstance(node, ast.DictComp):  # the iterables are evaluated first
        body = [*node.generators, node.key, node.value]
    elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp):
        body = [*node.generators, node.elt]
    else:  # pragma: no cover - callers pass only scope nodes
        raise TypeError(type(node).__name__)
    comprehension = isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp)
    walrus = {
        id(n.target) for n in _walk_scope(body) if comprehension and isinstance(n, ast.NamedExpr)
    }
    for child in _walk_scope(body):
        if isinstance(child, ast.Name) and id(child) in walrus:
            continue
        if isinstance(child, ast.Name):
            if isinstance(child.ctx, ast.Load):
                loads.setdefault(child.id, None)
            else:
                local.add(child.id)
        elif isinstance(child, ast.Global | ast.Nonlocal):
            declared_global.update(child.names)
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            local.add(child.name)
            for expr in _nested_definition_exprs(child):
                for name in _expr_loads(expr):
                    loads.setdefault(name, None)
            for name in free_names(child):
                loads.setdefault(name, None)
        elif isinstance(
            child, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
        ):
            for expr in _nested_definition_exprs(child):
                for name in _expr_loads(expr):
                    loads.setdefault(name, None)
            for name in free_names(child):
                loads.setdefault(name, None)
        elif isinstance(child, ast.alias):
            local.add((child.asname or child.name).split(".")[0])
        elif isinstance(child, ast.ExceptHandler) and child.name:
            local.add(child.name)
        elif isinstance(child, ast.match_case):
            local.update(_pattern_names(child.pattern))
        elif isinstance(child, ast.arg):
            local.add(child.arg)
    return [n for n in loads if n not in local or n in declared_global]


def _class_names(node: ast.ClassDef) -> tuple[list[str], list[str]]:
    """What a class body reads when it runs, and what its methods read when called.

    Names bound in the class body are visible to the body but not to its methods.
    """
    local: set[str] = set()
    body_reads: dict[str, None] = {}
    method_reads: dict[str, None] = {}
    for child in _walk_scope(list(node.body)):
        if isinstance(child, ast.Name):
            if isinstance(child.ctx, ast.Load):
                if child.id not in local:
                    body_reads.setdefault(child.id, None)
            else:
                local.add(child.id)
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            for expr in _nested_definition_exprs(child):
                for name in _expr_loads(expr):
                    if name not in local:
                        body_reads.setdefault(name, None)
            for name in free_names(child):
                method_reads.setdefault(name, None)
            if not isinstance(child, ast.Lambda):
                local.add(child.name)
        elif isinstance(child, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            for name in free_names(child):
                body_reads.setdefault(name, None)
        elif isinstance(child, ast.alias):
            local.add((child.asname or child.name).split(".")[0])
    return list(body_reads), list(method_reads)


def _nested_definition_exprs(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return _definition_time_exprs(node)
    if isinstance(node, ast.Lambda):
        return [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    if isinstance(node, ast.ClassDef):
        return [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
    return []


def _expr_loads(expr: ast.expr) -> list[str]:
    return [n.id for n in ast.walk(expr) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]


def _walk_scope(nodes: list[ast.AST]) -> list[ast.AST]:
    """Every node under `nodes` that belongs to their own scope; nested scope nodes are
    returned themselves but not entered."""
    out: list[ast.AST] = []
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, _SCOPES):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return out


def _base_name(node: ast.expr) -> str | None:
    while isinstance(node, _PARTS):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _target_names(target: ast.expr) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


def _pattern_names(pattern: ast.pattern) -> list[str]:
    names = []
    for node in ast.walk(pattern):
        if isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            names.append(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.append(node.rest)
    return names
