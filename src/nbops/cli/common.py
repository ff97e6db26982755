"""The `nbops` application: the Typer app, the two consoles, the error handler every command
wears, the top-level callback (--version) and `main` (papermill's `-p NAME VALUE` pairs joined
before parsing). The commands live in one module per group beside it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperGroup, TyperOption

from nbops._version import __version__
from nbops.errors import NbopsError, QualityInputError, Terminated


class _ListArgument(TyperArgument):
    """An argument taking several values, shown as `<str>...` rather than `<list[str]>`."""

    def display_type_rich(self, ctx: Any) -> str | None:
        (item,) = get_args(self.type_descriptor.annotation) or (str,)
        return f"<{self._bare_type(item)}>..."


def _readable(param: Any) -> None:
    """One convention for every command's usage and help: arguments are named in capitals
    as the help texts name them (`nbops run [OPTIONS] {NOTEBOOK}`), flags show no `<bool>`,
    an argument taking several values shows its item type."""
    if isinstance(param, TyperArgument):
        if param.metavar is None and param.name:
            param.metavar = param.name.upper()
        if param.nargs != 1 and type(param) is TyperArgument:
            param.__class__ = _ListArgument
    elif isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
        param.metavar = ""


class ReadableGroup(TyperGroup):
    """A command group whose own options and whose commands' parameters read as `_readable`
    says (the group sees each command before its help or its parsing)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            _readable(param)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and not isinstance(command, TyperGroup):
            for param in command.get_params(ctx):
                _readable(param)
        return command


app = typer.Typer(
    cls=ReadableGroup,
    name="nbops",
    help="From a tagged notebook to a versioned pipeline package, tracked runs and a bundle.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def _quiet_leftover_tasks() -> None:
    """After a run ended early (Ctrl-C, SIGTERM, a dead kernel), the kernel client's pending
    asyncio tasks hold the kernel's death as an exception nobody retrieves; asyncio reports
    each as a traceback on stderr when it is collected, at exit. The one line said it all."""
    logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)


def _handles_errors(func: F) -> F:
    """Turn NbopsError into one line on stderr and its exit code; Ctrl-C into 130, and
    SIGTERM (where a command turns it into Terminated) into 143."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NbopsError as exc:
            _quiet_leftover_tasks()
            err.print(f"nbops: error: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except Terminated as exc:
            _quiet_leftover_tasks()
            recorded = f": run {exc.run_id} recorded as terminated" if exc.run_id else ""
            err.print(f"nbops: terminated{recorded}", markup=False)
            raise typer.Exit(Terminated.exit_code) from None
        except KeyboardInterrupt:
            _quiet_leftover_tasks()
            err.print("nbops: interrupted", markup=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _warn(messages: list[Any]) -> None:
    for message in messages:
        err.print(f"nbops: warning: {message}", markup=False, soft_wrap=True)


def _require_file(path: Path) -> Path:
    """Refuse a data file that is not there as `read_frame` would, before a command imports
    pandas or loads a bundle."""
    if not path.exists():
        raise QualityInputError("no such file", location=str(path), fix="check the path")
    return path


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"nbops {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """nbops turns tagged notebook cells into a pipeline package (see `nbops export --help`)."""


def main() -> None:
    _skip_iri_grammars()
    app(args=_join_param_pairs(sys.argv[1:]), prog_name="nbops")


def _skip_iri_grammars() -> None:
    """Keep jsonschema's optional `iri` format check from loading in a command's process.

    Reading a notebook imports nbformat, which imports jsonschema, whose `iri` format check
    imports rfc3987_syntax when it is installed (JupyterLab's dependencies install it): that
    module compiles some thirty Lark grammars at import, about 2.7 s of every `nbops export`,
    `run`, `tags`... (0.1 s is nbops's own work). No schema a command validates (nbformat's,
    nbops's) has an `iri` format; marking the module absent, as if it were not installed,
    makes jsonschema leave out that one check. Only the command's own process: `import nbops`
    in a notebook, the lab server and the tests' processes are left as they are.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def _join_param_pairs(argv: list[str]) -> list[str]:
    """Turn papermill's `-p NAME VALUE` into `-p NAME=VALUE`, which the parser takes."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("-p", "--param") and i + 2 < len(argv) + 1 and i + 1 < len(argv):
            name = argv[i + 1]
            if "=" not in name and i + 2 < len(argv):
                out += [token, f"{name}={argv[i + 2]}"]
                i += 3
                continue
        out.append(token)
        i += 1
    return out
