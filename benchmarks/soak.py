"""Soak: mixed classify / super-resolve / DeepDream traffic over HTTP and gRPC at once, with
hostile uploads interleaved, against the real servers on 127.0.0.1.

    python benchmarks/soak.py --models models --seconds 600

Every loop is bounded by the duration and each request by a timeout, so it stops by itself.
Reports requests by outcome, server errors (5xx / INTERNAL / UNKNOWN) and hangs (client
timeouts), the servers' resident memory after warm-up and at the end, and classify p99 latency
in the first and the last window. Targets (issue 13): zero server errors and hangs, memory
growth < 10 % after warm-up, last-window p99 ≤ 1.5× the first. ``tests/test_soak.py`` runs it for 60 s.
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnpipe.device import describe_hardware  # noqa: E402
from serving.launch import bentoml_server, start_grpc_server  # noqa: E402

TIMEOUT = 60.0  # a request that takes longer counts as a hang


def png(h: int, w: int, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


GOOD = png(48, 64)
HOSTILE = [b"", b"not an image at all", GOOD[:100], png(1, 1), png(1, 600), png(600, 2), png(8, 8)]


def rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants (BentoML's workers), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


@dataclass
class Report:
    seconds: float
    warmup: float
    outcomes: Counter = field(default_factory=Counter)  # (protocol, kind, outcome) → count
    classify_latency: list[tuple[float, float]] = field(default_factory=list)  # (time since start, seconds)
    memory: list[tuple[float, float]] = field(default_factory=list)  # (time since start, MB of both servers)
    memory_by_server: list[tuple[float, float, float]] = field(default_factory=list)  # (time, HTTP MB, gRPC MB)

    @property
    def server_errors(self) -> int:
        return sum(n for (_, _, outcome), n in self.outcomes.items() if outcome in ("5xx", "INTERNAL", "UNKNOWN"))

    @property
    def hangs(self) -> int:
        return sum(n for (_, _, outcome), n in self.outcomes.items() if outcome == "timeout")

    def p99(self, start: float, end: float) -> float:
        window = [lat for t, lat in self.classify_latency if start <= t < end]
        return float(np.percentile(window, 99)) if window else float("nan")

    def memory_growth(self) -> tuple[float, float, float]:
        after = [mb for t, mb in self.memory if t >= self.warmup]
        return after[0], max(after), (max(after) - after[0]) / after[0]


def run_soak(models: Path, seconds: float, warmup: float = 10.0, window: float = 60.0) -> Report:
    """Both servers, the traffic for ``seconds``, the report; everything stops by itself."""
    import grpc
    import httpx

    from cnnpipe.serve.v1 import inference_pb2 as pb
    from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc

    report = Report(seconds, warmup)
    lock = threading.Lock()
    env = {"CNNPIPE_THREADS": "1", "CNNPIPE_DREAM_SYNC_MAX_STEPS": "6", "CNNPIPE_DREAM_TASK_MAX_STEPS": "6"}
    grpc_server = start_grpc_server(models, "--threads", "1", "--dream-slots", "2", **env)
    try:
        with bentoml_server(models, **env) as base:
            http_pid = listener_pid(base)
            stub = pb_grpc.InferenceStub(grpc.insecure_channel(grpc_server.address))
            started = time.monotonic()
            stop = started + seconds

            def record(protocol: str, kind: str, outcome: str, latency: float | None = None) -> None:
                with lock:
                    report.outcomes[(protocol, kind, outcome)] += 1
                    if kind == "classify" and protocol == "http" and outcome == "ok" and latency is not None:
                        report.classify_latency.append((time.monotonic() - started, latency))

            def http_call(kind: str, route: str, image: bytes, **data: str) -> None:
                began = time.monotonic()
                try:
                    status = http.post(route, files={"image": ("x", image)}, data=data, timeout=TIMEOUT).status_code
                except httpx.TimeoutException:
                    return record("http", kind, "timeout")
                except httpx.HTTPError:
                    return record("http", kind, "connection")
                outcome = "ok" if status < 400 else ("5xx" if status >= 500 else "4xx")
                record("http", kind, outcome, time.monotonic() - began)

            def grpc_call(kind: str, call: Callable[[], object]) -> None:
                try:
                    result = call()
                    if kind == "deepdream":
                        list(result)  # type: ignore[call-overload]
                    record("grpc", kind, "ok")
                except grpc.RpcError as error:
                    code = error.code()
                    outcome = "timeout" if code == grpc.StatusCode.DEADLINE_EXCEEDED else code.name
                    record("grpc", kind, outcome if outcome in ("timeout", "INTERNAL", "UNKNOWN") else "4xx")

            dream = {"octaves": "2", "steps": "3", "layers": "features.3"}
            loops: list[Callable[[int], None]] = [
                lambda i: http_call("classify", "/classify", GOOD),
                lambda i: http_call("classify", "/classify", GOOD),
                lambda i: http_call("super_resolve", "/super_resolve", GOOD, scale="2"),
                lambda i: http_call("deepdream", "/deepdream", GOOD, **dream),
                lambda i: grpc_call("classify", lambda: stub.Classify(pb.ClassifyRequest(image=GOOD), timeout=TIMEOUT)),
                lambda i: grpc_call(
                    "super_resolve",
                    lambda: stub.SuperResolve(pb.SuperResolveRequest(image=GOOD, scale=2), timeout=TIMEOUT),
                ),
                lambda i: grpc_call(
                    "deepdream",
                    lambda: stub.DeepDream(
                        pb.DeepDreamRequest(image=GOOD, octaves=2, steps=3, layers=["features.3"]), timeout=TIMEOUT
                    ),
                ),
                lambda i: http_call("hostile", ["/classify", "/super_resolve", "/deepdream"][i % 3], HOSTILE[i % 7]),
                lambda i: grpc_call(
                    "hostile", lambda: stub.Classify(pb.ClassifyRequest(image=HOSTILE[i % 7]), timeout=TIMEOUT)
                ),
                lambda i: grpc_call(
                    "hostile",
                    lambda: list(stub.DeepDream(pb.DeepDreamRequest(image=HOSTILE[i % 7], steps=2), timeout=TIMEOUT)),
                ),
            ]

            def client(loop: Callable[[int], None]) -> None:
                i = 0
                while time.monotonic() < stop:
                    loop(i)
                    i += 1

            def sample_memory() -> None:
                while time.monotonic() < stop:
                    http_mb, grpc_mb = rss_mb(http_pid), rss_mb(grpc_server.proc.pid)
                    with lock:
                        report.memory.append((time.monotonic() - started, http_mb + grpc_mb))
                        report.memory_by_server.append((time.monotonic() - started, http_mb, grpc_mb))
                    time.sleep(2)

            with httpx.Client(base_url=base) as http:
                threads = [threading.Thread(target=client, args=(loop,)) for loop in loops]
                threads.append(threading.Thread(target=sample_memory))
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=seconds + 2 * TIMEOUT)
    finally:
        grpc_server.stop()
    return report


def listener_pid(base: str) -> int:
    """The `bentoml serve` process listening on ``base``'s port (its workers are its children)."""
    port = int(base.rsplit(":", 1)[1])
    inodes = {
        line.split()[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if int(line.split()[1].split(":")[1], 16) == port and line.split()[3] == "0A"  # LISTEN
    }
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if fd.readlink().name.removeprefix("socket:[").removesuffix("]") in inodes:
                return int(fd.parts[2])
        except OSError:
            continue
    raise RuntimeError(f"no process listens on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--window", type=float, default=60, help="seconds of classify latency compared")
    args = parser.parse_args()
    print(describe_hardware())
    report = run_soak(args.models, args.seconds, args.warmup)
    for key, count in sorted(report.outcomes.items()):
        print(f"{'/'.join(key):32s} {count:7d}")
    first = report.p99(args.warmup, args.warmup + args.window)
    last = report.p99(args.seconds - args.window, args.seconds)
    start_mb, peak_mb, growth = report.memory_growth()
    print(f"server errors {report.server_errors}, hangs {report.hangs}")
    minutes = {}
    for t, mb in report.memory:
        minutes.setdefault(int(t // 60), []).append(mb)
    print("memory by minute (MB, max):", " ".join(f"{m}:{max(v):.0f}" for m, v in sorted(minutes.items())))
    start, end = report.memory_by_server[0], report.memory_by_server[-1]
    print(f"HTTP server {start[1]:.0f} → {end[1]:.0f} MB, gRPC server {start[2]:.0f} → {end[2]:.0f} MB")
    print(f"memory after warm-up {start_mb:.0f} MB, peak {peak_mb:.0f} MB, growth {growth:+.1%} (target < 10 %)")
    print(
        f"classify p99 first window {first * 1000:.1f} ms, last {last * 1000:.1f} ms, ratio {last / first:.2f} (≤ 1.5)"
    )


if __name__ == "__main__":
    main()
