"""The source text of an exported package, rendered from a StepGraph.

Rendering is pure: a StepGraph in, a mapping of relative paths to file text out. The version
is left as a placeholder (VERSION_PLACEHOLDER) so the content hash of the rendered code does
not depend on it; the exporter fills it in after hashing and formatting.
"""

from __future__ import annotations

import ast
import io
import keyword
import re
import string
import sys
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache, partial
from importlib.resources import files
from pathlib import Path

from nbops._version import __version__ as nbops_version
from nbops.export.types import ANY, ValueType, value_types
from nbops.export.vendor import localised_import
from nbops.notebook.analysis import AnalysedCell, Step, StepGraph, StepInput
from nbops.notebook.cellcode import (
    is_display_only,
    slice_statements,
    without_leading_blank_lines,
)
from nbops.notebook.metrics import MetricSource, metric_sources
from nbops.notebook.tags import Role
from nbops.redact import secret_env_var

VERSION_PLACEHOLDER = "0+nbops.version.placeholder"
_HELPERS_NOTE = (
    "# The helpers below are the same in every exported package. They are copied in, not\n"
    "# imported from nbops, so that the package runs with only its requirements installed.\n"
)


@cache
def template(file: str, **values: str) -> str:
    """A fixed part of the generated package, from export/templates/FILE (shipped in the
    wheel): `${placeholders}` filled from `values` when given, else the text as written."""
    text = (files("nbops.export") / "templates" / file).read_text("utf-8")
    return string.Template(text).substitute(values) if values else text


_ROLE_MODULES = (Role.TRANSFORM, Role.TRAIN, Role.EVALUATE)


@dataclass(frozen=True)
class RenderedPackage:
    """The files of an exported package (package files under `<name>/`), before formatting."""

    name: str
    files: dict[str, str]
    step_functions: dict[str, tuple[str, str]]  # step key -> (module file, function name)
    metrics: tuple[MetricSource, ...] = ()  # metric_sources(graph), read once per render


def package_name(stem: str) -> str:
    """A Python package name from a notebook's file name: `Penguins v2` → `penguins_v2`."""
    name = re.sub(r"\W+", "_", stem.strip().lower()).strip("_") or "pipeline"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = f"nb_{name}"
    return name


def shadowed_module(folder: Path, name: str) -> Path | None:
    """The module beside a notebook that a package called `name` would be confused with:
    `name.py` or a regular package `name/`. Run from that folder, `python -m name` finds it
    before the exported package."""
    module, package = folder / f"{name}.py", folder / name
    if module.is_file():
        return module
    return package if (package / "__init__.py").is_file() else None


def default_package_name(notebook: Path) -> str:
    """The package name of a notebook's export: from its file name (`package_name`), with
    `_pipeline` added when it would shadow a module beside the notebook (shadowed_module),
    and always for a percent-format `.py` notebook, which is such a module itself."""
    name = package_name(notebook.stem)
    if notebook.suffix == ".py" or shadowed_module(notebook.parent, name) is not None:
        name = f"{name}_pipeline"
    return name


def render_package(
    graph: StepGraph, name: str, secret: frozenset[str] = frozenset()
) -> RenderedPackage:
    """Render every file of the package for this graph. The parameters named in `secret`
    get no default in the code: `Params` reads them from their environment variable
    (nbops.redact.secret_env_var) and says which one to set when it is missing."""
    header = _header(graph)
    functions = _function_names(graph)
    types = _usable_types(graph, functions)
    secret = frozenset(p.name for p in graph.parameters if p.name in secret)
    metrics = metric_sources(graph)  # walks every train and evaluate cell: read it once
    only_logs = cache(partial(_only_logs, graph))  # walks every cell: at most once
    files: dict[str, str] = {
        f"{name}/__init__.py": _render_init(graph, name, header),
        f"{name}/params.py": _render_params(graph, header, secret, only_logs),
        f"{name}/pipeline.py": _render_pipeline(
            graph, name, header, functions, types, secret, metrics, only_logs
        ),
        f"{name}/__main__.py": _render_main(graph, name, header, secret),
        "test_pipeline.py": _render_tests(graph, name, header, functions, secret, metrics),
    }
    if graph.setup:
        files[f"{name}/common.py"] = _render_common(graph, header, only_logs)
    for role in _ROLE_MODULES:
        steps = [s for s in graph.steps if s.role is role]
        if steps:
            files[f"{name}/{role.value}.py"] = _render_step_module(
                graph, role, steps, header, functions, types, only_logs
            )
    step_functions = {key: (f"{name}/{mod}.py", fn) for key, (mod, fn) in functions.items()}
    return RenderedPackage(
        name=name, files=files, step_functions=step_functions, metrics=tuple(metrics)
    )


