"""Where a served /classify request's CPU goes: the event loop, the model threads, and our code.

    python benchmarks/serving_cost.py --models models --seconds 10 --rounds 2

benchmarks/serving.py measures throughput and the CPU each request costs; this splits that cost.
In-process, on one thread (a worker's ONNX Runtime setting), it times each piece of our /classify
code: decode, preprocessing, the model per image at batch 1, 4 and 64, the post-processing and the
JSON of one result. Then it serves `/noop` (the same upload, no work) and `/classify` at
concurrency 8 from `--workers` BentoML workers, in alternating rounds, and reads each worker
thread's CPU time (psutil): the event-loop threads (parsing, middleware, validation with our
decode, the batcher's bookkeeping, the response) apart from the others (the model calls). The
summary sets the framework's no-op cost, the model's in-process cost and our pieces beside what
a request took, and the CPU a request may cost at 80 % of the in-process floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serving import http_poster, load, png, server_cpu  # noqa: E402
from benchmarks.soak import listener_pid  # noqa: E402
from cnnpipe.device import describe_hardware  # noqa: E402
from serving.launch import bentoml_server  # noqa: E402


def per_call_us(fn: Callable[[], object], seconds: float) -> float:
    fn()
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        fn()
        count += 1
    return (time.perf_counter() - began) / count * 1e6


def in_process(models: Path, image: bytes, seconds: float) -> dict[str, float]:
    """µs per image of each piece of /classify, one thread."""
    from cnnpipe.serve.core import InferenceCore, classifier_input

    core = InferenceCore(models, threads=1)
    decoded = core.decode(image)
    one = classifier_input(decoded, core.input_size)
    pieces = {
        "decode": per_call_us(lambda: core.decode(image), seconds),
        "preprocess": per_call_us(lambda: classifier_input(decoded, core.input_size), seconds),
    }
    for batch in (1, 4, 64):
        x = np.stack([one] * batch)
        model = per_call_us(lambda x=x: core.classifier.run(x), seconds) / batch
        whole = per_call_us(lambda x=x: core.classify_arrays(x), seconds) / batch
        pieces[f"model, batch {batch}"] = model
        pieces[f"post-processing, batch {batch}"] = whole - model  # two timings' difference: noise is ± tens of µs
    result = core.classify_arrays(one[None])
    pieces["JSON of one result"] = per_call_us(lambda: json.dumps(result), seconds)
    pieces["floor: classify of 64 uploads, per image"] = per_call_us(lambda: core.classify([image] * 64), seconds) / 64
    return pieces


def worker_threads(port: int) -> Callable[[], tuple[float, float]]:
    """CPU seconds so far of the server's event-loop threads and of its other threads."""
    import psutil

    arbiter = psutil.Process(listener_pid(f"http://127.0.0.1:{port}"))
    workers = arbiter.children(recursive=True)

    def used() -> tuple[float, float]:
        loop = other = 0.0
        for worker in workers:
            times = worker.cpu_times()  # all its threads, those that ended too
            main = next(t for t in worker.threads() if t.id == worker.pid)  # the event loop's
            loop += main.user_time + main.system_time
            other += times.user + times.system - main.user_time - main.system_time
        return loop, other

    return used


async def served_round(base: str, image: bytes, route: str, seconds: float) -> dict[str, float]:
    port = int(base.rsplit(":", 1)[1])
    threads = worker_threads(port)
    async with http_poster(base, 8, "aiohttp") as post:
        call = post(route, image, {})
        for _ in range(100):  # warm: the batcher's threads exist, caches are filled
            await call()
        before = threads()
        result = await load(call, 8, seconds, server_cpu(port))
        after = threads()
    requests = result["rps"] * seconds
    result["loop_ms"] = (after[0] - before[0]) / requests * 1000
    result["model_threads_ms"] = (after[1] - before[1]) / requests * 1000
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--seconds", type=float, default=10.0, help="per served round and route")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="the server's CNNPIPE_WORKERS")
    args = parser.parse_args()
    models = args.models.resolve()
    image = png(32, 32)
    cores = os.cpu_count() or 1
    print(describe_hardware())
    print(f"models {models}; classify input 32×32 PNG; CNNPIPE_WORKERS={args.workers}, ONNX Runtime threads 1")

    pieces = in_process(models, image, seconds=2.0)
    print("\nin-process, one thread (µs per image)")
    for name, us in pieces.items():
        print(f"  {name:44} {us:9.1f}")
    floor = 1e6 / pieces["floor: classify of 64 uploads, per image"]

    env = {"CNNPIPE_WORKERS": str(args.workers), "CNNPIPE_THREADS": "1"}
    rows: dict[str, list[dict[str, float]]] = {"/noop": [], "/classify": []}
    print(f"\nserved at c=8, {args.seconds:.0f} s per cell (ms of CPU per request)")
    print(f"  {'round':6}{'route':11}{'req/s':>8}{'server':>9}{'loop':>8}{'model thr':>11}{'client':>9}{'busy':>7}")
    with bentoml_server(models, **env) as base:
        for round_ in range(1, args.rounds + 1):
            for route in rows:
                r = asyncio.run(served_round(base, image, route, args.seconds))
                rows[route].append(r)
                print(
                    f"  {round_:<6}{route:11}{r['rps']:8.1f}{r['server_cpu_ms']:9.2f}{r['loop_ms']:8.2f}"
                    f"{r['model_threads_ms']:11.2f}{r['client_cpu_ms']:9.2f}{r['busy']:7.0%}"
                )

    def median(route: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[route])

    ours_loop = (pieces["decode"] + pieces["preprocess"] + pieces["JSON of one result"]) / 1000
    model_in_process = (pieces["model, batch 4"] + pieces["post-processing, batch 4"]) / 1000
    classify_total = median("/classify", "server_cpu_ms") + median("/classify", "client_cpu_ms")
    budget = cores * 1000 / (0.8 * floor)
    print("\nsummary (medians of the rounds; ms of CPU per request)")
    loop_extra = median("/classify", "loop_ms") - median("/noop", "loop_ms")
    print(
        f"  event loop: classify {median('/classify', 'loop_ms'):.2f}, no-op {median('/noop', 'loop_ms'):.2f}, "
        f"difference {loop_extra:.2f}; of it, our decode + preprocessing + JSON in-process {ours_loop:.2f}"
    )
    print(
        f"  model threads: {median('/classify', 'model_threads_ms'):.2f}, against the model + post-processing "
        f"in-process at batch 4: {model_in_process:.2f}"
    )
    print(
        f"  a classify request cost {classify_total:.2f} (server + load client); at 80 % of the in-process floor "
        f"({floor:.0f} images/s on one thread) {cores} cores allow {budget:.2f}: "
        f"{classify_total - budget:+.2f} ({classify_total / budget - 1:+.0%})"
    )


if __name__ == "__main__":
    main()
