"""CIFAR-10 classifier training: data kept on the device as uint8, augmentation on whole batches.

The recipe of the fast CIFAR-10 trainers: SGD with Nesterov momentum, a one-cycle (linear
warm-up, linear decay) learning rate, label smoothing, bf16 autocast, channels_last, an optional
EMA of the weights and test-time flip averaging. Training is resumable (a checkpoint per epoch,
written atomically, holding the RNG state too, so a resumed run ends exactly where an
uninterrupted one would) and data-parallel under torchrun.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cnnpipe import cifar10
from cnnpipe.augment import random_crop, random_flip
from cnnpipe.device import autocast, seed_everything, use_bf16
from cnnpipe.distributed import World, barrier
from cnnpipe.errors import ParamError
from cnnpipe.nets import atomic_torch_save, build_classifier
from cnnpipe.params import ClassifierParams
from cnnpipe.progress import progress

EpochCallback = Callable[[dict[str, float]], None]


@dataclass
class TrainedClassifier:
    model: nn.Module
    config: dict[str, Any]
    history: list[dict[str, float]]
    resumed_from_epoch: int = 0


def model_config(p: ClassifierParams, classes: tuple[str, ...]) -> dict[str, Any]:
    return {"arch": p.arch, "width": p.width, "classes": list(classes), "input_size": 32}


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    batch_size: int = 1000,
    bf16: bool = False,
    tta: bool = False,
) -> torch.Tensor:
    """Logits (float32, on CPU) for uint8 N×3×32×32 images; ``tta`` averages with the mirror image."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().div_(255)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, bf16):
            logits = model(x).float()
            if tta:
                logits = 0.5 * (logits + model(x.flip(-1)).float())
        out.append(logits.cpu())
    return torch.cat(out)


def accuracy(model: nn.Module, split: cifar10.Split, device: torch.device, p: ClassifierParams) -> float:
    logits = predict_logits(model, torch.from_numpy(split.images), device, bf16=use_bf16(p.bf16, device), tta=p.tta)
    return (logits.argmax(1) == torch.from_numpy(split.labels)).float().mean().item()


def _schedule(total_steps: int, warmup_fraction: float = 0.2) -> Callable[[int], float]:
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def _optimizer(model: nn.Module, p: ClassifierParams) -> torch.optim.Optimizer:
    decay = [q for q in model.parameters() if q.ndim > 1]
    no_decay = [q for q in model.parameters() if q.ndim <= 1]  # BN and biases
    groups = [{"params": decay, "weight_decay": p.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=p.lr, momentum=p.momentum, nesterov=p.momentum > 0)


def _ema(model: nn.Module, p: ClassifierParams) -> torch.optim.swa_utils.AveragedModel | None:
    if not p.ema:
        return None
    avg = torch.optim.swa_utils.get_ema_multi_avg_fn(p.ema)
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=avg, use_buffers=True)


