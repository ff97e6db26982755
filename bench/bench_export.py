"""Benchmark of `nbops export` on large synthetic notebooks.

What it measures
----------------
It builds tagged notebooks with nbformat's own constructors: one `setup` cell (imports), one
`parameters` cell, then tagged cells spread over several named transform steps
(`transform:s0` ... `transform:s15`), a `train` step and an `evaluate` step, plus an untagged
exploration cell every tenth cell. Every tagged cell defines a new variable from the previous
one and from a random earlier one (seeded), so the data-flow analysis resolves real inputs
and outputs across steps. The generated code is plain arithmetic, so the exported pipeline
is cheap to run.

It then times `nbops.export.exporter.export_notebook` (best of several repeats, each into a
fresh temporary folder, made and removed outside the timing: only the call is timed) for
500 and 1000 cells, and a reference measured in the same run: `nbformat.read` of the
500-cell notebook plus `ast.parse` of every cell. It prints:

- the export time for 500 cells (target: under 1 s);
- the export time for 1000 cells;
- the growth t(1000) / t(500) (target: at most 2.2, i.e. linear);
- the export time relative to the reference, best over best, with the spread of the
  interleaved pairs (target: at most 3x; machine-independent);
- the same for an export with nbops's export cache empty (`XDG_CACHE_HOME` pointed at a new
  folder each time): the first export of this code, which runs ruff (nbops.export.cache keeps
  ruff's formatting and the line layout of the formatted modules, so the repeats above reuse
  them, as a re-export or `nbops export --check` of an unchanged notebook does); target: at
  most 3x the same reference (issue 16), as for the line above.

Missed targets are marked MISSED. The script is a report, not a test: it always exits 0.

Run it from the repository root::

    .venv/bin/python bench/bench_export.py
"""

from __future__ import annotations

import ast
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from nbops.export.exporter import export_notebook

SIZES = (500, 1000)
REPEATS = 5
TRANSFORM_STEPS = 16
EXPLORE_EVERY = 10  # every tenth body cell is an untagged exploration cell
TARGET_500_S = 1.0
TARGET_GROWTH = 2.2
TARGET_RATIO = 3.0  # export of 500 cells against nbformat.read + ast.parse of them (issue 16)
SEED = 20240501


def _tagged_cell(source: str, tag: str | None) -> NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if tag is not None:
        cell.metadata["tags"] = [tag]
    return cell


