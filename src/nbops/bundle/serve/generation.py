"""What a server serves of one bundle (a generation), and the switch from one to the next.

`_Generation` holds everything `create_app` builds per bundle: the request model and body,
the predictor, its batcher, the manifest's bytes, the classes, the signature, the schema's
key columns, and how many requests it is answering (`in_flight`). `_Serving` holds the
current generation: the observer middleware pins it in each request's scope on arrival
(`pin`: one read on the event loop, so a request never sees two), the request is validated,
predicted and answered by that generation alone, and `release` counts it out. `install`
makes a new generation current; the old one stops taking requests at once and is closed
(its batcher, then its bundle) when its last pinned request has been answered: no request
is dropped or answered by a half-closed model.

`_Swapper` (only for a registry reference, `nbops serve penguins@production`) polls the
registry for the alias every `poll` seconds (one indexed SQLite read). When it points at
another version, in a worker thread: the registered bundle is checked to be the one
registered (manifest sha256), loaded with the server's trust options (signature, hashes,
allow-list: the start-up checks, `require_signature` honoured), and its generation built
and probed on a reference record; only then is it installed. A failure at any step keeps
the old generation serving; `/health` reports it (`swap.status == "failed"`, the version and
the reason) and the version is not tried again until the alias moves.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.types import Scope

from nbops.bundle.serve.batching import _Batcher
from nbops.bundle.serve.body import _printable
from nbops.bundle.serve.frame import _json_safe
from nbops.bundle.serve.metrics import _Metrics
from nbops.bundle.serve.predict import _Job, _Predictor
from nbops.bundle.serve.request import _fields_by_column, reference_record, request_model

# Deferred imports: the registry and bundle loading, only in the swapper (a server of a plain
# bundle never loads another).

logger = logging.getLogger(__name__)

MAX_RECORDS = 10_000
GENERATION = "nbops.generation"  # scope key: the generation answering this request


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


UNSEEN_CATEGORY = "nbops-unseen-category"


class _Generation:
    """One bundle as served: built from the bundle alone (plus the app's shared metrics)."""

    def __init__(
        self,
        bundle: Any,
        metrics: _Metrics,
        *,
        max_batch: int,
        batch_wait_ms: float,
        log_keys: Sequence[str] = (),
    ) -> None:
        manifest = bundle.manifest
        self.bundle = bundle
        self.name, self.version = str(manifest.name), str(manifest.version)
        self.manifest = manifest.model_dump(mode="json")
        self.manifest_body = json.dumps(self.manifest, ensure_ascii=False).encode()
        schema = bundle.schema
        self.predictor = _Predictor(bundle, metrics)
        self.open_categories = self._open_categories()
        self.record_model = request_model(
            schema, bundle.request_columns, open_categories=self.open_categories
        )
        self.fields = _fields_by_column(self.record_model)
        self.request_body: type[BaseModel] = create_model(
            "PredictRequest",
            __config__=ConfigDict(extra="forbid"),
            records=(
                list[self.record_model],  # type: ignore[name-defined]
                Field(min_length=1, max_length=MAX_RECORDS, description="the records to predict"),
            ),
        )
        self.batcher = _Batcher(
            self.predictor.run,
            max_batch=max_batch,
            wait_seconds=batch_wait_ms / 1000,
            on_wait=metrics.observe_batch_wait,
        )
        classes = getattr(bundle, "classes", None)
        self.classes_json = _json_safe(list(classes)) if classes is not None else None
        signature = getattr(bundle, "signature", None)  # nbops.bundle.signing.SignatureCheck
        self.signature_json = signature.as_dict() if signature is not None else None
        # the key columns the request log keeps: the schema's key, then the server's own
        self.keys: list[str] = list(
            dict.fromkeys([*(getattr(schema, "key", None) or []), *log_keys])
        )
        self.in_flight = 0
        self.retired = False
        self.owned = False  # the server loaded the bundle, so it closes it (not a caller's)
        self.since = _now()

    def _open_categories(self) -> set[str]:
        """The categorical request columns whose unseen categories the model scores (a
        OneHotEncoder(handle_unknown="ignore"), a model fit on category codes...): each is
        tried once, on the schema's reference record with a category the training data
        lacked, through the serving path. Those are served as `Bundle.predict` serves them
        (the category is new, not wrong: `nbops monitor` reports it); a column whose
        unseen categories the model refuses keeps its categories as the request contract."""
        predictor = self.predictor
        names = [c.name for c in predictor.columns]
        closed = [c.name for c in predictor.columns if c.kind == "categorical" and c.categories]
        if not closed:
            return set()
        base = reference_record(predictor.bundle.schema, names)
        jobs = []
        for name in closed:
            columns = {c: [base[c]] for c in names}
            columns[name] = [UNSEEN_CATEGORY]
            jobs.append(_Job(columns, 1, False, probe=True))
        try:  # one call for all the columns; each alone only when that call fails
            outcomes = predictor.run(jobs)
        except Exception:
            return set()
        found = {
            name
            for name, outcome in zip(closed, outcomes, strict=True)
            if not isinstance(outcome, BaseException)
        }
        return found

    def probe(self) -> str | None:
        """Predict one reference record built from the schema: None, or why it fails."""
        predictor = self.predictor
        try:
            record = self.record_model.model_validate(
                reference_record(predictor.bundle.schema, [c.name for c in predictor.columns])
            )
            columns = {column: [getattr(record, attr)] for column, attr in self.fields}
            [outcome] = predictor.run([_Job(columns, 1, False, probe=True)])
        except Exception as e:
            outcome = e
        if isinstance(outcome, BaseException):
            return _printable(f"{type(outcome).__name__}: {outcome}")[:500]
        return None

    async def aclose(self) -> None:
        await self.batcher.aclose()
        close = getattr(self.bundle, "close", None)
        if self.owned and callable(close):
            await asyncio.get_running_loop().run_in_executor(None, close)


class _Serving:
    """The current generation, the requests pinned to each, and the swaps so far."""

    def __init__(self, first: _Generation, ref: str | None = None) -> None:
        self.current = first
        self.ref = ref
        self.swaps = 0
        self.last_swap_seconds: float | None = None
        self.swap: dict[str, Any] | None = None  # the last swap tried: status, version, ...
        self.outcomes = {"ok": 0, "failed": 0}
        self._closing: set[asyncio.Task[None]] = set()

    def pin(self, scope: Scope) -> _Generation:
        generation = self.current
        scope[GENERATION] = generation
        generation.in_flight += 1
        generation.batcher.arrival(scope)
        return generation

    def release(self, scope: Scope) -> None:
        generation = scope.pop(GENERATION, None)
        if generation is None:
            return
        generation.batcher.finished(scope)
        generation.in_flight -= 1
        if generation.retired and generation.in_flight == 0:
            self._close(generation)

    def install(self, new: _Generation, seconds: float) -> _Generation:
        """Make `new` current (on the event loop); the old one closes once drained."""
        old, self.current = self.current, new
        old.retired = True
        self.swaps += 1
        self.last_swap_seconds = round(seconds, 4)
        self.outcomes["ok"] += 1
        self.swap = {
            "status": "ok",
            "version": int(new.version),
            "previous": int(old.version),
            "at": _now(),
            "seconds": self.last_swap_seconds,
        }
        if old.in_flight == 0:
            self._close(old)
        return old

    def failed(self, version: int, reason: str) -> None:
        self.outcomes["failed"] += 1
        self.swap = {"status": "failed", "version": version, "at": _now(), "reason": reason}

    def _close(self, generation: _Generation) -> None:
        task = asyncio.get_running_loop().create_task(generation.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        await self.current.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def described(self) -> dict[str, Any]:
        """What /metadata adds under "served": which version answers, since when, swaps."""
        current = self.current
        return {
            "ref": self.ref,
            "version": int(current.version),
            "since": current.since,
            "swaps": self.swaps,
            "last_swap_seconds": self.last_swap_seconds,
        }

    def prometheus(self) -> str:
        lines = [
            "# HELP nbops_swaps_total Model swaps tried, by outcome.",
            "# TYPE nbops_swaps_total counter",
            *(f'nbops_swaps_total{{outcome="{k}"}} {v}' for k, v in self.outcomes.items()),
            "# HELP nbops_model_version The version of the bundle answering.",
            "# TYPE nbops_model_version gauge",
            f"nbops_model_version {int(self.current.version)}",
        ]
        return "\n".join(lines) + "\n"


class _Swapper:
    """Follows a registry alias: loads, verifies and probes a newly promoted bundle, then
    installs it (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        alias: str,
        store_dir: Path,
        trust: dict[str, Any],
        poll: float,
        build: Callable[[Any], _Generation],
    ) -> None:
        self.name, self.alias = name, alias
        self.store_dir = store_dir
        self.trust = trust
        self.poll = poll
        self.build = build
        self._refused: int | None = None  # the version that failed, until the alias moves

    def _registry(self) -> Any:
        from nbops.runs.registry import Registry
        from nbops.runs.store import RunStore

        return Registry(RunStore(self.store_dir))

    async def run(self, serving: _Serving) -> None:
        loop = asyncio.get_running_loop()
        registry = await loop.run_in_executor(None, self._registry)
        while True:
            await asyncio.sleep(self.poll)
            try:
                version = await loop.run_in_executor(
                    None, registry.alias_version, self.name, self.alias
                )
            except Exception as e:  # a locked or damaged store: keep serving, try again
                logger.warning("cannot read the registry: %s", e)
                continue
            if version is None or version == int(serving.current.version):
                self._refused = None
                continue
            if version == self._refused:
                continue
            await self.swap(serving, registry, version)

    async def swap(self, serving: _Serving, registry: Any, version: int) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            generation = await loop.run_in_executor(None, self._prepare, registry, version)
        except Exception as e:
            reason = _printable(str(e))[:500]
            self._refused = version
            serving.failed(version, reason)
            logger.error(
                "%s@%s: not switching to v%s, still serving v%s: %s",
                self.name,
                self.alias,
                version,
                serving.current.version,
                reason,
            )
            return
        self._refused = None
        serving.install(generation, time.perf_counter() - started)
        logger.warning("%s@%s: now serving v%s", self.name, self.alias, version)

    def _prepare(self, registry: Any, version: int) -> _Generation:
        """In a worker thread: check, load, build and probe the version's bundle."""
        from nbops.bundle.load import load_bundle
        from nbops.bundle.refs import check_registered

        found = registry.get(self.name, version)
        path = check_registered(found.bundle_path, found.manifest_sha256, f"{self.name} v{version}")
        bundle = load_bundle(path, **self.trust)
        try:
            generation = self.build(bundle)
            generation.owned = True
            failure = generation.probe()
        except BaseException:
            bundle.close()
            raise
        if failure is not None:
            bundle.close()
            raise RuntimeError(f"v{version} fails on a reference record: {failure}")
        return generation

    @contextlib.asynccontextmanager
    async def running(self, serving: _Serving) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(self.run(serving), name="nbops-swapper")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