# -- shared pieces ---------------------------------------------------------------------------


def _header(graph: StepGraph) -> str:
    return (
        f"# Generated by nbops {nbops_version} from {graph.notebook.path.name}, "
        f"export version {VERSION_PLACEHOLDER}.\n"
        "# Do not edit: change the notebook and run `nbops export` again.\n"
    )


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken or keyword.iskeyword(name):
        name = f"{name}_"
    return name


def _function_names(graph: StepGraph) -> dict[str, tuple[str, str]]:
    """Step key -> (module, function name); a name is changed only if it would clash."""
    result: dict[str, tuple[str, str]] = {}
    for role in _ROLE_MODULES:
        steps = [s for s in graph.steps if s.role is role]
        taken = set(graph.setup_names) | {n for s in steps for n in s.uses_imports}
        taken |= {_outputs_class(s) for s in steps}
        for step in steps:
            fn = _fresh(step.name, taken)
            taken.add(fn)
            result[step.key] = (role.value, fn)
    return result


def _outputs_class(step: Step) -> str:
    return "".join(part.title() for part in step.name.split("_")) + "Outputs"


def _cell_list(cells: list[AnalysedCell]) -> str:
    ids = [c.cell.cell_id for c in cells]
    return f"cell {ids[0]}" if len(ids) == 1 else "cells " + ", ".join(ids)


def _indent(code: str, prefix: str = "    ") -> str:
    """Indent code, leaving lines inside multi-line strings alone (their text is data)."""
    if not _may_span_lines(code):  # no such line: every line that is not blank
        return _indent_lines(code, prefix)
    in_string: set[int] = set()
    try:
        tokens = _multiline_tokens(code)
    except (tokenize.TokenError, SyntaxError):
        tokens = []
    start_row = None
    for tok in tokens:
        if tok.type == tokenize.STRING:
            in_string.update(range(tok.start[0] + 1, tok.end[0] + 1))
        elif tok.type == getattr(tokenize, "FSTRING_START", -1):
            start_row = tok.start[0]
        elif tok.type == getattr(tokenize, "FSTRING_END", -1) and start_row is not None:
            in_string.update(range(start_row + 1, tok.end[0] + 1))
            start_row = None
    lines = code.splitlines(keepends=True)
    return "".join(
        line if (n in in_string or not line.strip()) else prefix + line
        for n, line in enumerate(lines, start=1)
    )


# Only these can make a string token span lines: triple quotes, a backslash before a line
# break, and (Python 3.12+) an f-string whose replacement field spans lines.
_SPANNING = ('"""', "'''", "\\\n", "\\\r\n")  # tested one by one in _may_span_lines
_FSTRING_START = re.compile(r"[fFtT][rR]?['" + '"]|[rR][fFtT]["' + "']")


def _may_span_lines(code: str) -> bool:
    """Substring tests first: a regex search over every cell cost more."""
    if '"""' in code or "'''" in code or "\\\n" in code or "\\\r\n" in code:
        return True
    return sys.version_info >= (3, 12) and _FSTRING_START.search(code) is not None


