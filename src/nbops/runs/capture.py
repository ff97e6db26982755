"""The in-notebook capture API: `nbops.log_metric`, `log_params`, `track_data`, ...

Under `nbops run` the kernel is started with NBOPS_RUN_DIR set, and every call appends one
JSON line to that run's `events.jsonl` sidecar, so clearing a notebook's outputs loses
nothing. In an interactive session (a Jupyter kernel) the first call opens a local
interactive run in the project's store (`.nbops/runs/<id>/`), listed by `nbops runs list`
like any other. In a plain Python process — an exported pipeline run with `python -m` —
outside `nbops run`, the calls do nothing, so exported code runs anywhere.

This module imports only the standard library: it runs inside every user's kernel.
Heavy libraries (skops, pandas) are imported only by the calls that need them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.runs.events import EVENTS_FILE
from nbops.runs.files import atomic_path, copy_file

# Deferred import: runs.store (SQLite, pydantic) only when an interactive run starts: this
# module loads only the standard library in the user's kernel.

RUN_DIR_ENV = "NBOPS_RUN_DIR"
RUN_ID_ENV = "NBOPS_RUN_ID"


@dataclass(frozen=True)
class ActiveRun:
    """The run the capture calls write to."""

    run_id: str
    directory: Path
    interactive: bool


_active: ActiveRun | None = None


def new_run_id() -> str:
    """A run id that sorts by creation time: `20261122-064000-1a2b3c`."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def active_run() -> ActiveRun | None:
    """The run of this process: the one `nbops run` started, or in an interactive kernel a
    local interactive run. None in a plain Python process (an exported pipeline run with
    `python -m`), where the capture calls do nothing."""
    global _active
    env_dir = os.environ.get(RUN_DIR_ENV)
    if env_dir:
        run_id = os.environ.get(RUN_ID_ENV) or Path(env_dir).name
        if _active is None or _active.directory != Path(env_dir):
            _active = ActiveRun(run_id, Path(env_dir), interactive=False)
        return _active
    if _active is None and _in_ipython():
        _active = _start_interactive_run()
    return _active


def _in_ipython() -> bool:
    ipython = sys.modules.get("IPython")
    return ipython is not None and ipython.get_ipython() is not None


def _start_interactive_run() -> ActiveRun:
    from nbops.runs.store import RunStore

    store = RunStore.for_project()
    # Jupyter tells the kernel which notebook it serves in JPY_SESSION_NAME.
    notebook = os.environ.get("JPY_SESSION_NAME") or "(interactive)"
    record = store.start_interactive_run(new_run_id(), notebook=notebook)
    return ActiveRun(record.run_id, store.run_dir(record.run_id), interactive=True)


def _emit(event: dict[str, Any]) -> None:
    run = active_run()
    if run is None:
        return
    run.directory.mkdir(parents=True, exist_ok=True)
    event = {"ts": time.time(), **event}
    line = json.dumps(event, default=_jsonable, sort_keys=True) + "\n"
    # One write of one line in append mode: concurrent writers never interleave within it.
    with open(run.directory / EVENTS_FILE, "a", encoding="utf-8") as handle:
        handle.write(line)


def _jsonable(value: Any) -> Any:
    for cast in (float, str):
        try:
            return cast(value)
        except (TypeError, ValueError):
            continue
    return repr(value)  # pragma: no cover - str() accepts everything


def _metric_value(name: str, value: Any) -> float:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a metric needs a non-empty name, got {name!r}")
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"metric {name!r} must be a number, got {value!r}") from None
    return number


def log_metric(name: str, value: Any, step: int | None = None) -> None:
    """Record a metric of the current run (`step` for a series, e.g. an epoch).

    Raises ValueError when the value is not a number.
    """
    number = _metric_value(name, value)
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise ValueError(f"metric {name!r}: step must be an integer, got {step!r}")
    _emit_metric(name, number, step)


def _emit_metric(name: str, number: float, step: int | None, *, auto: bool = False) -> None:
    """`auto`: captured by nbops without a call (autocapture.py); a call of the same name wins."""
    event: dict[str, Any] = {
        "kind": "metric",
        "name": name,
        "value": number if math.isfinite(number) else str(number),
        "step": step,
    }
    _emit({**event, "auto": True} if auto else event)


def log_metrics(metrics: dict[str, Any], step: int | None = None) -> None:
    """Record several metrics at once: `log_metrics({"accuracy": acc, "f1": f1})`."""
    for name, value in metrics.items():
        log_metric(name, value, step=step)


def log_param(name: str, value: Any) -> None:
    """Record a value that describes the run besides its notebook parameters."""
    _emit({"kind": "param", "name": name, "value": value})


