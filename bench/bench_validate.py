"""Benchmark of `nbops.quality.validate` against plain numpy/pandas checks and pandera.

What it measures
----------------
A synthetic frame of 12 columns — 3 integer, 4 float (two with 1% nulls), 3 string
categoricals (pandas' default `str` dtype) and 2 booleans — at 1M and 5M rows. Its schema is
inferred with `infer_schema`, and the same frame is then validated (so every check passes and
every check runs to the end) by, in the same run:

(a) plain checks, written simply with numpy/pandas: dtype equality, null count where nulls are
    not allowed, `(x < lo) | (x > hi)` counted for numbers and `isin(allowed)` for categories;
(b) pandera, validating `to_pandera(schema)` (the same dtypes, nullability, ranges and allowed
    values) with `lazy=True`, so it also looks at every check;
(c) `nbops validate` with `drift=False` (the same checks as (a), plus a per-check report) and
    with drift (PSI and Kolmogorov-Smirnov on numbers, category PSI and new categories).
    nbops checks columns in threads by default (one per available CPU); its figure on one
    thread (`workers=1`) is printed too, for a like-for-like comparison with (a) and (b).

It prints rows per second (best of a few repeats, the contenders taking turns in each
repeat so that the machine's load falls on all alike) and the targets:

- nbops without drift >= 0.7x the plain checks' speed, and >= 1.3x pandera's;
- nbops with drift (the same checks plus PSI, chi-square and KS against the reference
  statistics the schema stores) >= 1.0x the plain checks' speed;
- the peak memory nbops allocates while validating (tracemalloc, measured in a separate
  pass), over the frame's `memory_usage(deep=True)`: <= 0.25x (with and without drift;
  pyarrow's own allocations for string columns are not seen by tracemalloc);
- `infer_schema` on the 5M frame against `DataFrame.describe()` on it: <= 2x.

Missed targets are marked MISSED. The script is a report, not a test: it always exits 0.

    .venv/bin/python bench/bench_validate.py
"""

from __future__ import annotations

import gc
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from nbops.quality.schema import Schema, infer_schema, to_pandera
from nbops.quality.validate import _workers, validate

SIZES = (1_000_000, 5_000_000)
SEED = 20240601
TARGET_PLAIN = 0.7
TARGET_PANDERA = 1.3
TARGET_DRIFT = 1.0
TARGET_MEMORY = 0.25
TARGET_INFER = 2.0


def build_frame(n: int, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 12_000, n)
    income[rng.random(n) < 0.01] = np.nan
    amount = rng.lognormal(3.0, 1.0, n)
    amount[rng.random(n) < 0.01] = np.nan
    cities = np.array(["Oslo", "Lima", "Pune", "Kyiv", "Accra", "Quito", "Perth", "Dhaka"])
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "visits": rng.poisson(4.0, n),
            "year": rng.integers(2000, 2025, n),
            "income": income,
            "score": rng.random(n),
            "amount": amount,
            "ratio": rng.beta(2.0, 5.0, n),
            "city": pd.Series(rng.choice(cities, n), dtype="str"),
            "plan": pd.Series(rng.choice(np.array(["free", "pro", "team"]), n), dtype="str"),
            "device": pd.Series(
                rng.choice(np.array(["ios", "android", "web", "tv", "car"]), n), dtype="str"
            ),
            "active": rng.random(n) < 0.3,
            "premium": rng.random(n) < 0.05,
        }
    )


# -- (a) plain checks ----------------------------------------------------------------------------


def plain_spec(schema: Schema) -> dict[str, tuple[str, bool, Any, Any, list[str] | None]]:
    return {c.name: (c.dtype or "", c.nullable, c.min, c.max, c.categories) for c in schema.columns}


def plain_checks(df: pd.DataFrame, spec: dict[str, tuple[str, bool, Any, Any, Any]]) -> int:
    """Dtype, nulls, range and allowed values, simply: returns the number of failed checks."""
    failed = 0
    for name, (dtype, nullable, lo, hi, allowed) in spec.items():
        if name not in df.columns:
            failed += 1
            continue
        s = df[name]
        if str(s.dtype) != dtype:
            failed += 1
            continue
        nulls = s.isna().to_numpy()
        if not nullable and np.count_nonzero(nulls):
            failed += 1
        if lo is not None or hi is not None:
            x = s.to_numpy()
            if np.count_nonzero((x < lo) | (x > hi)):
                failed += 1
        if allowed is not None and np.count_nonzero(~s.isin(allowed).to_numpy() & ~nulls):
            failed += 1
    return failed


# -- timing --------------------------------------------------------------------------------------


CPU_BEST: list[float] = []  # the last `best_interleaved` call's best CPU times (all threads)


def best_interleaved(repeats: int, *fns: Callable[[], object]) -> list[float]:
    """Each function's best time, the functions taking turns in every repeat, so a change
    in the machine's load falls on all of them alike. Their best CPU times (the process's,
    all threads: the work done, whatever the wait for a core) go to `CPU_BEST`."""
    best = [float("inf")] * len(fns)
    cpu = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
            cpu[i] = min(cpu[i], time.process_time() - start_cpu)
    CPU_BEST[:] = cpu
    return best


