"""The `nbops` command: parses arguments, calls the library, prints. No logic of its own.

One module per command group: export (export, tags, tag, versions, diff), runs (run, rerun,
sweep, ci, runs ...), quality (infer-schema, validate), bundle (bundle ..., keygen, predict),
serve (serve, monitor), registry (registry, promote, rollback), data (data ...), retrain;
common holds the Typer app, the consoles and the error handler.
Importing this package registers every command on `app`; `main` is the console script.
"""

# Importing a group's module registers its commands; `nbops --help` lists them in this order.
# isort: off
from nbops.cli import export, runs, quality, bundle, serve, registry, data, retrain  # noqa: F401

# isort: on
from nbops.cli.common import app, main

__all__ = ["app", "main"]