def _multiline_tokens(code: str) -> list[tokenize.TokenInfo]:
    """The tokens `_indent` reads, or none when no string can span lines: tokenizing every
    cell was most of what rendering cost."""
    if not _may_span_lines(code):
        return []
    return list(tokenize.generate_tokens(io.StringIO(code).readline))


def _indent_lines(code: str, prefix: str = "    ") -> str:
    """`_indent` of code in which no string spans lines: every line but blank ones."""
    return "".join([prefix + line if line.strip() else line for line in code.splitlines(True)])


def _indent_parts(parts: list[str]) -> str:
    """`"".join(_indent(part) for part in parts)` for parts that each end in a line break,
    so that they have the lines of their concatenation: indented at once when no string
    in it can span lines (then none in any part can)."""
    text = "".join(parts)
    if not _may_span_lines(text):
        return _indent_lines(text)
    return "".join(_indent(part) for part in parts)


def _strip_blank_edges(code: str) -> str:
    """The code without blank lines before and after it, ending in one newline."""
    return without_leading_blank_lines(code).rstrip() + "\n"


def _import_lines(
    graph: StepGraph, names: list[str], only_logs: Callable[[], bool] | None = None
) -> list[str]:
    """The import statements for these names; modules from the notebook's folder are
    imported from the package's copy of them (see vendor.py). `only_logs`: _only_logs of
    the graph, kept by the caller (default: found again)."""
    local = set(graph.local_modules)
    statements = {graph.imports[n].statement for n in names if n in graph.imports}
    if names and graph.star_imports:
        statements.update(graph.star_imports)
    if "import nbops" in statements and (only_logs or partial(_only_logs, graph))():
        statements.remove("import nbops")
        statements.add(f"import nbops  {_NBOPS_IMPORT_NOTE}")
    if not local:
        return sorted(statements)
    return sorted({line for s in statements for line in localised_import(s, local)})


_LOGGING = {"log_metric", "log_metrics", "log_param", "log_params", "log_artifact"}
_LOGGING |= {"log_model", "track_data"}
_NBOPS_IMPORT_NOTE = "# kept for its log calls: they record under `nbops run`, else do nothing"


def _only_logs(graph: StepGraph) -> bool:
    """Whether the exported code uses nbops only for its logging calls (nbops.runs.capture),
    which record into a run when one is active and do nothing otherwise: the import stays,
    with a comment saying so, so that the package records what the notebook did when it
    runs inside one."""
    used = {
        node.attr
        for a in [*graph.setup, *(c for s in graph.steps for c in s.cells)]
        if _may_name_nbops(a.code.source)
        for node in _walk(a.code.tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "nbops"
    }
    return used <= _LOGGING


def _walk(tree: ast.AST) -> list[ast.AST]:
    """The nodes ast.walk yields, in its order (breadth first), found without its
    generator layers (most of a walk's cost)."""
    nodes = [tree]
    for node in nodes:  # grows while it is read
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                nodes.extend(v for v in value if isinstance(v, ast.AST))
            elif isinstance(value, ast.AST):
                nodes.append(value)
    return nodes


def _may_name_nbops(source: str) -> bool:
    """Whether code (its tree is parsed from it) can read the name `nbops`: only with those
    letters in it, unless it has non-ASCII letters (a name is read NFKC-normalised:
    `ｎｂｏｐｓ` is `nbops`). The other cells are not walked."""
    return "nbops" in source or not source.isascii()


@lru_cache(maxsize=1024)
def _names_read(annotation: str) -> tuple[str, ...]:
    """The names a parameter's annotation reads (`Optional[str]`: Optional, str), in walk
    order; parsed once for params.py and every step module that takes the parameter."""
    tree = ast.parse(annotation, mode="eval")
    return tuple(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))


def _annotation(graph: StepGraph, name: str) -> str:
    for p in graph.parameters:
        if p.name == name:
            return p.type_source
    return "Any"


# Names pipeline.py defines or imports itself: a type needing one of them stays `Any`.
_PIPELINE_NAMES = {
    "contextlib", "json", "numbers", "os", "Iterator", "Mapping", "dataclass", "Path", "Any",
    "Params", "Results", "run", "data_dir", "_in_data_dir", "collect_metrics", "_numbers",
    "common", "params", "overrides",
}  # fmt: skip


