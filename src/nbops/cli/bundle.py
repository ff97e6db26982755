"""The `nbops bundle` group (build, sign, verify, compare), `nbops keygen` and
`nbops predict`: making, signing and using bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nbops._atomic import atomic_path, atomic_write_text
from nbops.bundle.locate import require_bundle_path
from nbops.cli.common import ReadableGroup, _handles_errors, _require_file, _warn, app, out
from nbops.errors import BundleGateFailedError

# Deferred imports: each command imports the library it calls inside its body, so that
# `nbops --help` and every other command start without loading it (pandas, papermill, the
# bundle machinery); tests/test_cli_startup.py holds this.

TrustedKeys = Annotated[
    list[Path] | None,
    typer.Option(
        "--trusted-key",
        metavar="KEY",
        help="A public key whose bundle signatures are trusted (repeatable); added to "
        "\\[tool.nbops] trusted_keys and $NBOPS_TRUSTED_KEYS.",
    ),
]
RequireSignature = Annotated[
    bool,
    typer.Option(
        "--require-signature",
        help="Refuse a bundle not signed by a trusted key (also: require_signature in "
        "\\[tool.nbops], NBOPS_REQUIRE_SIGNATURE=1).",
    ),
]
# The options of a champion/challenger verdict (`promote --if-better`, `retrain`).
LabelColumn = Annotated[
    str | None,
    typer.Option("--label", metavar="COL", help="The label column (default: the bundle's)."),
]
PromoteGates = Annotated[
    list[str] | None,
    typer.Option(
        "--gate",
        metavar="GATE",
        help='e.g. "diff.accuracy.ci_low > 0" (default: \\[tool.nbops] promote_gates).',
    ),
]
Resamples = Annotated[int, typer.Option("--n-resamples", min=1, help="Paired bootstrap resamples.")]
BootstrapSeed = Annotated[int, typer.Option("--seed", help="The bootstrap's random seed.")]


def _trust(trusted_key: list[Path] | None, require_signature: bool) -> dict[str, Any]:
    """load_bundle's trust options: the flags, plus [tool.nbops] (the environment's keys are
    added by load_bundle itself)."""
    from nbops.config import load_project

    project = load_project()
    return {
        "trusted_keys": [*(trusted_key or []), *project.trusted_key_paths],
        "require_signature": require_signature or project.config.require_signature,
    }


def _load(bundle_path: Path, trust: dict[str, Any]) -> Any:
    """Load a bundle with the trust options; say on stderr when its origin is unverified."""
    from nbops.bundle.load import load_bundle

    bundle = load_bundle(bundle_path, **trust)
    if not bundle.signature.verified:
        _warn([f"{bundle_path}: {bundle.signature.describe()}"])
    return bundle


bundle_app = typer.Typer(
    cls=ReadableGroup,
    help="Build a deployable bundle from a run (nbops bundle --run ID), or compare two.",
    invoke_without_command=True,
)
app.add_typer(bundle_app, name="bundle")


@bundle_app.callback()
@_handles_errors
def bundle(
    ctx: typer.Context,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="The run whose logged model to bundle (id, id prefix or 'latest': the newest "
            "run of any notebook, or of --notebook).",
        ),
    ] = None,
    notebook: Annotated[
        str | None,
        typer.Option("--notebook", help="Bundle the latest run of this notebook."),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where bundles go (default: bundles/).")
    ] = None,
    model_name: Annotated[
        str | None, typer.Option("--model", help="The logged model's name.")
    ] = None,
    override: Annotated[
        bool,
        typer.Option(
            "--override", help="Bundle although a gate failed (recorded in the manifest)."
        ),
    ] = False,
    sign_key: Annotated[
        Path | None,
        typer.Option("--sign", metavar="KEY", help="Sign the bundle with this private key."),
    ] = None,
) -> None:
    """Build a bundle from a finished run: its logged model, the notebook's exported code
    (the transform:features step serves requests), the input schema and reference
    statistics, a pinned requirements lock, a model card, a Dockerfile and a manifest with
    every file's sha256 — as a folder and a .tar.gz."""
    if ctx.invoked_subcommand is not None:
        return
    if run_id is None and notebook is None:
        raise typer.BadParameter(
            "give --run RUN_ID or --notebook PATH (see nbops runs list)", param_hint="--run"
        )
    if notebook is not None and run_id not in (None, "latest"):
        raise typer.BadParameter(
            "--notebook takes that notebook's latest run: give it without --run, or with "
            "--run latest",
            param_hint="--notebook",
        )
    from nbops.bundle.archive import pack
    from nbops.bundle.from_run import bundle_from_run
    from nbops.bundle.keys import read_private_key
    from nbops.bundle.signing import sign_bundle
    from nbops.runs.store import RunStore

    if sign_key is not None:
        read_private_key(sign_key)  # a bad key is refused before the bundle is built
    store = RunStore.for_project()
    record = store.latest(notebook) if notebook is not None else store.load(str(run_id))
    if record.run_id != run_id:
        out.print(
            f"Bundling run {record.run_id} of {record.notebook} (started {record.started_at})",
            markup=False,
        )
    run_id = record.run_id
    folder = bundle_from_run(run_id, out=out_dir, model_name=model_name, override=override)
    archive = folder.with_name(folder.name + ".tar.gz")
    if not archive.exists():
        archive = pack(folder)
    if sign_key is not None:
        signed = sign_bundle(folder, sign_key)
        out.print(f"Signed with {signed.fingerprint}", markup=False)
    out.print(f"Bundle {folder} (and {archive.name})", markup=False)
    from nbops.bundle.registration import register_bundle  # every build is a version
    from nbops.config import load_project
    from nbops.runs.registry import Registry

    project = load_project()
    registered = register_bundle(folder, Registry(store), project=project, verify=False)
    ref = f"{registered.name}@{registered.version}"
    out.print(f"Registered as {ref} (deploy: nbops promote {ref} --alias production)", markup=False)
    out.print(f"Serve it: nbops serve {folder}", markup=False)