def _load_checkpoint(path: Path | None, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != fingerprint:
        print(f"{path}: made with other params or data; starting afresh")
        return None
    return state


def train(
    p: ClassifierParams,
    train_split: cifar10.Split,
    test_split: cifar10.Split | None,
    device: torch.device,
    classes: tuple[str, ...] = cifar10.CLASSES,
    on_epoch: EpochCallback | None = None,
    checkpoint: Path | None = None,
    world: World | None = None,
) -> TrainedClassifier:
    """Train a classifier from ``p``; resume from ``checkpoint`` if it matches these params.

    Under torchrun every rank draws the same global batch (same seed) and keeps its
    ``rank::world`` share, so the data and the averaged gradient equal a single-process run with
    the same global batch; only batch-norm statistics are per-rank. Rank 0 writes checkpoints.
    """
    world = world or World()
    images = torch.from_numpy(train_split.images)
    labels = torch.from_numpy(train_split.labels)
    if p.max_train_images:
        images, labels = images[: p.max_train_images], labels[: p.max_train_images]
    if p.batch_size > len(images):
        raise ParamError(
            f"classifier.batch_size ({p.batch_size}) is larger than the training set ({len(images)} images)"
        )
    if p.batch_size % world.size:
        raise ParamError(f"classifier.batch_size ({p.batch_size}) must be divisible by the {world.size} processes")
    generator = seed_everything(p.seed)
    bf16 = use_bf16(p.bf16, device)
    images, labels = images.to(device), labels.to(device)
    config = model_config(p, classes)
    model = build_classifier(config).to(device).to(memory_format=torch.channels_last)
    steps_per_epoch = len(images) // p.batch_size  # the ragged last batch is dropped
    optimizer = _optimizer(model, p)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(steps_per_epoch * p.epochs))
    ema = _ema(model, p)
    history: list[dict[str, float]] = []
    first_epoch = 1

    fingerprint = {"params": dataclasses.asdict(p), "train_images": len(images), "world": world.size}
    state = _load_checkpoint(checkpoint, fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        history = list(state["history"])
        first_epoch = state["epoch"] + 1
        if world.is_main:
            print(f"resuming from {checkpoint} after epoch {state['epoch']}")
            for row in history:  # replay, so the epoch log is whole even though DVC cleared it
                if on_epoch:
                    on_epoch(row)

    net: nn.Module = DistributedDataParallel(model) if world.distributed else model
    if p.compile:
        net = _compiled(net, images[: min(len(images), 2)].float().div(255), device, bf16)
    shard = p.batch_size // world.size

    for epoch in range(first_epoch, p.epochs + 1):
        net.train()
        started = time.perf_counter()
        order = torch.randperm(len(images), generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        bar = progress(
            range(steps_per_epoch), desc=f"classifier epoch {epoch}/{p.epochs}", leave=False, disable=not world.is_main
        )
        for step in bar:
            idx = order[step * p.batch_size : (step + 1) * p.batch_size]
            x = random_flip(random_crop(images[idx], 4, generator), generator)[world.rank :: world.size]
            x = x.float().div_(255).contiguous(memory_format=torch.channels_last)
            y = labels[idx][world.rank :: world.size]
            with autocast(device, bf16):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=p.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
        seen = steps_per_epoch * shard
        row = {
            "epoch": float(epoch),
            "train_loss": loss_sum.item() / seen,
            "train_acc": correct.item() / seen,
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_seconds": time.perf_counter() - started,
        }
        final = ema.module if ema is not None else model
        if test_split is not None and world.is_main:
            row["test_acc"] = accuracy(final, test_split, device, p)
        history.append(row)
        if checkpoint is not None and world.is_main:
            atomic_torch_save(
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "ema": ema.state_dict() if ema is not None else {},
                    "history": history,
                },
                checkpoint,
            )
        barrier(world)
        if on_epoch and world.is_main:
            on_epoch(row)
    final = ema.module if ema is not None else model
    return TrainedClassifier(model=final.eval(), config=config, history=history, resumed_from_epoch=first_epoch - 1)


def _compiled(net: nn.Module, example: torch.Tensor, device: torch.device, bf16: bool) -> nn.Module:
    """``torch.compile`` where it can run; the eager module where it cannot (no compiler, old GPU).

    Compilation is lazy, so one forward/backward on an example batch decides; its gradients are
    discarded and batch-norm statistics restored, so the run is the same either way.
    """
    buffers = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}
    try:
        compiled = torch.compile(net)
        with autocast(device, bf16):
            compiled(example.contiguous(memory_format=torch.channels_last)).float().sum().backward()
    except Exception as exc:  # compile backends fail in many environment-specific ways
        print(f"torch.compile unavailable ({type(exc).__name__}: {str(exc).splitlines()[0]}); training eagerly")
        compiled = net
    net.zero_grad(set_to_none=True)
    net.load_state_dict(buffers, strict=False)
    return compiled
