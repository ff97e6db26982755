"""The panel's export target: what `POST export` makes, as `nbops export [--target T]` does.

The request's `target` is one of TARGETS: `package` (the default: the pipeline package
alone), `kfp` (also the Kubeflow Pipelines pipeline, compiled to its YAML) or `airflow` (also
the Airflow DAG file). Anything else is a 400 naming the choices. The orchestrator files are
made with the settings the command line reads (`base_image` and `[tool.nbops.steps.NAME]` of
the notebook's project; components pip-install their requirements, as without
`--no-install`). An engine that is not installed is the command line's MissingExtraError
(`--target kfp` needs kfp ... `pip install 'nbops[kfp]'`), answered as a 422 like any
refusal of nbops.

The answer says where the files went (`written_files`): each file the target wrote,
relative to the server root, with what it is for; `main` is the one to open or hand on (the
compiled `kfp_pipeline.yaml` to upload, the `airflow_dag.py` for Airflow's DAG folder, the
package's `pipeline.py`), `next` the one line saying what to do with it, and
`target_warnings` the command line's warnings about values the orchestrator pipeline
leaves out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.labserver.requests import ApiError, shown_value

if TYPE_CHECKING:
    from nbops.config import Project
    from nbops.export.exporter import ExportResult
    from nbops.export.targets import TargetOptions

# Deferred imports: nbops.export.targets (the configuration model, the requirement pins)
# loads with the first export for an orchestrator.

TARGETS: dict[str, str] = {
    "package": "Package",
    "kfp": "Kubeflow Pipelines",
    "airflow": "Airflow",
}


def requested_target(data: dict[str, Any]) -> str:
    """The request's `target` (default `package`); ApiError 400 for anything else."""
    target = data.get("target", "package")
    if target is None:
        return "package"
    if not isinstance(target, str) or target not in TARGETS:
        raise ApiError(
            400,
            f"unknown export target {shown_value(target)}",
            fix=f"send 'target' as one of: {', '.join(TARGETS)} (or leave it out for package)",
        )
    return target


def engine_targets(target: str) -> list[str]:
    """The orchestrators to write, as `export_notebook(targets=...)` takes them."""
    return [] if target == "package" else [target]


def target_options(project: Callable[[], Project], target: str) -> TargetOptions | None:
    """The orchestrator settings `nbops export --target` uses for the notebook's project
    (`project()` reads it); None for a package alone, which reads none."""
    if target == "package":
        return None
    from nbops.export.targets import DEFAULT_BASE_IMAGE, TargetOptions

    config = project().config
    return TargetOptions(
        base_image=config.base_image or DEFAULT_BASE_IMAGE,
        install_packages=True,
        steps=config.steps,
    )


def written_files(
    result: ExportResult, target: str, shown: Callable[[Path], str]
) -> dict[str, Any]:
    """Where the target's files went (paths as `shown` gives them: relative to the server
    root): `{target, label, files: [{path, what}], main, next, target_warnings}`; only
    files on disk."""
    from nbops.export.targets import airflow, kfp

    folder, package = result.folder, result.package_dir
    listed: list[tuple[Path, str]]
    if target == "kfp":
        listed = [
            (folder / kfp.COMPILED_FILE, "the compiled pipeline, to upload"),
            (folder / kfp.PIPELINE_FILE, "its source: python kfp_pipeline.py compiles it again"),
        ]
        step = f"Upload {shown(listed[0][0])} to Kubeflow Pipelines (Pipelines > Upload pipeline)."
    elif target == "airflow":
        listed = [(folder / airflow.DAG_FILE, "the DAG file: one task per step")]
        step = (
            f"Put {shown(folder)} in Airflow's DAG folder, or make it the DAG folder "
            "(AIRFLOW__CORE__DAGS_FOLDER); its .airflowignore keeps Airflow to the DAG file."
        )
    else:
        listed = [
            (package / "pipeline.py", "the steps in order: run(params)"),
            (package / "params.py", "the parameters, typed, with their defaults"),
        ]
        step = f"Run it: cd {shown(folder)} && python -m {result.name} --param KEY=VALUE"
    files = [{"path": shown(path), "what": what} for path, what in listed if path.is_file()]
    return {
        "target": target,
        "label": TARGETS[target],
        "files": files,
        "main": files[0]["path"] if files else None,
        "next": step,
        # What the orchestrator pipeline leaves out: values no later step reads that have
        # no safe serialisation (the command line's `warning:` lines).
        "target_warnings": list(result.warnings),
    }
