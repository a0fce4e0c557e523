"""The greedy micro-batcher: batches what is waiting, never waits for more, fails a batch alone."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from cnnpipe.serve.microbatch import GreedyBatcher


class SlowDouble:
    """A model that doubles its rows, takes ``seconds`` per call and records each call's size."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.sizes: list[int] = []
        self.release = threading.Event()

    def __call__(self, batch: np.ndarray) -> list[float]:
        self.sizes.append(len(batch))
        self.release.wait(self.seconds)
        if (batch < 0).any():
            raise ValueError("negative input")
        return [float(row.sum()) * 2 for row in batch]


def test_an_idle_batcher_answers_one_input_alone_at_once() -> None:
    model = SlowDouble(seconds=0)

    async def one() -> float:
        return await GreedyBatcher(model).submit(np.full(3, 1.0))

    assert asyncio.run(one()) == 6.0
    assert model.sizes == [1]


def test_inputs_arriving_while_a_batch_runs_form_the_next_batch_in_order() -> None:
    model = SlowDouble(seconds=0.3)
    batcher = GreedyBatcher(model, max_batch=8)

    async def scenario() -> list[float]:
        first = asyncio.ensure_future(batcher.submit(np.full(2, 0.0)))
        await asyncio.sleep(0.1)  # the first batch (of one) is running now
        rest = [asyncio.ensure_future(batcher.submit(np.full(2, float(i)))) for i in range(1, 11)]
        return [await first] + [await r for r in rest]

    assert asyncio.run(scenario()) == [4.0 * i for i in range(11)]
    assert model.sizes == [1, 8, 2]  # never more than max_batch; the rest waited for the next call


def test_a_failing_model_call_fails_its_own_inputs_only() -> None:
    model = SlowDouble(seconds=0.2)
    batcher = GreedyBatcher(model)

    async def scenario() -> tuple[list[object], float]:
        blocker = asyncio.ensure_future(batcher.submit(np.zeros(1)))
        await asyncio.sleep(0.05)
        doomed = [asyncio.ensure_future(batcher.submit(np.full(1, v))) for v in (1.0, -1.0)]
        outcomes = await asyncio.gather(*doomed, return_exceptions=True)
        await blocker
        return outcomes, await batcher.submit(np.full(1, 5.0))  # the batcher still serves

    outcomes, after = asyncio.run(scenario())
    assert all(isinstance(o, ValueError) and "negative input" in str(o) for o in outcomes)
    assert after == 10.0


def test_a_cancelled_request_is_dropped_before_its_batch_runs() -> None:
    model = SlowDouble(seconds=0.2)
    batcher = GreedyBatcher(model)

    async def scenario() -> float:
        blocker = asyncio.ensure_future(batcher.submit(np.zeros(1)))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.submit(np.ones(1)))
        kept = asyncio.ensure_future(batcher.submit(np.full(1, 3.0)))
        await asyncio.sleep(0)
        gone.cancel()
        await blocker
        return await kept

    assert asyncio.run(scenario()) == 6.0
    assert model.sizes == [1, 1]


@pytest.mark.parametrize("max_batch", [1, 64])
def test_max_batch_bounds_every_call(max_batch: int) -> None:
    model = SlowDouble(seconds=0.01)
    batcher = GreedyBatcher(model, max_batch=max_batch)

    async def many() -> list[float]:
        return list(await asyncio.gather(*(batcher.submit(np.full(1, float(i))) for i in range(100))))

    assert asyncio.run(many()) == [2.0 * i for i in range(100)]
    assert max(model.sizes) <= max_batch and sum(model.sizes) == 100


def test_with_parallel_two_a_second_call_runs_while_the_first_does() -> None:
    running, most, calls = 0, 0, 0
    lock = threading.Lock()

    def model(batch: np.ndarray) -> list[float]:
        nonlocal running, most, calls
        with lock:
            calls += 1
            running += 1
            most = max(most, running)
        threading.Event().wait(0.2)
        with lock:
            running -= 1
        return [0.0] * len(batch)

    batcher = GreedyBatcher(model, parallel=2)

    async def two() -> None:
        first = asyncio.ensure_future(batcher.submit(np.zeros(1)))
        await asyncio.sleep(0.05)
        await asyncio.gather(first, batcher.submit(np.zeros(1)))

    asyncio.run(two())
    assert most == 2 and calls == 2
