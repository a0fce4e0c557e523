"""Every GPU figure in one command that fits a ≤ 10-minute run on one H100/H200.

    python benchmarks/gpu.py --data DIR --out FILE            # the real run, on CUDA
    python benchmarks/gpu.py --data DIR --out FILE --dry-run  # tiny sizes on the CPU: the same code paths

``DIR`` holds ``cifar-10-batches-bin/`` (the official binary release, extracted),
``BSDS300/images/train/`` (the 80 SR training images), ``Set5/`` and ``Set14/``;
benchmarks/gpu_steps.md says how to get them onto a GPU machine. Rows are written to ``FILE`` as
each is measured (flushed), most important first, so a run cut short keeps what it measured:

1. the classifier's default params over ``--seeds`` seeds and, on the same data and GPU,
   airbench94 from the ``airbench`` package (0.1.8) as the peer; then the 95 % and 96 % profiles
   (ours and airbench95/96) if the time budget allows;
2. DeepDream 512², VGG19 to features.26, 4 octaves ×2, 25 steps: ours (bf16 and fp32) and the
   seed tutorial's loop, with the job's FLOP count and the achieved TFLOP/s;
3. super-resolution ×3 trained for ``--sr-budget`` seconds on the GPU, Set5/Set14 Y-PSNR; ×2 and
   ×4 if time remains;
4. PyTorch inference (what a torch serving backend would run): classify images/s at batch 1, 64,
   1024; the ×2 net on a 960×540 image; peak GPU memory of DeepDream at 1024² tiled and of
   super-resolution to a 3840×2160 output.

Training time is counted as airbench counts it: whitening init and the epochs' steps, with the
GPU synchronised, per-epoch evaluation and compile warm-up apart. The script imports nothing a
bare GPU machine lacks (no dvc, dvclive, bentoml or pandas) and adds the repo's ``src/`` to the
path, so it runs from a plain copy of the working tree.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime
import io
import os
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # a bare GPU machine has the tree, not the installed package
    sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from cnnpipe.data import cifar10  # noqa: E402
from cnnpipe.data.images import load_folder  # noqa: E402
from cnnpipe.device import autocast, describe_hardware, pick_device  # noqa: E402
from cnnpipe.dream.backbones import Backbone, torchvision_backbone  # noqa: E402
from cnnpipe.dream.engine import DreamParams, dream, pyramid_sizes  # noqa: E402
from cnnpipe.dream.presets import PRESETS  # noqa: E402
from cnnpipe.errors import DataError, exit_on_user_error, output_error  # noqa: E402
from cnnpipe.evaluate.sr import Upscaler, sr_scores  # noqa: E402
from cnnpipe.flops import input_gradient_flops  # noqa: E402
from cnnpipe.models.checkpoint import build_classifier, build_sr  # noqa: E402
from cnnpipe.models.upscale import LumaModel, upscale  # noqa: E402
from cnnpipe.params import ClassifierParams, SRParams, section_with_overrides  # noqa: E402
from cnnpipe.train.classifier import accuracy, model_config  # noqa: E402
from cnnpipe.train.classifier import train as train_classifier  # noqa: E402
from cnnpipe.train.sr import model_config as sr_model_config  # noqa: E402
from cnnpipe.train.sr import train as train_sr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dream import seed_loop  # noqa: E402  # benchmarks/dream.py
from sr import fitted_epochs  # noqa: E402  # benchmarks/sr.py

PARAMS = ROOT / "params.yaml"
DREAM_LAYER = "features.26"

# Our params for the airbench95/96 recipes: airbench's lr per 1024 examples ÷ (1 + 1/(1 − momentum)),
# and the weight decay that keeps airbench's per-step decay (its 0.0153 at every lr).
PROFILES: dict[str, list[str]] = {
    "default": [],
    "95": ["widths=[128,384,384]", "lr=1.304", "weight_decay=0.001565", "epochs=15"],
    "96": ["widths=[128,512,512]", "lr=1.174", "weight_decay=0.00174", "epochs=40", "translate=4", "cutout=12"],
}
# The GPU super-resolution profile: a wider, deeper ressr in bf16 with big batches.
SR_GPU = [
    "channels=64",
    "blocks=10",
    "patch_size=32",
    "patches_per_epoch=8192",
    "batch_size=64",
    "lr=0.001",
    "bf16=true",
]
SR_TARGETS = {3: {"Set5": 34.0, "Set14": 30.0}}
DREAM_TARGET_S = 0.1
SR_MODEL_TARGET_MS = 5.0
SERVED = "served request: not measured (needs the torch backend, CNNPIPE_BACKEND=torch)"


@dataclass(frozen=True)
class Sizes:
    """How big each row's job is: the real one, or the dry run's tiny one (same code paths)."""

    seeds: int
    seeds_95: int
    seeds_96: int
    classifier_set: list[str]  # applied on top of every profile
    dream_size: int
    dream_octaves: int
    dream_steps: int
    dream_repeats: int
    sr_set: list[str]
    sr_budget_s: float
    classify_batches: tuple[int, ...]
    throughput_s: float
    sr_speed_size: tuple[int, int]  # LR (h, w) of the ×2 speed row
    memory_dream_size: int
    memory_dream_tile: int
    memory_sr_size: tuple[int, int]  # LR (h, w) upscaled ×2 in the memory row
    estimates_s: dict[str, float]  # each optional row's expected seconds on an H200


FULL = Sizes(
    seeds=10,
    seeds_95=3,
    seeds_96=1,
    classifier_set=[],
    dream_size=512,
    dream_octaves=4,
    dream_steps=25,
    dream_repeats=3,
    sr_set=SR_GPU,
    sr_budget_s=150.0,
    classify_batches=(1, 64, 1024),
    throughput_s=2.0,
    sr_speed_size=(540, 960),
    memory_dream_size=1024,
    memory_dream_tile=512,
    memory_sr_size=(1080, 1920),
    estimates_s={"95": 75.0, "96": 140.0, "sr": 190.0, "dream": 40.0, "torch": 40.0},
)
DRY = Sizes(
    seeds=2,
    seeds_95=1,
    seeds_96=1,
    classifier_set=["epochs=1", "widths=[4,8,8]", "batch_size=64", "max_train_images=128"],
    dream_size=32,  # small, and valid for 2 octaves; emulated bf16 (AVX2-only CPUs) made 64² cost ~11 s
    dream_octaves=2,
    dream_steps=2,
    dream_repeats=1,
    sr_set=["channels=8", "blocks=1", "patch_size=12", "patches_per_epoch=64", "batch_size=16"],
    sr_budget_s=2.0,
    classify_batches=(1, 8, 32),
    throughput_s=0.2,
    sr_speed_size=(54, 96),
    memory_dream_size=64,  # two tiles a side at the full-size octave (one at 32²)
    memory_dream_tile=32,  # the engine's smallest tile
    memory_sr_size=(108, 192),
    estimates_s={"95": 0.0, "96": 0.0, "sr": 0.0, "dream": 0.0, "torch": 0.0},
)


class Report:
    """The results file (and stdout): every line flushed as soon as it is written."""

    def __init__(self, file: TextIO) -> None:
        self.file = file

    def line(self, text: str) -> None:
        for stream in (self.file, sys.stdout):
            stream.write(text + "\n")
            stream.flush()

    @contextlib.contextmanager
    def row(self, name: str) -> Iterator[None]:
        """One row: its header, then what the body writes; a crash there is written as ``failed:``
        and the run goes on, so one broken row does not cost the rest of a GPU window."""
        self.line(f"\n== {name} ==")
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:  # the row's own failure (OOM, a compiler missing): record it, go on
            traceback.print_exc()
            self.line(f"failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
        self.line(f"(row took {time.perf_counter() - started:.1f} s)")


class Clock:
    """The run's time budget: optional rows run only if they leave room for the required ones."""

    def __init__(self, budget_s: float) -> None:
        self.started = time.perf_counter()
        self.budget_s = budget_s

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)

    def allows(self, estimate_s: float, reserve_s: float) -> bool:
        return self.left() - estimate_s >= reserve_s


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones, GPU synchronised."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - began)
    return out


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"mean {mean:.4f} std {std:.4f} min {min(values):.4f} max {max(values):.4f}"


