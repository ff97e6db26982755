"""Micro-batching: queued requests merged into one `predict` call at a time, off the loop.

One worker task takes the queued jobs (at most `max_batch` records, a larger single request
alone), waits up to `wait_seconds` for more only while other `/predict` requests are being
received (`arrival`/`arrived`), and runs the predictor in one worker thread.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from starlette.types import Scope

from nbops.bundle.serve.predict import _Job, _Outcome
from nbops.errors import BundleError

_ARRIVING = "nbops.arriving"  # scope key: this /predict request is counted in `arriving`


class _Batcher:
    """Queues requests and merges them into `predict` calls, one at a time, off the loop."""

    def __init__(
        self,
        run: Callable[[list[_Job]], list[_Outcome | BaseException]],
        *,
        max_batch: int,
        wait_seconds: float,
    ) -> None:
        self.run = run
        self.max_batch = max_batch
        self.wait_seconds = wait_seconds
        self.arriving = 0  # /predict requests received but not yet queued (or finished)
        self._pending: deque[_Job] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._batch: list[_Job] = []  # the batch being predicted

    @property
    def queued(self) -> int:
        return len(self._pending)

    def arrival(self, scope: Scope) -> None:
        scope[_ARRIVING] = True
        self.arriving += 1

    def arrived(self, scope: Scope) -> None:
        if scope.pop(_ARRIVING, False):
            self.arriving -= 1

    async def submit(self, job: _Job) -> _Outcome:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._work(), name="nbops-batcher")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-predict")
        future: asyncio.Future[_Outcome] = loop.create_future()
        job.future = future
        self._pending.append(job)
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    def _take(self, batch: list[_Job], n: int) -> int:
        """Move queued jobs into the batch while they fit; the first one always does."""
        while self._pending and n < self.max_batch:
            job = self._pending[0]
            if batch and n + job.n > self.max_batch:
                break
            self._pending.popleft()
            batch.append(job)
            n += job.n
        return n

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            if not self._pending:
                wakeup.clear()
                await wakeup.wait()
                continue
            batch: list[_Job] = []
            n = self._take(batch, 0)
            deadline = loop.time() + self.wait_seconds
            # wait for more only while other requests are on their way in
            while n < self.max_batch and not self._pending and self.arriving > 0:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await wakeup.wait()
                n = self._take(batch, n)
            self._batch = batch
            try:
                outcomes = await loop.run_in_executor(self._executor, self.run, batch)
            except Exception as e:  # the runner catches model errors; this is a bug or shutdown
                outcomes = [e] * len(batch)
            if len(outcomes) != len(batch):
                outcomes = [RuntimeError("the predictor lost track of a request")] * len(batch)
            self._batch = []
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future is None or job.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for job in [*self._batch, *self._pending]:
            if job.future is not None and not job.future.done():
                job.future.set_exception(BundleError("the server is shutting down"))
        self._batch = []
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
