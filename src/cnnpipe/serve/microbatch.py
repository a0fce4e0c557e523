"""Greedy micro-batching for an asyncio server: whatever is waiting runs as one model call.

BentoML's adaptive batching waits (by its latency model) for a batch to fill; on a CPU, where the
model call and the request handling share a few cores, that wait leaves cores idle. This batcher
never waits: as soon as a model thread is free it runs the model on every input queued so far, and
while calls run (ONNX Runtime releases the GIL) the event loop parses the next requests, which
form the next batch. An idle server therefore answers one request at once; a busy one batches as
deep as its load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import numpy as np

Result = TypeVar("Result")


class GreedyBatcher(Generic[Result]):
    """Runs ``model(N×… array) -> N results`` over up to ``max_batch`` queued inputs, at most
    ``parallel`` calls at once (each on its own thread: with one-thread ONNX Runtime sessions,
    one call per core).

    ``submit`` must be awaited on one event loop (a BentoML worker's); a failure of the model call
    fails exactly the inputs of that call.
    """

    def __init__(self, model: Callable[[np.ndarray], Sequence[Result]], max_batch: int = 64, parallel: int = 1) -> None:
        self._model = model
        self._max_batch = max_batch
        self._parallel = parallel
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[Result]]] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._threads = ThreadPoolExecutor(parallel, thread_name_prefix="microbatch")

    async def submit(self, item: np.ndarray) -> Result:
        """The model's result for one input (C×H×W), computed in a batch with its neighbours."""
        if self._queue is None or self._runner is None or self._runner.done():
            self._queue = asyncio.Queue()
            self._runner = asyncio.get_running_loop().create_task(self._run())
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, done))
        return await done

    async def _run(self) -> None:
        assert self._queue is not None
        free = asyncio.Semaphore(self._parallel)
        calls: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps weak refs)
        while True:
            await free.acquire()
            waiting = [await self._queue.get()]
            while len(waiting) < self._max_batch and not self._queue.empty():
                waiting.append(self._queue.get_nowait())
            waiting = [(item, done) for item, done in waiting if not done.cancelled()]  # client gone
            if not waiting:
                free.release()
                continue
            call = asyncio.get_running_loop().create_task(self._call(waiting))
            calls.add(call)

            def finished(call: asyncio.Task[None]) -> None:
                calls.discard(call)
                free.release()

            call.add_done_callback(finished)

    async def _call(self, waiting: list[tuple[np.ndarray, asyncio.Future[Result]]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._threads, self._model, np.stack([i for i, _ in waiting]))
        except Exception as error:  # the model's failure is each waiting request's answer
            for _, done in waiting:
                if not done.done():
                    done.set_exception(error)
            return
        for (_, done), result in zip(waiting, results, strict=True):
            if not done.done():
                done.set_result(result)
