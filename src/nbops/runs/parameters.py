"""Run parameters checked against the notebook's parameters cell before any kernel starts.

papermill only warns about an unknown parameter and passes any value through; nbops refuses
both, converting each value to the type the parameters cell declares (its annotation, or the
type of its default).

The parameters cell itself runs as papermill runs it: a computed line (`d = a == 3`,
`path = DATA_DIR + "/x.csv"`, a `%magic`) is not refused; it runs before the injected values,
so it sees the cell's defaults. A name such a line assigns may still be passed, typed by its
annotation, else read as JSON when the text parses (`true`, `3`, `[1, 2]`) and as text when
not; it is no parameter with a default.
"""

from __future__ import annotations

import ast
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.errors import CellSyntaxError, ConfigError, MagicError, ParameterValueError
from nbops.notebook.cellcode import translate
from nbops.notebook.parameters import split_parameters
from nbops.notebook.read import Cell, NotebookModel
from nbops.notebook.tags import Role
from nbops.redact import is_secret_parameter, secret_env_var

REDACTED = "***"


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter a run accepts."""

    name: str
    type: str
    default: Any
    description: str
    secret: bool
    computed: str | None = None  # the expression, for a name a computed line assigns


def parameter_specs(
    nb: NotebookModel, secret_names: list[str] | None = None, *, computed: bool = False
) -> list[ParameterSpec]:
    """The parameters of a notebook's `parameters` cell (none when it has no such cell): its
    `name = literal` lines; with `computed`, also the names its computed lines assign (see
    the module docstring), after them.

    A parameter is secret when its name looks secret (TOKEN, KEY, PASSWORD...), when it is
    listed in `secret_params`, or when its comment says `secret`. Raises CellSyntaxError when
    the cell is not Python.
    """
    cell = next((c for c in nb.code_cells if c.role is Role.PARAMETERS), None)
    if cell is None:
        return []
    tree, source = _parameters_code(cell)
    params, lines = split_parameters(tree, source)
    secret_names = secret_names or []
    specs = [
        ParameterSpec(
            name=p.name,
            type=p.type_source,
            default=p.default,
            description=p.description,
            secret=is_secret_parameter(p.name, p.description, secret_names),
        )
        for p in params
    ]
    if computed:
        for line in lines:
            if line.name is not None and line.name not in {s.name for s in specs}:
                specs.append(
                    ParameterSpec(
                        name=line.name,
                        type=line.annotation or "Any",
                        default=None,
                        description="",
                        secret=is_secret_parameter(line.name, "", secret_names),
                        computed=line.value,
                    )
                )
    return specs


def _parameters_code(cell: Cell) -> tuple[ast.Module, str]:
    """The parameters cell as Python. IPython syntax an export cannot translate still runs
    under papermill: it is kept as the calls IPython makes of it (computed lines)."""
    try:
        code = translate(cell.source, cell.location)
        return code.tree, code.source
    except MagicError as exc:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(cell.source)
        try:
            return ast.parse(source), source
        except SyntaxError:  # translate parsed the cell before refusing the magic
            raise exc from None
    except CellSyntaxError as exc:
        raise CellSyntaxError(
            exc.message,
            location=exc.location,
            fix="fix the code of the parameters cell (it must run as Python), then run again",
        ) from None


def secrets_from_environment(specs: list[ParameterSpec], given: dict[str, Any]) -> dict[str, Any]:
    """Values for the secret parameters not given otherwise, from their environment
    variables (`NBOPS_PARAM_<NAME>`, nbops.redact.secret_env_var), as text to convert."""
    import os

    found = {}
    for spec in specs:
        variable = secret_env_var(spec.name)
        if spec.secret and spec.name not in given and variable in os.environ:
            found[spec.name] = os.environ[variable]
    return found


def read_parameter_file(path: Path) -> dict[str, Any]:
    """Parameters from a YAML (or JSON) file holding one mapping."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(
            "the parameters file is not UTF-8 text", location=str(path), fix="save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the parameters file ({exc.strerror})",
            location=str(path),
            fix="check the path",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"the parameters file is not valid YAML{where}",
            location=str(path),
            fix="write one 'name: value' per line",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            "the parameters file must hold a mapping of names to values",
            location=str(path),
            fix="write one 'name: value' per line",
        )
    return {str(k): v for k, v in data.items()}


