"""The import graph of src/nbops, read with ast (nothing is imported).

Used by tests/test_layers.py (the layer contract) and runnable on its own to print the
figures issue 13 asks for:  python tests/layers_graph.py [src-dir]
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported nbops module, dotted
    line: int
    where: str  # "top" (runs at import), "typing" (under TYPE_CHECKING) or "function"


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(src: Path = SRC) -> dict[str, Path]:
    return {module_name(p, src): p for p in sorted((src / "nbops").rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """Every import of an nbops module in one file, with where it sits."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []
    is_package = path.name == "__init__.py"

    def target(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "nbops" or alias.name.startswith("nbops."):
                    hit = target(alias.name)
                    if hit:
                        found.append(Import(name, hit, node.lineno, where))
            return
        if isinstance(node, ast.ImportFrom):
            base = _resolve(node, name, is_package)
            if base == "nbops" or base.startswith("nbops."):
                for alias in node.names:
                    # `from nbops.quality import slices` imports the submodule itself.
                    hit = target(f"{base}.{alias.name}") or target(base)
                    if hit:
                        found.append(Import(name, hit, node.lineno, where))
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for child in ast.iter_child_nodes(node):
                visit(child, "function")
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test) and where == "top":
            for child in node.body:
                visit(child, "typing")
            for child in node.orelse:
                visit(child, where)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, where)

    visit(tree, "top")
    return found


def all_imports(src: Path = SRC) -> list[Import]:
    mods = modules(src)
    known = set(mods)
    out: list[Import] = []
    for name, path in mods.items():
        out.extend(i for i in imports_of(name, path, known) if i.target != name)
    return out


# The layer rule, bottom (0) to top. A module may import its own layer or any lower one.
# Longest prefix wins.
LAYERS: dict[str, int] = {
    "nbops._version": 0,
    "nbops._atomic": 0,
    "nbops._gc": 0,
    "nbops._jsonsafe": 0,
    "nbops._markdown": 0,
    "nbops._paths": 0,
    "nbops._requirements": 0,
    "nbops._safe_expr": 0,
    "nbops.errors": 0,
    "nbops.config": 0,
    "nbops.redact": 0,
    "nbops.notebook": 1,
    "nbops.gates": 1,
    "nbops.runs": 2,
    "nbops.export": 2,
    "nbops.quality": 2,
    "nbops.bundle": 3,
    "nbops.workbench": 4,
    "nbops.cli": 5,
    "nbops.labserver": 5,
    "nbops.__main__": 5,
    "nbops": 5,  # the package root re-exports the public API of every layer
}

LAYER_NAMES = {
    0: "base (errors, config, redact, _helpers)",
    1: "notebook, gates",
    2: "runs, export, quality",
    3: "bundle",
    4: "workbench",
    5: "cli, labserver, package root",
}


def layer(module: str) -> int:
    probe = module
    while probe:
        if probe in LAYERS:
            return LAYERS[probe]
        probe = probe.rpartition(".")[0]
    raise KeyError(f"{module} has no layer in LAYERS")


def unit(module: str) -> str:
    """The LAYERS entry a module belongs to: `nbops.runs.store` -> `nbops.runs`."""
    probe = module
    while probe and probe not in LAYERS:
        probe = probe.rpartition(".")[0]
    return probe


# Layers whose packages are independent of one another: runs, export and quality do not import
# each other (nor notebook and gates), except these edges, each with its reason.
INDEPENDENT_LAYERS = {1, 2}
SIBLING_IMPORTS: dict[tuple[str, str], str] = {
    ("nbops.runs", "nbops.export"): "a run records the export version made from its notebook",
}


def upward(imports: list[Import]) -> list[Import]:
    return [i for i in imports if layer(i.target) > layer(i.source)]


def sideways(imports: list[Import]) -> list[Import]:
    """Imports between independent packages of one layer that SIBLING_IMPORTS does not allow."""
    return [
        i
        for i in imports
        if layer(i.source) == layer(i.target) in INDEPENDENT_LAYERS
        and unit(i.source) != unit(i.target)
        and (unit(i.source), unit(i.target)) not in SIBLING_IMPORTS
    ]


def cycles(imports: list[Import], wheres: tuple[str, ...] = ("top",)) -> list[list[str]]:
    """Strongly connected components (of more than one module) of the import graph."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        if i.where in wheres:
            graph.setdefault(i.source, set()).add(i.target)
            graph.setdefault(i.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def strong(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def redundant_function_imports(imports: list[Import]) -> list[Import]:
    """Function-level imports of a module the same file already imports at run time at the top."""
    top = {(i.source, i.target) for i in imports if i.where == "top"}
    return [i for i in imports if i.where == "function" and (i.source, i.target) in top]


def _unique(imports: list[Import]) -> list[Import]:
    """One entry per import statement and target (`from x import a, b` counts once)."""
    return sorted(set(imports), key=lambda i: (i.source, i.line, i.target))


def figures(src: Path = SRC) -> None:
    mods = modules(src)
    sizes = sorted(
        ((len(p.read_text(encoding="utf-8").splitlines()), n) for n, p in mods.items()),
        reverse=True,
    )
    imports = all_imports(src)
    statements = {(i.source, i.line) for i in imports}
    in_functions = {(i.source, i.line) for i in imports if i.where == "function"}
    print(f"modules: {len(mods)}")
    print("largest modules:", ", ".join(f"{n} {s}" for s, n in sizes[:5]))
    print(f"internal import statements: {len(statements)}, inside functions: {len(in_functions)}")
    cyc = cycles(imports)
    print(f"module-level import cycles (SCCs): {len(cyc)}")
    for c in cyc:
        print("   ", " <-> ".join(c))
    cyc_all = cycles(imports, ("top", "function"))
    print(f"cycles counting function-level imports too: {len(cyc_all)}")
    for c in cyc_all:
        print("   ", " <-> ".join(c))
    up = _unique(upward(imports))
    print(
        f"upward imports: {len(up)} ({sum(i.where == 'top' for i in up)} top-level, "
        f"{sum(i.where == 'function' for i in up)} in functions, "
        f"{sum(i.where == 'typing' for i in up)} under TYPE_CHECKING)"
    )
    for i in up:
        print(f"    {i.source}:{i.line} -> {i.target} ({i.where})")
    side = _unique(sideways(imports))
    print(f"imports between independent packages of a layer: {len(side)}")
    for i in side:
        print(f"    {i.source}:{i.line} -> {i.target} ({i.where})")
    red = redundant_function_imports(imports)
    red_statements = {(i.source, i.line) for i in red}
    print(f"function-level imports of a module already imported at the top: {len(red_statements)}")
    for i in red:
        print(f"    {i.source}:{i.line} -> {i.target}")


if __name__ == "__main__":
    figures(Path(sys.argv[1]) if len(sys.argv) > 1 else SRC)