def _step_tag(position: int, tagged_total: int) -> str:
    """Transform steps take the first 90% of tagged cells; train and evaluate 5% each."""
    train_start = int(tagged_total * 0.90)
    evaluate_start = int(tagged_total * 0.95)
    if position >= evaluate_start:
        return "evaluate"
    if position >= train_start:
        return "train"
    per_step = max(1, -(-train_start // TRANSFORM_STEPS))  # ceiling division
    return f"transform:s{position // per_step}"


def build_notebook(n_cells: int, seed: int = SEED) -> NotebookNode:
    """A notebook of exactly `n_cells` code cells, tagged as described in the module docs."""
    rng = random.Random(seed)
    cells = [
        _tagged_cell("import math\nimport statistics", "setup"),
        _tagged_cell("scale = 2\noffset = 1.5\nlabel = 'bench'", "parameters"),
    ]
    body = n_cells - len(cells)
    explore = {i for i in range(body) if i % EXPLORE_EVERY == EXPLORE_EVERY - 1}
    tagged_total = body - len(explore)
    names: list[str] = []
    position = 0
    for i in range(body):
        if i in explore:
            seen = rng.choice(names) if names else "scale"
            cells.append(_tagged_cell(f"_peek_{i} = {seen} * 2\nprint(label, _peek_{i})", None))
            continue
        tag = _step_tag(position, tagged_total)
        prefix = "score" if tag == "evaluate" else "model" if tag == "train" else "v"
        name = f"{prefix}{position}"
        if not names:
            source = f"{name} = math.sqrt(scale + offset)"
        else:
            previous, other = names[-1], rng.choice(names)
            source = (
                f"# step {tag}, cell {position}\n"
                f"{name} = math.sqrt(abs({previous} * scale - {other}) + offset)"
            )
            if position % 7 == 0:
                source += f"\n{name} = statistics.fmean([{name}, {other}, offset])"
        cells.append(_tagged_cell(source, tag))
        names.append(name)
        position += 1
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def best_of(repeats: int, run: Callable[[], float]) -> float:
    """The fastest of `repeats` timings `run()` returns, in seconds."""
    return min(run() for _ in range(repeats))


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def time_export(notebook: Path, repeats: int = REPEATS) -> float:
    """Best export time of `notebook`, each repeat into a fresh temporary output folder
    (made and removed outside the timing)."""

    def once() -> float:
        with tempfile.TemporaryDirectory(prefix="nbops-bench-out-") as out:
            return _timed(lambda: export_notebook(notebook, out, name="bench"))

    return best_of(repeats, once)


def time_cold_export(notebook: Path, repeats: int = REPEATS) -> float:
    """Best export time with the export cache empty (a new XDG_CACHE_HOME each repeat; the
    folders are made and removed outside the timing)."""

    def once() -> float:
        saved = os.environ.get("XDG_CACHE_HOME")
        with (
            tempfile.TemporaryDirectory(prefix="nbops-bench-cache-") as cache,
            tempfile.TemporaryDirectory(prefix="nbops-bench-out-") as out,
        ):
            os.environ["XDG_CACHE_HOME"] = cache
            try:
                return _timed(lambda: export_notebook(notebook, out, name="bench"))
            finally:
                if saved is None:
                    os.environ.pop("XDG_CACHE_HOME", None)
                else:
                    os.environ["XDG_CACHE_HOME"] = saved

    return best_of(repeats, once)


def time_reference(notebook: Path, repeats: int = REPEATS) -> float:
    """Best time to read the notebook with nbformat and parse every cell with `ast`."""

    def read_and_parse() -> None:
        nb = nbformat.read(notebook, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                ast.parse(cell.source)

    def once() -> float:
        return _timed(read_and_parse)

    return best_of(repeats, once)


def _verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="nbops-bench-") as tmp:
        paths: dict[int, Path] = {}
        for n in SIZES:
            paths[n] = Path(tmp) / f"bench_{n}.ipynb"
            nbformat.write(build_notebook(n), paths[n])
        with tempfile.TemporaryDirectory(prefix="nbops-bench-warm-") as out:
            result = export_notebook(paths[SIZES[0]], out, name="bench")  # warm-up
            print(
                f"notebook {SIZES[0]} cells -> {len(result.manifest.steps)} steps, "
                f"{len(result.manifest.files)} files, "
                f"{sum(len(s.inputs) for s in result.manifest.steps)} step inputs"
            )
        # The reference is timed between the export repeats, so load on this shared machine
        # falls on both.
        ratios = []
        cold_ratios = []
        export_times: dict[int, float] = {}
        reference = float("inf")
        cold = float("inf")
        for _ in range(REPEATS):
            t_ref = time_reference(paths[SIZES[0]], repeats=1)
            t_exp = time_export(paths[SIZES[0]], repeats=1)
            t_cold = time_cold_export(paths[SIZES[0]], repeats=1)
            ratios.append(t_exp / t_ref)
            cold_ratios.append(t_cold / t_ref)
            reference = min(reference, t_ref)
            cold = min(cold, t_cold)
            export_times[SIZES[0]] = min(export_times.get(SIZES[0], t_exp), t_exp)
        export_times[SIZES[1]] = time_export(paths[SIZES[1]])

    small, large = SIZES
    t_small, t_large = export_times[small], export_times[large]
    growth = t_large / t_small
    print(f"python {sys.version.split()[0]}, best of {REPEATS} repeats")
    print(
        f"export {small} cells: {t_small:.2f} s (target < {TARGET_500_S:g} s) "
        f"{_verdict(t_small < TARGET_500_S)}"
    )
    print(f"export {large} cells: {t_large:.2f} s")
    print(
        f"growth t({large})/t({small}): {growth:.2f}x (target <= {TARGET_GROWTH:g}x) "
        f"{_verdict(growth <= TARGET_GROWTH)}"
    )
    print(f"reference (nbformat.read + ast.parse, {small} cells): {reference * 1000:.1f} ms")
    ratio = t_small / reference
    spread = f"{min(ratios):.1f}-{max(ratios):.1f}x"
    print(
        f"export / reference ({small} cells): {ratio:.1f}x, best over best "
        f"(interleaved pairs: {spread}) (target <= {TARGET_RATIO:g}x) "
        f"{_verdict(ratio <= TARGET_RATIO)}"
    )
    print(
        f"export with the export cache empty ({small} cells, runs ruff): {cold * 1000:.0f} ms, "
        f"{cold / reference:.1f}x the reference, best over best "
        f"(interleaved: {min(cold_ratios):.1f}-{max(cold_ratios):.1f}x) "
        f"(target <= {TARGET_RATIO:g}x, issue 16) {_verdict(cold / reference <= TARGET_RATIO)}"
    )
    one_step_growth()
    return 0


def one_step_growth() -> None:
    """The same sizes with every transform cell in one step: growth must stay linear there too."""
    global TRANSFORM_STEPS
    saved, TRANSFORM_STEPS = TRANSFORM_STEPS, 1
    try:
        with tempfile.TemporaryDirectory(prefix="nbops-bench-one-") as tmp:
            times = {}
            for n in SIZES:
                path = Path(tmp) / f"one_{n}.ipynb"
                nbformat.write(build_notebook(n), path)
                times[n] = time_export(path)
    finally:
        TRANSFORM_STEPS = saved
    small, large = SIZES
    growth = times[large] / times[small]
    print(
        f"one big step: {small} cells {times[small]:.2f} s, {large} cells {times[large]:.2f} s, "
        f"growth {growth:.2f}x (target <= {TARGET_GROWTH:g}x) {_verdict(growth <= TARGET_GROWTH)}"
    )


if __name__ == "__main__":
    sys.exit(main())
