"""What bf16 autocast costs or saves on this machine: fp32 against bf16 for ``torch.mm`` and one
training step of each default net (``params.yaml``), same run.

    python benchmarks/precision.py [--seconds 10] [--classifier-batch 64] [--sr-batch 16] [--scale 2]

``bf16: auto`` (``cnnpipe.device.use_bf16``) turns autocast on only where the CPU has native bf16
(AVX-512 BF16 or AMX) or on CUDA; this prints the measurement behind that choice. On an AVX2-only
CPU oneDNN emulates bf16, so the bf16 column there is the price of forcing ``bf16: true``.

A training step is the trainer's: channels_last input, forward under autocast (or not), loss,
backward, a plain SGD update; its FLOPs are counted (``cnnpipe.flops``: matmuls and convolutions,
forward and backward), so each row also reads as an achieved rate beside the same-run matmul.
The classifier batch is smaller than the trainer's 1024 so that the emulated-bf16 step fits in
seconds; time per image (the median step's) is what compares. ``torch.mm`` compares both
precisions at one size, the largest at which an emulated call still fits, with fp32's own largest
printed above it as the machine's fp32 peak. On CUDA, TF32 is turned off so fp32 is fp32.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cnnpipe.data.cifar10 import CLASSES  # noqa: E402
from cnnpipe.device import autocast, describe_hardware, native_bf16, pick_device  # noqa: E402
from cnnpipe.errors import exit_on_user_error  # noqa: E402
from cnnpipe.flops import counted_flops, fitting_size, matmul_rate, synchronize  # noqa: E402
from cnnpipe.models.checkpoint import build_classifier, build_sr  # noqa: E402
from cnnpipe.params import load_params  # noqa: E402
from cnnpipe.train import classifier as classifier_training  # noqa: E402
from cnnpipe.train import sr as sr_training  # noqa: E402

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
"""The two precisions compared: name → the matmul dtype (and, for the training steps, autocast to it or not)."""


@dataclass(frozen=True)
class Job:
    """One training step to time: ``step(bf16)`` runs it once; ``items`` images or patches per step."""

    name: str
    items: int
    step: Callable[[bool], None]


def train_step(
    name: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, loss: Callable, device: torch.device
) -> Job:
    """A step of the trainers' shape for ``model`` on the batch ``x`` (channels_last)."""
    model = model.to(device).to(memory_format=torch.channels_last)
    x = x.to(device).contiguous(memory_format=torch.channels_last)
    target = target.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step(bf16: bool) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, bf16):
            out = model(x)
        loss(out.float(), target).backward()
        optimizer.step()

    return Job(name, len(x), step)


def timed_steps(job: Job, bf16: bool, seconds: float, device: torch.device) -> list[float]:
    """Seconds of each timed step: at least three (after one untimed), until ``seconds`` have passed."""
    job.step(bf16)
    synchronize(device)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        began = time.perf_counter()
        job.step(bf16)
        synchronize(device)
        times.append(time.perf_counter() - began)
    return times


def jobs(classifier_batch: int, sr_batch: int, scale: int, device: torch.device) -> list[Job]:
    """A training step of the default classifier and of the default ×``scale`` SR net."""
    params = load_params(ROOT / "params.yaml")
    torch.manual_seed(0)
    c, s = params.classifier, params.sr
    _, size = classifier_training.model_size(c)
    images = torch.rand(classifier_batch, 3, 32, 32)
    labels = torch.randint(len(CLASSES), (classifier_batch,))
    lr = torch.rand(sr_batch, 1, s.patch_size, s.patch_size)
    hr = torch.rand(sr_batch, 1, s.patch_size * scale, s.patch_size * scale)
    return [
        train_step(
            f"classifier {c.arch} {size}, batch {classifier_batch} at 32²",
            build_classifier(classifier_training.model_config(c, CLASSES)),
            images,
            labels,
            F.cross_entropy,
            device,
        ),
        train_step(
            f"sr {s.arch} {s.channels}×{s.blocks} ×{scale}, batch {sr_batch} at {s.patch_size}²",
            build_sr(sr_training.model_config(s, scale)),
            lr,
            hr,
            F.l1_loss,
            device,
        ),
    ]


def verdict(seconds: dict[str, float]) -> str:
    """bf16's time against fp32's, as "N× slower" or "N× faster"."""
    ratio = seconds["bf16"] / seconds["fp32"]
    return f"{ratio:.2f}× slower" if ratio >= 1 else f"{1 / ratio:.2f}× faster"


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="timing per row and precision")
    parser.add_argument("--classifier-batch", type=int, default=64)
    parser.add_argument("--sr-batch", type=int, default=16, help="params.yaml's sr.batch_size is 16")
    parser.add_argument("--scale", type=int, default=2, choices=[2, 3, 4])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    device = pick_device(args.device)
    print(describe_hardware())
    native = native_bf16(device)
    auto = "bf16" if native else "fp32"
    print(f"native bf16 on {device}: {'yes' if native else 'no'}, so `bf16: auto` trains in {auto}")
    if device.type == "cuda":  # else the fp32 column would be TF32 for the convolutions and matmuls
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        print("fp32 is strict fp32 here (TF32 off)")
    work = jobs(args.classifier_batch, args.sr_batch, args.scale, device)
    width = max(52, *(len(job.name) + 2 for job in work))
    head = f"{'fp32':>12s} {'bf16':>12s} {'bf16 against fp32':>20s}"

    fits = {name: fitting_size(dtype, device, seconds=args.seconds / 3) for name, dtype in PRECISIONS.items()}
    common = min(fits.values())  # compare both precisions at one size: the emulated one fits a smaller one
    print(f"{'torch.mm, GFLOP/s':<{width}s} {head}")
    if fits["fp32"] != common:
        peak = matmul_rate(torch.float32, device, n=fits["fp32"], seconds=args.seconds / 3, fit=False)
        label = f"  {fits['fp32']}²"
        print(f"{label:<{width}s} {peak / 1e9:12.4g}")
    rates = {
        name: matmul_rate(dtype, device, n=common, seconds=args.seconds / 3, fit=False)
        for name, dtype in PRECISIONS.items()
    }
    per_flop = {name: 1 / rate for name, rate in rates.items()}
    label = f"  {common}², both"
    print(f"{label:<{width}s} {rates['fp32'] / 1e9:12.4g} {rates['bf16'] / 1e9:12.4g} {verdict(per_flop):>20s}")

    print(f"{'training step, ms per item':<{width}s} {head}")
    for job in work:
        flops = counted_flops(lambda job=job: job.step(False))
        times = {
            name: timed_steps(job, dtype is torch.bfloat16, args.seconds, device) for name, dtype in PRECISIONS.items()
        }
        per = {name: statistics.median(t) for name, t in times.items()}
        ms = {name: 1000 * t / job.items for name, t in per.items()}
        print(f"{job.name:<{width}s} {ms['fp32']:12.4g} {ms['bf16']:12.4g} {verdict(per):>20s}")
        achieved = {name: flops / t / 1e9 for name, t in per.items()}
        label = f"  GFLOP/s achieved ({flops / job.items / 1e9:.4f} GFLOP per item)"
        print(f"{label:<{width}s} {achieved['fp32']:12.1f} {achieved['bf16']:12.1f}")
        print(f"{'  steps timed (median taken)':<{width}s} {len(times['fp32']):12d} {len(times['bf16']):12d}")


if __name__ == "__main__":
    main()
