"""Time from upload to result through the page at /ui, in headless Chromium, against the same
request sent straight to the API by an HTTP client in the same run.

    python benchmarks/ui.py                      # default-size nets, untrained (timing does not depend on weights)
    python benchmarks/ui.py --models models      # the pipeline's exported models

Starts `bentoml serve` on 127.0.0.1, opens /ui in Debian's Chromium through Playwright, and for a
512×512 photo-like PNG measures, ``--repeats`` times each: classify (file picked → five bars on
screen) and ×3 super-resolution (click → the result and the bicubic canvas on screen), by the
page's own clock (``performance.now()`` to the second animation frame after drawing) and by
Playwright's wall clock around the action (which adds handing the file to the browser). The client
and the browser share the machine's cores with the server. Prints the hardware, then median and p90.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnpipe.data.cifar10 import CLASSES  # noqa: E402
from cnnpipe.device import default_threads, describe_hardware  # noqa: E402
from cnnpipe.export.onnx import SR_DYNAMIC_AXES, export  # noqa: E402
from cnnpipe.models import integrity  # noqa: E402
from cnnpipe.models.checkpoint import build_classifier, build_sr, save_checkpoint  # noqa: E402
from cnnpipe.params import ClassifierParams, SRParams  # noqa: E402
from cnnpipe.train.classifier import model_config as classifier_config  # noqa: E402
from cnnpipe.train.sr import model_config as sr_config  # noqa: E402
from serving.launch import bentoml_server  # noqa: E402

SCALE = 3


def untrained_models(folder: Path) -> Path:
    """The default params' nets (params.yaml defaults), random weights, exported as the pipeline does."""
    torch.manual_seed(0)
    config = classifier_config(ClassifierParams(), CLASSES)
    classifier = build_classifier(config).eval()
    save_checkpoint(folder / "classifier.pt", classifier, config)
    meta = {
        integrity.TASK: integrity.CLASSIFICATION,
        "classes": CLASSES,
        integrity.CHECKPOINT_SHA256: integrity.sha256(folder / "classifier.pt"),
    }
    export(classifier, torch.rand(2, 3, 32, 32), folder / "classifier.onnx", {0: "batch"}, 18, meta)
    sr = build_sr(sr_config(SRParams(), SCALE)).eval()
    meta = {integrity.TASK: integrity.SUPER_RESOLUTION, "scale": SCALE, "context": sr.context}
    export(sr, torch.rand(1, 1, 24, 24), folder / f"sr_x{SCALE}.onnx", SR_DYNAMIC_AXES, 18, meta)
    for model in ("classifier.onnx", f"sr_x{SCALE}.onnx"):
        integrity.record_sha256(folder / model)  # the servers check the models against these
    return folder


def photo_png(side: int) -> bytes:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    base = np.stack([xx * 255 / side, yy * 255 / side, (xx + yy) * 127 / side], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, (side, side, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return f"{name:<46} median {statistics.median(ms):8.1f} ms   p90 {p90:8.1f} ms   (n={len(ms)})"


def through_page(base: str, chromium: str, image: bytes, repeats: int) -> dict[str, list[float]]:
    """Seconds per round: ``classify``/``super_resolve`` by Playwright's clock, ``*_in_page`` by the page's."""
    from playwright.sync_api import sync_playwright

    upload = [{"name": "photo.png", "mimeType": "image/png", "buffer": image}]
    times: dict[str, list[float]] = {"classify": [], "super_resolve": [], "classify_in_page": [], "sr_in_page": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"{base}/ui/")
        page.wait_for_selector("body[data-ready=true]", timeout=120_000)
        for i in range(repeats + 1):  # the first round warms up and is not counted
            started = time.perf_counter()
            page.set_input_files('.picker[data-for="classify"] input[type=file]', files=upload)
            page.wait_for_selector("#classify[data-ms]", timeout=120_000)
            if i:
                times["classify"].append(time.perf_counter() - started)
                times["classify_in_page"].append(float(page.get_attribute("#classify", "data-ms")) / 1000)

        page.click("[data-tab=superres]")
        page.set_input_files('.picker[data-for="superres"] input[type=file]', files=upload)
        page.select_option("#scale", str(SCALE))
        for i in range(repeats + 1):
            started = time.perf_counter()
            page.click("#upscale")
            page.wait_for_selector("#superres[data-ms]", timeout=120_000)
            if i:
                times["super_resolve"].append(time.perf_counter() - started)
                times["sr_in_page"].append(float(page.get_attribute("#superres", "data-ms")) / 1000)
        browser.close()
    return times


def direct(base: str, image: bytes, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"classify": [], "super_resolve": []}
    with httpx.Client(base_url=base, timeout=120) as client:
        for route, fields in (("/classify", {}), ("/super_resolve", {"scale": str(SCALE)})):
            for i in range(repeats + 1):
                started = time.perf_counter()
                response = client.post(route, files={"image": ("photo.png", image)}, data=fields)
                response.raise_for_status()
                if i:
                    times[route.removeprefix("/")].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, help="exported models (default: default-size untrained nets)")
    parser.add_argument("--side", type=int, default=512, help="the uploaded image is side×side")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=default_threads(), help="server threads")
    args = parser.parse_args()
    chromium = os.environ.get("CNNPIPE_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        raise SystemExit("error: no Chromium (apt-get install chromium, or set CNNPIPE_CHROMIUM)")

    print(describe_hardware())
    with tempfile.TemporaryDirectory() as scratch:
        models = args.models.resolve() if args.models else untrained_models(Path(scratch))
        label = str(models) if args.models else "default-size nets, untrained (params.yaml defaults)"
        print(f"models: {label}; upload {args.side}×{args.side} PNG; super-resolution ×{SCALE}")
        image = photo_png(args.side)
        with bentoml_server(models, CNNPIPE_THREADS=str(args.threads)) as base:
            page = through_page(base, chromium, image, args.repeats)
            api = direct(base, image, args.repeats)
    print()
    for name, in_page in (("classify", "classify_in_page"), ("super_resolve", "sr_in_page")):
        print(summary(f"{name}: page's own clock, input → drawn", page[in_page]))
        print(summary(f"{name}: Playwright, upload → drawn", page[name]))
        print(summary(f"{name}: httpx straight to the API", api[name]))


if __name__ == "__main__":
    main()
