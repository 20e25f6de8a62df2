"""The batcher with a stand-in model: shared calls, each request its own rows,
off the event loop, and a failing model fails only its requests."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from mnist_dvc.serving.batching import Batcher


class CountingModel:
    """Stands in for the model: slow enough for requests to pile up; remembers its batches."""

    def __init__(self, delay_s: float = 0.02) -> None:
        self.delay_s = delay_s
        self.batches: list[int] = []
        self.thread_ids: set[int] = set()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.batches.append(len(images))
        self.thread_ids.add(threading.get_ident())
        time.sleep(self.delay_s)
        # Row i's "probabilities": the image's mean in column 0, so each answer is checkable.
        out = np.zeros((len(images), 10), np.float32)
        out[:, 0] = images.reshape(len(images), -1).mean(axis=1)
        return out


async def _many(batcher: Batcher, count: int) -> list[np.ndarray]:
    images = [np.full((1 + i % 3, 28, 28), i, np.float32) for i in range(count)]
    results = await asyncio.gather(*(batcher.predict(x) for x in images))
    for i, result in enumerate(results):
        assert result.shape == (1 + i % 3, 10)
        assert (result[:, 0] == i).all()  # each request got its own rows back
    return results


def test_concurrent_requests_share_model_calls_off_the_event_loop():
    model = CountingModel()
    batcher = Batcher(model, max_batch=64)
    batcher.start()
    try:
        asyncio.run(_many(batcher, 100))
    finally:
        batcher.stop()
    assert sum(model.batches) == sum(1 + i % 3 for i in range(100))
    assert len(model.batches) < 20  # 100 requests, a handful of calls
    assert max(model.batches) <= 64  # at most max_batch images per call
    assert threading.get_ident() not in model.thread_ids


def test_without_batching_every_request_is_a_call():
    model = CountingModel(delay_s=0.001)
    batcher = Batcher(model, batching=False)
    batcher.start()
    try:
        asyncio.run(_many(batcher, 30))
    finally:
        batcher.stop()
    assert model.batches == [1 + i % 3 for i in range(30)]


def test_a_failing_model_fails_its_requests_and_not_the_worker():
    calls = []

    def flaky(images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return np.zeros((len(images), 10), np.float32)

    batcher = Batcher(flaky)
    batcher.start()

    async def run() -> None:
        with pytest.raises(RuntimeError, match="out of memory"):
            await batcher.predict(np.zeros((1, 28, 28), np.float32))
        assert (await batcher.predict(np.zeros((2, 28, 28), np.float32))).shape == (2, 10)

    try:
        asyncio.run(run())
    finally:
        batcher.stop()
