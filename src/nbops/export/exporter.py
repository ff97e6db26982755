"""`nbops export`: a notebook in, a versioned pipeline package out.

Nothing is written until the notebook has been read, analysed, rendered and formatted in
memory, so bad input leaves no files behind; the package folder is then swapped into place
whole.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TypeGuard

from nbops._paths import find_root
from nbops._version import __version__ as nbops_version
from nbops.config import load_project
from nbops.errors import ExportError, StaleExportError
from nbops.export.cache import CACHE_VERSION, read_entry, write_entry
from nbops.export.formatting import format_files, ruff_ready, start_formatting
from nbops.export.layout import Block, statement_blocks
from nbops.export.manifest import (
    MANIFEST_FILE,
    ExportManifest,
    MetricEntry,
    ParameterEntry,
    SourceEntry,
)
from nbops.export.probe import probe_outputs, require_passable
from nbops.export.render import (
    VERSION_PLACEHOLDER,
    RenderedPackage,
    default_package_name,
    metric_names,
    package_name,
    render_package,
    shadowed_module,
)
from nbops.export.targets import (
    TargetContext,
    TargetOptions,
    artifact_io_source,
    check_step_names,
    consumers,
    load_target,
    pinned_requirements,
    with_tag_resources,
)
from nbops.export.vendor import vendored_files
from nbops.export.versions import (
    VersionEntry,
    assign_version,
    export_lock,
    history_dir,
    ignore_history_in_airflow,
    now,
    read_index,
    record_version,
    write_tree,
)
from nbops.notebook.analysis import StepGraph, analyse, require_steps
from nbops.notebook.cellcode import Diagnostic
from nbops.notebook.kale import step_resources
from nbops.notebook.read import read_notebook_pending
from nbops.redact import is_secret_parameter, secret_env_var

DEFAULT_OUT_DIR = Path("pipelines")


@dataclass
class ExportResult:
    """What an export wrote (or, for a check, would write)."""

    name: str
    version: int
    content_hash: str
    folder: Path
    new_version: bool
    manifest: ExportManifest
    diagnostics: list[Diagnostic] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def package_dir(self) -> Path:
        return self.folder / self.name


@dataclass
class _Prepared:
    graph: StepGraph
    name: str
    folder: Path
    files: dict[str, str]  # formatted, version still a placeholder
    content_hash: str
    rendered: RenderedPackage
    secret: frozenset[str] = frozenset()  # the secret parameters: no default in the package


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while syntax trees pile up: with thousands of cells
    its full passes make analysis grow faster than the notebook. Nothing built here is cyclic
    garbage, and it is restored on the way out."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _prepare_files(
    notebook: str | Path,
    out_dir: str | Path | None,
    name: str | None,
    secret_params: Sequence[str] | None,
) -> _Prepared:
    # nbformat's validation of the notebook, when it can wait, runs while ruff formats: until
    # then an error is preceded by the notebook's own, as if it had been validated on reading.
    nb, validation = read_notebook_pending(notebook)
    with validation.first():
        graph = analyse(nb)
        require_steps(graph)
        name = _checked_name(name, nb.path)
        out = Path(out_dir) if out_dir is not None else DEFAULT_OUT_DIR
        secret = _secret_parameters(graph, nb.path, secret_params)
        ready = ruff_ready()  # ruff starts while the files are rendered, then waits for them
        try:
            rendered = render_package(graph, name, secret)
        except BaseException:
            ready.close()
            raise
        formatting = start_formatting(rendered.files, ready)  # ruff runs while the rest is prepared
    try:
        validation.run()
        vendored = vendored_files(name, graph.local_modules)  # copied as written, not formatted
        _release_trees(graph)  # while ruff runs: what is left needs none of them
        files = {**formatting.result(), **vendored}
    finally:
        formatting.close()
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + files[rel].encode() + b"\0")
    return _Prepared(graph, name, out / name, files, digest.hexdigest(), rendered, secret)


def _release_trees(graph: StepGraph) -> None:
    """Drop the cells' syntax trees, whose last use was rendering: freeing them costs a
    twentieth of an export, spent here while ruff runs rather than after the package is
    written. (A later use would fail loudly: the attribute is gone.)"""
    cells = [*graph.setup, *(a for step in graph.steps for a in step.cells)]
    if graph.parameters_cell is not None:
        cells.append(graph.parameters_cell)
    for a in cells:
        if hasattr(a.code, "tree"):  # a cell can appear twice (a split setup cell)
            del a.code.tree


def _secret_parameters(
    graph: StepGraph, notebook: Path, secret_params: Sequence[str] | None
) -> frozenset[str]:
    """The parameters whose defaults stay out of the package: names that look secret, those
    `secret_params` lists (default: the notebook's project's `[tool.nbops]`), and those whose
    comment says `secret`."""
    if secret_params is None:
        secret_params = load_project(notebook.resolve().parent).config.secret_params
    return frozenset(
        p.name
        for p in graph.parameters
        if is_secret_parameter(p.name, p.description, secret_params)
    )


def _checked_name(name: str | None, notebook: Path) -> str:
    """The package name: given, or from the notebook's file name; never one that shadows a
    module beside the notebook (`python -m NAME` run there would import that instead)."""
    if name is None:
        return default_package_name(notebook)
    name = package_name(name)
    shadowed = shadowed_module(notebook.parent, name)
    if shadowed is not None:
        raise ExportError(
            f"the package name {name!r} would shadow {shadowed.name} beside the notebook "
            f"(`python -m {name}` run there would import it instead of the pipeline)",
            location=str(notebook),
            fix=f"choose another name, e.g. --name {name}_pipeline",
        )
    return name


def export_notebook(
    notebook: str | Path,
    out_dir: str | Path | None = None,
    *,
    name: str | None = None,
    targets: Sequence[str] = (),
    options: TargetOptions | None = None,
    secret_params: Sequence[str] | None = None,
) -> ExportResult:
    """Export a tagged notebook as a pipeline package in `out_dir/<name>/`.

    Re-exporting an unchanged notebook rewrites identical bytes and keeps the version; a
    change in the exported code or the parameters makes the next version. Raises the
    NbopsError subclasses of reading and analysis (nothing is written then) and ExportError.

    A secret parameter (see `_secret_parameters`; `secret_params` default: the project's)
    keeps its default out of every file written: the package's `Params` reads it from the
    environment variable nbops.redact.secret_env_var names.

    `targets` ("kfp", "airflow") also writes the pipeline for those orchestrators next to the
    package; that runs the package once, with the default parameters, to find how each value
    a step returns is passed on (ArtifactTypeError when one cannot be passed safely).
    """
    modules = [load_target(t) for t in dict.fromkeys(targets)]
    # One pause of the garbage collector for the whole export, ended once the syntax trees
    # are released: ended earlier, its first collection walks every object of every tree.
    with _gc_paused():
        prep = _prepare_files(notebook, out_dir, name, secret_params)
        warnings: list[str] = []
        try:
            version, manifest, is_new = _write(prep, modules, options or TargetOptions(), warnings)
        except OSError as exc:
            raise ExportError(
                f"cannot write the package ({exc.strerror or exc})",
                location=str(prep.folder),
                fix="check that the output folder is a writable directory (-o)",
            ) from None
        result = ExportResult(
            name=prep.name,
            version=version,
            content_hash=prep.content_hash,
            folder=prep.folder,
            new_version=is_new,
            manifest=manifest,
            diagnostics=list(prep.graph.diagnostics),
            warnings=warnings,
        )
        del prep
    return result


def _write(
    prep: _Prepared, targets: list[ModuleType], options: TargetOptions, warnings: list[str]
) -> tuple[int, ExportManifest, bool]:
    """Write the package and record its version, under the export's lock."""
    out = prep.folder.parent
    with export_lock(out, prep.name):
        # The history's .airflowignore is synced to disk while the package is prepared; it
        # is there before the package or its copy in the history is written.
        ignoring = _Background(ignore_history_in_airflow, history_dir(out, prep.name).parent)
        try:
            index = read_index(out, prep.name)
            version, is_new = assign_version(index, prep.content_hash)
            files = _finalise(prep.files, version)
            manifest = _manifest(prep, files, version)
            if targets:
                files, manifest = _with_targets(prep, files, manifest, targets, options, warnings)
            files[f"{prep.name}/{MANIFEST_FILE}"] = manifest.to_json()
        finally:
            ignoring.wait()
        ignoring.result()
        # The package and its copy in the history are written side by side: the writes wait
        # on the disk, not on each other. A copy made for a failed package is removed when
        # it is a new version (the history holds no other copy of it).
        copy = history_dir(out, prep.name) / f"v{version}"
        copying = _Background(write_tree, files, copy)
        try:
            write_tree(files, prep.folder)
        except BaseException:
            copying.wait()
            if is_new:
                shutil.rmtree(copy, ignore_errors=True)
            raise
        copying.result()
        entry = VersionEntry(
            version=version,
            content_hash=prep.content_hash,
            source_path=manifest.source.path,
            source_sha256=manifest.source.sha256,
            created_at=now(),
            steps=len(prep.graph.steps),
        )
        if not is_new:  # keep the first creation time of a version
            entry.created_at = next(e.created_at for e in index.versions if e.version == version)
        record_version(out, index, entry, prep.folder, airflow_ignored=True, copied=True)
    return version, manifest, is_new


class _Background:
    """`function(*args)` run in a thread (a disk sync, which releases the GIL); `wait()` for
    it to end, `result()` to raise what it raised."""

    def __init__(self, function: Callable[..., object], *args: object) -> None:
        self._error: BaseException | None = None

        def run() -> None:
            try:
                function(*args)
            except BaseException as exc:  # re-raised by result()
                self._error = exc

        self._thread = threading.Thread(target=run, name="nbops-export-sync", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> None:
        self.wait()
        if self._error is not None:
            raise self._error


def _with_targets(
    prep: _Prepared,
    files: dict[str, str],
    manifest: ExportManifest,
    targets: list[ModuleType],
    options: TargetOptions,
    warnings: list[str],
) -> tuple[dict[str, str], ExportManifest]:
    """Add the orchestrator files: write the package to a staging folder, run it once to
    find how its values travel, render each target there and compile what it compiles."""
    notebook = prep.graph.notebook.path
    check_step_names(manifest, options, str(find_root(notebook.parent) / "pyproject.toml"))
    options = with_tag_resources(options, manifest, step_resources(prep.graph.notebook))
    files = {**files, f"{prep.name}/_nbops_io.py": artifact_io_source()}
    with tempfile.TemporaryDirectory(prefix="nbops-target-") as tmp:
        staging = Path(tmp) / prep.name
        _write_plain(files, staging)
        # The run that probes the package takes the secrets' defaults from its environment
        # (in memory only), unless they are set already.
        secrets = {
            secret_env_var(p.name): (
                p.default if isinstance(p.default, str) else json.dumps(p.default, default=repr)
            )
            for p in prep.graph.parameters
            if p.name in prep.secret
        }
        entries, errors = probe_outputs(staging, prep.name, notebook.parent, secrets)
        require_passable(errors, consumers(manifest), str(notebook))
        for value, reason in errors.items():
            warnings.append(
                f"`{value}` ({reason}) is not passed on by the orchestrator pipeline: "
                "no later step reads it and it has no safe serialisation"
            )
        ctx = TargetContext(
            name=prep.name,
            manifest=manifest,
            artifacts=entries,
            options=options,
            requirements=pinned_requirements(manifest.requirements),
            configure="def configure(" in files.get(f"{prep.name}/common.py", ""),
            source=str(notebook),
        )
        hashed: dict[str, str] = {}
        for target in targets:
            hashed.update(format_files(target.render(ctx)))
        _write_plain(hashed, staging)
        built: dict[str, str] = {}
        for target in targets:
            built.update(target.build(ctx, staging))
    all_files = {**files, **hashed}
    manifest = manifest.model_copy(
        update={
            "targets": [t.__name__.rsplit(".", 1)[-1] for t in targets],
            "artifacts": entries,
            "files": {
                rel: _sha256(text.encode("utf-8")) for rel, text in sorted(all_files.items())
            },
        }
    )
    return {**all_files, **built}, manifest


def _write_plain(files: dict[str, str], folder: Path) -> None:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")


def check_export(
    notebook: str | Path,
    out_dir: str | Path | None = None,
    *,
    name: str | None = None,
    secret_params: Sequence[str] | None = None,
) -> ExportResult:
    """Whether the exported package is up to date with the notebook; writes nothing.

    Raises StaleExportError when the package is missing, was exported from different code
    or parameters, or its files were edited since.
    """
    with _gc_paused():  # as in export_notebook: the trees are released before it ends
        prep = _prepare_files(notebook, out_dir, name, secret_params)
        try:
            return _checked(prep, notebook)
        finally:
            del prep


def _checked(prep: _Prepared, notebook: str | Path) -> ExportResult:
    manifest_path = prep.folder / prep.name / MANIFEST_FILE
    hint = f"run `nbops export {notebook}` and commit the result"
    if not manifest_path.exists():
        raise StaleExportError("no exported package here yet", location=str(prep.folder), fix=hint)
    try:
        on_disk = ExportManifest.model_validate_json(manifest_path.read_text("utf-8"))
    except ValueError:
        raise StaleExportError(
            "the package's manifest.json is damaged", location=str(manifest_path), fix=hint
        ) from None
    targets = "".join(f" --target {t}" for t in on_disk.targets)
    hint = f"run `nbops export {notebook}{targets}` and commit the result"
    if on_disk.content_hash != prep.content_hash:
        raise StaleExportError(
            f"export version {on_disk.version} is stale: the notebook's tagged code or "
            "parameters changed since it was exported",
            location=str(prep.folder),
            fix=hint,
        )
    for rel, sha in on_disk.files.items():
        path = prep.folder / rel
        if not path.exists() or _sha256(path.read_bytes()) != sha:
            raise StaleExportError(
                f"{rel} was changed or removed after export version {on_disk.version}",
                location=str(prep.folder),
                fix=f"generated files are not edited by hand; {hint}",
            )
    return ExportResult(
        name=prep.name,
        version=on_disk.version,
        content_hash=prep.content_hash,
        folder=prep.folder,
        new_version=False,
        manifest=on_disk,
        diagnostics=list(prep.graph.diagnostics),
    )


def _finalise(files: dict[str, str], version: int) -> dict[str, str]:
    return {rel: text.replace(VERSION_PLACEHOLDER, str(version)) for rel, text in files.items()}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(prep: _Prepared, files: dict[str, str], version: int) -> ExportManifest:
    """The manifest of `files` (`prep.files` with `version` in them)."""
    graph, name = prep.graph, prep.name
    spans = _cell_spans(files, graph)
    # The steps, their cells and inputs as the fields of StepEntry, CellSpan and
    # StepInputEntry: the manifest's validation makes them those models, as their
    # constructors would, in one call rather than one for each of hundreds of cells.
    steps: list[dict[str, object]] = []
    for step in graph.steps:
        file, function = prep.rendered.step_functions[step.key]
        steps.append(
            {
                "key": step.key,
                "role": step.role.value,
                "function": f"{Path(file).stem}:{function}",
                "cells": [spans[a.cell.cell_id] for a in step.cells],
                "inputs": [
                    {"name": i.name, "source": i.source, "step": i.step} for i in step.inputs
                ],
                "outputs": step.outputs,
            }
        )
    nb = graph.notebook
    source_path = Path(os.path.relpath(nb.path.resolve(), prep.folder.resolve())).as_posix()
    return ExportManifest.model_validate(
        dict(
            name=name,
            version=version,
            content_hash=prep.content_hash,
            nbops_version=nbops_version,
            source=SourceEntry(
                path=source_path,
                sha256=nb.sha256,
                format=nb.format,
                kernel=nb.kernel_name,
                data_dir=Path(source_path).parent.as_posix(),
            ),
            parameters=[
                ParameterEntry(
                    name=p.name,
                    type=p.type_source,
                    default=None if p.name in prep.secret else p.default,
                    description=p.description,
                    secret=p.name in prep.secret,
                    env=secret_env_var(p.name) if p.name in prep.secret else None,
                )
                for p in graph.parameters
            ],
            setup_cells=[spans[a.cell.cell_id] for a in graph.setup if a.cell.cell_id in spans],
            steps=steps,
            metrics_from=metric_names(graph, prep.rendered.metrics),
            metrics=[
                MetricEntry(
                    name=m.name,
                    step=m.step,
                    value=m.value,
                    expression=m.expression,
                    cell=m.headline,
                )
                for m in prep.rendered.metrics
            ],
            requirements=_requirements(graph),
            local_modules=list(graph.local_modules),
            files={rel: _sha256(text.encode("utf-8")) for rel, text in sorted(files.items())},
        )
    )


def _cell_spans(files: dict[str, str], graph: StepGraph) -> dict[str, dict[str, object]]:
    """Find each cell's lines: the statements of the generated code that follow the
    `# cell <id>` marker the renderer put before them, up to the next marker or the end of
    their block, without the `return` a step function ends with. Read from the statement
    layout of the formatted file (nbops.export.layout: the syntax tree's lines, read without
    building the tree), so wrapped signatures and setup cells split between module level and
    configure() are measured as they are. A cell split in two is located by its first part.
    Each span is given as CellSpan's fields (the manifest's validation makes it one).
    """
    # Each cell's index in the notebook, by its id.
    cells = {a.cell.cell_id: a.cell.index for s in graph.steps for a in s.cells}
    cells.update({a.cell.cell_id: a.cell.index for a in graph.setup})
    marked: dict[str, tuple[int, list[tuple[int, str]]]] = {}  # rel -> (line count, markers)
    for rel, text in files.items():
        if not rel.endswith(".py") or "# cell " not in text:
            continue
        lines = text.splitlines()
        markers = []
        # A substring test first, in a comprehension: most lines are code.
        for n, line in [(n, line) for n, line in enumerate(lines, start=1) if "# cell " in line]:
            stripped = line.strip()
            if stripped.startswith("# cell ") and (cid := stripped[len("# cell ") :]) in cells:
                markers.append((n, cid))
        if markers:
            marked[rel] = (len(lines), markers)
    layouts = _layouts({rel: files[rel] for rel in marked})
    spans: dict[str, dict[str, object]] = {}
    for rel, (count, markers) in marked.items():
        for (n, cid), end in zip(markers, _marker_ends(layouts[rel], markers, count), strict=True):
            if cid not in spans:  # a cell split in two: its first part
                spans[cid] = {
                    "index": cells[cid],
                    "id": cid,
                    "file": rel,
                    "first_line": n + 1,
                    "last_line": end,
                }
    return spans


def _marker_ends(blocks: list[Block], markers: list[tuple[int, str]], count: int) -> list[int]:
    """For each marker (line, cell id) of a module (`count` lines, `blocks` its
    statement_blocks), the last line of the cell's statements: those of the block holding
    the marker that start after it and end before the next marker (or the module's end);
    the marker's own line when there is none. The statements of a block do not overlap, so
    their last lines ascend as their first lines do, and a bisection finds the last one.
    """
    *functions, (_, _, module_starts, module_ends) = blocks
    firsts = [first for first, _, _, _ in functions]  # in order, not overlapping
    stops = [n for n, _ in markers]  # each marker's: the next one's line, or past the end
    stops.append(count + 1)
    ends_of = []
    for (n, _), stop in zip(markers, stops[1:], strict=True):
        # The function whose lines hold the marker, else the module.
        f = bisect.bisect_right(firsts, n) - 1
        if f >= 0 and n <= functions[f][1]:
            _, _, starts, ends = functions[f]
        else:
            starts, ends = module_starts, module_ends
        lo = bisect.bisect_right(starts, n)
        hi = bisect.bisect_left(starts, stop, lo)
        # A function holding the next marker is generated code (configure()), not the
        # cell's: the statements that end before it.
        k = bisect.bisect_left(ends, stop, lo, hi)
        ends_of.append(ends[k - 1] if k > lo else n)
    return ends_of


LINES_CACHE_KIND = "lines"
LINES_CACHE_ENTRIES = 64  # one per package exported lately, as the format cache


def _layouts(marked: dict[str, str]) -> dict[str, list[Block]]:
    """`statement_blocks` of the modules that hold cell markers, kept between exports in one
    entry per package (nbops.export.cache): a re-export of an unchanged notebook reads them
    back instead of scanning every module again."""
    digest = hashlib.sha256(f"{CACHE_VERSION}\0layout\0{sys.version_info[:2]}\0".encode())
    for rel, text in marked.items():  # the bytes of rel, NUL, text, NUL, without joining them
        digest.update(rel.encode() + b"\0")
        digest.update(text.encode())
        digest.update(b"\0")
    key = digest.hexdigest()
    kept = read_entry(LINES_CACHE_KIND, key)
    if _is_layouts(kept, marked):
        return {rel: [(a, b, starts, ends) for a, b, starts, ends in kept[rel]] for rel in marked}
    layouts = {rel: statement_blocks(text) for rel, text in marked.items()}
    if marked:
        write_entry(LINES_CACHE_KIND, key, layouts, LINES_CACHE_ENTRIES)
    return layouts


def _is_layouts(data: object, marked: dict[str, str]) -> TypeGuard[dict[str, list[Block]]]:
    """Whether cached data has the shape `_layouts` returns for these modules (a damaged
    entry is a miss)."""
    return (
        isinstance(data, dict)
        and data.keys() == marked.keys()
        and all(
            isinstance(blocks, list)
            and bool(blocks)
            and all(
                isinstance(b, list)
                and len(b) == 4
                and all(type(n) is int for n in b[:2])
                and all(isinstance(x, list) and all(type(n) is int for n in x) for x in b[2:])
                and len(b[2]) == len(b[3])
                and b[3] == sorted(b[3])  # statements' last lines ascend (_marker_ends)
                for b in blocks
            )
            for blocks in data.values()
        )
    )


def _requirements(graph: StepGraph) -> list[str]:
    stdlib = set(sys.stdlib_module_names)
    modules = {
        b.module.split(".")[0] for b in graph.imports.values() if not b.module.startswith(".")
    }
    used = {n for s in graph.steps for n in s.uses_imports} | set(graph.setup_imports())
    wanted = {graph.imports[n].module.split(".")[0] for n in used if n in graph.imports}
    local = set(graph.local_modules)  # copied into the package, not installed
    return sorted({m for m in modules & wanted if m not in stdlib | local} | {"pydantic"})
