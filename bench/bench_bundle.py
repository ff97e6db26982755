"""Benchmarks of a bundle in process, against references measured in the same run.

    .venv/bin/python bench/bench_bundle.py

A ColumnTransformer + HistGradientBoosting pipeline trained on 100k synthetic rows, bundled
with nbops (a notebook whose transform:features step derives one column). Prints:
- batch `bundle.predict` throughput against the raw pipeline on the same rows (the raw
  pipeline is given the step's output, so only nbops's own work differs) — target >= 0.97x.
  The two are timed in alternation (raw, bundle, bundle, raw, ...), best of each, so load
  from other processes falls on both; the share of a bundle call spent before the model
  (request checks and the serving step) is printed too;
- `load_bundle` time, sha256 verification included (target <= 0.5 s), next to a bare
  `skops.io.load` of the same model file.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
from nbformat.v4 import new_code_cell, new_notebook

ROWS = 100_000
TARGET = 0.97
PAIRS = 6  # alternating timings of each side


def best_of(repeats: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def alternating(
    pairs: int, first: Callable[[], object], second: Callable[[], object]
) -> tuple[float, float]:
    """Best times of two calls timed in alternation, each going first every other pair."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(pairs):
        for which in (0, 1) if i % 2 == 0 else (1, 0):
            run = first if which == 0 else second
            start = time.perf_counter()
            run()
            times[which].append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def notebook(folder: Path) -> Path:
    cells = [
        ("rows = 100000", ["parameters"]),
        (
            "import numpy as np\nimport pandas as pd\n"
            "rng = np.random.default_rng(0)\n"
            "raw = pd.DataFrame({'a': rng.normal(size=rows), 'b': rng.normal(size=rows) + 3,\n"
            "    'c': rng.choice(['x', 'y', 'z'], size=rows), 'd': rng.integers(0, 50, size=rows)})\n"
            "label = (raw['a'] + (raw['c'] == 'x') > 0.5).astype(int)",
            ["transform:load"],
        ),
        (
            "features = raw.assign(ratio=raw['a'] / raw['b'])[['a', 'b', 'ratio', 'c', 'd']]",
            ["transform:features"],
        ),
        (
            "from sklearn.compose import ColumnTransformer\n"
            "from sklearn.ensemble import HistGradientBoostingClassifier\n"
            "from sklearn.pipeline import Pipeline\n"
            "from sklearn.preprocessing import OneHotEncoder\n"
            "model = Pipeline([('prep', ColumnTransformer([('cat', OneHotEncoder(handle_unknown='ignore'), ['c'])],\n"
            "    remainder='passthrough')), ('gbm', HistGradientBoostingClassifier(max_iter=50, random_state=0))])\n"
            "model.fit(features, label)",
            ["train"],
        ),
    ]
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    for source, tags in cells:
        cell = new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    path = folder / "bench_model.ipynb"
    nbformat.write(nb, path)
    (folder / "pyproject.toml").write_text("[tool.nbops]\n")
    return path


def main() -> int:
    import skops.io

    from nbops.bundle.from_run import build_from
    from nbops.bundle.load import load_bundle
    from nbops.bundle.plan import import_exported_package
    from nbops.config import load_project
    from nbops.export.exporter import export_notebook

    with tempfile.TemporaryDirectory(prefix="nbops-bench-bundle-") as tmp:
        root = Path(tmp)
        path = notebook(root)
        project = load_project(root)
        export = export_notebook(path, root / "pipelines")
        package = import_exported_package(export.folder, export.name)
        results = package.run()
        model = results.model
        folder = build_from(path, model, {"rows": ROWS}, project=project)
        raw: pd.DataFrame = results.raw
        features = results.features

        bundle = load_bundle(folder)
        assert np.array_equal(bundle.predict(raw), model.predict(features))
        raw_time, bundle_time = alternating(
            PAIRS, lambda: model.predict(features), lambda: bundle.predict(raw)
        )
        before_model = best_of(PAIRS, lambda: bundle.transform(raw))
        ratio = raw_time / bundle_time
        print(
            f"batch predict, {len(raw):,} rows: raw pipeline {raw_time * 1000:.0f} ms, bundle "
            f"{bundle_time * 1000:.0f} ms (of which checks + serving step {before_model * 1000:.1f} ms)"
        )
        print(
            f"bundle throughput / raw: {ratio:.2f}x (target >= {TARGET:.2f}x) "
            f"{'OK' if ratio >= TARGET else 'MISSED'}"
        )

        load = best_of(5, lambda: load_bundle(folder))
        bare = best_of(
            5,
            lambda: skops.io.load(
                folder / "model.skops",
                trusted=skops.io.get_untrusted_types(file=folder / "model.skops"),
            ),
        )
        print(
            f"load_bundle: {load:.3f} s (target <= 0.5 s) {'OK' if load <= 0.5 else 'MISSED'}; bare skops load {bare:.3f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