@bundle_app.command("sign")
@_handles_errors
def bundle_sign(
    bundle_path: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="A bundle folder or .tar.gz.")
    ],
    key: Annotated[
        Path, typer.Option("--key", help="The ed25519 private key (from nbops keygen).")
    ],
) -> None:
    """Sign a bundle: an ed25519 signature over its manifest (which holds every file's
    sha256), in manifest.sig. A folder's .tar.gz beside it is packed again, signed."""
    require_bundle_path(bundle_path)
    from nbops.bundle.signing import sign_bundle

    signed = sign_bundle(bundle_path, key)
    out.print(
        f"Signed {' and '.join(str(p) for p in signed.paths)} with {signed.fingerprint}",
        markup=False,
    )


@bundle_app.command("verify")
@_handles_errors
def bundle_verify(
    bundle_path: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="A bundle folder or .tar.gz.")
    ],
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Check a bundle without running any of it: its signature against the trusted keys,
    then every file's sha256 against the signed manifest."""
    require_bundle_path(bundle_path)
    from nbops.bundle.signing import verify_bundle

    result = verify_bundle(bundle_path, **_trust(trusted_key, require_signature))
    out.print(
        f"{result.name} v{result.version}: {result.files} files match the manifest; "
        f"{result.signature.describe()}",
        markup=False,
    )
    if not result.signature.verified:
        _warn([f"{bundle_path}: {result.signature.describe()}"])