def log_params(params: dict[str, Any]) -> None:
    """Record several params at once."""
    for name, value in params.items():
        log_param(name, value)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> Path | None:
    """Copy a file into the run's artifacts; returns where it was stored (None outside a run).

    Raises FileNotFoundError when the file does not exist.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"log_artifact: no file at {source}")
    run = active_run()
    if run is None:
        return None
    target_dir = run.directory / "artifacts"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / (name or source.name)
    copy_file(source, target)
    _emit(
        {
            "kind": "artifact",
            "name": target.name,
            "path": f"artifacts/{target.name}",
            "sha256": _file_sha256(target),
            "bytes": target.stat().st_size,
        }
    )
    return target


def log_model(model: Any, name: str = "model") -> Path | None:
    """Save a model into the run in skops format (never pickle); returns the file (None
    outside a run). `nbops bundle --run ID` builds a deployable bundle from it.
    """
    return _save_model(model, name, f"{name}.skops")


def _save_model(
    model: Any, name: str, file: str, *, auto: bool = False, pickle_file: str | None = None
) -> Path | None:
    """`auto`: captured by nbops without a call (autocapture.py); a log_model call wins.

    `pickle_file`: save the model there as a pickle when every global it references is one
    nbops trusts (runs/pickled_model.py: no `import skops.io` in the kernel), else as skops
    in `file`."""
    run = active_run()
    if run is None:
        return None
    target_dir = run.directory / "models"
    target_dir.mkdir(parents=True, exist_ok=True)
    cls = type(model)
    if pickle_file is not None:
        from nbops.runs import pickled_model

        target = target_dir / pickle_file
        saved = pickled_model.save(model, target)
        if saved is not None:
            event = {
                "kind": "model",
                "name": name,
                "path": f"models/{target.name}",
                "class": f"{cls.__module__}.{cls.__qualname__}",
                **saved,
            }
            _emit({**event, "auto": True} if auto else event)
            return target
    import skops.io

    target = target_dir / file
    with atomic_path(target) as temp:  # a full disk leaves no truncated model behind
        skops.io.dump(model, temp)
    event = {
        "kind": "model",
        "name": name,
        "path": f"models/{target.name}",
        "format": "skops",
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "sha256": _file_sha256(target),
    }
    _emit({**event, "auto": True} if auto else event)
    return target


def track_data(data: Any, name: str, snapshot: bool | None = None) -> dict[str, Any]:
    """Record a fingerprint of a data set: a file (by path) or a pandas DataFrame/Series.

    Files get the sha256 of their full content; frames a content hash of their values and
    index, with the row count, columns and dtypes. Returns the fingerprint.

    With `snapshot=True` (default: `snapshot_data` in `[tool.nbops]`) the data itself is
    kept in the run store, content-addressed (a file's bytes; a frame as Parquet), so
    `nbops rerun` and `nbops.load_snapshot` can use it after it changed; a DVC-tracked file
    records its DVC hash instead. Data over the size caps is not kept: one line on stderr
    and a warning in the run, never an error (runs/snapshots.py).
    """
    fingerprint = fingerprint_data(data)
    run = active_run()
    if run is not None:
        from nbops.runs import snapshots

        limits = snapshots.settings()
        if limits.enabled if snapshot is None else snapshot:
            store_dir = run.directory.parent.parent  # <store>/runs/<id>
            fingerprint["snapshot"] = snapshots.keep(data, name, fingerprint, store_dir, limits)
    _emit({"kind": "data", "name": name, **fingerprint})
    return fingerprint


def log_report(kind: str, name: str, report: dict[str, Any], gate_values: dict[str, float]) -> None:
    """Record a validation or slice-metrics report (what `nbops.validate` and
    `nbops.slice_metrics` call), so `nbops ci` gates can name its `data.*`/`slices.*` values."""
    _emit({"kind": kind, "name": name, "report": report, "gate_values": gate_values})


def fingerprint_data(data: Any) -> dict[str, Any]:
    """The fingerprint track_data records (see there)."""
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(f"track_data: no file at {path}")
        return {
            "type": "file",
            "path": str(path.resolve()),
            "sha256": _file_sha256(path),
            "bytes": path.stat().st_size,
            "format": path.suffix.lstrip(".") or "unknown",
        }
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        import pandas as pd

        frame = data.to_frame() if isinstance(data, pd.Series) else data
        hashed = pd.util.hash_pandas_object(frame, index=True).to_numpy()
        digest = hashlib.sha256(hashed.tobytes())
        digest.update(json.dumps([str(c) for c in frame.columns]).encode())
        return {
            "type": "dataframe",
            "sha256": digest.hexdigest(),
            "rows": int(frame.shape[0]),
            "columns": [str(c) for c in frame.columns],
            "schema": {str(c): str(t) for c, t in frame.dtypes.items()},
        }
    raise TypeError(
        f"track_data takes a file path or a pandas DataFrame/Series, got {type(data).__name__}"
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
