"""Orchestrator targets of `nbops export --target`: the exported pipeline on Kubeflow
Pipelines (`kfp`) or Airflow (`airflow`).

A target renders extra files next to the package, from the manifest (steps, their inputs and
outputs, parameters) and the declared serialisation of every value a step returns (found by
running the package once, see probe.py). Each target is a module here with

- `EXTRA`: the pip extra that installs its engine, and `ENGINE`: the module to import;
- `render(ctx) -> dict[str, str]`: files (path relative to the export folder -> text);
- `build(ctx, folder) -> dict[str, str]`: files compiled from the rendered ones, written in
  `folder` (a staging copy of the export folder), e.g. kfp's pipeline YAML.

Each step that computes metrics reports them under the names `collect_metrics` gives them
(`TargetContext.step_metrics`), so a run on an orchestrator and `nbops run` agree.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from nbops._requirements import pin_installed
from nbops.config import StepResources
from nbops.errors import ConfigError, MissingExtraError
from nbops.export.manifest import ArtifactEntry, ExportManifest, StepEntry

TARGETS = {"kfp": "nbops.export.targets.kfp", "airflow": "nbops.export.targets.airflow"}
DEFAULT_BASE_IMAGE = "python:3.11-slim"


@dataclass(frozen=True)
class TargetOptions:
    """Settings of the orchestrator files: from the command line and `[tool.nbops]`."""

    base_image: str = DEFAULT_BASE_IMAGE
    install_packages: bool = True  # components pip-install kfp and the requirements at start
    steps: dict[str, StepResources] = field(default_factory=dict)
    schedule: str | None = None  # airflow: the DAGs' schedule ("@daily", a cron expression)
    loop: LoopOptions | None = None  # airflow: also write the retraining loop DAG


@dataclass(frozen=True)
class LoopOptions:
    """The retraining loop DAG (`--loop NAME`): which registered model, which alias, and the
    project folder whose store holds the registry (the tasks run the nbops CLI there)."""

    model: str
    project_root: str
    alias: str = "production"


@dataclass(frozen=True)
class TargetContext:
    """What a target renders from."""

    name: str
    manifest: ExportManifest
    artifacts: dict[str, ArtifactEntry]
    options: TargetOptions
    requirements: list[str]  # pinned distributions (`name==version`) the steps import
    configure: bool = False  # common.configure() exists: run it before a step, as run() does
    source: str = ""  # the notebook, as given: where errors point

    def resources(self, step: StepEntry) -> StepResources | None:
        """The `[tool.nbops.steps.NAME]` settings of a step (NAME: its tag or its name)."""
        short = step.key.split(":")[-1]
        return self.options.steps.get(step.key) or self.options.steps.get(short)

    def step_metrics(self, step: StepEntry) -> dict[str, str]:
        """The metrics a step computes, named as the package's `collect_metrics` and `nbops
        run` name them (the manifest's `metrics`: `knn.accuracy` for a name two steps
        define, `accuracy_score` for a kept last expression): metric name -> the step's
        returned value it is read from."""
        return {
            m.name: m.value
            for m in self.manifest.metrics
            if m.step == step.key and m.value in step.outputs
        }


def load_target(target: str) -> ModuleType:
    """The target's module, once its engine is known to be installed."""
    if target not in TARGETS:
        raise ConfigError(
            f"unknown export target {target!r}",
            fix=f"use one of: {', '.join(TARGETS)}",
        )
    module = importlib.import_module(TARGETS[target])
    if importlib.util.find_spec(module.ENGINE) is None:
        raise MissingExtraError(
            f"`--target {target}` needs {module.ENGINE}, which is not installed",
            fix=f"pip install 'nbops[{module.EXTRA}]'",
        )
    return module


def check_step_names(manifest: ExportManifest, options: TargetOptions, where: str) -> None:
    """ConfigError for a `[tool.nbops.steps.NAME]` that names no step of the pipeline."""
    known = {s.key for s in manifest.steps} | {s.key.split(":")[-1] for s in manifest.steps}
    for key in options.steps:
        if key not in known:
            raise ConfigError(
                f"[tool.nbops.steps.{key}] names no step of {manifest.name}",
                location=where,
                fix=f"use a step's tag or name: {', '.join(s.key for s in manifest.steps)}",
            )


def with_tag_resources(
    options: TargetOptions, manifest: ExportManifest, tagged: dict[str, StepResources]
) -> TargetOptions:
    """The options with the resources the notebook's cells ask for (Kale's `limit:` and
    `cache:` tags, by step key) under each step's key; a setting in `[tool.nbops.steps]`
    wins over the same setting from a tag."""
    if not tagged:
        return options
    context = TargetContext(manifest.name, manifest, {}, options, [])
    steps = dict(options.steps)
    for step in manifest.steps:
        from_tags = tagged.get(step.key)
        if from_tags is None:
            continue
        configured = context.resources(step)
        merged = from_tags.model_dump(exclude_none=True)
        if configured is not None:
            merged.update(configured.model_dump(exclude_none=True))
        steps[step.key] = StepResources(**merged)  # the full key is looked up first
    return replace(options, steps=steps)


def consumers(manifest: ExportManifest) -> dict[str, tuple[str, str]]:
    """Every value a later step reads: name -> (the step that returns it, the first reader)."""
    found: dict[str, tuple[str, str]] = {}
    for step in manifest.steps:
        for i in step.inputs:
            if i.source == "step" and i.step is not None:
                found.setdefault(i.name, (i.step, step.key))
    return found


def artifact_io_source() -> str:
    """The text of artifact_io.py, copied into packages as `_nbops_io.py`."""
    return (Path(__file__).parent.parent / "artifact_io.py").read_text("utf-8")


def pinned_requirements(modules: list[str]) -> list[str]:
    """`distribution==version`, as installed here, of the modules the steps import (a
    module that is not installed here is kept by name)."""
    pins, missing = pin_installed(modules)
    return sorted([*pins, *missing], key=str.lower)
