"""Retraining: the notebook behind a model's production version, run again on new data; its
bundle compared with production on rows of the new data it did not train on; promoted only
when the gates pass. Every step is recorded where its kind is recorded: the training run is
a run, the new bundle a registered version, the promotion (or the refusal) a registry event
with the comparison in its detail, and `.nbops/retrain/<id>/summary.json` ties them together.

The steps, in order (`retrain`):
1. `NAME@ALIAS` (production by default) names the champion; its run names the notebook (the
   copy kept with that run: the code that made production) and its parameters.
2. The new data file is split by hashing a key (`quality.split.hash_split`: repeatable, and a
   row stays on its side as data is appended) into a training part and a held-out part,
   written beside the summary.
3. The notebook runs with the parameter that names its training data pointed at the
   training part (`param`, else the one string parameter whose value is a data file the
   champion's run read), the champion run's other parameters unchanged.
4. The run is bundled and registered; both bundles score the held-out rows
   (`compare.compare_on_data`: paired bootstrap intervals, McNemar for accuracy); the gates
   (`gates`, else the project's `promote_gates`, else `diff.accuracy.ci_low > 0` or
   `diff.rmse.ci_high < 0`) decide.
5. Passed: the alias moves to the new version (reason: the comparison's headline). Failed:
   the refusal is recorded and BundleGateFailedError (40) raised, after the summary is
   written. `promote=False` stops after the comparison and records nothing in the registry
   but the new version (a failed gate still raises 40: the Airflow loop's compare and
   promote tasks take it from there).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.config import Project, load_project
from nbops.errors import (
    BundleGateFailedError,
    NbopsError,
    ParameterValueError,
    QualityInputError,
    RegistryError,
    RunError,
    RunNotFoundError,
)

if TYPE_CHECKING:
    import pandas as pd

    from nbops.bundle.compare import DataComparison
    from nbops.runs.record import RunRecord
    from nbops.runs.registry import AliasChange, ModelVersion, Registry
    from nbops.runs.store import RunStore

# Deferred imports: the run machinery, bundles, the registry and the statistics load when a
# retrain starts, so that importing this module (the CLI does) stays light.

RETRAIN_DIR = "retrain"
SUMMARY = "summary.json"
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".tsv", ".json", ".jsonl", ".feather")
MIN_HOLDOUT_ROWS = 30


@dataclass
class RetrainResult:
    """What one retraining did: where its files are, the run, both versions, the verdict."""

    retrain_id: str
    folder: Path
    name: str
    alias: str
    champion: ModelVersion
    parameter: str
    train_path: Path
    holdout_path: Path
    train_rows: int
    holdout_rows: int
    run_id: str | None = None
    bundle: Path | None = None
    challenger: ModelVersion | None = None
    comparison: DataComparison | None = None
    change: AliasChange | None = None
    status: str = "started"  # started | run failed | refused | promoted | compared
    error: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def summary_path(self) -> Path:
        return self.folder / SUMMARY

    def summary(self) -> dict[str, Any]:
        return {
            "retrain_id": self.retrain_id,
            "name": self.name,
            "alias": self.alias,
            "status": self.status,
            "error": self.error,
            "champion": {"version": self.champion.version, "bundle": self.champion.bundle_path},
            "parameter": self.parameter,
            "data": {
                "train": str(self.train_path),
                "holdout": str(self.holdout_path),
                "train_rows": self.train_rows,
                "holdout_rows": self.holdout_rows,
            },
            "run_id": self.run_id,
            "challenger": None
            if self.challenger is None
            else {"version": self.challenger.version, "bundle": self.challenger.bundle_path},
            "comparison": None if self.comparison is None else self.comparison.summary(),
            "alias_change": None
            if self.change is None
            else {"previous": self.change.previous, "current": self.change.current},
            "steps": self.steps,
        }


def retrain(
    name: str,
    data: str | os.PathLike[str],
    *,
    alias: str = "production",
    notebook: str | os.PathLike[str] | None = None,
    param: str | None = None,
    holdout: float = 0.3,
    key: str | Sequence[str] | None = None,
    label: str | None = None,
    gates: Sequence[str] | None = None,
    promote: bool = True,
    reason: str | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    trust: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    project: Project | None = None,
    progress: Callable[[str], None] | None = None,
    json_out: str | os.PathLike[str] | None = None,
) -> RetrainResult:
    """Retrain `name` on `data` and promote the result to `alias` only when it is better (see
    the module docstring). Raises RegistryError (41) when `name@alias` is not held,
    QualityInputError (26) for an unreadable data file or a split with too few held-out
    rows, ParameterValueError (16) when no parameter (or more than one) names the training
    data, the run's errors (21-23) when the training run fails, and BundleGateFailedError
    (40) when the new version fails the gates. The summary is written in every case past
    the split (and copied to `json_out` when given)."""
    from nbops.runs.registry import Registry
    from nbops.runs.store import RunStore

    say = progress or (lambda _line: None)
    project = project or load_project()
    store = RunStore(project.store_dir)
    registry = Registry(store)
    champion = registry.get(name, alias)
    source, original = _champion_source(champion, store, notebook)
    frame = _read_data(Path(data))
    parameter = _data_parameter(source, original, param, project)
    retrain_id = _new_id()
    folder = project.store_dir / RETRAIN_DIR / retrain_id
    train, held = _split(frame, key, holdout, Path(data))
    train_path, holdout_path = _write_parts(folder, Path(data), train, held)
    result = RetrainResult(
        retrain_id=retrain_id,
        folder=folder,
        name=name,
        alias=alias,
        champion=champion,
        parameter=parameter,
        train_path=train_path,
        holdout_path=holdout_path,
        train_rows=len(train),
        holdout_rows=len(held),
    )
    say(
        f"Retrain {retrain_id}: {name}@{alias} is v{champion.version}; {Path(data)} split by "
        f"{_key_text(key)} into {len(train)} rows to train on and {len(held)} held out"
    )
    try:
        _train_and_compare(
            result,
            source=source,
            original=original,
            store=store,
            registry=registry,
            project=project,
            label=label,
            gates=gates,
            n_resamples=n_resamples,
            seed=seed,
            trust=dict(trust or {}),
            timeout=timeout,
            say=say,
        )
        comparison = result.comparison
        assert comparison is not None and result.challenger is not None
        if not comparison.passed:
            result.status = "refused"
            if not promote:  # a dry evaluation: the registry's aliases and history untouched
                raise _refused(result, comparison)
            registry.record_refusal(
                name,
                alias,
                result.challenger.version,
                reason=reason or f"retrain {retrain_id}: {comparison.headline()}",
                detail=_detail(result, comparison),
            )
            raise _refused(result, comparison)
        if promote:
            from nbops.bundle.registration import promote as move_alias

            result.change = move_alias(
                result.challenger.bundle_path,
                alias,
                reason=reason or f"retrain {retrain_id}: {comparison.headline()}",
                trust=dict(trust or {}),
                registry=registry,
                detail=_detail(result, comparison),
                project=project,
            )
            result.status = "promoted"
            result.steps.append(
                {"step": "promote", "alias": alias, "version": result.change.current}
            )
        else:
            result.status = "compared"
    except NbopsError as e:
        if result.status == "started":
            result.status = "failed"
        result.error = str(e)
        raise
    finally:
        _write_summary(result, json_out)
    return result


def _train_and_compare(
    result: RetrainResult,
    *,
    source: Path,
    original: RunRecord | None,
    store: RunStore,
    registry: Registry,
    project: Project,
    label: str | None,
    gates: Sequence[str] | None,
    n_resamples: int,
    seed: int,
    trust: dict[str, Any],
    timeout: float | None,
    say: Callable[[str], None],
) -> None:
    from nbops.bundle.compare import compare_on_data
    from nbops.bundle.from_run import bundle_from_run
    from nbops.bundle.registration import register_bundle
    from nbops.runs.execute import execute_prepared, prepare_run

    overrides = dict(original.parameters) if original is not None else {}
    overrides = {k: v for k, v in overrides.items() if v != "***"}
    overrides[result.parameter] = str(result.train_path)
    prepared = prepare_run(source, overrides, project=project)
    if original is not None:
        nb = replace(
            prepared.notebook,
            path=Path(original.notebook),
            sha256=original.notebook_sha256 or prepared.notebook.sha256,
        )
        prepared = replace(prepared, notebook=nb, source=source)
    say(f"Training run: {prepared.notebook.path} with {result.parameter}={result.train_path}")
    try:
        record = execute_prepared(prepared, store=store, project=project, timeout=timeout)
    except RunError as e:
        result.status = "run failed"
        result.run_id = getattr(e, "run_id", None)
        result.steps.append({"step": "run", "run_id": result.run_id, "status": "failed"})
        raise
    result.run_id = record.run_id
    result.steps.append({"step": "run", "run_id": record.run_id, "status": record.status})
    say(f"Run {record.run_id} completed")
    result.bundle = bundle_from_run(record.run_id, project=project)
    result.challenger = register_bundle(result.bundle, registry, trust=trust, project=project)
    if result.challenger.name != result.name:
        raise RegistryError(
            f"the retrained bundle is named {result.challenger.name!r}, not {result.name!r}",
            fix="retrain with the notebook that made this model (--notebook)",
        )
    result.steps.append(
        {"step": "bundle", "bundle": str(result.bundle), "version": result.challenger.version}
    )
    say(f"Bundle {result.bundle} (registered as {result.name} v{result.challenger.version})")
    comparison = compare_on_data(
        result.champion.bundle_path,
        result.bundle,
        result.holdout_path,
        label=label,
        gates=gates,
        n_resamples=n_resamples,
        seed=seed,
        trust=trust,
    )
    result.comparison = comparison
    result.steps.append(
        {"step": "compare", "passed": comparison.passed, "headline": comparison.headline()}
    )
    say(
        f"Compared with v{result.champion.version}: {comparison.headline()} "
        f"({'passes' if comparison.passed else 'fails'} the gates)"
    )


def recorded_reference(name: str, version: int, store_dir: Path) -> Path | None:
    """The held-out rows a retrain compared `name` v`version` on when it promoted it (the
    registry event's detail), if the file is still there: labelled rows from the data that
    version was trained on, which `nbops monitor NAME@ALIAS` takes as its reference."""
    from nbops.runs.registry import Registry
    from nbops.runs.store import RunStore

    events = Registry(RunStore(store_dir)).history(name)
    for event in reversed(events):
        holdout = event.detail.get("holdout") if event.version == version else None
        if event.action == "promote" and isinstance(holdout, str) and Path(holdout).is_file():
            return Path(holdout)
    return None


def _refused(result: RetrainResult, comparison: DataComparison) -> BundleGateFailedError:
    assert result.challenger is not None
    failed = "; ".join(f"{g.gate} ({g.reason})" for g in comparison.failed_gates)
    return BundleGateFailedError(
        f"retrain {result.retrain_id}: {result.name} v{result.challenger.version} is not "
        f"promoted to {result.alias}: it fails {failed}",
        fix=f"see {result.summary_path}; {result.name}@{result.alias} stays "
        f"v{result.champion.version}",
    )


def _detail(result: RetrainResult, comparison: DataComparison) -> dict[str, Any]:
    from nbops.runs.capture import fingerprint_data

    return {
        "retrain": result.retrain_id,
        "run_id": result.run_id,
        "comparison": comparison.summary(),
        "holdout": str(result.holdout_path),
        "reference_snapshot": fingerprint_data(result.holdout_path)["sha256"],
    }


def _champion_source(
    champion: ModelVersion, store: RunStore, notebook: str | os.PathLike[str] | None
) -> tuple[Path, RunRecord | None]:
    """The notebook to run and the champion's run (None when it is not in this store)."""
    from nbops.runs.execute import SOURCE_COPY

    original = None
    if champion.run_id:
        try:
            original = store.load(champion.run_id)
        except RunNotFoundError:
            original = None
    if notebook is not None:
        path = Path(notebook)
        if not path.is_file():
            raise RegistryError(
                f"no notebook at {path}", fix="give the notebook that trains the model"
            )
        return path, original
    if original is None:
        raise RegistryError(
            f"{champion.name} v{champion.version} names no run in this store "
            f"({champion.run_id or 'no run'}), so its notebook is unknown",
            fix="give the notebook to retrain with: --notebook PATH",
        )
    suffix = Path(original.notebook).suffix or ".ipynb"
    copy = store.run_dir(original.run_id) / f"{SOURCE_COPY}{suffix}"
    return (copy if copy.exists() else Path(original.notebook)), original


def _data_parameter(
    source: Path, original: RunRecord | None, param: str | None, project: Project
) -> str:
    """The parameter that names the training data: `param` (checked), else the one string
    parameter naming a file the champion's run read, else the one naming a data file."""
    from nbops.notebook.read import read_notebook
    from nbops.runs.parameters import parameter_specs

    specs = parameter_specs(read_notebook(source), project.config.secret_params, computed=True)
    names = [s.name for s in specs]
    if param is not None:
        if param not in names:
            raise ParameterValueError(
                f"the notebook has no parameter {param!r} (it has {', '.join(names) or 'none'})",
                location=str(source),
                fix="name the parameter that holds the training data's path: --param NAME",
            )
        return param
    values = dict(original.parameters) if original is not None else {}
    for s in specs:
        values.setdefault(s.name, s.default)
    text = {n: v for n, v in values.items() if n in names and isinstance(v, str)}
    folder = Path(original.notebook).parent if original is not None else source.parent
    read = set()
    if original is not None:
        read = {str(d.model_extra.get("path")) for d in original.data if d.model_extra}
    matched = [n for n, v in text.items() if str((folder / v).resolve()) in read]
    if len(matched) != 1:
        matched = [n for n, v in text.items() if v.lower().endswith(DATA_SUFFIXES)]
    if len(matched) == 1:
        return matched[0]
    found = ", ".join(matched) if matched else "none"
    raise ParameterValueError(
        f"cannot tell which parameter holds the training data's path (data-file parameters: "
        f"{found})",
        location=str(source),
        fix="name it: --param NAME",
    )


def _read_data(path: Path) -> pd.DataFrame:
    from nbops.quality.validate.files import read_frame

    frame = read_frame(path)
    if len(frame) == 0:
        raise QualityInputError("the new data has no rows", location=str(path), fix="check it")
    return frame


def _split(
    frame: pd.DataFrame, key: str | Sequence[str] | None, holdout: float, path: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from nbops.quality.split import hash_split

    if not 0 < holdout < 1:
        raise QualityInputError(
            f"--holdout {holdout}: the held-out share must be between 0 and 1",
            fix="e.g. --holdout 0.3",
        )
    if key is None:
        columns = [str(c) for c in frame.columns]
    else:
        columns = [key] if isinstance(key, str) else list(key)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise QualityInputError(
            f"no column {missing[0]!r} to split by",
            location=str(path),
            fix=f"--key takes a column of the data: {', '.join(map(str, frame.columns))}",
        )
    train, held = hash_split(frame, key=columns, test_size=holdout, salt="nbops-retrain")
    if len(held) < MIN_HOLDOUT_ROWS or len(train) == 0:
        raise QualityInputError(
            f"{len(frame)} rows split into {len(train)} to train on and {len(held)} held "
            f"out: too few to compare models on (at least {MIN_HOLDOUT_ROWS} held out)",
            location=str(path),
            fix="give more rows, or a larger --holdout",
        )
    return train, held


def _write_parts(
    folder: Path, data: Path, train: pd.DataFrame, held: pd.DataFrame
) -> tuple[Path, Path]:
    from nbops._atomic import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    name = data.name.lower()
    parquet = name.endswith((".parquet", ".pq"))
    suffix = ".parquet" if parquet else ".csv"
    stem = data.name[: -len(".csv.gz")] if name.endswith(".csv.gz") else Path(data.name).stem
    paths = []
    for part, frame in (("train", train), ("holdout", held)):
        target = folder / f"{stem}.{part}{suffix}"
        with atomic_path(target) as tmp:
            if parquet:
                frame.to_parquet(tmp, index=False)
            else:
                frame.to_csv(tmp, index=False)
        paths.append(target)
    return paths[0], paths[1]


def _write_summary(result: RetrainResult, json_out: str | os.PathLike[str] | None) -> None:
    from nbops._atomic import atomic_write_text

    text = json.dumps(result.summary(), indent=2) + "\n"
    result.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(result.summary_path, text)
    if json_out is not None:
        atomic_write_text(json_out, text)


def _key_text(key: str | Sequence[str] | None) -> str:
    if key is None:
        return "whole rows"
    return key if isinstance(key, str) else ", ".join(key)


def _new_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