def peak_bytes(fn: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def run_size(n: int, frame: pd.DataFrame, schema: Schema) -> dict[str, float]:
    import pandera.pandas as pa

    repeats = 3 if n <= 1_000_000 else 2
    spec = plain_spec(schema)
    pandera_schema = to_pandera(schema)
    assert isinstance(pandera_schema, pa.DataFrameSchema)

    assert plain_checks(frame, spec) == 0
    report = validate(frame, schema, drift=False)
    assert report.passed, report.failed_checks
    pandera_schema.validate(frame, lazy=True)

    t_plain, t_pandera, t_nbops, t_single, t_drift = best_interleaved(
        repeats,
        lambda: plain_checks(frame, spec),
        lambda: pandera_schema.validate(frame, lazy=True),
        lambda: validate(frame, schema, drift=False),
        lambda: validate(frame, schema, drift=False, workers=1),
        lambda: validate(frame, schema),
    )
    cpu_plain, cpu_drift = CPU_BEST[0], CPU_BEST[4]
    frame_bytes = int(frame.memory_usage(deep=True).sum())
    mem_nbops = peak_bytes(lambda: validate(frame, schema, drift=False))
    mem_drift = peak_bytes(lambda: validate(frame, schema))

    threads = _workers(None, n, len(schema.columns))
    print(f"\n{n:,} rows x {frame.shape[1]} columns ({frame_bytes / 2**20:,.0f} MiB in memory)")
    for label, seconds in (
        ("(a) plain numpy/pandas checks", t_plain),
        ("(b) pandera", t_pandera),
        (f"(c) nbops validate, no drift ({threads} thr)", t_nbops),
        ("(c) nbops validate, no drift (1 thr)", t_single),
        (f"(c) nbops validate, drift ({threads} thr)", t_drift),
    ):
        print(f"  {label:40s} {seconds * 1000:9.1f} ms  {n / seconds / 1e6:8.1f} M rows/s")
    vs_plain, vs_pandera = t_plain / t_nbops, t_pandera / t_nbops
    print(
        f"  nbops (no drift) speed vs plain:   {vs_plain:6.2f}x  "
        f"(target >= {TARGET_PLAIN}x)  {verdict(vs_plain >= TARGET_PLAIN)}"
    )
    print(
        f"  nbops (no drift) speed vs pandera: {vs_pandera:6.2f}x  "
        f"(target >= {TARGET_PANDERA}x)  {verdict(vs_pandera >= TARGET_PANDERA)}"
    )
    print(
        f"  on one thread: vs plain {t_plain / t_single:.2f}x, vs pandera "
        f"{t_pandera / t_single:.2f}x  (for reference)"
    )
    vs_drift = t_plain / t_drift
    print(
        f"  nbops (drift) speed vs plain:      {vs_drift:6.2f}x  "
        f"(target >= {TARGET_DRIFT}x)  {verdict(vs_drift >= TARGET_DRIFT)}  "
        f"vs pandera: {t_pandera / t_drift:.2f}x"
    )
    print(
        f"  CPU time (all threads; for reference on a loaded machine): plain "
        f"{cpu_plain * 1000:.0f} ms, nbops drift {cpu_drift * 1000:.0f} ms = "
        f"{cpu_plain / cpu_drift:.2f}x (above 1: less work than the plain checks)"
    )
    for label, peak in (("no drift", mem_nbops), ("drift", mem_drift)):
        ratio = peak / frame_bytes
        print(
            f"  nbops ({label}) peak extra memory: {peak / 2**20:7.1f} MiB = {ratio:.3f}x the frame"
            f"  (target <= {TARGET_MEMORY}x)  {verdict(ratio <= TARGET_MEMORY)}"
        )
    return {"plain": t_plain, "pandera": t_pandera, "nbops": t_nbops, "drift": t_drift}


def main() -> int:
    warnings.simplefilter("ignore")  # a report: pandera's own deprecation notes are not ours
    frames: dict[int, pd.DataFrame] = {}
    for n in SIZES:
        frames[n] = build_frame(n)
        schema = infer_schema(frames[n], name=f"bench-{n}")
        run_size(n, frames[n], schema)

    big = frames[SIZES[-1]]
    t_infer, t_describe, t_describe_all = best_interleaved(
        2,
        lambda: infer_schema(big),
        lambda: big.describe(),
        lambda: big.describe(include="all"),
    )
    ratio = t_infer / t_describe
    print(f"\ninfer_schema on {len(big):,} rows")
    print(f"  infer_schema                      {t_infer * 1000:9.1f} ms")
    print(f"  DataFrame.describe()              {t_describe * 1000:9.1f} ms  (numeric columns)")
    print(f"  DataFrame.describe(include='all') {t_describe_all * 1000:9.1f} ms  (for reference)")
    print(
        f"  infer_schema / describe():        {ratio:6.2f}x  "
        f"(target <= {TARGET_INFER}x)  {verdict(ratio <= TARGET_INFER)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