def _usable_types(graph: StepGraph, functions: dict[str, tuple[str, str]]) -> dict[str, ValueType]:
    """The type of each value steps return (export/types.py), kept only where the names its
    annotation reads mean the same in every module that writes it."""
    taken = set(_PIPELINE_NAMES) | set(graph.setup_names) | set(_result_names(graph))
    taken |= {p.name for p in graph.parameters} | {m for m, _ in functions.values()}
    taken |= {fn for _, fn in functions.values()} | {_outputs_class(s) for s in graph.steps}
    return {
        name: kind if not (kind.needs & taken) else ANY for name, kind in value_types(graph).items()
    }


def _input_annotation(graph: StepGraph, types: dict[str, ValueType], i: StepInput) -> str:
    if i.source == "step":
        return types.get(i.name, ANY).text
    return _annotation(graph, i.name)


# -- __init__.py, params.py ----------------------------------------------------------------


def _render_init(graph: StepGraph, name: str, header: str) -> str:
    return (
        f'{header}"""The {name} pipeline, exported by nbops from {graph.notebook.path.name}.\n\n'
        "    from "
        f"{name} import Params, run\n"
        "    results = run(Params())\n"
        '"""\n\n'
        "from .params import Params\n"
        "from .pipeline import Results, collect_metrics, run\n\n"
        f'__version__ = "{VERSION_PLACEHOLDER}"\n'
        '__all__ = ["Params", "Results", "__version__", "collect_metrics", "run"]\n'
    )


def _render_params(
    graph: StepGraph,
    header: str,
    secret: frozenset[str] = frozenset(),
    only_logs: Callable[[], bool] | None = None,
) -> str:
    cell = graph.parameters_cell
    origin = f"cell {cell.cell.cell_id}" if cell else "no parameters cell"
    fields = []
    for p in graph.parameters:
        desc = f", description={p.description!r}" if p.description else ""
        if p.name in secret:
            text = p.type_source == "str"
            reader = f"_secret({p.name!r}, {secret_env_var(p.name)!r}, text={text})"
            fields.append(
                f"    {p.name}: {p.type_source} = Field(\n"
                f"        default_factory={reader}, validate_default=True, repr=False{desc}\n"
                "    )"
            )
            continue
        fields.append(f"    {p.name}: {p.type_source} = Field(default={p.default_source}{desc})")
    annotation_names = {n for p in graph.parameters for n in _names_read(p.type_source)}
    imports = ["from pydantic import BaseModel, ConfigDict, Field"]
    typing_names = sorted(annotation_names & {"Any", "Literal", "Optional", "Union"})
    if typing_names:
        imports.append(f"from typing import {', '.join(typing_names)}")
    imports += _import_lines(graph, sorted(annotation_names - set(typing_names)), only_logs)
    body = "\n".join(fields) if fields else "    pass"
    helpers = ""
    if secret:
        imports = ["import json", "import os", "from collections.abc import Callable", *imports]
        if "Any" not in typing_names:
            imports.append("from typing import Any")
        helpers = "\n\n\n" + template("secret.py.tmpl")
    return (
        f'{header}"""The pipeline\'s parameters, from the notebook\'s parameters ({origin})."""\n\n'
        + "\n".join(imports)
        + helpers
        + "\n\n\nclass Params(BaseModel):\n"
        '    """Parameters of one run; the defaults are the notebook\'s."""\n\n'
        '    model_config = ConfigDict(extra="forbid", validate_assignment=True)\n\n'
        f"{body}\n"
    )


# -- common.py -------------------------------------------------------------------------------


