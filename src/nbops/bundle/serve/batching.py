"""Micro-batching: queued requests merged into one `predict` call at a time, off the loop.

One worker task takes the queued jobs (at most `max_batch` records, a larger single request
alone) and runs the predictor in one worker thread. Whether it waits for more requests first
is decided by `batch_window`, a pure function of what the batcher measures (adaptive
batching, as BentoML's): the clients seen recently (the most `/predict` requests in flight
at once, `clients`), the model call's measured duration and the mean interval between
arrivals. It waits only for clients not yet in the batch, never longer than one model call
(the cost a request not merged pays: a call of its own) nor `wait_seconds`, and not at all
when the next arrival is not expected within that. A lone client never waits: with one
request in flight at a time, `clients` is 1 and every batch already holds it. A wait that
brings no one lowers `clients` to what came, so a wrong estimate costs one wait.

A lone client's request is not even handed to the thread: when no other request is in
flight now or was recently (`clients` 1), nothing is queued or being gathered or predicted,
the request is small and the model's calls are measured short (`INLINE_SECONDS`), it is
predicted at once on the event loop, sparing the two thread wake-ups of the hop there and
back (most of what a single row costs beyond the model on a loaded machine). Once a second
client shows up, requests take the queue and the thread again.
"""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from starlette.types import Scope

from nbops.bundle.serve.predict import _Job, _Outcome
from nbops.errors import BundleError

_ARRIVING = "nbops.arriving"  # scope key: this /predict request is counted in `arriving`
_ACTIVE = "nbops.active"  # scope key: this /predict request is counted in `active`
PERIOD = 0.5  # seconds over which `clients` is the most requests seen in flight at once
SMOOTHING = 0.2  # weight of a new measurement in the moving averages
# A lone client's request is predicted on the event loop itself (no hop to the prediction
# thread and back) while a model call is measured this short (the longest the loop, /health
# included, is then held up) and the request holds at most INLINE_RECORDS records.
INLINE_SECONDS = 0.05
INLINE_RECORDS = 64


def batch_window(
    *,
    requests: int,
    records: int,
    clients: int,
    waited: float,
    call_seconds: float | None,
    interval: float | None,
    max_wait: float,
    max_batch: int,
) -> float:
    """Seconds to keep waiting for another request before predicting a batch (0: now).

    `requests`/`records`: what the batch holds; `clients`: the requests in flight at once
    recently (the batch's included); `waited`: since the batch's first request was taken;
    `call_seconds`: a model call's measured duration (None before the first); `interval`:
    the mean time between arrivals (None before two). Waiting costs every request in the
    batch the wait; it saves the next request a call of its own, so the window is at most
    one call, and never past `max_wait`; and none when fewer than one request arrives per
    call (then waiting cannot pay off).
    """
    if records >= max_batch or requests >= clients:
        return 0.0  # full, or every client is in (a lone client never waits)
    call = max_wait if call_seconds is None else call_seconds
    if interval is not None and interval > call:
        return 0.0  # the next request is not expected within a call
    return max(min(max_wait, call) - waited, 0.0)


