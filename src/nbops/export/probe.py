"""Find how each value a step returns will travel on an orchestrator, by running the package.

The code of a notebook does not say what its values are (`df = load()`), so an export for an
orchestrator (`--target`) runs the freshly written package once, with the notebook's default
parameters, in a child process started in the notebook's folder. For every value a step
returns it records the serialisation (see artifact_io), the type, and for models the types a
loader will trust, after writing and reading the value back. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from nbops.errors import ArtifactTypeError, TargetBuildError
from nbops.export.manifest import ArtifactEntry

_PROBE = r"""
import contextlib, dataclasses, importlib, json, os, sys, tempfile, traceback
folder, name, out_path = sys.argv[1:4]
sys.path.insert(0, folder)
io = importlib.import_module(name + "._nbops_io")
pipeline = importlib.import_module(name + ".pipeline")
try:
    with contextlib.redirect_stdout(sys.stderr):
        results = pipeline.run()
except BaseException as exc:
    traceback.print_exc()
    with open(out_path + ".error", "w", encoding="utf-8") as f:
        f.write("".join(traceback.format_exception_only(type(exc), exc)).strip())
    sys.exit(3)
found = {}
with tempfile.TemporaryDirectory() as tmp:
    for field in dataclasses.fields(results):
        value = getattr(results, field.name)
        try:
            entry = io.describe(value)
        except io.UnsupportedValue as exc:
            found[field.name] = {"error": str(exc)}
            continue
        path = os.path.join(tmp, field.name + io.EXTENSIONS[entry["codec"]])
        try:
            io.save(value, path, entry["codec"])
            io.load(path, entry["codec"], entry["trusted"])
        except Exception as exc:
            found[field.name] = {
                "error": "a %s that cannot be written as %s (%s: %s)"
                % (entry["type"], entry["codec"], type(exc).__name__, exc)
            }
            continue
        found[field.name] = entry
with open(out_path, "w", encoding="utf-8") as f:
    json.dump(found, f)
"""


def probe_outputs(
    export_folder: Path, name: str, workdir: Path, defaults: dict[str, str] | None = None
) -> tuple[dict[str, ArtifactEntry], dict[str, str]]:
    """Run the package `name` in `export_folder` once; return the serialisation of each value
    its steps return, and, separately, the values that have none (name -> what it is).
    `defaults`: environment variables the run gets unless already set (the secret
    parameters' values, never written to a file).

    Raises TargetBuildError when the pipeline fails to run.
    """
    with tempfile.TemporaryDirectory(prefix="nbops-probe-") as tmp:
        out_path = Path(tmp) / "outputs.json"
        env = {**(defaults or {}), **os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env["MPLBACKEND"] = "Agg"
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, str(export_folder), name, str(out_path)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not out_path.exists():
            error_file = Path(f"{out_path}.error")
            reason = (
                error_file.read_text("utf-8")
                if error_file.exists()
                else (proc.stderr.strip().splitlines() or ["no output"])[-1]
            )
            raise TargetBuildError(
                f"the exported pipeline failed when run once to find the types of its values "
                f"({reason.splitlines()[-1] if reason else 'no output'})",
                location=str(export_folder / name),
                fix=f"make `python -m {name}` work from {workdir} first",
            )
        raw: dict[str, Any] = json.loads(out_path.read_text("utf-8"))
    entries = {k: ArtifactEntry(**v) for k, v in raw.items() if "error" not in v}
    errors = {k: v["error"] for k, v in raw.items() if "error" in v}
    return entries, errors


def require_passable(
    errors: dict[str, str], consumers: dict[str, tuple[str, str]], notebook: str
) -> None:
    """Raise ArtifactTypeError for the first value without a serialisation that a later step
    reads (`consumers`: value name -> (producing step, reading step))."""
    for value, reason in errors.items():
        if value in consumers:
            producer, reader = consumers[value]
            raise ArtifactTypeError(
                f"step `{producer}` passes `{value}` to step `{reader}`, but it is {reason}: "
                "orchestrators pass DataFrames and Series (parquet), numpy arrays (npy), "
                "models (skops) and JSON values between steps, and nbops never pickles",
                location=notebook,
                fix=f"hand `{reader}` one of those types, or compute `{value}` inside it",
            )
