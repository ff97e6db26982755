"""Benchmark of `nbops.bundle.serve` against in-process predict and `mlflow models serve`.

What it measures
----------------
A scikit-learn pipeline — a ColumnTransformer (one-hot encoding of 3 categorical columns,
3 numeric columns passed through, one with 2% nulls) and a HistGradientBoostingClassifier —
is trained on 100k synthetic rows. Then, in the same run, on loopback:

(a) raw: `pipeline.predict` on a one-row DataFrame, in process (p50 of a few hundred calls);
    the machine's speed drifts during a run, so the latency target compares it with nbops
    single-row requests measured in alternating blocks (raw, served, raw, ...);
(b) nbops: `create_app` on a stand-in bundle (the pipeline and the schema inferred from the
    training frame), served by uvicorn in a subprocess (`serve`); its startup time (process
    start to the first 200 from /health), then single-row POST /predict requests from 1 and
    from 4 concurrent clients (threads with keep-alive connections), ~5 s each: p50 latency
    and requests per second;
(c) mlflow: the same pipeline saved with `mlflow.sklearn.save_model` (with its signature) and
    served by `mlflow models serve --env-manager local` in a subprocess, measured the same
    way (`{"dataframe_records": [row]}`). If it cannot start here, the reason is printed
    and the comparison skipped. Both servers run side by side and are loaded in alternating
    1 s blocks, so a drift of the machine's speed falls on both alike.

Every response is checked against the in-process prediction for its row. Every load loop is
bounded in requests and time. Targets (MISSED when not met):

- nbops throughput with 4 clients >= 3x mlflow's;
- nbops single-row p50 <= raw predict p50 + 3 ms (both from the alternating blocks);
- nbops startup <= 3 s.

The script is a report, not a test: it always exits 0.

    .venv/bin/python bench/bench_serve.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROWS = 100_000
SEED = 20240601
CATEGORICAL = ["city", "plan", "device"]
NUMERIC = ["age", "income", "tenure"]
COLUMNS = [*NUMERIC, *CATEGORICAL]
TARGET_THROUGHPUT = 3.0
TARGET_LATENCY_MS = 3.0
TARGET_STARTUP_S = 3.0
MAX_REQUESTS = 50_000  # per load run, whatever the time
START_TIMEOUT = 120.0


def build_frame(n: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    income = rng.normal(50_000, 12_000, n)
    income[rng.random(n) < 0.02] = np.nan
    tenure = rng.exponential(3.0, n)
    city = rng.choice(np.array(["Oslo", "Lima", "Pune", "Kobe", "Accra"]), n)
    plan = rng.choice(np.array(["free", "pro", "max"]), n, p=[0.6, 0.3, 0.1])
    device = rng.choice(np.array(["ios", "android", "web", "tv"]), n)
    score = (
        (age > 55).astype(float)
        + (plan == "free") * 0.8
        + (city == "Lima") * 0.5
        - np.minimum(tenure, 6) / 6
        + np.nan_to_num((income - 50_000) / 40_000)
        + rng.normal(0, 0.5, n)
    )
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "tenure": tenure,
            "city": city,
            "plan": plan,
            "device": device,
            "churned": (score > 0.6).astype(np.int64),
        }
    )


def build_pipeline(frame: pd.DataFrame) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)],
                    remainder="passthrough",
                ),
            ),
            ("model", HistGradientBoostingClassifier(random_state=0)),
        ]
    )
    return pipeline.fit(frame[COLUMNS], frame["churned"])


# -- the stand-in bundle, served in a subprocess -------------------------------------------------


class BenchBundle:
    """The interface `create_app` needs, over a pipeline and a schema file."""

    def __init__(self, folder: Path) -> None:
        import joblib
        from pydantic import BaseModel

        from nbops.quality.schema import Schema

        class Manifest(BaseModel):
            name: str
            version: str
            task: str

        self.pipeline = joblib.load(folder / "model.joblib")  # our own file, written above
        self.schema = Schema.load(folder / "schema.json")
        self.request_columns = list(COLUMNS)
        self.manifest = Manifest(name="bench", version="1", task="classification")
        self.path = folder

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline.predict(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(frame))


def serve_main(folder: str, port: int) -> None:
    from nbops.bundle.serve import serve

    serve(BenchBundle(Path(folder)), host="127.0.0.1", port=port)


# -- measuring ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_status(port: int, path: str) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


def start(
    command: list[str], port: int, health: str, env: dict[str, str], log: Path
) -> tuple[Any, float]:
    """Start a server; (process, seconds from start to a 200 on `health`). Raises on failure."""
    t0 = time.perf_counter()
    with log.open("wb") as output:  # a file, not a pipe: a chatty server never blocks on it
        process = subprocess.Popen(
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so its children stop with it
        )
    while time.perf_counter() - t0 < START_TIMEOUT:
        if process.poll() is not None:
            error = log.read_text(errors="replace").strip()[-1500:]
            raise RuntimeError(f"exited with {process.returncode}: {error}")
        if get_status(port, health) == 200:
            return process, time.perf_counter() - t0
        time.sleep(0.005)
    stop(process)
    raise RuntimeError(f"no answer on {health} within {START_TIMEOUT:.0f} s")


def stop(process: Any) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # the group of the process started above
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def load(
    port: int,
    path: str,
    bodies: list[bytes],
    check: Any,
    clients: int,
    seconds: float,
) -> tuple[np.ndarray, float]:
    """Closed-loop load: `clients` threads, each sending one request after the other.
    Returns every request's latency (s) and the elapsed time (s)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    deadline = time.perf_counter() + seconds
    per_client = MAX_REQUESTS // clients
    barrier = threading.Barrier(clients)

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"content-type": "application/json"}
        barrier.wait()
        i = k
        try:
            while time.perf_counter() < deadline and len(latencies[k]) < per_client:
                body = bodies[i % len(bodies)]
                t = time.perf_counter()
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                latencies[k].append(time.perf_counter() - t)
                if response.status != 200 or not check(i % len(bodies), data):
                    failures.append(f"{response.status}: {data[:200]!r}")
                    return
                i += clients
        except OSError as e:
            failures.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"a request failed: {failures[0]}")
    return np.concatenate([np.asarray(x) for x in latencies]), elapsed


