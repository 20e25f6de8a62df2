"""Run the model off the event loop, one call for as many waiting requests as fit.

One worker thread owns the model. A request's images wait on the event loop until the loop
has run everything else that is ready (`loop.call_soon`): the requests that arrived together
then go to the worker as one list. The worker takes every list that is queued, calls the
model once per `max_batch` images and hands each request its rows. No request waits for a
batch to fill: a lone client's request is a batch of one at once; under load, requests pile
up while the model runs and the next call takes them all. Per image, a batch of 64 costs the
CPU about a third of what a single image does, which is where the throughput comes from.
`batching=False` calls the model once per request, to compare.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

Model = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 -> (N, 10) probabilities


@dataclass
class _Job:
    images: np.ndarray
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


_STOP = None  # the sentinel that ends the worker


class Batcher:
    """`await batcher.predict(images)` from any number of coroutines on one event loop;
    `start()` before, `stop()` after (the server's lifespan does both)."""

    def __init__(self, model: Model, *, max_batch: int = 64, batching: bool = True) -> None:
        self._model = model
        self.max_batch = max_batch if batching else 1
        self.batching = batching
        self._queue: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._gathering: list[_Job] = []  # on the event loop, until the loop is done with them
        # Counters for GET /model: how well batching works under the current load.
        self.calls = 0
        self.images = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="model", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None

    async def predict(self, images: np.ndarray, *, timeout_s: float = 60.0) -> np.ndarray:
        """The model's probabilities for `images` (N, 28, 28), computed by the worker.
        TimeoutError if the worker has not answered in `timeout_s` (never a request that
        waits forever)."""
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the model worker is not running")
        loop = asyncio.get_running_loop()
        job = _Job(images, loop.create_future(), loop)
        if not self.batching:
            self._queue.put([job])
        else:
            self._gathering.append(job)
            if len(self._gathering) == 1:  # the first since the last hand-over
                loop.call_soon(self._hand_over)
        return await asyncio.wait_for(job.future, timeout_s)

    def _hand_over(self) -> None:
        jobs, self._gathering = self._gathering, []
        self._queue.put(jobs)

    def _work(self) -> None:
        waiting: deque[_Job] = deque()
        while True:
            if not waiting:
                jobs = self._queue.get()  # sleeps until there is work
                if jobs is _STOP:
                    return
                waiting.extend(jobs)
            while True:  # whatever else was handed over meanwhile
                try:
                    jobs = self._queue.get_nowait()
                except queue.Empty:
                    break
                if jobs is _STOP:
                    self._queue.put(_STOP)  # after the work already here
                    break
                waiting.extend(jobs)
            batch, count = [], 0
            while waiting and (not batch or count + len(waiting[0].images) <= self.max_batch):
                batch.append(waiting.popleft())
                count += len(batch[-1].images)
            try:
                self._run(batch)
            except Exception:  # a bug here must not end the worker: every later request hangs
                log.exception("model worker: a batch of %d requests failed", len(batch))

    def _run(self, jobs: list[_Job]) -> None:
        try:
            batch = np.concatenate([job.images for job in jobs])
            probabilities = self._model(batch)
            self.calls += 1
            self.images += len(batch)
            outcome: list[np.ndarray] | BaseException = np.split(
                probabilities, np.cumsum([len(job.images) for job in jobs])[:-1]
            )
        except Exception as error:  # a model failure is every waiting request's 500, not a hang
            outcome = error
        # One wake-up of each event loop for the whole batch, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, object]]] = {}
        for i, job in enumerate(jobs):
            result = outcome if isinstance(outcome, BaseException) else outcome[i]
            by_loop.setdefault(job.loop, []).append((job, result))
        for loop, results in by_loop.items():
            # RuntimeError: that loop has closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, results)


def _resolve(results: list[tuple[_Job, object]]) -> None:
    for job, result in results:
        if job.future.done():  # the client went away and the request was cancelled
            continue
        if isinstance(result, BaseException):
            job.future.set_exception(result)
        else:
            job.future.set_result(result)
