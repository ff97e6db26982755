"""Benchmark of data larger than memory: `validate` and `slice_metrics` streamed over
partitioned Parquet against the in-memory path on the same rows.

What it measures
----------------
N rows (default 50M) x 12 columns (5 float, 2 integer, 2 string categoricals, y_true,
y_pred, y_score; see bench/_stream_data.py) written once as hive-partitioned Parquet (1M
rows a file) into a cache folder (`--cache`, default /tmp/nbops-stream-bench), seeded, and
re-used. Its schema (with drift reference statistics) is inferred from 200k rows of the
same distribution. Each path runs in its own subprocess, which reports its wall time and its
peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`); the paths are interleaved (memory,
stream, memory, stream...) so that the machine's load falls on both:

- validate, in memory: `pd.read_parquet(folder)` then `validate(frame, schema)` (the time is
  printed with and without the read);
- validate, streamed: `validate(folder, schema)`;
- slice_metrics (accuracy, precision, recall, f1, roc_auc over cat0, cat1 and their cross),
  in memory (read + compute) and streamed.

It prints rows/s, peak RSS, the ratio streamed / in-memory throughput, the targets (peak RSS
of the streaming path under 1 GiB, throughput >= 0.8x the in-memory path), and the largest
differences between the two reports: every check's status and count, every drift statistic
(PSI, chi-square p-value, KS gap: exact, so 0 up to float rounding), every count metric and
its interval (exact), and roc_auc (sketched: within the stated bound). With `--rows` above
what fits in memory the in-memory path fails; it is then run on `--memory-rows` rows and the
figure says so. The script is a report, not a test: it always exits 0.

    .venv/bin/python bench/bench_stream.py --rows 50000000
    .venv/bin/python bench/bench_stream.py --rows 2000000 --repeats 2   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SLICES = ["cat0", "cat1"]
CROSS = [("cat0", "cat1")]
GIB = 1 << 30


def _child(mode: str, job: str, folder: str, schema_path: str, out: str) -> None:
    import resource
    import time

    import pandas as pd

    from nbops import slice_metrics
    from nbops.quality.schema import Schema
    from nbops.quality.validate import validate

    schema = Schema.load(schema_path)
    started = time.perf_counter()
    read_s = 0.0
    if mode == "memory":
        frame = pd.read_parquet(folder)
        frame = frame.drop(columns=["part"])
        read_s = time.perf_counter() - started
    if job == "validate":
        report = validate(frame if mode == "memory" else folder, schema)
        result = {
            c.name: {"status": c.status, "count": c.count, "stats": c.stats}
            for c in report.checks
            if c.kind != "unexpected_column"
        }
        rows = report.rows
    else:
        if mode == "memory":
            sr = slice_metrics(
                frame["y_true"], frame["y_pred"], frame["y_score"], SLICES, data=frame,
                cross=CROSS,
            )  # fmt: skip
        else:
            sr = slice_metrics("y_true", "y_pred", "y_score", SLICES, data=folder, cross=CROSS)
        result = {
            f"{r.name}|{r.metric}": {"value": r.value, "count": r.count, "ci_low": r.ci_low}
            for r in sr.rows
        }
        result["overall"] = sr.overall  # type: ignore[assignment]
        result["sketch_error"] = sr.sketch_error  # type: ignore[assignment]
        rows = sr.n_rows
    elapsed = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    Path(out).write_text(
        json.dumps(
            {"seconds": elapsed, "read_s": read_s, "rss": rss, "rows": rows, "result": result}
        )
    )


def _run(mode: str, job: str, folder: Path, schema: Path) -> dict | None:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [sys.executable, __file__, "--child", mode, job, str(folder), str(schema), out]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  {mode} {job}: failed (exit {done.returncode}) {done.stderr.strip()[-300:]}")
        return None
    data = json.loads(Path(out).read_text())
    os.unlink(out)
    return data


def _compare_validate(a: dict, b: dict) -> tuple[int, float, float]:
    """(checks whose status or count differ, largest drift-statistic difference, and the
    largest difference of any other float statistic)."""
    differ, drift, other = 0, 0.0, 0.0
    for name, x in a.items():
        y = b.get(name)
        if y is None or (x["status"], x["count"]) != (y["status"], y["count"]):
            differ += 1
            continue
        for key, value in x["stats"].items():
            other_value = y["stats"].get(key)
            if isinstance(value, float) and isinstance(other_value, float):
                d = abs(value - other_value)
                if name.split(".")[-1].startswith("drift"):
                    drift = max(drift, d)
                else:
                    other = max(other, d)
    return differ + len(set(b) - set(a)), drift, other


def _compare_slices(a: dict, b: dict) -> tuple[int, float, float]:
    differ, counts, auc = 0, 0.0, 0.0
    for name, x in a.items():
        if name in ("overall", "sketch_error"):
            continue
        y = b.get(name)
        if y is None or x["count"] != y["count"]:
            differ += 1
            continue
        if x["value"] is None or y["value"] is None:
            differ += x["value"] is not y["value"]
            continue
        d = abs(x["value"] - y["value"])
        if name.endswith("roc_auc"):
            auc = max(auc, d)
        else:
            counts = max(counts, d, abs((x["ci_low"] or 0) - (y["ci_low"] or 0)))
    return differ, counts, auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--memory-rows", type=int, default=None,
                        help="rows for the in-memory path (default: --rows)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cache", default="/tmp/nbops-stream-bench")
    parser.add_argument("--jobs", default="validate,slices")
    parser.add_argument("--modes", default="memory,stream", help="paths to run")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    import _stream_data

    from nbops.quality.schema import infer_schema

    cache = Path(args.cache)
    folder = _stream_data.ensure(cache, args.rows)
    mem_rows = args.memory_rows or args.rows
    mem_folder = folder if mem_rows == args.rows else _stream_data.ensure(cache, mem_rows)
    schema_path = cache / "schema.json"
    if not schema_path.exists():
        reference = _stream_data.part_frame(200_000, 1).to_pandas()
        infer_schema(reference, label="y_true").save(schema_path)
    print(f"load: {os.popen('uptime').read().strip()}")
    print(f"data: {args.rows:,} rows x 12 columns in {folder}")
    if mem_rows != args.rows:
        print(
            f"in-memory path on {mem_rows:,} rows ({mem_folder}): the throughput ratio is per row"
        )
    for job in args.jobs.split(","):
        best: dict[str, dict] = {}
        for _ in range(args.repeats):
            for mode in args.modes.split(","):
                found = _run(mode, job, mem_folder if mode == "memory" else folder, schema_path)
                if found and (mode not in best or found["seconds"] < best[mode]["seconds"]):
                    best[mode] = found
        print(f"\n{job}")
        for mode, r in best.items():
            extra = f" (read {r['read_s']:.1f} s)" if r["read_s"] else ""
            print(
                f"  {mode:6s}: {r['rows']:,} rows in {r['seconds']:.1f} s{extra} = "
                f"{r['rows'] / r['seconds'] / 1e6:.2f} M rows/s, peak RSS {r['rss'] / GIB:.2f} GiB"
            )
        if "memory" in best and "stream" in best:
            m, s = best["memory"], best["stream"]
            ratio = (s["rows"] / s["seconds"]) / (m["rows"] / m["seconds"])
            compute_only = m["seconds"] - m["read_s"]
            ratio_c = (s["rows"] / s["seconds"]) / (m["rows"] / compute_only)
            mark = "" if ratio >= 0.8 else "  MISSED"
            print(
                f"  throughput stream / memory (read + compute): {ratio:.2f}x (target >= 0.8){mark}"
            )
            print(
                f"  throughput stream / memory (compute only, frame already in RAM): {ratio_c:.2f}x"
            )
            if m["rows"] == s["rows"]:
                if job == "validate":
                    differ, drift, other = _compare_validate(m["result"], s["result"])
                    print(f"  checks differing in status or count: {differ}; max |drift stat diff| "
                          f"{drift:.3g} (exact); max |other stat diff| {other:.3g}")  # fmt: skip
                else:
                    differ, counts, auc = _compare_slices(m["result"], s["result"])
                    bound = s["result"]["sketch_error"].get("roc_auc")
                    print(f"  slices differing in count: {differ}; max |count-metric or CI diff| "
                          f"{counts:.3g} (exact); max |roc_auc diff| {auc:.3g} "
                          f"(sketched, stated bound {bound:.3g})")  # fmt: skip
        if "stream" in best:
            rss = best["stream"]["rss"]
            mark = "" if rss < GIB else "  MISSED"
            print(f"  streaming peak RSS {rss / GIB:.2f} GiB (target < 1 GiB){mark}")
    print(f"\nload: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
