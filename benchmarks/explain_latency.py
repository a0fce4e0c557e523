"""Served explain vs served classify: p50 latency at concurrency 1, same server, same run.

    python benchmarks/explain_latency.py                  # default-size nets, untrained weights
    python benchmarks/explain_latency.py --models models  # the pipeline's exports

Target (the look-inside issue): explain p50 ≤ 3 × classify p50. Explain does classify's ONNX
Runtime call, then Grad-CAM (a PyTorch forward and backward) and a 256×256 PNG overlay.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ui import photo_png, untrained_models  # noqa: E402  # benchmarks/ui.py, beside this script

from cnnpipe.device import default_threads, describe_hardware  # noqa: E402
from serving.launch import bentoml_server  # noqa: E402


def p50_ms(client: httpx.Client, route: str, image: bytes, requests: int) -> float:
    times = []
    for i in range(requests + 3):  # three warm-up requests
        started = time.perf_counter()
        client.post(route, files={"image": ("photo.png", image)}).raise_for_status()
        if i >= 3:
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, help="exported models with classifier.pt (default: untrained)")
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()
    print(describe_hardware())
    with tempfile.TemporaryDirectory() as scratch:
        models = args.models.resolve() if args.models else untrained_models(Path(scratch))
        print(f"models: {models if args.models else 'default-size nets, untrained'}; {args.side}×{args.side} PNG")
        image = photo_png(args.side)
        with bentoml_server(models, CNNPIPE_THREADS=str(args.threads)) as base:
            client = httpx.Client(base_url=base, timeout=120)
            classify = p50_ms(client, "/classify", image, args.requests)
            explain = p50_ms(client, "/explain", image, args.requests)
            answer = client.post("/explain", files={"image": ("photo.png", image)}).json()
            overlay = len(base64.b64decode(answer["overlay_png"]))
            side = f"{len(answer['map'])}×{len(answer['map'][0])}"
            client.close()
    ratio = explain / classify
    verdict = "met" if ratio <= 3 else "NOT met"
    print(f"classify p50 {classify:.2f} ms, explain p50 {explain:.2f} ms: {ratio:.2f}× (target ≤ 3×: {verdict})")
    print(f"explain answer: overlay PNG {overlay} bytes (256×256, stored uncompressed), map {side} as JSON")


if __name__ == "__main__":
    main()
