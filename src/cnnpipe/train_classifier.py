"""CIFAR-10 classifier training: data kept on the device as uint8, augmentation on whole batches.

SGD with Nesterov momentum, a one-cycle (linear warm-up, linear decay) learning rate, label
smoothing and optional bf16 autocast, the recipe of the fast CIFAR-10 trainers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnpipe import cifar10
from cnnpipe.augment import random_crop, random_flip
from cnnpipe.device import autocast, seed_everything
from cnnpipe.errors import ParamError
from cnnpipe.nets import build_classifier
from cnnpipe.params import ClassifierParams
from cnnpipe.progress import progress

EpochCallback = Callable[[dict[str, float]], None]


@dataclass
class TrainedClassifier:
    model: nn.Module
    config: dict[str, Any]
    history: list[dict[str, float]]


def model_config(p: ClassifierParams, classes: tuple[str, ...]) -> dict[str, Any]:
    return {"arch": p.arch, "width": p.width, "classes": list(classes), "input_size": 32}


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    batch_size: int = 1000,
    bf16: bool = False,
) -> torch.Tensor:
    """Logits (float32, on CPU) for uint8 N×3×32×32 images."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().div_(255)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, bf16):
            out.append(model(x).float().cpu())
    return torch.cat(out)


def train(
    p: ClassifierParams,
    train_split: cifar10.Split,
    test_split: cifar10.Split | None,
    device: torch.device,
    classes: tuple[str, ...] = cifar10.CLASSES,
    on_epoch: EpochCallback | None = None,
) -> TrainedClassifier:
    """Train a classifier from ``p`` and return it with its per-epoch history."""
    images = torch.from_numpy(train_split.images)
    labels = torch.from_numpy(train_split.labels)
    if p.max_train_images:
        images, labels = images[: p.max_train_images], labels[: p.max_train_images]
    if p.batch_size > len(images):
        raise ParamError(
            f"classifier.batch_size ({p.batch_size}) is larger than the training set ({len(images)} images)"
        )
    generator = seed_everything(p.seed)
    images, labels = images.to(device), labels.to(device)
    config = model_config(p, classes)
    model = build_classifier(config).to(device).to(memory_format=torch.channels_last)

    steps_per_epoch = len(images) // p.batch_size  # drop the ragged last batch
    total_steps = steps_per_epoch * p.epochs
    warmup = max(1, int(0.2 * total_steps))
    decay, no_decay = [], []
    for param in model.parameters():
        (no_decay if param.ndim <= 1 else decay).append(param)
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": p.weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=p.lr, momentum=p.momentum, nesterov=p.momentum > 0,
    )  # fmt: skip
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: s / warmup if s < warmup else max(0.0, (total_steps - s) / (total_steps - warmup)),
    )

    history: list[dict[str, float]] = []
    for epoch in range(1, p.epochs + 1):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(images), generator=generator).to(device)
        loss_sum, correct, seen = 0.0, 0, 0
        bar = progress(range(steps_per_epoch), desc=f"classifier epoch {epoch}/{p.epochs}", leave=False)
        for step in bar:
            idx = order[step * p.batch_size : (step + 1) * p.batch_size]
            x = random_flip(random_crop(images[idx], 4, generator), generator)
            x = x.float().div_(255).contiguous(memory_format=torch.channels_last)
            y = labels[idx]
            with autocast(device, p.bf16):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=p.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        row = {
            "epoch": float(epoch),
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_seconds": time.perf_counter() - started,
        }
        if test_split is not None:
            logits = predict_logits(model, torch.from_numpy(test_split.images), device, bf16=p.bf16)
            row["test_acc"] = (logits.argmax(1) == torch.from_numpy(test_split.labels)).float().mean().item()
        history.append(row)
        if on_epoch:
            on_epoch(row)
    return TrainedClassifier(model=model.eval(), config=config, history=history)