# ----------------------------------------------------------------------------- classifier


def classifier_profile(name: str, sizes: Sizes) -> ClassifierParams:
    return section_with_overrides(ClassifierParams, "classifier", PROFILES[name] + sizes.classifier_set, PARAMS)


def ours_classifier(
    report: Report, p: ClassifierParams, seeds: int, data: tuple[cifar10.Split, cifar10.Split], device: torch.device
) -> nn.Module:
    """Train ``p`` for seeds seed..seed+n-1 after one untimed warm-up epoch; accuracy and time per seed."""
    train_split, test = data
    report.line(f"params: {p}")
    began = time.perf_counter()  # CUDA context, cuDNN autotuning, allocator: paid here, not by seed 1
    train_classifier(dataclasses.replace(p, epochs=1, seed=p.seed + 1000), train_split, None, device)
    report.line(f"warm-up (1 epoch, untimed): {time.perf_counter() - began:.2f} s")
    accs, seconds, evals, model = [], [], [], None
    for i in range(seeds):
        run = dataclasses.replace(p, seed=p.seed + i)
        result = train_classifier(run, train_split, None, device)
        trained = sum(row["epoch_seconds"] for row in result.history)
        began = time.perf_counter()
        acc = accuracy(result.model, test, device, run)
        sync(device)
        evals.append(time.perf_counter() - began)
        accs.append(acc)
        seconds.append(trained)
        model = result.model
        report.line(f"seed {run.seed}: test accuracy {acc:.4f} (tta {run.tta}), training {trained:.3f} s")
    report.line(f"ours, {seeds} seeds: accuracy {spread(accs)}")
    report.line(f"ours, {seeds} seeds: training seconds {spread(seconds)}")
    report.line(f"ours: test-time-augmented evaluation {statistics.fmean(evals):.3f} s mean (airbench counts it)")
    assert model is not None
    return model