def _render_common(
    graph: StepGraph, header: str, only_logs: Callable[[], bool] | None = None
) -> str:
    """Setup cells: definitions at module level; bare calls (`np.random.seed(0)`) in configure()."""
    module_parts: list[str] = []
    configure_parts: list[str] = []
    for a in graph.setup:
        body_stmts = [s for s in a.code.tree.body if _kept_in_body(s)]
        calls = [s for s in body_stmts if isinstance(s, ast.Expr)]
        definitions = [s for s in body_stmts if not isinstance(s, ast.Expr)]
        marker = f"# cell {a.cell.cell_id}\n"
        if definitions:
            code = slice_statements(a.code.source, a.code.tree.body, definitions)
            module_parts.append(marker + _strip_blank_edges(code))
        if calls:
            code = slice_statements(a.code.source, a.code.tree.body, calls)
            configure_parts.append(marker + _strip_blank_edges(code))
    imports = _import_lines(graph, graph.setup_imports(), only_logs)
    text = f'{header}"""Imports, helpers and constants from the notebook\'s setup cells."""\n\n'
    text += "\n".join(imports) + "\n\n"
    text += "\n\n".join(part.rstrip("\n") for part in module_parts) + "\n"
    if not configure_parts:
        return text
    body = _indent_parts(configure_parts)
    text += (
        "\n\ndef configure() -> None:\n"
        '    """What the setup cells do besides defining things (seeds, options); the\n'
        '    pipeline calls it before the first step."""\n'
        f"{body}"
    )
    return text


def _kept_in_body(stmt: ast.stmt) -> bool:
    """Whether a statement stays in exported code (imports are hoisted, displays dropped)."""
    return not isinstance(stmt, ast.Import | ast.ImportFrom) and not is_display_only(stmt)


def has_configure_code(graph: StepGraph) -> bool:
    return any(
        isinstance(s, ast.Expr) and _kept_in_body(s) for a in graph.setup for s in a.code.tree.body
    )


# -- step modules ----------------------------------------------------------------------------


def _render_step_module(
    graph: StepGraph,
    role: Role,
    steps: list[Step],
    header: str,
    functions: dict[str, tuple[str, str]],
    types: dict[str, ValueType],
    only_logs: Callable[[], bool] | None = None,
) -> str:
    # Names the parameters' annotations use in the step signatures (`Optional[str]`).
    params = {i.name for s in steps for i in s.inputs}
    annotation_names = {
        n for p in graph.parameters if p.name in params for n in _names_read(p.type_source)
    }
    typing_extra = annotation_names & {"Literal", "Optional", "Union"}
    used = {types.get(n, ANY) for s in steps for n in s.outputs}
    used |= {types.get(i.name, ANY) for s in steps for i in s.inputs if i.source == "step"}
    import_names = sorted(
        {n for s in steps for n in s.uses_imports}
        | {n for n in annotation_names - typing_extra if n in graph.imports}
        | {n for kind in used for n in kind.needs}
    )
    setup_names = sorted({n for s in steps for n in s.uses_setup})
    lines = _import_lines(graph, import_names, only_logs)
    rendered = [_render_step(graph, step, functions[step.key][1], types) for step in steps]
    annotations = [_input_annotation(graph, types, i) for s in steps for i in s.inputs]
    annotations += [types.get(o, ANY).text for s in steps for o in s.outputs]
    typing_names = ["Any"] if any(re.search(r"\bAny\b", a) for a in annotations) else []
    typing_names += ["NamedTuple"] if any(len(s.outputs) > 1 for s in steps) else []
    typing_names += sorted(typing_extra)
    if typing_names:
        lines.append(f"from typing import {', '.join(sorted(typing_names))}")
    if setup_names:
        lines.append(f"from .common import {', '.join(setup_names)}")
    parts = [
        f'{header}"""The {role.value} steps of the pipeline, one function per step."""\n\n'
        + "\n".join(lines)
    ]
    parts += rendered
    return "\n\n\n".join(parts) + "\n"