@bundle_app.command("compare")
@_handles_errors
def bundle_compare(
    champion: Annotated[
        str,
        typer.Argument(help="The bundle in production: a path, or NAME@ALIAS / NAME@VERSION."),
    ],
    challenger: Annotated[str, typer.Argument(help="The candidate (a path or NAME@...).")],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Labelled rows (.csv/.parquet): score both bundles on them and compare with "
            "paired statistics. Without it, the manifests' recorded metrics are compared.",
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="The label column (default: the champion's label)."),
    ] = None,
    slice_columns: Annotated[
        list[str] | None,
        typer.Option("--slice", metavar="COL", help="Compare on each value of COL too."),
    ] = None,
    cross: Annotated[
        list[str] | None,
        typer.Option("--cross", metavar="A,B", help="Compare on each combination of A and B."),
    ] = None,
    bins: Annotated[
        list[str] | None,
        typer.Option("--bins", metavar="COL=N", help="Cut numeric COL into N quantile bins."),
    ] = None,
    min_size: Annotated[
        int,
        typer.Option("--min-size", min=0, help="Slices with fewer rows are shown, not gated."),
    ] = 30,
    n_resamples: Annotated[
        int, typer.Option("--n-resamples", min=1, help="Paired bootstrap resamples.")
    ] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="The bootstrap's random seed.")] = 0,
    confidence: Annotated[
        float,
        typer.Option("--confidence", min=0.5, max=0.999999, help="Interval level."),
    ] = 0.95,
    weak: Annotated[
        bool, typer.Option("--weak", help="Also search the challenger's weak segments.")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", metavar="FILE", help="Write the comparison as JSON.")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", metavar="FILE", help="Write it as an HTML page.")
    ] = None,
    gate: Annotated[
        list[str] | None,
        typer.Option(
            "--gate",
            metavar="GATE",
            help="Gates besides \\[tool.nbops] gates (with --data: besides promote_gates).",
        ),
    ] = None,
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Champion vs challenger. Without --data: the metrics and slice metrics both manifests
    recorded, side by side, and the gates' verdict on the challenger with the champion as
    baseline (`baseline.NAME`). With --data: both bundles score the same labelled rows; per
    metric and per slice, both values, the difference with a paired bootstrap interval and
    p-value, McNemar's test for accuracy, and gates such as `diff.accuracy.ci_low > 0` or
    `slices.recall.min_diff >= -0.02` (default: `diff.accuracy.ci_low > 0`, regressors
    `diff.rmse.ci_high < 0`). Exits 40 when a gate fails."""
    from nbops.bundle.refs import resolve_bundle

    champion_path = resolve_bundle(champion).path
    challenger_path = resolve_bundle(challenger).path
    if data is None:
        given = {
            "--label": label,
            "--slice": slice_columns,
            "--cross": cross,
            "--bins": bins,
            "--weak": weak or None,
            "--json": json_out,
            "--html": html_out,
        }
        used = [name for name, value in given.items() if value]
        if used:
            raise typer.BadParameter(
                f"{used[0]} compares on data: give --data FILE too", param_hint="--data"
            )
        _compare_manifests(
            champion_path, challenger_path, gate or [], trusted_key, require_signature
        )
        return
    _require_file(data)
    from nbops.bundle.compare import compare_on_data
    from nbops.config import load_project

    trust = _trust(trusted_key, require_signature)
    result = compare_on_data(
        _load(champion_path, trust),
        _load(challenger_path, trust),
        data,
        label=label,
        slices=slice_columns or [],
        cross=[_pair(text) for text in cross or []],
        bins=dict(_bin(text) for text in bins or []),
        min_size=min_size,
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
        gates=[*load_project().config.promote_gates, *(gate or [])],
        weak=weak,
    )
    _print_comparison(result)
    if json_out is not None:
        import json

        json_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_out, json.dumps(result.to_dict(), indent=2) + "\n")
        out.print(f"Wrote {json_out}", markup=False)
    if html_out is not None:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(html_out, result.to_html())
        out.print(f"Wrote {html_out}", markup=False)
    _verdict(result.gates)


def _pair(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(","))
    if len(names) < 2 or not all(names):
        raise typer.BadParameter(f"{text!r}: give two columns as A,B", param_hint="--cross")
    return names


def _bin(text: str) -> tuple[str, int]:
    column, _, count = text.rpartition("=")
    if not column or not count.isdigit() or int(count) < 1:
        raise typer.BadParameter(f"{text!r}: give COL=N (N >= 1 bins)", param_hint="--bins")
    return column, int(count)


def _compare_manifests(
    champion: Path,
    challenger: Path,
    gates: list[str],
    trusted_key: list[Path] | None,
    require_signature: bool,
) -> None:
    from nbops.bundle.compare import compare_bundles

    trust = _trust(trusted_key, require_signature)
    result = compare_bundles(champion, challenger, extra_gates=gates, **trust)
    table = Table(title="Champion vs challenger", title_justify="left")
    for column in ("", "value", str(champion), str(challenger)):
        table.add_column(column)
    for name, a, b in result.rows:
        differs = "*" if a != b else ""
        table.add_row(
            differs, name, "" if a is None else f"{a:.4g}", "" if b is None else f"{b:.4g}"
        )
    out.print(table)
    _verdict(result.gates)


def _verdict(gates: list[Any]) -> None:
    for g in gates:
        out.print(f"{'PASS' if g.passed else 'FAIL'}  {g.gate}  ({g.reason})", markup=False)
    failed = [g for g in gates if not g.passed]
    if failed:
        raise BundleGateFailedError(
            f"the challenger fails {len(failed)} of {len(gates)} gates",
            fix="keep the champion",
        )
    out.print(f"Verdict: the challenger passes all {len(gates)} gates.", markup=False)


def _print_comparison(result: Any) -> None:
    """The comparison as tables: overall metrics, slices, weak segments."""
    where = f" of {result.data}" if result.data else ""
    out.print(
        f"Champion {result.champion.describe()} vs challenger {result.challenger.describe()}: "
        f"{result.rows} rows{where}, label {result.label!r}, {result.n_resamples} paired "
        f"bootstrap resamples (seed {result.seed}), {result.seconds:.1f} s",
        markup=False,
    )
    level = f"{result.confidence:.0%} CI"
    floor = 1.0 / result.n_resamples
    table = Table(
        title="Challenger - champion",
        title_justify="left",
        box=None,
        pad_edge=False,
        show_header=True,
    )
    for column in ("metric", "champion", "challenger", "diff", level, "p", "significant"):
        table.add_column(column, no_wrap=True)
    for name, m in result.metrics.items():
        p = "" if m.p_value is None else f"<{floor:.2g}" if m.p_value == 0 else f"{m.p_value:.3g}"
        table.add_row(
            name,
            _num(m.champion),
            _num(m.challenger),
            _signed(m.diff, 3),
            _ci(m),
            p,
            {True: "better", False: "worse", None: "no"}[m.better],
        )
    out.print(table)
    if result.mcnemar is not None:
        t = result.mcnemar
        out.print(
            f"McNemar (accuracy): {t.b} rows only the champion gets right, {t.c} only the "
            f"challenger; p = {t.p_value:.3g} ({t.method})",
            markup=False,
        )
    if result.slices:
        names = list(result.metrics)
        slices = Table(
            title=f"Per slice, challenger - champion (▲ better, ▼ worse: the {level} excludes 0)",
            title_justify="left",
            box=None,
            pad_edge=False,
        )
        slices.add_column("slice")
        slices.add_column("rows", no_wrap=True)
        for name in names:
            slices.add_column(name, no_wrap=True)
        for s in result.slices:
            cells = []
            for name in names:
                m = s.metrics[name]
                cells.append(_signed(m.diff) + {True: " ▲", False: " ▼", None: ""}[m.better])
            rows = f"{s.rows}" + (" (few)" if s.too_small else "")
            slices.add_row(_short(s.slice), rows, *cells)
        out.print(slices)
    if result.weak:
        weak = Table(
            title="Weak segments of the challenger",
            title_justify="left",
            box=None,
            pad_edge=False,
        )
        weak.add_column("segment")
        for column in ("rows", result.weak[0].metric, "champion", level):
            weak.add_column(column, no_wrap=True)
        for row in result.weak:
            weak.add_row(
                _short(row.slice),
                str(row.count),
                _num(row.value),
                _num(result.weak_champion.get(row.name)),
                f"[{_num(row.ci_low)}, {_num(row.ci_high)}]",
            )
        out.print(weak)


def _short(predicate: Any) -> str:
    """A slice predicate for a table: interval edges to 4 significant digits."""
    parts = []
    for c in predicate.conditions:
        if c.op == "in":
            left = "[" if c.closed == "both" else "("
            parts.append(f"{c.column} in {left}{c.lower:.4g}, {c.upper:.4g}]")
        else:
            parts.append(c.to_expression())
    return " and ".join(parts)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _signed(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def _ci(m: Any) -> str:
    if m.ci_low is None or m.ci_high is None:
        return m.reason or ""
    return f"[{m.ci_low:+.3f}, {m.ci_high:+.3f}]"


@app.command()
@_handles_errors
def keygen(
    key: Annotated[
        Path, typer.Argument(metavar="KEY", help="Where to write the private key.")
    ] = Path("nbops-signing.key"),
    public: Annotated[
        Path | None,
        typer.Option("--public", help="Where to write the public key (default: KEY as .pub)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace key files that already exist.")
    ] = False,
) -> None:
    """Make an ed25519 key pair for signing bundles: the private key (mode 0600; keep it
    secret, off the servers) and the public key servers trust (--trusted-key)."""
    from nbops.bundle.keys import generate_keypair

    pair = generate_keypair(key, public, force=force)
    out.print(f"Private key {pair.private_path} (keep it secret)", markup=False)
    out.print(f"Public key {pair.public_path} ({pair.fingerprint})", markup=False)
    out.print(f"Sign: nbops bundle sign BUNDLE --key {pair.private_path}", markup=False)
    out.print(
        f"Serve: nbops serve BUNDLE --trusted-key {pair.public_path} --require-signature",
        markup=False,
    )


@app.command()
@_handles_errors
def predict(
    bundle_path: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="A bundle folder or .tar.gz.")
    ],
    data: Annotated[Path, typer.Argument(help="Records to score: .csv or .parquet.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write predictions (.csv).")
    ] = Path("predictions.csv"),
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Score a file of records with a bundle (verified on load), in batch."""
    require_bundle_path(bundle_path)
    _require_file(data)
    from nbops.quality.validate import read_frame

    bundle = _load(bundle_path, _trust(trusted_key, require_signature))
    frame = read_frame(data)
    predictions = bundle.predict(frame)
    result = frame.copy()
    result["prediction"] = predictions
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        result.to_csv(tmp, index=False)
    out.print(f"Wrote {len(result)} predictions to {output}", markup=False)