def airbench_data(data: tuple[cifar10.Split, cifar10.Split], folder: Path) -> Path:
    """Our CIFAR-10 arrays in airbench's ``cifar10/{train,test}.pt`` (N×32×32×3 uint8, as
    torchvision's dataset holds them), so airbench never downloads anything."""
    root = folder / "cifar10"
    root.mkdir(parents=True, exist_ok=True)
    for name, split in zip(("train.pt", "test.pt"), data, strict=True):
        images = torch.from_numpy(np.ascontiguousarray(split.images.transpose(0, 2, 3, 1)))
        labels = torch.from_numpy(split.labels)
        torch.save({"images": images, "labels": labels, "classes": list(cifar10.CLASSES)}, root / name)
    return folder


def parse_airbench(printed: str) -> tuple[float, float]:
    """(tta accuracy, total seconds) from the ``eval`` row of airbench's printed table."""
    for line in reversed(printed.splitlines()):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[1] == "eval":
            return float(cells[5]), float(cells[6])
    raise RuntimeError(f"no eval row in airbench's output: {printed[-300:]!r}")


def airbench_peer(report: Report, level: int, runs: int, folder: Path, device: torch.device, dry: bool) -> None:
    """airbench9x from PyPI on our data: its own loader, net, training loop and timing (CUDA events)."""
    import airbench

    module = getattr(airbench, f"lib_airbench{level}")
    train_fn = getattr(airbench, f"train{level}")
    hyp = module.hyp
    report.line(f"airbench {getattr(airbench, '__version__', '0.1.8')} from {Path(airbench.__file__).parent}")
    with contextlib.chdir(folder):  # airbench reads ./cifar10/{train,test}.pt
        batch = hyp["opt"]["batch_size"] if not dry else 64
        gpu: Any = 0 if device.type == "cuda" else "cpu"
        loader = airbench.CifarLoader("cifar10", train=True, batch_size=batch, aug=hyp["aug"], altflip=True, gpu=gpu)
        test = airbench.CifarLoader("cifar10", train=False, batch_size=2000, gpu=gpu)
        inputs, labels = next(iter(loader))  # the data as airbench sees it: normalised, augmented
        loader.epoch = 0
        report.line(
            f"data: {len(loader.images)} train / {len(test.images)} test images, batch {tuple(inputs.shape)} "
            f"{inputs.dtype}, labels {labels.dtype}; hyp {hyp['opt']} aug {hyp['aug']}"
        )
        if device.type != "cuda":
            report.line("skipped: needs CUDA (airbench builds its net with .cuda() and times with CUDA events)")
            return
        with contextlib.redirect_stdout(io.StringIO()):
            train_fn(loader, run=-1)  # airbench's warm-up: one step
        accs, seconds = [], []
        for run in range(runs):
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                train_fn(loader, run=run)
            acc, total = parse_airbench(printed.getvalue())
            accs.append(acc)
            seconds.append(total)
            report.line(f"run {run}: tta accuracy {acc:.4f}, time {total:.3f} s (airbench's count, tta eval included)")
        report.line(f"airbench{level}, {runs} runs: accuracy {spread(accs)}")
        report.line(f"airbench{level}, {runs} runs: seconds {spread(seconds)}")


