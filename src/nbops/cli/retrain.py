"""`nbops retrain NAME --data NEW`: run the notebook on new data, bundle the result, compare it
with the production bundle on held-out rows, and promote it when the gates pass."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nbops.cli.bundle import (
    BootstrapSeed,
    LabelColumn,
    PromoteGates,
    RequireSignature,
    Resamples,
    TrustedKeys,
    _trust,
)
from nbops.cli.common import _handles_errors, app, err, out

# Deferred imports: the retraining machinery (runs, bundles, statistics) loads in the body.


@app.command()
@_handles_errors
def retrain(
    name: Annotated[str, typer.Argument(help="The registered model to retrain.")],
    data: Annotated[
        Path,
        typer.Option("--data", metavar="FILE", help="The new labelled data (.csv or .parquet)."),
    ],
    alias: Annotated[
        str, typer.Option("--alias", help="The alias the champion holds and the winner gets.")
    ] = "production",
    notebook: Annotated[
        Path | None,
        typer.Option(
            "--notebook",
            help="Train with this notebook (default: the copy kept with the champion's run).",
        ),
    ] = None,
    param: Annotated[
        str | None,
        typer.Option(
            "--param",
            metavar="NAME",
            help="The parameter holding the training data's path (default: found from the run).",
        ),
    ] = None,
    holdout: Annotated[
        float,
        typer.Option("--holdout", help="Share of the new rows held out to compare the models on."),
    ] = 0.3,
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            metavar="COL",
            help="Split by hashing this column (repeatable; default: the whole row).",
        ),
    ] = None,
    label: LabelColumn = None,
    gate: PromoteGates = None,
    no_promote: Annotated[
        bool, typer.Option("--no-promote", help="Stop after the comparison.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why: kept in the registry's history.")
    ] = None,
    n_resamples: Resamples = 2000,
    seed: BootstrapSeed = 0,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.001, help="Seconds a cell of the training run may take."),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", metavar="FILE", help="Also write the summary there (JSON)."),
    ] = None,
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Retrain a model on new data: run its notebook with the data, bundle and register the
    result, compare it with NAME@ALIAS on held-out rows, and promote it only when the gates
    pass (exit 40 when they do not; NAME@ALIAS is then unchanged)."""
    from nbops.bundle.retrain import retrain as run_retrain

    result = run_retrain(
        name,
        data,
        alias=alias,
        notebook=notebook,
        param=param,
        holdout=holdout,
        key=None if not key else (key[0] if len(key) == 1 else key),
        label=label,
        gates=gate or None,
        promote=not no_promote,
        reason=reason,
        n_resamples=n_resamples,
        seed=seed,
        trust=_trust(trusted_key, require_signature),
        timeout=timeout,
        progress=lambda line: err.print(line, markup=False),
        json_out=json_out,
    )
    if result.status == "compared":
        out.print(
            f"{name} v{result.challenger.version if result.challenger else '?'} passes the "
            f"gates; not promoted (--no-promote). Summary: {result.summary_path}",
            markup=False,
        )
    else:
        assert result.change is not None
        out.print(f"{result.change.describe()} (summary: {result.summary_path})", markup=False)
