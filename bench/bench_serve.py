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
    start to the first 200 from /health), twice, interleaved with the reference `python -c
    "import sklearn"` (a floor every server of this model pays), and where that start goes
    (one more start with `-X importtime`: the import time by package, from each module's
    own time, and the rest: loading the model, building the app, the first answer). Then
    the same for `nbops serve BUNDLE` on the pipeline written as a real bundle (model.skops,
    loaded skops-checked against trusted types): its first start with an empty cache (it
    lists scikit-learn's estimators for skops and caches the list), then two more. Then
    single-row POST
    /predict requests from 1, 4 and 16 concurrent clients (threads with keep-alive
    connections), ~5 s each: p50 and p99 latency, requests per second, records per model
    call and the mean batching wait (from /metrics). Under 16 clients a side thread samples
    the server's resident memory and sends bodies over its 1 MB limit, each to be refused;
(c) mlflow: the same pipeline saved with `mlflow.sklearn.save_model` (with its signature) and
    served by `mlflow models serve --env-manager local` in a subprocess, measured the same
    way (`{"dataframe_records": [row]}`). If it cannot start here, the reason is printed
    and the comparison skipped. Both servers run side by side and are loaded in alternating
    1 s blocks, so a drift of the machine's speed falls on both alike;
(d) where the milliseconds go: the stages of a single-row request (JSON parsing, pydantic
    validation, columns, DataFrame, model, answer) timed in process on the server's own code,
    the rest (HTTP, event loop, the client; a lone client's request is predicted on the
    event loop, with no hop to the prediction thread) being the request p50 minus their sum.

Every response is checked against the in-process prediction for its row. Every load loop is
bounded in requests and time. Targets (MISSED when not met):

- nbops throughput >= 5x mlflow's with 4 clients, >= 10x with 16 (records per predict
  call printed: close to the number of clients);
- nbops single-row p50 <= raw predict p50 + 1.5 ms (both from the alternating blocks);
- nbops startup <= 1.5 s (and the same less the `import sklearn` reference, printed), for
  the stand-in bundle and for `nbops serve BUNDLE`;
- with 16 clients: p99 within 20x the 1-client p50 (or 100 ms), the server's memory
  growth within 64 MiB, every oversize body refused (413).

The script is a report, not a test: it always exits 0.

    .venv/bin/python bench/bench_serve.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
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
TARGET_THROUGHPUT = {4: 5.0, 16: 10.0}  # x mlflow's, by clients
TARGET_LATENCY_MS = 1.5
TARGET_STARTUP_S = 1.5
CLIENTS = (1, 4, 16)
MAX_BODY_BYTES = 1_000_000  # the server's default body limit
RSS_GROWTH_MIB = 64.0  # the most the server's memory may grow under 16 clients
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
    from threadpoolctl import threadpool_limits

    # one OpenMP thread: on a loaded machine a thread team spins against other processes
    with threadpool_limits(1):
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
    """In-process one-row predict, on one OpenMP thread as the server runs a small batch
    (a thread team for one row costs more than it saves, and spins on a loaded machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _raw_p50_ms(pipeline, rows, repeat)


def _raw_p50_ms(pipeline: Any, rows: list[pd.DataFrame], repeat: int) -> float:
    for frame in rows[:20]:
        pipeline.predict(frame)
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        pipeline.predict(rows[i % len(rows)])
        times.append(time.perf_counter() - t)
    return float(np.percentile(times, 50) * 1000)


def batch_totals(port: int) -> tuple[float, float, float]:
    """nbops' `nbops_batch_size` sum and count (records predicted, predict calls) and
    `nbops_batch_wait_seconds` sum (time batches waited for more requests)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    values = dict(
        line.split(" ", 1)
        for line in text.splitlines()
        if line.startswith(
            ("nbops_batch_size_s", "nbops_batch_size_c", "nbops_batch_wait_seconds_s")
        )
    )
    return (
        float(values["nbops_batch_size_sum"]),
        float(values["nbops_batch_size_count"]),
        float(values.get("nbops_batch_wait_seconds_sum", 0.0)),
    )


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
    from threadpoolctl import threadpool_limits

    raw: list[float] = []
    served: list[float] = []
    headers = {"content-type": "application/json"}
    for block in range(blocks):
        with threadpool_limits(1):  # as the server predicts a small batch
            for j in range(size):
                i = (block * size + j) % len(rows)
                t = time.perf_counter()
                pipeline.predict(rows[i])
                raw.append(time.perf_counter() - t)
        # a connection per block: on a slow machine the raw block outlasts keep-alive
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for j in range(-1, size):  # the first request (untimed) opens the connection
                i = (block * size + max(j, 0)) % len(bodies)
                t = time.perf_counter()
                conn.request("POST", "/predict", body=bodies[i], headers=headers)
                response = conn.getresponse()
                data = response.read()
                if j >= 0:
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