# ----------------------------------------------------------------------------- DeepDream


def dream_flops(backbone: Backbone, sizes: list[tuple[int, int]], steps: int) -> float:
    """FLOPs of the job: forward to the layer + the input gradient, per step, over the octaves."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        return backbone.activations(x, [DREAM_LAYER])[DREAM_LAYER]

    return sum(input_gradient_flops(forward, (1, 3, h, w), backbone.device) * steps for h, w in sizes)


def dream_rows(report: Report, sizes: Sizes, device: torch.device) -> Backbone:
    """Ours (bf16, fp32) and the seed loop on the classic job; one backbone and image for all."""
    import torchvision

    from cnnpipe.data.sample import scene

    size = sizes.dream_size
    image = np.asarray(scene((size, size), np.random.default_rng(0)))
    torch.manual_seed(0)
    backbone = torchvision_backbone("vgg19", device, weights="random")
    classic = PRESETS["classic"]
    octaves, steps = sizes.dream_octaves, sizes.dream_steps
    flops = dream_flops(backbone, pyramid_sizes(size, size, octaves, classic.octave_scale), steps)
    job = f"{size}×{size}, vgg19 {DREAM_LAYER} (random weights), {octaves} octaves ×{classic.octave_scale:g}"
    job += f", {steps} steps"
    with report.row("deepdream: ours"):
        report.line(f"job: {job}; {flops / 1e12:.3f} TFLOP (forward + input gradient)")
        for label, bf16 in (("bf16 autocast", True), ("fp32", False)):
            params = dataclasses.replace(
                classic, layers={DREAM_LAYER: 1.0}, octaves=octaves, steps=steps, bf16=bf16, tile_size=max(512, size)
            )
            runs = timed(lambda params=params: dream(image, backbone, params), device, sizes.dream_repeats)
            best = min(runs)
            verdict = "met" if best <= DREAM_TARGET_S else "missed"
            report.line(
                f"ours {label}: {statistics.median(runs):.4f} s median, {best:.4f} s best of {len(runs)} "
                f"(one untimed run first); {flops / best / 1e12:.1f} TFLOP/s; target ≤ {DREAM_TARGET_S} s {verdict}"
            )
    with report.row("deepdream: seed loop"):
        peer = torchvision.models.vgg19()
        peer.load_state_dict({k: v.cpu() for k, v in backbone.model.state_dict().items()})
        net = nn.Sequential(peer.features[: int(DREAM_LAYER.split(".")[1]) + 1]).eval().to(device)
        began = time.perf_counter()
        seed_loop(net, image, octaves, classic.octave_scale, steps, classic.lr, device)
        seconds = time.perf_counter() - began
        report.line(
            f"seed loop (numpy + scipy zoom, weight grads, image to {device} and back each step): {seconds:.3f} s"
        )
        report.line(f"job: {job}; {flops / seconds / 1e12:.2f} TFLOP/s")
    return backbone


# ----------------------------------------------------------------------------- super-resolution


def device_luma(model: nn.Module, device: torch.device, bf16: bool = False) -> LumaModel:
    """The library's ``LumaModel`` for a net on ``device`` (numpy in and out, as upscale wants)."""

    def run(y: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(y).to(device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(device, bf16):
            return model(x).float().cpu().numpy()

    return run


def device_upscaler(model: nn.Module, device: torch.device, scale: int) -> Upscaler:
    """uint8 1×3×h×w → uint8 1×3×(h·s)×(w·s) through the library's ``upscale``, untiled, fp32."""
    luma = device_luma(model, device)
    overlap = int(getattr(model, "context", 24))

    def run(lr: torch.Tensor) -> torch.Tensor:
        out = upscale(lr[0].permute(1, 2, 0).numpy(), scale, luma, tile=1 << 16, overlap=overlap)
        return torch.from_numpy(out).permute(2, 0, 1)[None].contiguous()

    return run


def sr_row(
    report: Report,
    scale: int,
    p: SRParams,
    images: list[np.ndarray],
    sets: dict[str, list[np.ndarray]],
    budget_s: float,
    device: torch.device,
) -> nn.Module:
    epochs, epoch_s = fitted_epochs(p, scale, images, budget_s, device)
    run = dataclasses.replace(p, epochs=epochs)
    report.line(f"params: {run}; calibration {epoch_s:.2f} s/epoch → {epochs} epochs for {budget_s:g} s")
    began = time.perf_counter()
    model = train_sr(run, scale, images, device).model
    report.line(f"trained {time.perf_counter() - began:.1f} s on {len(images)} images")
    upscaler = device_upscaler(model, device, scale)
    for name, eval_images in sets.items():
        s = sr_scores(upscaler, eval_images, scale, desc=f"x{scale} {name}")
        target = SR_TARGETS.get(scale, {}).get(name)
        verdict = f"; target ≥ {target} {'met' if s['psnr_model'] >= target else 'missed'}" if target else ""
        report.line(
            f"x{scale} {name} ({s['images']} images): Y-PSNR {s['psnr_model']:.2f} dB, SSIM {s['ssim_model']:.4f}"
            f" (bicubic {s['psnr_bicubic']:.2f} / {s['ssim_bicubic']:.4f}){verdict}"
        )
    return model


# ----------------------------------------------------------------------------- PyTorch inference


def inference_net(model: nn.Module, device: torch.device) -> nn.Module:
    """A copy of ``model`` as a torch backend would hold it: eval, on ``device``, channels_last."""
    return copy.deepcopy(model).eval().to(device).to(memory_format=torch.channels_last)


def throughput(net: nn.Module, batch: int, device: torch.device, seconds: float) -> float:
    """Images/s of ``net`` on a ``batch`` of 32×32 images in [0, 1], bf16 autocast on CUDA."""
    x = torch.rand(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    bf16 = device.type == "cuda"

    def call() -> torch.Tensor:
        with torch.inference_mode(), autocast(device, bf16):
            return net(x)

    for _ in range(3):
        call()
    sync(device)
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        call()
        count += 1
    sync(device)
    return count * batch / (time.perf_counter() - began)


def sr_speed(report: Report, net: nn.Module, size: tuple[int, int], device: torch.device) -> None:
    h, w = size
    y = torch.rand(1, 1, h, w, device=device).contiguous(memory_format=torch.channels_last)
    for label, bf16 in (("bf16", True), ("fp32", False)):

        def call(bf16: bool = bf16) -> torch.Tensor:
            with torch.inference_mode(), autocast(device, bf16):
                return net(y)

        runs = timed(call, device, repeats=20, warmup=5)
        ms = statistics.median(runs) * 1e3
        verdict = f"; target ≤ {SR_MODEL_TARGET_MS:g} ms {'met' if ms <= SR_MODEL_TARGET_MS else 'missed'}"
        report.line(f"model ×2 on {w}×{h} luma → {w * 2}×{h * 2} ({label}): {ms:.2f} ms median of 20{verdict}")
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    luma = device_luma(net, device, bf16=True)
    runs = timed(lambda: upscale(image, 2, luma, tile=1 << 16, overlap=int(getattr(net, "context", 24))), device, 5)
    ms = statistics.median(runs) * 1e3
    report.line(f"library upscale() of the RGB image (CPU colour conversion + model, bf16): {ms:.1f} ms")
    report.line(SERVED)


@contextlib.contextmanager
def peak_memory(report: Report, device: torch.device) -> Iterator[None]:
    """Peak GPU memory allocated by the body, and how much of it the body added."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() if device.type == "cuda" else 0
    began = time.perf_counter()
    yield
    sync(device)
    seconds = time.perf_counter() - began
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
        above, held = (peak - before) / 2**20, before / 2**20
        report.line(
            f"peak GPU memory {peak / 2**20:.0f} MiB ({above:.0f} MiB above the {held:.0f} MiB held before);"
            f" {seconds:.2f} s"
        )
    else:
        report.line(f"peak GPU memory: n/a on {device} (the same call ran, {seconds:.2f} s)")


# ----------------------------------------------------------------------------- main


def hardware_lines(device: torch.device) -> list[str]:
    lines = [f"hardware: {describe_hardware()}"]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        lines.append(
            f"cuda: {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, {props.name}, "
            f"{props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"
        )
    else:
        lines.append(f"cuda: none used (device {device}; torch built with CUDA {torch.version.cuda})")
    return lines


def data_folders(data: Path) -> tuple[Path, Path, Path, Path]:
    """The four inputs under ``--data``, checked before any work."""
    cifar = cifar10.find_root(data)
    sr_train, set5, set14 = data / "BSDS300" / "images" / "train", data / "Set5", data / "Set14"
    for folder in (sr_train, set5, set14):
        if not folder.is_dir():
            raise DataError(
                f"no folder {folder}: --data must hold cifar-10-batches-bin/, BSDS300/images/train/, Set5/ and Set14/"
                " (see benchmarks/gpu_steps.md)"
            )
    return cifar, sr_train, set5, set14


def run(args: argparse.Namespace, report: Report, device: torch.device, folders: tuple[Path, Path, Path, Path]) -> None:
    sizes = DRY if args.dry_run else FULL
    if args.seeds:
        sizes = dataclasses.replace(sizes, seeds=args.seeds)
    if args.sr_budget is not None:
        sizes = dataclasses.replace(sizes, sr_budget_s=args.sr_budget)
    est = sizes.estimates_s
    budget = args.budget if args.budget is not None else (float("inf") if args.dry_run else 540.0)
    clock = Clock(budget)
    cifar, sr_train, set5, set14 = folders
    data = (cifar10.load(cifar, "train"), cifar10.load(cifar, "test"))
    report.line(f"data: CIFAR-10 {len(data[0])} train / {len(data[1])} test from {cifar}")
    work = Path(tempfile.mkdtemp(prefix="gpubench-"))
    airbench_dir = airbench_data(data, work)
    after_classifier = est["dream"] + est["sr"] + est["torch"]
    classifier: nn.Module | None = None

    for name, level, seeds in (("default", 94, sizes.seeds), ("95", 95, sizes.seeds_95), ("96", 96, sizes.seeds_96)):
        title = "default params" if name == "default" else f"{name} % profile"
        if name != "default" and not clock.allows(est[name], after_classifier):
            for row in (f"classifier: ours, {title}", f"classifier: airbench{level} (peer)"):
                with report.row(row):
                    report.line(f"skipped: time budget ({clock.left():.0f} s left, ~{est[name]:.0f} s needed)")
            continue
        with report.row(f"classifier: ours, {title}"):
            model = ours_classifier(report, classifier_profile(name, sizes), seeds, data, device)
            if classifier is None:
                classifier = model
        with report.row(f"classifier: airbench{level} (peer)"):
            airbench_peer(report, level, seeds, airbench_dir, device, args.dry_run)

    backbone = dream_rows(report, sizes, device)

    sr_p = section_with_overrides(SRParams, "sr", sizes.sr_set, PARAMS)
    sr_images = load_folder(sr_train)
    sets = {"Set5": load_folder(set5), "Set14": load_folder(set14)}
    sr_models: dict[int, nn.Module] = {}
    for scale in (3, 2, 4):
        with report.row(f"super-resolution ×{scale}"):
            if scale != 3 and not clock.allows(est["sr"], est["torch"]):
                report.line(f"skipped: time budget ({clock.left():.0f} s left, ~{est['sr']:.0f} s needed)")
                continue
            sr_models[scale] = sr_row(report, scale, sr_p, sr_images, sets, sizes.sr_budget_s, device)

    with report.row("torch inference: classify"):
        if classifier is None:  # the classifier rows failed: the architecture still times the same
            classifier = build_classifier(model_config(classifier_profile("default", sizes), cifar10.CLASSES))
        net = inference_net(classifier, device)
        for batch in sizes.classify_batches:
            rate = throughput(net, batch, device, sizes.throughput_s)
            precision = "bf16" if device.type == "cuda" else "fp32"
            report.line(f"batch {batch}: {rate:,.0f} images/s ({precision}, channels_last, inference_mode)")
        report.line(SERVED)
    sr_x2 = sr_models[2] if 2 in sr_models else build_sr(sr_model_config(sr_p, 2))
    h, w = sizes.sr_speed_size
    with report.row(f"torch inference: super-resolve ×2 {w}×{h}"):
        report.line("weights: " + ("the ×2 net trained above" if 2 in sr_models else "untrained ×2 net of the profile"))
        sr_speed(report, inference_net(sr_x2, device), sizes.sr_speed_size, device)
    side, tile = sizes.memory_dream_size, sizes.memory_dream_tile
    with report.row(f"peak GPU memory: deepdream {side}² tiled"):
        image = np.random.default_rng(1).integers(0, 256, (side, side, 3), dtype=np.uint8)
        layers, octaves = {DREAM_LAYER: 1.0}, sizes.dream_octaves
        params = DreamParams(layers=layers, octaves=octaves, octave_scale=2.0, steps=2, tile_size=tile, bf16=True)
        report.line(f"job: {side}×{side}, tiles ≤ {tile}, {params.octaves} octaves, {params.steps} steps, bf16")
        with peak_memory(report, device):
            dream(image, backbone, params)
    h, w = sizes.memory_sr_size
    with report.row(f"peak GPU memory: super-resolution ×2 to {w * 2}×{h * 2}"):
        image = np.random.default_rng(2).integers(0, 256, (h, w, 3), dtype=np.uint8)
        net = inference_net(sr_x2, device)
        for tile_label, tile_px in (("tiles of 256", 256), ("untiled", 1 << 16)):
            report.line(f"{w}×{h} → {w * 2}×{h * 2}, {tile_label}, bf16:")
            with peak_memory(report, device):
                luma = device_luma(net, device, bf16=True)
                upscale(image, 2, luma, tile=tile_px, overlap=int(getattr(net, "context", 24)))
    report.line(f"\nfinished in {time.perf_counter() - clock.started:.1f} s (budget {budget:g} s)")


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with the four inputs (see above)")
    parser.add_argument("--out", type=Path, required=True, help="the raw results file (overwritten)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: every row's code path")
    parser.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda, or cpu with --dry-run")
    parser.add_argument(
        "--budget", type=float, help="seconds (default 540; none with --dry-run): optional rows run only within it"
    )
    parser.add_argument("--seeds", type=int, default=0, help="seeds of the default classifier row (default 10)")
    parser.add_argument("--sr-budget", type=float, help="training seconds per SR scale (default 150)")
    args = parser.parse_args()

    device = pick_device(args.device or ("cpu" if args.dry_run else "cuda"))  # one line and exit 1 without CUDA
    folders = data_folders(args.data)
    try:
        file = args.out.open("w", encoding="utf-8")
    except OSError as exc:
        raise output_error(args.out, exc) from None
    with file:
        report = Report(file)
        if args.dry_run:
            report.line(f"cnnpipe GPU benchmark: DRY RUN (tiny sizes on {device}: the code paths, not measurements)")
        else:
            report.line(f"cnnpipe GPU benchmark on {device}")
        report.line("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
        for line in hardware_lines(device):
            report.line(line)
        report.line(f"started: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}; pid {os.getpid()}")
        run(args, report, device, folders)


if __name__ == "__main__":
    main()
