"""The `nbops` command: parses arguments, calls the library, prints. No logic of its own.

One module per command group: export (export, tags, tag, versions, diff), runs (run, rerun,
sweep, ci, runs ...), quality (infer-schema, validate), bundle (bundle ..., keygen, predict),
serve (serve, monitor), registry (registry, promote, rollback), data (data ...), retrain;
common holds the Typer app, the consoles and the error handler.

Importing a group's module registers its commands on `app`. `main` (the console script)
registers only the group of the command it runs (`COMMANDS`), so a command's start pays for
its own group alone (`nbops serve` imports no export machinery); with no command, an option
first (`--help`, `--version`) or a name it does not know, every group, in `GROUPS` order (the
order `nbops --help` lists them). `from nbops.cli import app` gives the app with every group.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

# Deferred imports: the command groups (nbops.cli.export, ...) and nbops.cli.common, in
# `register` and `main`, so a command imports its own group alone.

GROUPS = ("export", "runs", "quality", "bundle", "serve", "registry", "data", "retrain")
# Each top-level command, and the group module that registers it (tests/test_cli_startup.py
# checks this against the app with every group registered).
COMMANDS = {
    **dict.fromkeys(("export", "tags", "tag", "versions", "diff"), "export"),
    **dict.fromkeys(("run", "rerun", "sweep", "ci", "runs"), "runs"),
    **dict.fromkeys(("infer-schema", "validate"), "quality"),
    **dict.fromkeys(("bundle", "keygen", "predict"), "bundle"),
    **dict.fromkeys(("serve", "monitor"), "serve"),
    **dict.fromkeys(("registry", "promote", "rollback"), "registry"),
    "data": "data",
    "retrain": "retrain",
}


def register(command: str | None = None) -> None:
    """Register the group of `command` on the app, or every group (None, or unknown)."""
    group = COMMANDS.get(command) if command is not None else None
    for name in (group,) if group is not None else GROUPS:
        importlib.import_module(f"nbops.cli.{name}")


def main() -> None:
    """The `nbops` console script: the command's group registered (the command-line modules
    live as long as the process: loaded without the cyclic collector's passes, nbops._gc),
    then the app run."""
    from nbops._gc import loaded_for_life

    with loaded_for_life():
        from nbops.cli import common

        args = sys.argv[1:]
        register(args[0] if args and not args[0].startswith("-") else None)
    common.main()


def __getattr__(name: str) -> Any:
    if name == "app":
        register()
        from nbops.cli.common import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["COMMANDS", "GROUPS", "app", "main", "register"]
