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
seconds; time per image is what compares.
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
from cnnpipe.flops import counted_flops, fitting_size, matmul_rate  # noqa: E402
from cnnpipe.models.checkpoint import build_classifier, build_sr  # noqa: E402
from cnnpipe.params import load_params  # noqa: E402
from cnnpipe.train import classifier as classifier_training  # noqa: E402
from cnnpipe.train import sr as sr_training  # noqa: E402

PRECISIONS = {"fp32": False, "bf16": True}


@dataclass(frozen=True)
class Job:
    """One training step to time: ``step(bf16)`` runs it once; ``items`` images or patches per step."""

    name: str
    items: int
    step: Callable[[bool], None]


def train_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, loss: Callable, device: torch.device) -> Job:
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

    return Job("", len(x), step)


def seconds_per_step(job: Job, bf16: bool, seconds: float, device: torch.device) -> float:
    """Median of at least three timed steps (after one untimed) spanning about ``seconds``."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    job.step(bf16)
    sync()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        began = time.perf_counter()
        job.step(bf16)
        sync()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def jobs(classifier_batch: int, sr_batch: int, scale: int, device: torch.device) -> list[Job]:
    params = load_params()
    torch.manual_seed(0)
    c = params.classifier
    net = build_classifier(classifier_training.model_config(c, CLASSES))
    images = torch.rand(classifier_batch, 3, 32, 32)
    labels = torch.randint(len(CLASSES), (classifier_batch,))
    classify = train_step(net, images, labels, F.cross_entropy, device)
    s = params.sr
    sr_net = build_sr(sr_training.model_config(s, scale))
    lr = torch.rand(sr_batch, 1, s.patch_size, s.patch_size)
    hr = torch.rand(sr_batch, 1, s.patch_size * scale, s.patch_size * scale)
    sr = train_step(sr_net, lr, hr, F.l1_loss, device)
    _, size = classifier_training.model_size(c)
    return [
        Job(f"classifier {c.arch} {size}, batch {classifier_batch} at 32²", classifier_batch, classify.step),
        Job(f"sr {s.arch} {s.channels}×{s.blocks} ×{scale}, batch {sr_batch} at {s.patch_size}²", sr_batch, sr.step),
    ]


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
    mm_seconds = {}
    for name, bf16 in PRECISIONS.items():
        dtype = torch.bfloat16 if bf16 else torch.float32
        n = fitting_size(dtype, device, seconds=args.seconds / 3)
        rate = matmul_rate(dtype, device, n=n, seconds=args.seconds / 3)
        mm_seconds[name] = 1 / rate
        print(f"{'torch.mm ' + name + f' {n}²':<52s} {rate / 1e9:12.1f} GFLOP/s")
    print(f"{'job, ms per item':<52s} {'fp32':>12s} {'bf16':>12s} {'bf16 against fp32':>20s}")
    print(f"{'torch.mm (time per FLOP)':<52s} {'':>12s} {'':>12s} {verdict(mm_seconds):>20s}")
    for job in jobs(args.classifier_batch, args.sr_batch, args.scale, device):
        flops = counted_flops(lambda job=job: job.step(False))
        per = {name: seconds_per_step(job, bf16, args.seconds, device) for name, bf16 in PRECISIONS.items()}
        ms = {name: 1000 * t / job.items for name, t in per.items()}
        print(f"{job.name:<52s} {ms['fp32']:12.3f} {ms['bf16']:12.3f} {verdict(per):>20s}")
        rates = {name: flops / t / 1e9 for name, t in per.items()}
        label = f"  GFLOP/s achieved ({flops / job.items / 1e9:.4f} GFLOP per item)"
        print(f"{label:<52s} {rates['fp32']:12.1f} {rates['bf16']:12.1f}")


def verdict(seconds: dict[str, float]) -> str:
    """bf16's time against fp32's, as "N× slower" or "N× faster"."""
    ratio = seconds["bf16"] / seconds["fp32"]
    return f"{ratio:.2f}× slower" if ratio >= 1 else f"{1 / ratio:.2f}× faster"


if __name__ == "__main__":
    main()
