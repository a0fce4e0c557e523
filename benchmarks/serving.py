"""Serving latency and throughput: HTTP (BentoML) and gRPC vs in-process ONNX Runtime.

    python benchmarks/serving.py --models models --seconds 8

Starts `bentoml serve` and `cnnpipe serve-grpc` on 127.0.0.1 from the given exported models,
drives them with an asyncio load client at concurrency 1, 8 and 32 (the client shares the
machine's cores with the server, as a sidecar would), and measures the inference core in-process
on the same cores. The HTTP `/noop` endpoint takes the same upload and does nothing: the
framework's floor. The HTTP server runs `--workers` BentoML workers (`CNNPIPE_WORKERS`, default 2
here); a second HTTP server serves classify on one worker beside it (with `--workers 1`: with the
other `CNNPIPE_BATCHING` setting). Prints p50/p99 latency and throughput per cell, the
CPU each request cost the server and the load client and how busy the machine was, then checks
the targets:
served classify throughput at each concurrency above 1 ≥ 80% of min(in-process batched, no-op), and
p50 at concurrency 1 ≤ no-op p50 + in-process batch-1 latency + 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnpipe.device import default_threads, describe_hardware  # noqa: E402
from serving.launch import bentoml_server, grpc_server  # noqa: E402


def png(h: int, w: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


CpuClock = Callable[[], float]
"""CPU seconds (user + system) some processes have used so far."""


def server_cpu(port: int) -> CpuClock:
    """The CPU clock of the server listening on ``port``: the processes holding its listening
    socket (BentoML's arbiter passes it to its workers) and all their children. Each process is
    asked for its own sockets: the system-wide table names one holder per socket, which with two
    workers counted one worker's CPU and not the other's."""
    import psutil

    def listens(proc: psutil.Process) -> bool:
        with contextlib.suppress(psutil.Error):
            return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in proc.net_connections("tcp"))
        return False

    holders = {proc.pid for proc in psutil.process_iter() if listens(proc)}
    if not holders:
        raise RuntimeError(f"no process listens on port {port}")

    def used() -> float:
        tree: dict[int, psutil.Process] = {}
        for pid in holders:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(pid)
                tree |= {p.pid: p for p in (root, *root.children(recursive=True))}
        total = 0.0
        for proc in tree.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    return used


def client_cpu() -> float:
    """This process's CPU seconds: the load client (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float:
    """CPU seconds all cores have spent not idle, since boot."""
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


async def load(
    call: Callable[[], Awaitable[None]], concurrency: int, seconds: float, server: CpuClock
) -> dict[str, float]:
    """Run ``call`` from ``concurrency`` workers for ``seconds``: latency percentiles, req/s, and
    the CPU per request of the server and of this client, and how busy the whole machine was."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                await call()
            except Exception:  # counted, not fatal: the table shows them
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    for _ in range(min(concurrency, 4)):  # warm-up
        await call()
    cpu_before = (server(), client_cpu(), machine_busy())
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    server_s, client_s, busy_s = (
        after - before for after, before in zip((server(), client_cpu(), machine_busy()), cpu_before, strict=True)
    )
    lat = np.array(latencies) * 1000
    done = max(1, len(lat))
    return {
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "rps": len(lat) / elapsed,
        "errors": errors,
        "server_cpu_ms": server_s / done * 1000,
        "client_cpu_ms": client_s / done * 1000,
        "busy": busy_s / (elapsed * (os.cpu_count() or 1)),
    }


def in_process(models: Path, image: bytes, sr_image: bytes, scale: int, seconds: float, threads: int) -> dict:
    from cnnpipe.serve.core import InferenceCore

    core = InferenceCore(models, threads=threads)

    def rate(fn: Callable[[], object], items: int) -> tuple[float, float]:
        fn()
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            fn()
            count += 1
        elapsed = time.perf_counter() - began
        return elapsed / count * 1000, count * items / elapsed

    batch = [image] * 64
    one_ms, _ = rate(lambda: core.classify([image]), 1)
    _, batched_ips = rate(lambda: core.classify(batch), 64)
    sr_ms, sr_ips = rate(lambda: core.super_resolve(sr_image, scale), 1)
    return {"classify_batch1_ms": one_ms, "classify_batched_ips": batched_ips, "sr_ms": sr_ms, "sr_ips": sr_ips}


Poster = Callable[[str, bytes, dict[str, str]], Callable[[], Awaitable[None]]]
"""(route, file bytes, form fields) → one POST of that multipart form, raising on a non-2xx."""


@contextlib.asynccontextmanager
async def http_poster(base: str, connections: int, client: str) -> AsyncIterator[Poster]:
    """POSTs from ``client``: aiohttp (C HTTP parser; the default, so the load client takes a small
    share of the cores it shares with the server) or httpx (pure Python, as runs before 2026-12-01
    evening used: at ~1 ms of CPU per request it took most of a core at c=8)."""
    if client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:

            def httpx_post(route: str, data: bytes, fields: dict[str, str]) -> Callable[[], Awaitable[None]]:
                async def call() -> None:
                    response = await http.post(route, files={"image": ("x.png", data)}, data=fields)
                    response.raise_for_status()

                return call

            yield httpx_post
        return

    import aiohttp

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base, connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        def aiohttp_post(route: str, data: bytes, fields: dict[str, str]) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                form = aiohttp.FormData(fields)
                form.add_field("image", data, filename="x.png", content_type="application/octet-stream")
                async with session.post(route, data=form) as response:
                    await response.read()
                    response.raise_for_status()

            return call

        yield aiohttp_post


Route = tuple[str, str, bytes, dict[str, str]]
"""(row name, route, file bytes, form fields)."""


async def http_cells(base: str, routes: list[Route], levels: list[int], seconds: float, client: str) -> dict:
    results = {}
    server = server_cpu(int(base.rsplit(":", 1)[1]))
    async with http_poster(base, max(levels), client) as post:
        for name, route, data, fields in routes:
            for c in levels:
                results[(name, c)] = await load(post(route, data, fields), c, seconds, server)
    return results


async def grpc_cells(
    address: str, image: bytes, sr_image: bytes, scale: int, levels: list[int], seconds: float
) -> dict:
    import grpc

    from cnnpipe.serve.v1 import inference_pb2 as pb
    from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc

    results = {}
    server = server_cpu(int(address.rsplit(":", 1)[1]))
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.InferenceStub(channel)

        async def classify() -> None:
            await stub.Classify(pb.ClassifyRequest(image=image))

        async def super_resolve() -> None:
            await stub.SuperResolve(pb.SuperResolveRequest(image=sr_image, scale=scale))

        for name, call in (("gRPC classify", classify), ("gRPC super_resolve", super_resolve)):
            for c in levels:
                results[(name, c)] = await load(call, c, seconds, server)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--seconds", type=float, default=8.0, help="per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--workers", type=int, default=2, help="the HTTP server's CNNPIPE_WORKERS; classify on one worker is beside it"
    )
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads per worker (default: as the service)")
    parser.add_argument("--sr-size", type=int, default=64, help="side of the super-resolution input")
    parser.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp", help="HTTP load client")
    parser.add_argument(
        "--batching",
        choices=("on", "off"),
        default="on",
        help="the HTTP server's CNNPIPE_BATCHING; classify with the other setting is measured beside it",
    )
    args = parser.parse_args()
    models = args.models.resolve()
    cores = os.cpu_count() or 1
    if args.threads is None:  # the service's default (serving/config.py)
        args.threads = default_threads(args.workers)
    scale = min(int(p.stem.removeprefix("sr_x")) for p in models.glob("sr_x*.onnx"))
    image, sr_image = png(32, 32), png(args.sr_size, args.sr_size, seed=1)

    print(describe_hardware())
    print(f"models {models}; classify input 32×32 PNG; super_resolve {args.sr_size}×{args.sr_size} ×{scale}")
    print(
        f"HTTP load client: {args.client}; gRPC load client: grpc.aio; ONNX Runtime threads {args.threads}; "
        f"HTTP CNNPIPE_WORKERS={args.workers} CNNPIPE_BATCHING={args.batching}"
    )
    local = in_process(models, image, sr_image, scale, args.seconds, args.threads)
    threads = str(args.threads)
    routes: list[Route] = [
        ("HTTP noop", "/noop", image, {}),
        ("HTTP classify", "/classify", image, {}),
        ("HTTP super_resolve", "/super_resolve", sr_image, {"scale": str(scale)}),
    ]
    levels, seconds = args.concurrency, args.seconds
    served = {"CNNPIPE_THREADS": threads, "CNNPIPE_BATCHING": args.batching, "CNNPIPE_WORKERS": str(args.workers)}
    with bentoml_server(models, **served) as base:
        cells = asyncio.run(http_cells(base, routes, levels, seconds, args.client))
    # Beside it, classify served the other way: on one worker, or (with one already) the other batching.
    if args.workers != 1:
        name, other = "HTTP classify, 1 worker", {"CNNPIPE_WORKERS": "1", "CNNPIPE_THREADS": str(default_threads(1))}
    else:
        batching = {"on": "off", "off": "on"}[args.batching]
        name, other = f"HTTP classify, batching {batching}", {"CNNPIPE_BATCHING": batching}
    with bentoml_server(models, **{**served, **other}) as base:
        beside: list[Route] = [(name, "/classify", image, {})]
        cells |= asyncio.run(http_cells(base, beside, levels, seconds, args.client))
    with grpc_server(
        models, "--threads", threads, "--workers", str(max(args.concurrency)), CNNPIPE_THREADS=threads
    ) as addr:
        cells |= asyncio.run(grpc_cells(addr, image, sr_image, scale, args.concurrency, args.seconds))

    print(f"\n{'':24}" + "".join(f"{'c=' + str(c):>28}" for c in args.concurrency))
    print(f"{'':24}" + "".join(f"{'p50 ms':>10}{'p99 ms':>9}{'req/s':>9}" for _ in args.concurrency))
    for name in dict.fromkeys(n for n, _ in cells):
        row = "".join(
            f"{cells[(name, c)]['p50']:>10.2f}{cells[(name, c)]['p99']:>9.2f}{cells[(name, c)]['rps']:>9.1f}"
            for c in args.concurrency
        )
        errors = sum(cells[(name, c)]["errors"] for c in args.concurrency)
        print(f"{name:<24}{row}" + (f"   ({errors} errors)" if errors else ""))
    print(f"\nCPU per request, ms: server (all its processes) + load client; whole machine busy over {cores} cores")
    print(f"{'':24}" + "".join(f"{'c=' + str(c):>28}" for c in args.concurrency))
    print(f"{'':24}" + "".join(f"{'server':>10}{'client':>9}{'busy':>9}" for _ in args.concurrency))
    for name in dict.fromkeys(n for n, _ in cells):
        row = "".join(
            f"{cells[(name, c)]['server_cpu_ms']:>10.2f}{cells[(name, c)]['client_cpu_ms']:>9.2f}"
            f"{cells[(name, c)]['busy']:>9.0%}"
            for c in args.concurrency
        )
        print(f"{name:<24}{row}")
    print(
        f"\nin-process (same cores, no server): classify batch-1 {local['classify_batch1_ms']:.2f} ms, "
        f"batched (64) {local['classify_batched_ips']:.0f} images/s; "
        f"super_resolve {local['sr_ms']:.2f} ms ({local['sr_ips']:.1f}/s)"
    )

    for level in [c for c in args.concurrency if c > 1]:
        floor = min(local["classify_batched_ips"], cells[("HTTP noop", level)]["rps"])
        for proto in ("HTTP", "gRPC"):
            served = cells[(f"{proto} classify", level)]["rps"]
            verdict = "PASS" if served >= 0.8 * floor else f"FAIL ({served / floor:.0%} of it)"
            print(
                f"target {proto} classify c={level}: {served:.1f} req/s ≥ 80% of min(in-process batched, no-op) "
                f"{floor:.1f} = {0.8 * floor:.1f}: {verdict}"
            )
            cell = cells[(f"{proto} classify", level)]
            per_request = (cell["server_cpu_ms"] + cell["client_cpu_ms"]) / 1000
            print(
                f"  at {0.8 * floor:.1f} req/s, this cell's CPU per request ({per_request * 1000:.2f} ms, server + "
                f"client) would keep {0.8 * floor * per_request:.2f} of {cores} cores busy"
            )
    first = min(args.concurrency)
    budget = cells[("HTTP noop", first)]["p50"] + local["classify_batch1_ms"] + 2.0
    p50 = cells[("HTTP classify", first)]["p50"]
    print(f"target HTTP classify p50 c={first}: {p50:.2f} ms ≤ {budget:.2f} ms: {'PASS' if p50 <= budget else 'FAIL'}")


if __name__ == "__main__":
    main()