def raw_p50_ms(pipeline: Any, rows: list[pd.DataFrame], repeat: int = 500) -> float:
    for frame in rows[:20]:
        pipeline.predict(frame)
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        pipeline.predict(rows[i % len(rows)])
        times.append(time.perf_counter() - t)
    return float(np.percentile(times, 50) * 1000)


def batch_totals(port: int) -> tuple[float, float]:
    """nbops' `nbops_batch_size` sum and count: records predicted, and predict calls."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    values = dict(
        line.split(" ", 1)
        for line in text.splitlines()
        if line.startswith("nbops_batch_size_s") or line.startswith("nbops_batch_size_c")
    )
    return float(values["nbops_batch_size_sum"]), float(values["nbops_batch_size_count"])


def interleaved_p50_ms(
    pipeline: Any,
    rows: list[pd.DataFrame],
    port: int,
    bodies: list[bytes],
    check: Any,
    blocks: int = 10,
    size: int = 50,
) -> tuple[float, float]:
    """(raw p50, served p50) over alternating blocks of one-row predicts and requests."""
    raw: list[float] = []
    served: list[float] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json"}
    try:
        for block in range(blocks):
            for j in range(size):
                i = (block * size + j) % len(rows)
                t = time.perf_counter()
                pipeline.predict(rows[i])
                raw.append(time.perf_counter() - t)
            for j in range(size):
                i = (block * size + j) % len(bodies)
                t = time.perf_counter()
                conn.request("POST", "/predict", body=bodies[i], headers=headers)
                response = conn.getresponse()
                data = response.read()
                served.append(time.perf_counter() - t)
                if response.status != 200 or not check(i, data):
                    raise RuntimeError(f"a request failed: {response.status}: {data[:200]!r}")
    finally:
        conn.close()
    return float(np.percentile(raw, 50) * 1000), float(np.percentile(served, 50) * 1000)


@dataclass
class Target:
    name: str
    port: int
    path: str
    bodies: list[bytes]
    check: Any
    latencies: dict[int, list[np.ndarray]] = field(default_factory=dict)
    elapsed: dict[int, float] = field(default_factory=dict)
    batches: dict[int, list[float]] = field(default_factory=dict)

    def figures(self, clients: int) -> dict[str, float]:
        every = np.concatenate(self.latencies[clients])
        return {
            "requests": float(every.size),
            "p50_ms": float(np.percentile(every, 50) * 1000),
            "p99_ms": float(np.percentile(every, 99) * 1000),
            "rps": every.size / self.elapsed[clients],
        }


def measure(targets: list[Target], seconds: float, rounds: int = 5) -> None:
    """Load each target with 1, then 4, clients for `seconds` in all, in alternating blocks
    (so a drift of the machine's speed falls on every target alike)."""
    for clients in (1, 4):
        for target in targets:
            load(target.port, target.path, target.bodies, target.check, clients, 0.5)  # warm up
            target.latencies[clients], target.elapsed[clients] = [], 0.0
            target.batches[clients] = [0.0, 0.0]
        for _ in range(rounds):
            for target in targets:
                before = batch_totals(target.port) if target.name == "nbops" else None
                latencies, elapsed = load(
                    target.port, target.path, target.bodies, target.check, clients, seconds / rounds
                )
                target.latencies[clients].append(latencies)
                target.elapsed[clients] += elapsed
                if before is not None:
                    after = batch_totals(target.port)
                    target.batches[clients][0] += after[0] - before[0]
                    target.batches[clients][1] += after[1] - before[1]
        for target in targets:
            figures = target.figures(clients)
            records, calls = target.batches[clients]
            batching = f", {records / calls:.2f} records per predict call" if calls else ""
            print(
                f"  {target.name:<6} {clients} client{'s' if clients > 1 else ' '}: "
                f"p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms  "
                f"{figures['rps']:7.0f} req/s  ({figures['requests']:.0f} requests{batching})"
            )


def save_mlflow_model(
    pipeline: Any, test: pd.DataFrame, expected: np.ndarray, folder: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mlflow.sklearn
        import skops.io
        from mlflow.models import infer_signature

        signature = infer_signature(test, expected)
        # our own model: trust the types skops flags (the HGB tree predictor)
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
        mlflow.sklearn.save_model(
            pipeline, str(folder), signature=signature, skops_trusted_types=trusted
        )


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve", nargs=2, metavar=("FOLDER", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_main(args.serve[0], int(args.serve[1]))
        return
    seconds = min(max(args.seconds, 0.5), 30.0)

    import joblib

    from nbops.quality.schema import infer_schema

    print(f"training on {ROWS:,} rows ...", flush=True)
    frame = build_frame()
    pipeline = build_pipeline(frame)
    test = build_frame(400, seed=SEED + 1)[COLUMNS]
    expected = pipeline.predict(test)
    rows = [test.iloc[[i]] for i in range(len(test))]
    records = []
    for row in test.to_dict(orient="records"):
        records.append(
            {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}
        )

    workdir = Path(tempfile.mkdtemp(prefix="nbops-bench-serve-"))
    processes: list[Any] = []
    try:
        joblib.dump(pipeline, workdir / "model.joblib")
        infer_schema(frame[COLUMNS], name="bench").save(workdir / "schema.json")

        raw = raw_p50_ms(pipeline, rows)
        print(f"  raw    in-process predict, one row: p50 {raw:6.2f} ms")

        # -- start both servers
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        port = free_port()
        command = [sys.executable, __file__, "--serve", str(workdir), str(port)]
        nbops_process, nbops_start = start(command, port, "/health", env, workdir / "nbops.log")
        processes.append(nbops_process)
        print(f"  nbops  startup (process start -> /health ok): {nbops_start:.2f} s")

        def check(i: int, data: bytes) -> bool:
            return bool(json.loads(data)["predictions"] == [int(expected[i])])

        nbops = Target(
            "nbops",
            port,
            "/predict",
            [json.dumps({"records": [r]}).encode() for r in records],
            check,
        )
        targets = [nbops]
        mlflow: Target | None = None
        mlflow_start = None
        try:
            model_dir = workdir / "mlflow-model"
            save_mlflow_model(pipeline, test, expected, model_dir)
            executable = Path(sys.executable).parent / "mlflow"
            if not executable.exists():
                found = shutil.which("mlflow")
                if found is None:
                    raise RuntimeError("the mlflow command is not installed")
                executable = Path(found)
            port = free_port()
            path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            mlflow_command = [
                str(executable), "models", "serve", "-m", str(model_dir),
                "--env-manager", "local", "-p", str(port), "--host", "127.0.0.1",
            ]  # fmt: skip
            mlflow_process, mlflow_start = start(
                mlflow_command, port, "/ping", {**env, "PATH": path}, workdir / "mlflow.log"
            )
            processes.append(mlflow_process)
            print(f"  mlflow startup (process start -> /ping ok): {mlflow_start:.2f} s")
            bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in records]
            mlflow = Target("mlflow", port, "/invocations", bodies, check)
            load(port, mlflow.path, bodies, check, 1, 0.2)  # it answers correctly
            targets.append(mlflow)
        except Exception as e:
            print(f"  mlflow models serve cannot be measured here, comparison skipped: {e}")
            mlflow = None

        # -- load, in alternating blocks
        measure(targets, seconds)
        paired_raw, paired_nbops = interleaved_p50_ms(
            pipeline, rows, nbops.port, nbops.bodies, check
        )
        print(
            f"  alternating blocks, one row: raw predict p50 {paired_raw:6.2f} ms, "
            f"nbops request p50 {paired_nbops:6.2f} ms"
        )

        print()
        print("targets:")
        ours = {clients: nbops.figures(clients) for clients in (1, 4)}
        if mlflow is not None:
            theirs = {clients: mlflow.figures(clients) for clients in (1, 4)}
            ratio = ours[4]["rps"] / theirs[4]["rps"]
            print(
                f"  throughput, 4 clients: nbops {ours[4]['rps']:.0f} req/s vs mlflow "
                f"{theirs[4]['rps']:.0f} req/s = {ratio:.2f}x  (target >= "
                f"{TARGET_THROUGHPUT:.0f}x)  {verdict(ratio >= TARGET_THROUGHPUT)}"
            )
            one = ours[1]["rps"] / theirs[1]["rps"]
            print(f"  (throughput, 1 client: {one:.2f}x mlflow's)")
        else:
            print("  throughput against mlflow: skipped (mlflow models serve did not run)")
        gap = paired_nbops - paired_raw
        print(
            f"  single-row p50: nbops {paired_nbops:.2f} ms vs raw predict {paired_raw:.2f} ms "
            f"= {gap:+.2f} ms  (target <= +{TARGET_LATENCY_MS:.0f} ms)  "
            f"{verdict(gap <= TARGET_LATENCY_MS)}"
        )
        if mlflow is not None:
            print(f"  (mlflow single-row p50: {theirs[1]['p50_ms']:.2f} ms)")
        print(
            f"  startup: nbops {nbops_start:.2f} s  (target <= {TARGET_STARTUP_S:.0f} s)  "
            f"{verdict(nbops_start <= TARGET_STARTUP_S)}"
            + (f"; mlflow {mlflow_start:.2f} s" if mlflow_start is not None else "")
        )
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