class _Batcher:
    """Queues requests and merges them into `predict` calls, one at a time, off the loop."""

    def __init__(
        self,
        run: Callable[[list[_Job]], list[_Outcome | BaseException]],
        *,
        max_batch: int,
        wait_seconds: float,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        self.run = run
        self.max_batch = max_batch
        self.wait_seconds = wait_seconds
        self.on_wait = on_wait  # told each batch's wait for more requests (seconds, or 0)
        self.arriving = 0  # /predict requests received but not yet queued (or finished)
        self.active = 0  # /predict requests received and not yet answered
        self.call_seconds: float | None = None  # moving average of a model call
        self.interval: float | None = None  # moving average of the time between arrivals
        self._peak = 0  # the most requests in flight at once, this period and the last
        self._last_peak = 0
        self._period_end = 0.0
        self._last_submit: float | None = None
        self._pending: deque[_Job] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._batch: list[_Job] = []  # the batch being predicted
        self._busy = False  # a batch is being gathered or predicted

    @property
    def queued(self) -> int:
        return len(self._pending)

    @property
    def clients(self) -> int:
        """The most /predict requests in flight at once recently (at least 1)."""
        return max(self._peak, self._last_peak, 1)

    def arrival(self, scope: Scope) -> None:
        scope[_ARRIVING] = True
        scope[_ACTIVE] = True
        self.arriving += 1
        self.active += 1
        now = time.monotonic()
        if now >= self._period_end:
            self._last_peak, self._peak = self._peak, self.active
            self._period_end = now + PERIOD
        elif self.active > self._peak:
            self._peak = self.active

    def arrived(self, scope: Scope) -> None:
        if scope.pop(_ARRIVING, False):
            self.arriving -= 1

    def finished(self, scope: Scope) -> None:
        self.arrived(scope)
        if scope.pop(_ACTIVE, False):
            self.active -= 1

    async def submit(self, job: _Job) -> _Outcome:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._work(), name="nbops-batcher")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-predict")
        now = loop.time()
        if self._last_submit is not None:
            self.interval = _average(self.interval, now - self._last_submit)
        self._last_submit = now
        if self._inline(job):
            # Requests received in the same turn of the loop (a burst) pin themselves when
            # their tasks run: let them, so that a burst is batched, not predicted one by one.
            await asyncio.sleep(0)
            if self._inline(job):
                return self._predict_inline(job, loop)
        future: asyncio.Future[_Outcome] = loop.create_future()
        job.future = future
        self._pending.append(job)
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    def _inline(self, job: _Job) -> bool:
        """Whether to predict this request at once, on the event loop: a lone client's
        request (none other in flight now or recently, nothing queued or predicting) of a
        model whose calls are measured short, where the hop to the prediction thread and
        back would cost a noticeable share of the answer."""
        call = self.call_seconds
        return (
            call is not None
            and call <= INLINE_SECONDS
            and job.n <= INLINE_RECORDS
            and not self._pending
            and not self._busy
            and self.active <= 1
            and self.clients <= 1
        )

    def _predict_inline(self, job: _Job, loop: asyncio.AbstractEventLoop) -> _Outcome:
        if self.on_wait is not None:
            self.on_wait(0.0)
        start = loop.time()
        [outcome] = self.run([job])
        self.call_seconds = _average(self.call_seconds, loop.time() - start)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

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

    def _window(self, batch: list[_Job], n: int, waited: float) -> float:
        if self._pending or n >= self.max_batch:
            return 0.0  # what is queued and does not fit goes next
        if self.arriving:  # a request is being received: it is on its way (at most a call)
            call = self.call_seconds
            budget = self.wait_seconds if call is None else min(self.wait_seconds, call)
            return max(budget - waited, 0.0)
        return batch_window(
            requests=len(batch),
            records=n,
            clients=self.clients,
            waited=waited,
            call_seconds=self.call_seconds,
            interval=self.interval,
            max_wait=self.wait_seconds,
            max_batch=self.max_batch,
        )

    async def _gather(self, batch: list[_Job], n: int) -> int:
        """Wait for more requests while `_window` says so; the records in the batch."""
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        assert wakeup is not None
        start = loop.time()
        waited = 0.0
        while True:
            window = self._window(batch, n, waited)
            if window <= 0:
                break
            wakeup.clear()
            woken = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(window):
                    await wakeup.wait()
                    woken = True
            n = self._take(batch, n)
            waited = loop.time() - start
            if not woken and not self.arriving:  # nobody came: fewer clients than thought
                self._peak = self._last_peak = len(batch)
                break
        if self.on_wait is not None:
            self.on_wait(waited)
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
            self._busy = True
            n = self._take(batch, 0)
            n = await self._gather(batch, n)
            self._batch = batch
            start = loop.time()
            try:
                outcomes = await loop.run_in_executor(self._executor, self.run, batch)
            except Exception as e:  # the runner catches model errors; this is a bug or shutdown
                outcomes = [e] * len(batch)
            self.call_seconds = _average(self.call_seconds, loop.time() - start)
            if len(outcomes) != len(batch):
                outcomes = [RuntimeError("the predictor lost track of a request")] * len(batch)
            self._batch = []
            self._busy = False
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
        self._busy = False
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _average(previous: float | None, value: float) -> float:
    return value if previous is None else previous + SMOOTHING * (value - previous)
