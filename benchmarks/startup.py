"""Server cold start: seconds from launch to ready, beside the frameworks' own floor, same run.

    python benchmarks/startup.py --models models --reps 5

Ready is what a load balancer or a Kubernetes readiness probe waits for: ``/readyz`` answering 200
for the HTTP server (``bentoml serve serving.service:Cnnpipe``), the gRPC health service answering
SERVING for ``cnnpipe serve-grpc``. Peers in the same run, interleaved rep by rep: the same
``bentoml serve`` of a service with one no-op endpoint and no models (BentoML's floor), a bare
grpcio server with the health service (gRPC's floor), and fresh interpreters that only import
torch, or the inference core, with the time each takes. A replica's start is what a scale-out or
a restarted pod waits for; the HTTP server imports the service twice (BentoML's arbiter checks the
models before it starts a worker, serving/config.py), so every second of import counts twice.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from cnnpipe.device import describe_hardware  # noqa: E402
from serving.launch import bentoml_server, server_env, start_grpc_server  # noqa: E402
from serving.up import grpc_serving  # noqa: E402

# gRPC's floor: grpcio with the health service, nothing else, ready when it says so.
BARE_GRPC = """
import grpc
from concurrent import futures
from grpc_health.v1 import health, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(f"listening on 127.0.0.1:{port}", flush=True)
server.wait_for_termination()
"""


def wait_serving(address: str, timeout: float = 120) -> None:
    """Waits until the gRPC health service at ``address`` answers SERVING."""
    deadline = time.monotonic() + timeout
    while not grpc_serving(address):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{address} did not answer SERVING in {timeout:.0f} s")
        time.sleep(0.05)


def http_start(models: Path, **server: object) -> float:
    began = time.monotonic()
    with bentoml_server(models, **server):  # type: ignore[arg-type]
        return time.monotonic() - began


def grpc_start(models: Path, command: list[str] | None = None) -> float:
    began = time.monotonic()
    running = start_grpc_server(models, command=command)
    try:
        wait_serving(running.address)
        return time.monotonic() - began
    finally:
        running.stop()


def import_time(models: Path, module: str) -> float:
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", f"import {module}"], env=server_env(models), check=True)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="exported models (dvc repro's models/)")
    parser.add_argument("--reps", type=int, default=5, help="starts of each server, interleaved")
    args = parser.parse_args()
    models = args.models.resolve()
    print(describe_hardware())
    print(f"models {models}; {args.reps} reps, interleaved; seconds from launch to ready")
    floor = {"target": "startup_floor:Floor", "cwd": ROOT / "benchmarks", "models_env": False}
    rows: dict[str, Callable[[], float]] = {
        "HTTP: bentoml serve serving.service:Cnnpipe → /readyz 200": lambda: http_start(models),
        "HTTP floor: bentoml serve, one no-op endpoint, no models": lambda: http_start(models, **floor),
        "gRPC: cnnpipe serve-grpc → health SERVING": lambda: grpc_start(models),
        "gRPC floor: grpcio + health service → SERVING": lambda: grpc_start(models, [sys.executable, "-c", BARE_GRPC]),
        "python -c 'import torch'": lambda: import_time(models, "torch"),
        "python -c 'import cnnpipe.serve.core'": lambda: import_time(models, "cnnpipe.serve.core"),
    }
    import grpc  # noqa: F401 -- the load client's own imports, out of the first rep's time
    import httpx  # noqa: F401

    times: dict[str, list[float]] = {name: [] for name in rows}
    for rep in range(args.reps):
        for name, start in rows.items():
            times[name].append(start())
        print(f"rep {rep + 1}/{args.reps}: " + ", ".join(f"{t[-1]:.2f}" for t in times.values()), flush=True)
    width = max(map(len, rows))
    print(f"\n{'':{width}}  {'median s':>9}{'min s':>8}{'max s':>8}")
    for name, seconds in times.items():
        print(f"{name:{width}}  {statistics.median(seconds):9.2f}{min(seconds):8.2f}{max(seconds):8.2f}")


if __name__ == "__main__":
    main()