def _render_step(graph: StepGraph, step: Step, function: str, types: dict[str, ValueType]) -> str:
    params = [f"{i.name}: {_input_annotation(graph, types, i)}" for i in step.inputs]
    signature = f"*, {', '.join(params)}" if params else ""
    outputs_class = _outputs_class(step)
    if not step.outputs:
        returns, ret_stmt, pre = "None", "", ""
    elif len(step.outputs) == 1:
        returns = types.get(step.outputs[0], ANY).text
        ret_stmt, pre = f"    return {step.outputs[0]}\n", ""
    else:
        fields = "".join(f"    {o}: {types.get(o, ANY).text}\n" for o in step.outputs)
        pre = (
            f"class {outputs_class}(NamedTuple):\n"
            f'    """What step `{step.tag}` returns."""\n\n{fields}\n\n'
        )
        returns = outputs_class
        args = ", ".join(f"{o}={o}" for o in step.outputs)
        ret_stmt = f"    return {outputs_class}({args})\n"
    doc = _step_docstring(graph, step)
    body = _indent_parts(
        [f"# cell {a.cell.cell_id}\n" + _strip_blank_edges(a.code.body) for a in step.cells]
    )
    if not any(a.code.body.strip() for a in step.cells) and not ret_stmt:
        body += "    pass\n"
    return f"{pre}def {function}({signature}) -> {returns}:\n{doc}{body}{ret_stmt}"


def _step_docstring(graph: StepGraph, step: Step) -> str:
    lines = [f"Step `{step.tag}`, from {_cell_list(step.cells)}."]
    from_steps = [f"{i.name} (from `{i.step}`)" for i in step.inputs if i.source == "step"]
    from_params = [i.name for i in step.inputs if i.source == "parameter"]
    from_setup = [i.name for i in step.inputs if i.source == "setup"]
    if from_steps or from_params or from_setup:
        lines.append("")
    if from_params:
        lines.append("Parameters: " + ", ".join(from_params) + ".")
    if from_steps:
        lines.append("Inputs: " + ", ".join(from_steps) + ".")
    if from_setup:
        lines.append("Setup values it updates: " + ", ".join(from_setup) + ".")
    if step.outputs:
        if len(lines) == 1:
            lines.append("")
        lines.append("Returns: " + ", ".join(step.outputs) + ".")
    text = "\n    ".join(lines).replace("\n    \n", "\n\n")
    return f'    """{text}\n    """\n' if len(lines) > 1 else f'    """{text}"""\n'


# -- pipeline.py -----------------------------------------------------------------------------


def _result_names(graph: StepGraph) -> list[str]:
    names: dict[str, None] = {}
    for step in graph.steps:
        for o in step.outputs:
            names.setdefault(o, None)
    return list(names)


def metric_names(
    graph: StepGraph, metrics: list[MetricSource] | tuple[MetricSource, ...] | None = None
) -> list[str]:
    """The step values the pipeline reports its metrics from (notebook/metrics.py's rule);
    `metrics`: metric_sources(graph) when the caller has it already."""
    found = metric_sources(graph) if metrics is None else metrics
    return list(dict.fromkeys(m.value for m in found))


def _kept_metric_fields(
    graph: StepGraph, taken: set[str], metrics: list[MetricSource]
) -> dict[tuple[str, str], str]:
    """(step key, value) -> a Results field of its own, for a metric value a later step
    returns again under the same name (two evaluate steps' `accuracy`): both are kept."""
    fields: dict[tuple[str, str], str] = {}
    order = {s.key: i for i, s in enumerate(graph.steps)}
    for m in metrics:
        later = graph.steps[order[m.step] + 1 :]
        if any(m.value in s.outputs for s in later):
            step = graph.steps[order[m.step]]
            fields[(m.step, m.value)] = field = _fresh(f"{step.name}_{m.value}", taken)
            taken.add(field)
    return fields


DATA_DIR_ENV = "NBOPS_DATA_DIR"


