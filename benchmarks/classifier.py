"""CIFAR-10 training speed: our trainer vs the seed tutorial's recipe, same data, threads and budget.

    python benchmarks/classifier.py --data data/cifar10 --budget 480 \
        --set 'widths=[16,64,128]' batch_size=512 lr=0.75 epochs=9   # CPU (the README's CPU profile)
    python benchmarks/classifier.py --data data/cifar10 --device cuda --runs 5 --skip-peer        # GPU
    python benchmarks/classifier.py --data data/cifar10 --holdout 5000 --final-eval-only --skip-peer \
        --skip-onnx --set optimizer=muon ...          # choosing a profile: last 5,000 train images as validation

The peer is the seed tutorial's recipe, implemented here: CifarCNN (6 conv + 3 linear layers,
5.85M parameters), Adam lr 1e-4, batch 128, random crop (padding 4) + horizontal flip, fp32.
Both train for the same wall-clock budget of *training* time (evaluation pauses the clock) and
report test accuracy along the way; the table shows time vs accuracy and our time to 85%. The
seed's own log first passes 85% at epoch 15, so its time-to-85% here is estimated as 15 × its
measured epoch time. ``--runs N`` trains ours N times (seeds seed, seed+1, ...) and prints each
run's accuracy and training time, their mean and spread. Finally the exported classifier's ONNX
Runtime CPU throughput at batch 1 and 64.

Beside each run's time it prints the training FLOPs (forward + backward per image at each epoch's
resolution, and the optimizer's matmuls, by ``torch.utils.flop_counter``) and the achieved rate
against a ``torch.mm`` measured in the same run at the training precision. ``--holdout N`` trains
on the first 50,000 − N training images and reports the last N (a validation split, for choosing
a profile without looking at the test set); ``--with-default`` also trains the default params once.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnpipe.data import cifar10
from cnnpipe.device import describe_hardware, pick_device, use_bf16
from cnnpipe.errors import ParamError, exit_on_user_error
from cnnpipe.export.onnx import export
from cnnpipe.flops import counted_flops, matmul_rate
from cnnpipe.models.checkpoint import build_classifier
from cnnpipe.models.classifier import CIFAR10_MEAN, CIFAR10_STD, AirbenchNet
from cnnpipe.models.onnx_runtime import ort_session
from cnnpipe.params import ClassifierParams, section_with_overrides
from cnnpipe.train.classifier import accuracy, model_config, model_size, muon_filters, train
from cnnpipe.train.muon import ConvMuon

SEED_EPOCHS_TO_85 = 15  # from the seed tutorial's own training log


class CifarCNN(nn.Module):
    """The seed tutorial's network."""

    def __init__(self) -> None:
        super().__init__()

        def conv(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]

        self.net = nn.Sequential(
            *conv(3, 32),
            *conv(32, 64),
            nn.MaxPool2d(2),
            *conv(64, 128),
            *conv(128, 128),
            nn.MaxPool2d(2),
            *conv(128, 256),
            *conv(256, 256),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(256 * 4 * 4, 1024),
            nn.ReLU(),
            nn.Linear(1024, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _SeedDataset(torch.utils.data.Dataset):
    """The tutorial's data path: one PIL image at a time through torchvision transforms."""

    def __init__(self, split: cifar10.Split) -> None:
        import torchvision.transforms as T

        self.images = split.images.transpose(0, 2, 3, 1)  # HWC, as the tutorial's loader yields
        self.labels = split.labels
        self.transform = T.Compose(
            [
                T.RandomCrop(32, padding=4, padding_mode="reflect"),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(CIFAR10_MEAN, CIFAR10_STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def seed_recipe(train_split: cifar10.Split, test: cifar10.Split, budget: float, eval_every: float) -> list[tuple]:
    """Train the peer for ``budget`` seconds of training time; (seconds, epochs, test acc) rows.

    Data loading counts as training time: the per-image loader is part of the recipe."""
    torch.manual_seed(0)
    model = CifarCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loader = torch.utils.data.DataLoader(_SeedDataset(train_split), batch_size=128, shuffle=True, drop_last=True)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    rows, trained, next_eval, step = [], 0.0, eval_every, 0
    while trained < budget:
        started = time.perf_counter()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            now = time.perf_counter()
            trained += now - started
            if trained >= next_eval or trained >= budget:
                rows.append((trained, step / len(loader), _peer_accuracy(model, test, mean, std)))
                model.train()
                next_eval += eval_every
            if trained >= budget:
                break
            started = time.perf_counter()
    return rows


@torch.no_grad()
def _peer_accuracy(model: nn.Module, test: cifar10.Split, mean: torch.Tensor, std: torch.Tensor) -> float:
    model.eval()
    x = torch.from_numpy(test.images)
    preds = torch.cat([model((x[i : i + 1000].float() / 255 - mean) / std).argmax(1) for i in range(0, len(x), 1000)])
    return (preds == torch.from_numpy(test.labels)).float().mean().item()


def ours(
    p: ClassifierParams, train_split: cifar10.Split, test: cifar10.Split, device: torch.device, every_epoch: bool = True
) -> tuple[list[tuple], nn.Module]:
    """Train ours once; (training seconds so far, epoch, accuracy on ``test``) per epoch, or only
    after the last epoch (``every_epoch=False``: no evaluation pauses at all), and the model."""
    rows: list[tuple] = []
    trained = 0.0

    def on_epoch(row: dict[str, float]) -> None:
        nonlocal trained
        trained += row["epoch_seconds"]
        if every_epoch:
            rows.append((trained, row["epoch"], row["test_acc"]))

    result = train(p, train_split, test if every_epoch else None, device, on_epoch=on_epoch)
    if not every_epoch:
        rows.append((trained, float(p.epochs), accuracy(result.model, test, device, p)))
    return rows, result.model


def training_flops(p: ClassifierParams, train_images: int, device: torch.device) -> float:
    """FLOPs of one training run of ``p``: forward + backward per image at each epoch's resolution
    (with the whitening bias learning or not, as the trainer does), plus Muon's orthogonalisation."""
    model = build_classifier(model_config(p, cifar10.CLASSES)).to(device).to(memory_format=torch.channels_last)
    per_image: dict[tuple[int, bool], float] = {}

    def image_flops(side: int, bias_learns: bool) -> float:
        if (side, bias_learns) not in per_image:
            if isinstance(model, AirbenchNet) and model.whiten.bias is not None:
                model.whiten.bias.requires_grad_(bias_learns)
            x = torch.rand(4, 3, side, side, device=device).contiguous(memory_format=torch.channels_last)
            y = torch.zeros(4, dtype=torch.long, device=device)
            per_image[side, bias_learns] = counted_flops(lambda: F.cross_entropy(model(x), y).backward()) / 4
            model.zero_grad(set_to_none=True)
        return per_image[side, bias_learns]

    steps = min(train_images, p.max_train_images or train_images) // p.batch_size
    total = 0.0
    for epoch in range(1, p.epochs + 1):
        side = p.low_res if p.low_res and epoch <= p.low_res_epochs else 32
        total += steps * p.batch_size * image_flops(side, epoch <= p.whiten_bias_epochs)
    if p.optimizer == "muon":
        filters = muon_filters(model)
        for w in filters:
            w.grad = torch.randn_like(w)
        total += steps * p.epochs * counted_flops(ConvMuon(filters, lr=p.muon_lr, momentum=p.muon_momentum).step)
    return total


def rate_line(flops: float, seconds: float, peak: float, precision: str) -> str:
    rate = flops / seconds
    return (
        f"{flops / 1e12:.1f} TFLOP in {seconds:.1f} s = {rate / 1e9:.0f} GFLOP/s, "
        f"{rate / peak:.0%} of the same-run {precision} torch.mm ({peak / 1e9:.0f} GFLOP/s)"
    )


def time_to(rows: list[tuple], target: float) -> float | None:
    return next((t for t, _, acc in rows if acc >= target), None)


def onnx_throughput(model: nn.Module, seconds: float = 5.0) -> dict[int, float]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "classifier.onnx"
        export(model, torch.rand(2, 3, 32, 32), path, {0: "batch"}, 18, {})
        session = ort_session(path)
        for batch in (1, 64):
            x = np.random.default_rng(0).random((batch, 3, 32, 32), dtype=np.float32)
            session.run(None, {"input": x})
            count, began = 0, time.perf_counter()
            while time.perf_counter() - began < seconds:
                session.run(None, {"input": x})
                count += 1
            out[batch] = count * batch / (time.perf_counter() - began)
    return out


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/cifar10"), help="extracted CIFAR-10 binary")
    parser.add_argument("--budget", type=float, default=480.0, help="training seconds for each trainer")
    parser.add_argument("--eval-every", type=float, default=60.0, help="peer evaluation interval (training s)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (ours; the peer runs on the CPU)")
    parser.add_argument("--runs", type=int, default=1, help="train ours this many times, seeds seed, seed+1, ...")
    parser.add_argument("--warmup", action="store_true", help="one untimed 1-epoch run first (GPU warm-up)")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-onnx", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], help="our params, e.g. epochs=8 widths=[16,64,64]")
    parser.add_argument("--holdout", type=int, default=0, help="evaluate on the last N train images, not the test set")
    parser.add_argument("--final-eval-only", action="store_true", help="evaluate ours once, after the last epoch")
    parser.add_argument("--with-default", action="store_true", help="also train the default params once")
    args = parser.parse_args()
    device = pick_device(args.device)  # first: no GPU is one line before any work

    train_split, test = cifar10.load(args.data, "train"), cifar10.load(args.data, "test")
    if not 0 <= args.holdout < len(train_split):
        raise ParamError(f"--holdout must be in 0..{len(train_split) - 1}, got {args.holdout}")
    evaluated = "test"
    if args.holdout:
        cut = len(train_split) - args.holdout
        train_split, test = train_split.subset(slice(0, cut)), train_split.subset(slice(cut, None))
        evaluated = f"validation (the last {args.holdout} training images; the test set is not used)"
    p = section_with_overrides(ClassifierParams, "classifier", args.set)
    print(describe_hardware())
    print(f"data {args.data}: {len(train_split)} train / {len(test)} {evaluated}; budget {args.budget:.0f} s each")
    print(f"ours on {device}: {p}")
    precision = "bf16" if use_bf16(p.bf16, device) else "fp32"
    peak = matmul_rate(torch.bfloat16 if precision == "bf16" else torch.float32, device)
    flops = training_flops(p, len(train_split), device)
    print(f"training FLOPs per run: {flops / 1e12:.2f} TFLOP (FlopCounterMode, forward + backward + optimizer)")

    if args.warmup:  # CUDA context, cuDNN autotuning, allocator: paid once here, not by run 1
        train(dataclasses.replace(p, epochs=1, seed=p.seed + 1000), train_split, None, device)
    runs = []
    for i in range(args.runs):
        run_p = dataclasses.replace(p, seed=p.seed + i)
        rows, model = ours(run_p, train_split, test, device, every_epoch=not args.final_eval_only)
        runs.append((run_p.seed, rows))
        print(
            f"run {i + 1}/{args.runs} seed {run_p.seed}: {evaluated.split()[0]} accuracy {rows[-1][2]:.4f} "
            f"after {rows[-1][0]:.2f} s; {rate_line(flops, rows[-1][0], peak, precision)}"
        )
    our_rows = runs[0][1]

    name = f"ours ({p.arch} {model_size(p)[1]})"
    print(f"\n{name:<34}seed recipe (CifarCNN, Adam 1e-4)")
    peer_rows = [] if args.skip_peer else seed_recipe(train_split, test, args.budget, args.eval_every)
    for i in range(max(len(our_rows), len(peer_rows))):
        left = f"{our_rows[i][0]:7.1f} s  ep {our_rows[i][1]:4.1f}  {our_rows[i][2]:.4f}" if i < len(our_rows) else ""
        right = (
            f"{peer_rows[i][0]:7.1f} s  ep {peer_rows[i][1]:4.2f}  {peer_rows[i][2]:.4f}" if i < len(peer_rows) else ""
        )
        print(f"{left:<34}{right}")

    finals = np.array([rows[-1][2] for _, rows in runs])
    seconds = np.array([rows[-1][0] for _, rows in runs])
    print(f"\nours, {len(runs)} run(s): " + ", ".join(f"seed {s} {r[-1][2]:.4f}" for s, r in runs))
    print(
        f"ours: mean {evaluated.split()[0]} accuracy {finals.mean():.4f}"
        f" (std {finals.std():.4f}, min {finals.min():.4f}),"
        f" mean training time {seconds.mean():.2f} s (max {seconds.max():.2f} s;"
        f" {'within' if seconds.max() <= args.budget else 'OVER'} the {args.budget:.0f} s budget)"
    )
    if args.with_default:
        default = ClassifierParams()
        default_flops = training_flops(default, len(train_split), device)
        rows, _ = ours(default, train_split, test, device, every_epoch=not args.final_eval_only)
        print(
            f"default params, seed {default.seed}: {evaluated.split()[0]} accuracy {rows[-1][2]:.4f} after "
            f"{rows[-1][0]:.2f} s; {rate_line(default_flops, rows[-1][0], peak, precision)}"
        )
    hit = time_to(our_rows, 0.85)
    if not args.final_eval_only:
        print(f"ours: time to 85% (run 1): {f'{hit:.1f} s' if hit else 'not reached'}")
    if peer_rows:
        epoch_seconds = peer_rows[-1][0] / peer_rows[-1][1]
        estimate = SEED_EPOCHS_TO_85 * epoch_seconds
        print(f"seed: {epoch_seconds:.1f} s/epoch here; to 85% ≈ {SEED_EPOCHS_TO_85} epochs = {estimate / 60:.1f} min")
        if hit and not args.final_eval_only:  # with one row per run, hit is the final time, not the time to 85%
            print(f"speed-up to 85%: {estimate / hit:.1f}×")
    if not args.skip_onnx:
        rates = onnx_throughput(model.cpu())
        print(f"ONNX Runtime CPU inference: batch 1 {rates[1]:.0f} images/s, batch 64 {rates[64]:.0f} images/s")
    if p.tta:
        print(f"(accuracies above use test-time augmentation level {p.tta}; the ONNX model is the plain network)")


if __name__ == "__main__":
    main()