def resolve_parameters(
    specs: list[ParameterSpec], overrides: dict[str, Any], *, notebook: str
) -> dict[str, Any]:
    """The parameters of a run: the defaults merged with converted overrides.

    Values given as text (from `-p NAME VALUE`) are read as JSON when the declared type is
    not `str`. Raises ParameterValueError for an unknown name or a value of the wrong type.
    """
    by_name = {s.name: s for s in specs}
    values = {s.name: s.default for s in specs if s.computed is None}
    for name, raw in overrides.items():
        spec = by_name.get(name)
        if spec is None:
            known = ", ".join(by_name) or "none: the notebook has no parameters cell"
            raise ParameterValueError(
                f"unknown parameter {name!r} (known: {known})",
                location=notebook,
                fix="use a name from the notebook's parameters cell",
            )
        values[name] = convert(spec, raw, notebook=notebook)
    return values


def convert(spec: ParameterSpec, raw: Any, *, notebook: str) -> Any:
    """One value converted to the parameter's declared type (see resolve_parameters).

    Text is tried as it is first (so `"123"` stays text for a `str | None` parameter), then
    as JSON (lists, dicts), which must then match the type exactly (`true` is no int).
    """
    from pydantic import TypeAdapter, ValidationError

    if spec.computed is not None and spec.type == "Any" and isinstance(raw, str):
        try:  # no type to go by: read the text as papermill's command line does
            return json.loads(raw)
        except ValueError:
            return raw
    adapter: TypeAdapter[Any] = TypeAdapter(_python_type(spec.type))
    try:
        return adapter.validate_python(raw, strict=isinstance(raw, bool))
    except ValidationError as exc:
        error = exc
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw)
        except ValueError:
            decoded = raw
        if decoded is not raw:
            try:
                return adapter.validate_python(decoded, strict=True)
            except ValidationError as exc:
                error = exc
    reason = error.errors()[0]["msg"]
    raise ParameterValueError(
        f"parameter {spec.name!r} expects {spec.type}, got {raw!r} ({reason})",
        location=notebook,
        fix=f"pass a {spec.type} value, e.g. {spec.name} = {spec.default!r}",
    ) from None


_TYPE_NAMES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "bytes": bytes,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "Any": Any,
    "None": None,
    **{name: getattr(typing, name) for name in ("Literal", "Optional", "Union")},
}


def _python_type(source: str) -> Any:
    """The type an annotation's text names; `Any` when it names something nbops can't see.

    Built from the syntax tree with a fixed set of names, never evaluated.
    """
    try:
        return _type_from(ast.parse(source, mode="eval").body)
    except (SyntaxError, KeyError, TypeError):
        return Any


def _type_from(node: ast.expr, *, literal: bool = False) -> Any:
    if isinstance(node, ast.Name):
        return _TYPE_NAMES[node.id]
    if isinstance(node, ast.Constant):
        # Values only inside Literal[...]; a quoted annotation elsewhere is code nbops
        # will not hand to pydantic to evaluate.
        if literal or node.value is None or node.value is Ellipsis:
            return node.value
        raise TypeError("a quoted annotation")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return typing.Union[_type_from(node.left), _type_from(node.right)]  # noqa: UP007
    if isinstance(node, ast.Subscript):
        origin = _type_from(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        args = tuple(_type_from(i, literal=origin is typing.Literal) for i in items)
        return origin[args if len(args) > 1 else args[0]]
    raise TypeError(ast.dump(node))