def _render_pipeline(
    graph: StepGraph,
    name: str,
    header: str,
    functions: dict[str, tuple[str, str]],
    types: dict[str, ValueType],
    secret: frozenset[str],
    metrics: list[MetricSource],
    only_logs: Callable[[], bool] | None = None,
) -> str:
    results = _result_names(graph)
    taken = set(results) | {p.name for p in graph.parameters} | {"Any", "Params", "Results"}
    kept = _kept_metric_fields(graph, taken, metrics)
    modules = sorted({functions[s.key][0] for s in graph.steps})
    alias = {}
    for m in [*modules, "common"]:
        alias[m] = _fresh(m, taken)
        taken.add(alias[m])
    params_var = _fresh("params", taken)
    imports = [
        "import contextlib",
        "import json",
        "import numbers",
        "import os",
        "from collections.abc import Iterator, Mapping",
        "from dataclasses import dataclass",
        "from pathlib import Path",
        "from typing import Any",
        "",
    ]
    uses_common = has_configure_code(graph) or any(
        i.source == "setup" for s in graph.steps for i in s.inputs
    )
    imports.extend(_sibling_imports([*modules, "common"] if uses_common else modules, alias))
    imports.append("from .params import Params")
    needs = sorted({n for r in results for n in types.get(r, ANY).needs})
    if needs:  # the notebook's imports the Results annotations read
        imports[imports.index("") : imports.index("")] = _import_lines(graph, needs, only_logs)
    field_types = {r: types.get(r, ANY).text for r in results}
    field_types.update({field: field_types[value] for (_, value), field in kept.items()})
    fields = "".join(f"    {r}: {t}\n" for r, t in field_types.items()) or "    pass\n"
    calls = []
    if has_configure_code(graph):
        calls.append(f"    {alias['common']}.configure()\n")
    for step in graph.steps:
        module, fn = functions[step.key]
        args = []
        for i in step.inputs:
            if i.source == "parameter":
                args.append(f"{i.name}={params_var}.{i.name}")
            elif i.source == "setup":
                args.append(f"{i.name}={alias['common']}.{i.name}")
            else:
                args.append(f"{i.name}={i.name}")
        call = f"{alias[module]}.{fn}({', '.join(args)})"
        if not step.outputs:
            calls.append(f"    {call}\n")
        elif len(step.outputs) == 1:
            calls.append(f"    {step.outputs[0]} = {call}\n")
        else:
            calls.append(f"    {', '.join(step.outputs)} = {call}\n")
        for (key, value), field in kept.items():
            if key == step.key:
                calls.append(f"    {field} = {value}\n")
    ret = ", ".join(f"{r}={r}" for r in [*results, *kept.values()])
    indented_calls = _indent_parts(calls)  # inside `with _in_data_dir():`
    metric_dict = (
        "{"
        + ", ".join(f'"{m.name}": results.{kept.get((m.step, m.value), m.value)}' for m in metrics)
        + "}"
    )
    results_doc = (
        '    """Every value the steps returned, by the name it had in the notebook."""\n\n'
    )
    validate = (
        f"    {params_var} = Params.model_validate(\n"
        f"        {{**({params_var} or Params()).model_dump(), **overrides}}\n    )\n"
    )
    if secret:  # a secret passed as an override needs no environment variable
        validate = (
            f"    given = {params_var}.model_dump() if {params_var} is not None else {{}}\n"
            f"    {params_var} = Params.model_validate({{**given, **overrides}})\n"
        )
    if kept:
        results_doc = (
            '    """Every value the steps returned, by the name it had in the notebook; a metric\n'
            "    that a later step returns again under its name is also kept as\n"
            '    `<step>_<name>`."""\n\n'
        )
    return (
        f'{header}"""Runs the steps of the {name} pipeline in the notebook\'s order."""\n\n'
        + "\n".join(imports)
        + "\n\n\n@dataclass(frozen=True)\nclass Results:\n"
        + results_doc
        + f"{fields}\n\n"
        f"def run({params_var}: Params | None = None, /, **overrides: Any) -> Results:\n"
        '    """Run every step with these parameters (defaults: the notebook\'s), in order.\n\n'
        + _override_example(graph, secret)
        + "    Relative paths in the steps are read from the notebook's folder, as the notebook\n"
        "    read them (see `data_dir`).\n"
        '    """\n'
        + validate
        + "    with _in_data_dir():\n"
        + (indented_calls or "        pass\n")
        + f"    return Results({ret})\n\n\n"
        + _HELPERS_NOTE
        + template("data_dir.py.tmpl")
        + "\n\n"
        "def collect_metrics(results: Results) -> dict[str, float]:\n"
        '    """The metrics the steps computed, as `nbops run` records them and\n'
        "    `python -m " + name + "` reports them (dicts of numbers are flattened as\n"
        '    `name.key`)."""\n'
        f"    return _numbers({metric_dict})\n\n\n" + template("numbers.py.tmpl")
    )


