"""`nbops registry list|history`, `nbops promote`, `nbops rollback`: model versions and their
aliases (production, staging, ...), every change recorded with who, when and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nbops.cli.bundle import (
    BootstrapSeed,
    LabelColumn,
    PromoteGates,
    RequireSignature,
    Resamples,
    TrustedKeys,
    _trust,
)
from nbops.cli.common import ReadableGroup, _handles_errors, app, out

# Deferred imports: each command imports the library it calls inside its body (the registry
# opens SQLite, promotion verifies bundles); tests/test_cli_startup.py holds this.

registry_app = typer.Typer(
    cls=ReadableGroup,
    help="Registered model versions, their aliases and the history of changes.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")

Alias = Annotated[
    str,
    typer.Option(
        "--alias",
        help="The alias: production, staging, or another name of lower-case letters, digits, - and _.",
    ),
]
Reason = Annotated[
    str | None, typer.Option("--reason", help="Why: kept in the registry's history.")
]


def _registry() -> Any:
    from nbops.runs.registry import Registry

    return Registry.for_project()


def _project() -> Any:
    from nbops.config import load_project

    return load_project()


@registry_app.command("list")
@_handles_errors
def registry_list(
    name: Annotated[str | None, typer.Argument(help="Only this model's versions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Registered versions: model, version, aliases, run, metrics, signer, registered at/by."""
    from dataclasses import asdict

    versions = _registry().versions(name)
    if as_json:
        out.print_json(json.dumps([asdict(v) for v in versions]))
        return
    if not versions:
        out.print("No registered versions (nbops bundle --run ID registers each build).")
        return
    table = Table(title="Model registry", title_justify="left")
    for column in ("model", "version", "aliases", "run", "metrics", "signed", "registered"):
        table.add_column(column)
    for v in versions:
        metrics = ", ".join(f"{k}={m:.4g}" for k, m in list(v.metrics.items())[:3])
        table.add_row(
            v.name,
            str(v.version),
            ", ".join(v.aliases),
            v.run_id or "",
            metrics,
            v.signed_by or "no",
            f"{v.registered_at} by {v.registered_by}",
        )
    out.print(table)


@registry_app.command("history")
@_handles_errors
def registry_history(
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every recorded change of a model: registrations, promotions, rollbacks and refusals,
    with who, when and why."""
    from dataclasses import asdict

    events = _registry().history(name, alias)
    if as_json:
        out.print_json(json.dumps([asdict(e) for e in events]))
        return
    out.print(f"History of {name}", markup=False)
    for e in events:  # one event per line, the reason under it: readable at any width
        what = "" if e.version is None else f"v{e.version}"
        if e.action in ("promote", "rollback") and e.previous != e.version:
            what = f"{'none' if e.previous is None else f'v{e.previous}'} -> {what}"
        where = f"{name}@{e.alias}" if e.alias else name
        out.print(
            f"{e.at[:19].replace('T', ' ')}  {e.action:<8} {where} {what}  by {e.who}", markup=False
        )
        if e.reason:
            out.print(f"    {e.reason}", markup=False)


@app.command()
@_handles_errors
def promote(
    bundle: Annotated[
        str,
        typer.Argument(
            metavar="BUNDLE",
            help="A bundle folder or .tar.gz, or a registry reference NAME@N / NAME@ALIAS.",
        ),
    ],
    alias: Alias,
    reason: Reason = None,
    if_better: Annotated[
        str | None,
        typer.Option(
            "--if-better",
            metavar="CHAMPION",
            help="Only if BUNDLE passes the gates against CHAMPION (e.g. NAME@production) "
            "on --data.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", metavar="FILE", help="--if-better: labelled rows to compare on."),
    ] = None,
    label: LabelColumn = None,
    gate: PromoteGates = None,
    n_resamples: Resamples = 2000,
    seed: BootstrapSeed = 0,
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Point an alias at a bundle (registered first if it is not): verified as a server would
    load it, then recorded with who, when and why. A server of NAME@ALIAS switches to it.

    With --if-better CHAMPION --data FILE, both bundles score FILE first (paired bootstrap,
    McNemar) and the alias moves only when the gates pass; a refusal is recorded (exit 40)."""
    from nbops.bundle.registration import promote as run_promote

    if (if_better is None) != (data is None):
        raise typer.BadParameter(
            "--if-better CHAMPION and --data FILE go together", param_hint="--if-better/--data"
        )
    project = _project()
    trust = _trust(trusted_key, require_signature)
    if if_better is not None:
        from nbops.bundle.champion import promote_if_better

        promotion = promote_if_better(
            bundle,
            alias,
            champion=if_better,
            data=data,
            label=label,
            gates=gate or None,
            n_resamples=n_resamples,
            seed=seed,
            reason=reason,
            trust=trust,
            project=project,
        )
        out.print(promotion.comparison.headline(), markup=False)
        change = promotion.change
    else:
        change = run_promote(bundle, alias, reason=reason, trust=trust, project=project)
    if change.previous == change.current:
        out.print(f"{change.name}@{change.alias} is already v{change.current}", markup=False)
    else:
        out.print(change.describe(), markup=False)


@app.command()
@_handles_errors
def rollback(
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Alias,
    reason: Reason = None,
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Move an alias back to its previous holder (rolling back twice goes two promotions
    back); recorded with who, when and why."""
    from nbops.bundle.registration import rollback as run_rollback

    change = run_rollback(
        name,
        alias,
        reason=reason,
        trust=_trust(trusted_key, require_signature),
        project=_project(),
    )
    out.print(change.describe(), markup=False)