class Guard:
    """While nbops is under load: samples its resident memory and sends bodies over the size
    limit, each of which must be refused (413), from a thread of its own."""

    def __init__(self, pid: int, port: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.port = port
        self.rss = [self.process.memory_info().rss]
        self.sent = 0
        self.refused = 0
        self.other: list[str] = []
        self._stop = threading.Event()

    @contextlib.contextmanager
    def watching(self) -> Any:
        self._stop.clear()
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(60)
            self.rss.append(self.process.memory_info().rss)

    def _run(self) -> None:
        oversize = b'{"records": [' + b" " * MAX_BODY_BYTES + b"]}"
        while not self._stop.wait(0.1):
            self.rss.append(self.process.memory_info().rss)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request(
                    "POST", "/predict", body=oversize, headers={"content-type": "application/json"}
                )
                status = conn.getresponse().status
                conn.close()
            except OSError as e:
                self.other.append(repr(e))
                continue
            self.sent += 1
            if status == 413:
                self.refused += 1
            else:
                self.other.append(str(status))


def measure(targets: list[Target], seconds: float, nbops_pid: int, rounds: int = 5) -> Guard | None:
    """Load each target with 1, 4, then 16 clients for `seconds` each, in alternating blocks
    (so a drift of the machine's speed falls on every target alike). Under 16 clients, nbops'
    memory and body limit are watched (the Guard returned)."""
    guard: Guard | None = None
    for clients in CLIENTS:
        for target in targets:
            load(target.port, target.path, target.bodies, target.check, clients, 0.5)  # warm up
            target.latencies[clients], target.elapsed[clients] = [], 0.0
            target.batches[clients] = [0.0, 0.0, 0.0]
        for _ in range(rounds):
            for target in targets:
                nbops = target.name == "nbops"
                before = batch_totals(target.port) if nbops else None
                watch: Any = contextlib.nullcontext()
                if nbops and clients == max(CLIENTS):
                    guard = guard or Guard(nbops_pid, target.port)
                    watch = guard.watching()
                with watch:
                    latencies, elapsed = load(
                        target.port,
                        target.path,
                        target.bodies,
                        target.check,
                        clients,
                        seconds / rounds,
                    )
                target.latencies[clients].append(latencies)
                target.elapsed[clients] += elapsed
                if before is not None:
                    after = batch_totals(target.port)
                    for i in range(3):
                        target.batches[clients][i] += after[i] - before[i]
        for target in targets:
            figures = target.figures(clients)
            records, calls, waited = target.batches[clients]
            batching = (
                f", {records / calls:.2f} records per predict call, "
                f"mean batch wait {waited / calls * 1000:.2f} ms"
                if calls
                else ""
            )
            print(
                f"  {target.name:<6} {clients:>2} client{'s' if clients > 1 else ' '}: "
                f"p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms  "
                f"{figures['rps']:7.0f} req/s  ({figures['requests']:.0f} requests{batching})",
                flush=True,
            )
    return guard


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


def sklearn_import_s(env: dict[str, str]) -> float:
    """The reference for startup: a fresh `python -c "import sklearn"`, in seconds."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sklearn"], env=env, check=True)
    return time.perf_counter() - t


IMPORT_GROUPS = (  # how the start's import time is told apart, by top-level package
    ("scikit-learn", ("sklearn",)),
    ("scipy", ("scipy",)),
    ("pandas, pyarrow", ("pandas", "pyarrow", "narwhals", "dateutil", "pytz", "tzdata")),
    ("numpy", ("numpy",)),
    ("skops", ("skops",)),
    ("fastapi, starlette, pydantic", ("fastapi", "starlette", "pydantic", "pydantic_core",
                                      "annotated_types", "email_validator", "fastapi_offline",
                                      "typing_extensions", "typing_inspection", "anyio")),
    ("uvicorn", ("uvicorn", "click", "h11", "httptools", "uvloop", "watchfiles", "a2wsgi")),
    ("typer, rich (the CLI)", ("typer", "rich", "shellingham", "pygments", "markdown_it")),
    ("nbops", ("nbops",)),
    ("dask, pytest (never needed)", ("dask", "pytest", "_pytest", "pluggy")),
)  # fmt: skip


def import_breakdown(log: str) -> dict[str, float]:
    """Seconds of a start spent importing, by package group: the *self* time of every module
    `-X importtime` logged (each module's own execution counted once, where it belongs)."""
    groups = {name: 0.0 for name, _ in IMPORT_GROUPS}
    groups["Python, other"] = 0.0
    owner = {root: name for name, roots in IMPORT_GROUPS for root in roots}
    for line in log.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, own, _, module = (part.strip() for part in line.replace("|", ":").split(":", 3))
        groups[owner.get(module.split(".")[0], "Python, other")] += int(own) / 1e6
    return groups


def start_breakdown(
    command: list[str], port: int, env: dict[str, str], log: Path
) -> tuple[float, dict[str, float]]:
    """One more start of `command`, with -X importtime: (seconds to /health ok, the import
    time by package group; the start less their sum is loading the model, building the app,
    and the server's own start up to the first answer)."""
    process, took = start(command, port, "/health", {**env, "PYTHONPROFILEIMPORTTIME": "1"}, log)
    stop(process)
    return took, import_breakdown(log.read_text(errors="replace"))


def print_breakdown(took: float, groups: dict[str, float]) -> None:
    imports = sum(groups.values())
    parts = [f"{name} {value:.2f}" for name, value in groups.items() if value >= 0.005]
    print(f"    imports {imports:.2f} s: {', '.join(parts)}")
    print(
        f"    the rest {took - imports:.2f} s: loading the model, building the app, the "
        "server's start and the first /health answer"
    )


def build_bench_bundle(pipeline: Any, frame: pd.DataFrame, out: Path) -> Path:
    """The pipeline as a real bundle (`nbops bundle`'s writer): model.skops, the schema, the
    manifest, for `nbops serve` (which loads it skops-checked against trusted types)."""
    from nbops.bundle.write import build_bundle
    from nbops.quality.schema import infer_schema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_bundle(
            out,
            name="bench",
            model=pipeline,
            export_folder=None,
            serving=None,
            schema=infer_schema(frame[COLUMNS], name="bench"),
            reference=frame[COLUMNS].iloc[:5000],
            source={},
            metrics={},
            slice_metrics=None,
            gates=[],
            override=False,
            failed_gates=[],
            requirements=[],
        )


def breakdown_ms(
    workdir: Path, records: list[dict[str, Any]], repeat: int = 300
) -> dict[str, float]:
    """Where one single-row request's time goes inside nbops, stage by stage, in process
    (p50 of each stage over `repeat` requests, the stages of a request timed one after the
    other): the same code the server runs, without HTTP."""
    from nbops.bundle.serve.body import parse_body
    from nbops.bundle.serve.frame import _json_values
    from nbops.bundle.serve.generation import _Generation
    from nbops.bundle.serve.metrics import _Metrics
    from nbops.bundle.serve.predict import _Job

    bundle = BenchBundle(workdir)
    generation = _Generation(
        bundle, _Metrics("classification", [0.0]), max_batch=64, batch_wait_ms=2
    )
    predictor = generation.predictor
    bodies = [json.dumps({"records": [r]}).encode() for r in records]
    stages: dict[str, list[float]] = {
        "JSON parsing": [],
        "pydantic validation": [],
        "columns from records": [],
        "DataFrame building": [],
        "model (predict on the frame)": [],
        "answer (to JSON)": [],
    }
    names = list(stages)
    for i in range(repeat):
        clock = [time.perf_counter()]
        raw = parse_body(bodies[i % len(bodies)])
        clock.append(time.perf_counter())
        body = generation.request_body.model_validate(raw)
        clock.append(time.perf_counter())
        found = body.records  # type: ignore[attr-defined]
        columns = {c: [getattr(r, a) for r in found] for c, a in generation.fields}
        clock.append(time.perf_counter())
        frame = predictor.frame([_Job(columns, len(found), False)])
        clock.append(time.perf_counter())
        with predictor._threads(1):
            predictions, _ = predictor._outputs(frame, False)
        clock.append(time.perf_counter())
        json.dumps({"predictions": _json_values(predictions), "model": "bench", "version": "1"})
        clock.append(time.perf_counter())
        if i >= 20:  # after a warm-up
            for k, name in enumerate(names):
                stages[name].append(clock[k + 1] - clock[k])
    return {name: float(np.percentile(times, 50) * 1000) for name, times in stages.items()}


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
    import sklearn

    from nbops.quality.schema import infer_schema

    frame = build_frame()
    # the trained pipeline is kept between runs (our own file, in the temp folder): training
    # is not measured, and takes minutes on a loaded machine
    cached = (
        Path(tempfile.gettempdir())
        / f"nbops-bench-serve-{sklearn.__version__}-{ROWS}-{SEED}.joblib"
    )
    if cached.exists():
        print(f"the pipeline trained on {ROWS:,} rows, from {cached}", flush=True)
        pipeline = joblib.load(cached)
    else:
        print(f"training on {ROWS:,} rows ...", flush=True)
        pipeline = build_pipeline(frame)
        partial = cached.with_name(cached.name + f".{os.getpid()}.tmp")
        joblib.dump(pipeline, partial)
        os.replace(partial, cached)
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

        # -- start nbops twice, interleaved with the reference (import sklearn alone)
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        imports = [sklearn_import_s(env)]
        starts = []
        for attempt in range(2):
            port = free_port()
            command = [sys.executable, __file__, "--serve", str(workdir), str(port)]
            nbops_process, took = start(command, port, "/health", env, workdir / "nbops.log")
            starts.append(took)
            if attempt == 0:
                stop(nbops_process)
            else:
                processes.append(nbops_process)
            imports.append(sklearn_import_s(env))
        nbops_start = float(np.median(starts))
        sklearn_s = float(np.median(imports))
        print(
            f"  nbops  startup (process start -> /health ok): {nbops_start:.2f} s "
            f"({', '.join(f'{x:.2f}' for x in starts)}); `python -c 'import sklearn'` alone: "
            f"{sklearn_s:.2f} s ({', '.join(f'{x:.2f}' for x in imports)})",
            flush=True,
        )

        # where the stand-in's start goes: one more start, with -X importtime
        port_x = free_port()
        took, groups = start_breakdown(
            [sys.executable, __file__, "--serve", str(workdir), str(port_x)],
            port_x,
            env,
            workdir / "nbops-importtime.log",
        )
        print(f"  where the start goes (one more start, with -X importtime: {took:.2f} s):")
        print_breakdown(took, groups)

        # -- `nbops serve` of a real bundle (skops-checked load), with an empty cache first
        cli_start: float | None = None
        try:
            folder = build_bench_bundle(pipeline, frame, workdir / "bundles")
            cache_env = {**env, "XDG_CACHE_HOME": str(workdir / "cache")}
            cli_starts = []
            for _ in range(3):
                port_cli = free_port()
                cli_command = [
                    sys.executable, "-m", "nbops", "serve", str(folder), "--port", str(port_cli),
                ]  # fmt: skip
                process, took = start(
                    cli_command, port_cli, "/health", cache_env, workdir / "cli.log"
                )
                stop(process)
                cli_starts.append(took)
                imports.append(sklearn_import_s(env))
            sklearn_s = float(np.median(imports))
            cli_start = float(np.median(cli_starts[1:]))
            print(
                f"  nbops serve BUNDLE (skops-checked model) startup: {cli_start:.2f} s "
                f"(the first start, with no cache of scikit-learn's estimator list: "
                f"{cli_starts[0]:.2f} s; then {', '.join(f'{x:.2f}' for x in cli_starts[1:])})"
            )
            port_cli = free_port()
            took, groups = start_breakdown(
                [sys.executable, "-m", "nbops", "serve", str(folder), "--port", str(port_cli)],
                port_cli,
                cache_env,
                workdir / "cli-importtime.log",
            )
            print(f"  where it goes (one more start, with -X importtime: {took:.2f} s):")
            print_breakdown(took, groups)
        except Exception as e:
            print(f"  nbops serve of a bundle could not be measured: {type(e).__name__}: {e}")

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
        guard = measure(targets, seconds, nbops_process.pid)
        paired_raw, paired_nbops = interleaved_p50_ms(
            pipeline, rows, nbops.port, nbops.bodies, check
        )
        print(
            f"  alternating blocks, one row: raw predict p50 {paired_raw:6.2f} ms, "
            f"nbops request p50 {paired_nbops:6.2f} ms"
        )

        stages = breakdown_ms(workdir, records)
        inside = sum(stages.values())
        print()
        print("where a single-row request's milliseconds go (in-process p50 of each stage):")
        for name, ms in stages.items():
            print(f"  {name:<34} {ms:7.3f} ms")
        rest = paired_nbops - inside
        print(
            f"  {'HTTP, event loop, client':<34} {rest:7.3f} ms  (the request p50 "
            f"{paired_nbops:.2f} ms minus the stages)"
        )
        _, calls_1, waited_1 = nbops.batches[1]
        if calls_1:
            print(f"  {'batching wait, 1 client':<34} {waited_1 / calls_1 * 1000:7.3f} ms per call")
        print(
            f"  (raw predict p50 {paired_raw:.2f} ms: the model stage differs from it by "
            f"{stages['model (predict on the frame)'] - paired_raw:+.2f} ms)"
        )

        print()
        print("targets:")
        ours = {clients: nbops.figures(clients) for clients in CLIENTS}
        if mlflow is not None:
            theirs = {clients: mlflow.figures(clients) for clients in CLIENTS}
            for clients, target in TARGET_THROUGHPUT.items():
                ratio = ours[clients]["rps"] / theirs[clients]["rps"]
                records_n, calls_n, _ = nbops.batches[clients]
                per_call = records_n / calls_n if calls_n else float("nan")
                print(
                    f"  throughput, {clients} clients: nbops {ours[clients]['rps']:.0f} req/s vs "
                    f"mlflow {theirs[clients]['rps']:.0f} req/s = {ratio:.2f}x  (target >= "
                    f"{target:.0f}x)  {verdict(ratio >= target)}; {per_call:.2f} records per "
                    f"predict call; p99 {ours[clients]['p99_ms']:.1f} ms (mlflow "
                    f"{theirs[clients]['p99_ms']:.1f} ms)"
                )
            one = ours[1]["rps"] / theirs[1]["rps"]
            print(f"  (throughput, 1 client: {one:.2f}x mlflow's)")
        else:
            print("  throughput against mlflow: skipped (mlflow models serve did not run)")
        heavy = max(CLIENTS)
        bound = max(100.0, 20 * ours[1]["p50_ms"])
        print(
            f"  p99 latency, {heavy} clients: {ours[heavy]['p99_ms']:.1f} ms  (bound <= "
            f"{bound:.0f} ms, 20x the 1-client p50 or 100 ms)  "
            f"{verdict(ours[heavy]['p99_ms'] <= bound)}"
        )
        if guard is not None:
            mib = 1024 * 1024
            growth = (max(guard.rss) - guard.rss[0]) / mib
            print(
                f"  under {heavy} clients: RSS {guard.rss[0] / mib:.0f} -> peak "
                f"{max(guard.rss) / mib:.0f} MiB (+{growth:.1f} MiB, bound {RSS_GROWTH_MIB:.0f})  "
                f"{verdict(growth <= RSS_GROWTH_MIB)}; bodies over the {MAX_BODY_BYTES:,}-byte "
                f"limit: {guard.refused}/{guard.sent} refused with 413"
                + (f", other answers: {guard.other[:3]}" if guard.other else "")
                + f"  {verdict(guard.sent > 0 and guard.refused == guard.sent and not guard.other)}"
            )
        gap = paired_nbops - paired_raw
        print(
            f"  single-row p50: nbops {paired_nbops:.2f} ms vs raw predict {paired_raw:.2f} ms "
            f"= {gap:+.2f} ms  (target <= +{TARGET_LATENCY_MS} ms)  "
            f"{verdict(gap <= TARGET_LATENCY_MS)}"
        )
        if mlflow is not None:
            print(f"  (mlflow single-row p50: {theirs[1]['p50_ms']:.2f} ms)")
        print(
            f"  startup: nbops {nbops_start:.2f} s  (target <= {TARGET_STARTUP_S} s)  "
            f"{verdict(nbops_start <= TARGET_STARTUP_S)}; the reference `import sklearn` "
            f"alone took {sklearn_s:.2f} s in this run, so nbops' own part was "
            f"{nbops_start - sklearn_s:.2f} s"
            + (f"; mlflow {mlflow_start:.2f} s" if mlflow_start is not None else "")
        )
        if cli_start is not None:
            print(
                f"  startup, nbops serve BUNDLE: {cli_start:.2f} s  (target <= "
                f"{TARGET_STARTUP_S} s)  {verdict(cli_start <= TARGET_STARTUP_S)}; less the "
                f"reference: {cli_start - sklearn_s:.2f} s"
            )
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a report, not a test: say what failed, exit 0
        print(f"the benchmark stopped: {type(e).__name__}: {e}")
