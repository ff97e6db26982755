"""The benchmark data of bench_stream.py: N rows x 12 columns as hive-partitioned Parquet
(`part=K/data.parquet`, 1M rows a file), seeded, written once into a cache folder and
re-used (a `_DONE` marker is written last, so a cut-short run is regenerated).

Columns: f0..f4 float64 (f1 with 1% nulls), n0, n1 int64, cat0 (8 values), cat1 (30
values) strings, y_true (0/1), y_pred (0/1), y_score (float64 in [0, 1]).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

FILE_ROWS = 1_000_000
CAT0 = [f"a{i}" for i in range(8)]
CAT1 = [f"b{i:02d}" for i in range(30)]


def part_frame(rows: int, seed: int, shift: float = 0.0):  # -> pyarrow.Table
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    f = [rng.normal(shift + i, 1.0 + i / 4, rows) for i in range(5)]
    f1 = pa.array(f[1], mask=rng.random(rows) < 0.01)
    cat0 = pa.DictionaryArray.from_arrays(
        pa.array(rng.integers(0, len(CAT0), rows).astype(np.int32)), pa.array(CAT0)
    ).cast(pa.string())
    cat1 = pa.DictionaryArray.from_arrays(
        pa.array(rng.integers(0, len(CAT1), rows).astype(np.int32)), pa.array(CAT1)
    ).cast(pa.string())
    y_true = (rng.random(rows) < 0.3).astype(np.int64)
    y_score = np.clip(0.3 * y_true + rng.beta(2, 4, rows), 0, 1)
    y_pred = (y_score > 0.5).astype(np.int64)
    return pa.table(
        {
            "f0": f[0],
            "f1": f1,
            "f2": f[2],
            "f3": f[3],
            "f4": f[4],
            "n0": rng.integers(0, 1000, rows),
            "n1": rng.poisson(20, rows).astype(np.int64),
            "cat0": cat0,
            "cat1": cat1,
            "y_true": y_true,
            "y_pred": y_pred,
            "y_score": y_score,
        }
    )


def ensure(root: Path, rows: int, seed: int = 16) -> Path:
    """The dataset of `rows` rows under `root` (made once)."""
    import pyarrow.parquet as pq

    folder = root / f"rows{rows}-seed{seed}"
    if (folder / "DONE").exists():  # the marker's first name: Parquet readers skip _DONE
        (folder / "DONE").rename(folder / "_DONE")
    if (folder / "_DONE").exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for k, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        part = folder / f"part={k:04d}"
        part.mkdir()
        pq.write_table(
            part_frame(n, seed * 100_003 + k), part / "data.parquet", row_group_size=1 << 18
        )
    (folder / "_DONE").write_text(str(rows))
    return folder


if __name__ == "__main__":
    import sys

    print(ensure(Path(sys.argv[1]), int(sys.argv[2])))