def _sibling_imports(modules: list[str], alias: dict[str, str]) -> list[str]:
    """`from . import` lines for the package's own modules, written as ruff's import sorting
    leaves them when it can (one line for those imported under their own name), so that step
    usually has nothing to change; the formatter settles any other case."""
    plain = sorted(m for m in modules if alias[m] == m)
    lines = [f"from . import {', '.join(plain)}"] if plain else []
    return lines + [f"from . import {m} as {alias[m]}" for m in sorted(modules) if alias[m] != m]


def _override_example(graph: StepGraph, secret: frozenset[str]) -> str:
    """The docstring line showing a keyword override, with one of the notebook's own
    parameters and its default; none when it has no parameter to show."""
    numbers_first = sorted(graph.parameters, key=lambda p: not isinstance(p.default, int | float))
    for p in numbers_first:
        text = p.default_source
        if p.name in secret or len(p.name + text) > 32 or any(c in text for c in '\\\n"`'):
            continue
        return f"    Keyword arguments override single parameters: `run({p.name}={text})`.\n"
    return ""


# -- __main__.py and the generated test ------------------------------------------------------


def _render_main(
    graph: StepGraph, name: str, header: str, secret: frozenset[str] = frozenset()
) -> str:
    text = _main_code(name, header)
    if secret:  # one line naming the variable to set, not a traceback
        text = text.replace(
            "from .params import Params\n", "from .params import MissingSecretError, Params\n"
        ).replace(
            "        parser.error(f\"parameter {where}: {error['msg']}\")\n",
            "        parser.error(f\"parameter {where}: {error['msg']}\")\n"
            "    except MissingSecretError as exc:\n"
            "        parser.error(str(exc))\n",
        )
    return text


def _main_code(name: str, header: str) -> str:
    return header + template("__main__.py.tmpl", name=name)


def _render_tests(
    graph: StepGraph,
    name: str,
    header: str,
    functions: dict[str, tuple[str, str]],
    secret: frozenset[str],
    metrics: list[MetricSource],
) -> str:
    steps = ", ".join(f'("{name}.{m}", "{fn}")' for m, fn in functions.values())
    has_metrics = bool(metrics)
    metric_check = (
        '    assert metrics, "the evaluate steps computed no numeric metric"\n'
        if has_metrics
        else ""
    )
    skip = ""
    if secret:
        variables = sorted(secret_env_var(n) for n in secret)
        skip = (
            f"@pytest.mark.skipif(\n    not all(v in os.environ for v in {variables!r}),\n"
            f'    reason="the secret parameters need {", ".join(variables)} set",\n)\n'
        )
    return f'''{header}"""Tests of the exported {name} pipeline: `pytest` in this folder."""

import importlib
import math
{"import os" + chr(10) if secret else ""}
import pytest

from {name} import Params, collect_metrics, run

STEPS = [{steps}]


@pytest.mark.parametrize(("module", "function"), STEPS)
def test_every_step_is_importable(module: str, function: str) -> None:
    assert callable(getattr(importlib.import_module(module), function))


{skip}def test_the_pipeline_runs_with_its_default_parameters() -> None:
    metrics = collect_metrics(run(Params()))
{metric_check}    assert all(math.isfinite(value) for value in metrics.values())
'''
