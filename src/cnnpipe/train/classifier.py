"""CIFAR-10 classifier training: data kept on the device as uint8, augmentation on whole batches.

The recipe of the fastest CIFAR-10 trainers (airbench94, hlb-cifar10): a whitened first layer,
SGD with Nesterov momentum and a 64× lr on batch-norm shifts, a triangular learning rate, label smoothing,
random translation and alternating flips, lookahead averaging of the weights, bf16 autocast on GPU,
channels_last, and test-time flip + translation averaging. Training is resumable (a checkpoint per epoch,
written atomically, holding the RNG state too, so a resumed run ends exactly where an
uninterrupted one would) and data-parallel under torchrun.
"""

from __future__ import annotations

import dataclasses
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cnnpipe.data import cifar10
from cnnpipe.data.augment import crop, cutout
from cnnpipe.device import autocast, seed_everything, use_bf16
from cnnpipe.errors import ParamError
from cnnpipe.models.checkpoint import CLASSIFIER_ARCHS, atomic_torch_save, build_classifier
from cnnpipe.models.classifier import CIFAR10_MEAN, AirbenchNet
from cnnpipe.models.predict import predict_logits
from cnnpipe.params import ClassifierParams
from cnnpipe.progress import progress
from cnnpipe.train.distributed import World, barrier, from_main
from cnnpipe.train.muon import ConvMuon

EpochCallback = Callable[[dict[str, float]], None]


@dataclass
class TrainedClassifier:
    model: nn.Module
    config: dict[str, Any]
    history: list[dict[str, float]]
    resumed_from_epoch: int = 0


LOOKAHEAD_EVERY = 5  # steps between lookahead updates
WHITENING_IMAGES = 5000  # training images whose patch covariance initialises the whitening conv


def model_size(p: ClassifierParams) -> tuple[str, Any]:
    """The param that sizes ``p.arch`` and its value (``widths``, [64, 256, 256])."""
    name = CLASSIFIER_ARCHS[p.arch].size_param
    return name, getattr(p, name)


def model_config(p: ClassifierParams, classes: tuple[str, ...]) -> dict[str, Any]:
    name, size = model_size(p)
    return {"arch": p.arch, name: size, "classes": list(classes), "input_size": 32}


def accuracy(model: nn.Module, split: cifar10.Split, device: torch.device, p: ClassifierParams) -> float:
    logits = predict_logits(model, torch.from_numpy(split.images), device, bf16=use_bf16(p.bf16, device), tta=p.tta)
    return (logits.argmax(1) == torch.from_numpy(split.labels)).float().mean().item()


def triangle(total_steps: int, warmup: float, start: float, end: float) -> Callable[[int], float]:
    """lr factor: linear from ``start`` to 1 over the first ``warmup`` of the steps, then linear to ``end``."""
    peak = max(1, int(warmup * total_steps))

    def factor(step: int) -> float:
        if step < peak:
            return start + (1 - start) * step / peak
        return 1 + (end - 1) * min(1.0, (step - peak) / max(1, total_steps - peak))

    return factor


def muon_filters(model: nn.Module) -> list[torch.Tensor]:
    """The trainable conv filter banks, which ``optimizer: muon`` steps with Muon."""
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.requires_grad]


def _optimizers(model: nn.Module, p: ClassifierParams) -> list[torch.optim.Optimizer]:
    """Nesterov SGD for everything (``sgd``), or for all but the conv filters, which get
    :class:`ConvMuon` (``muon``; airbench94_muon, where the whitening bias also joins the batch-norm
    group's lr)."""
    if p.optimizer == "sgd":
        return [_sgd(model, p, skip=set(), bias_like=set())]
    filters = muon_filters(model)
    whiten_bias = model.whiten.bias if isinstance(model, AirbenchNet) else None
    bias_like = {id(whiten_bias)} if whiten_bias is not None else set()
    sgd = _sgd(model, p, skip={id(w) for w in filters}, bias_like=bias_like)
    return [sgd, ConvMuon(filters, lr=p.muon_lr, momentum=p.muon_momentum)]


def _sgd(model: nn.Module, p: ClassifierParams, skip: set[int], bias_like: set[int]) -> torch.optim.Optimizer:
    """Nesterov SGD; batch-norm parameters (and ``bias_like``) at ``norm_lr_scale`` × the lr with the
    weight decay divided by it, so they decay by the same fraction per step as the rest (airbench's
    64× BN-bias lr). Parameters in ``skip`` are left to another optimizer."""
    norm_modules = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    norm = {id(q) for m in norm_modules for q in m.parameters()} | bias_like
    trainable = [q for q in model.parameters() if q.requires_grad and id(q) not in skip]
    groups = [
        {"params": [q for q in trainable if id(q) not in norm], "lr": p.lr, "weight_decay": p.weight_decay},
        {
            "params": [q for q in trainable if id(q) in norm],
            "lr": p.lr * p.norm_lr_scale,
            "weight_decay": p.weight_decay / p.norm_lr_scale,
        },
    ]
    return torch.optim.SGD(groups, lr=p.lr, momentum=p.momentum, nesterov=p.momentum > 0)


class Lookahead:
    """A slow copy of the weights and BN statistics that the net is pulled onto every few steps
    (hlb-cifar10/airbench): ``slow ← slow + (1 - decay)·(net - slow)``, then ``net ← slow``.

    The decay ramps with training progress cubed, so early steps move freely and the last ones
    are averaged; an update with decay 1 at the end of each epoch hands the slow weights to the net.
    """

    def __init__(self, model: nn.Module) -> None:
        live = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}  # share the net's storage
        self.names = list(live)
        self.live = list(live.values())
        self.slow = {k: v.detach().clone() for k, v in live.items()}

    @staticmethod
    def decay(step: int, total_steps: int) -> float:
        return 0.95**LOOKAHEAD_EVERY * (step / total_steps) ** 3

    @torch.no_grad()
    def update(self, decay: float) -> None:
        """One fused pass over all tensors (``_foreach``): on a GPU, a handful of kernels, not two per tensor."""
        slow = [self.slow[k] for k in self.names]
        torch._foreach_lerp_(slow, self.live, 1 - decay)
        torch._foreach_copy_(self.live, slow)

    @torch.no_grad()
    def load(self, slow: dict[str, torch.Tensor]) -> None:
        for name in self.names:
            self.slow[name].copy_(slow[name])


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
    the same global batch; only batch-norm statistics are per-rank. Rank 0 writes checkpoints and
    decides for all ranks whether to resume (other nodes have no checkpoint on their disks).
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
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    images, labels = images.to(device), labels.to(device)
    config = model_config(p, classes)
    model = build_classifier(config).to(device)
    airbench = model if isinstance(model, AirbenchNet) else None
    setup_started = time.perf_counter()
    if airbench is not None:
        airbench.init_whitening(images[:WHITENING_IMAGES])
    setup_seconds = time.perf_counter() - setup_started  # counted as training time, in epoch 1
    model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = len(images) // p.batch_size  # the ragged last batch is dropped
    total_steps = steps_per_epoch * p.epochs
    optimizers = _optimizers(model, p)
    optimizer = optimizers[0]
    lr_factor = triangle(total_steps, p.warmup, p.lr_start, p.lr_end)
    schedules = [torch.optim.lr_scheduler.LambdaLR(o, lr_factor) for o in optimizers]
    ema = _ema(model, p)
    lookahead = Lookahead(model) if p.lookahead else None
    flip_base = torch.rand(len(images), generator=generator) < 0.5  # per image, for alternating flips
    history: list[dict[str, float]] = []
    first_epoch = 1

    fingerprint = {"params": dataclasses.asdict(p), "train_images": len(images), "world": world.size}
    state = from_main(world, _load_checkpoint(checkpoint, fingerprint) if world.is_main else None)
    if state is not None:
        model.load_state_dict(state["model"])
        for o, saved in zip(optimizers, state["optimizers"], strict=True):
            o.load_state_dict(saved)
        for schedule, saved in zip(schedules, state["schedules"], strict=True):
            schedule.load_state_dict(saved)
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if lookahead is not None:
            lookahead.load(state["lookahead"])
        history = list(state["history"])
        first_epoch = state["epoch"] + 1
        if world.is_main:
            print(f"resuming from {checkpoint} after epoch {state['epoch']}")
            for row in history:  # replay, so the epoch log is whole even though DVC cleared it
                if on_epoch:
                    on_epoch(row)

    def wrapped() -> nn.Module:
        """DDP and/or torch.compile around ``model``; rebuilt when the set of trainable params changes."""
        net: nn.Module = DistributedDataParallel(model) if world.distributed else model
        if p.compile:
            net = _compiled(net, images[:shard].float().div(255), device, bf16)  # the real batch shape
        return net

    net = None
    shard = p.batch_size // world.size

    for epoch in range(first_epoch, p.epochs + 1):
        if airbench is not None:  # the whitening bias learns early, then freezes: less backward work
            learn = epoch <= p.whiten_bias_epochs
            bias = airbench.whiten.bias
            if bias is not None and bias.requires_grad != learn:
                bias.requires_grad_(learn)
                net = None
        if net is None:
            net = wrapped()
        net.train()
        started = time.perf_counter()
        order = torch.randperm(len(images), generator=generator).to(device)
        draws = EpochDraws.draw(images, epoch, flip_base, p, generator)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        bar = progress(
            range(steps_per_epoch), desc=f"classifier epoch {epoch}/{p.epochs}", leave=False, disable=not world.is_main
        )
        for step in bar:
            idx = order[step * p.batch_size : (step + 1) * p.batch_size]
            x = _augment(images[idx], idx, draws, p)[world.rank :: world.size]
            x = x.float().div_(255)
            if epoch <= p.low_res_epochs and p.low_res:
                x = low_res(x, p.low_res)
            x = x.contiguous(memory_format=torch.channels_last)
            y = labels[idx][world.rank :: world.size]
            with autocast(device, bf16):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=p.label_smoothing)
            model.zero_grad(set_to_none=True)
            loss.backward()
            for o in optimizers:
                o.step()
            for schedule in schedules:
                schedule.step()
            done = (epoch - 1) * steps_per_epoch + step + 1
            if ema is not None:
                ema.update_parameters(model)
            if lookahead is not None and done % LOOKAHEAD_EVERY == 0:
                lookahead.update(Lookahead.decay(done, total_steps))
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
        if lookahead is not None:
            lookahead.update(1.0)  # every epoch ends on the slow weights (evaluated, checkpointed)
        seen = steps_per_epoch * shard
        row = {
            "epoch": float(epoch),
            "train_loss": loss_sum.item() / seen,
            "train_acc": correct.item() / seen,
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_seconds": time.perf_counter() - started + (setup_seconds if epoch == 1 else 0.0),
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
                    "optimizers": [o.state_dict() for o in optimizers],
                    "schedules": [schedule.state_dict() for schedule in schedules],
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "ema": ema.state_dict() if ema is not None else {},
                    "lookahead": lookahead.slow if lookahead is not None else {},
                    "history": history,
                },
                checkpoint,
            )
        barrier(world)
        if on_epoch and world.is_main:
            on_epoch(row)
    final = ema.module if ema is not None else model
    return TrainedClassifier(model=final.eval(), config=config, history=history, resumed_from_epoch=first_epoch - 1)


def low_res(x: torch.Tensor, side: int) -> torch.Tensor:
    """The batch resized to side×side (bilinear, antialiased): progressive resizing's cheap early
    epochs (FLOPs fall with the pixel count; the last epochs at full size undo the mismatch)."""
    return F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)


@dataclass
class EpochDraws:
    """One epoch's random augmentation choices for every training image.

    Drawn on the CPU generator, so a resumed run draws the same. Copied to the device in one go:
    a blocking host→device copy per step would make the host wait for the GPU at every step.
    """

    shifts: torch.Tensor | None  # N×2 crop corners, 0..2·translate
    mirror: torch.Tensor | None  # N, bool
    corners: torch.Tensor | None  # N×2 cutout corners
    fill: torch.Tensor  # the cutout colour, uint8 3×1×1 (the mean: 0 after the net normalises)

    @classmethod
    def draw(
        cls,
        images: torch.Tensor,
        epoch: int,
        flip_base: torch.Tensor,
        p: ClassifierParams,
        generator: torch.Generator,
    ) -> EpochDraws:
        """Flips are random per draw, or alternating (airbench: each image is mirrored in every
        other epoch, so two consecutive epochs show both views of it; ``flip_base`` picks which)."""
        n, _, h, w = images.shape
        shifts = torch.randint(0, 2 * p.translate + 1, (n, 2), generator=generator) if p.translate else None
        mirror = None
        if p.flip == "random":
            mirror = torch.rand(n, generator=generator) < 0.5
        elif p.flip == "alternating":
            mirror = flip_base ^ (epoch % 2 == 0)
        corners = None
        if p.cutout:
            rows = torch.randint(0, h - p.cutout + 1, (n,), generator=generator)
            corners = torch.stack([rows, torch.randint(0, w - p.cutout + 1, (n,), generator=generator)], 1)
        fill = torch.tensor(CIFAR10_MEAN).mul(255).round().to(torch.uint8).view(3, 1, 1)

        def to_device(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(images.device)

        return cls(to_device(shifts), to_device(mirror), to_device(corners), fill.to(images.device))


def _augment(batch: torch.Tensor, idx: torch.Tensor, draws: EpochDraws, p: ClassifierParams) -> torch.Tensor:
    """Translation, then flip, then cutout of the images ``idx`` (their rows of ``draws``)."""
    if draws.shifts is not None:
        batch = crop(batch, p.translate, draws.shifts[idx])
    if draws.mirror is not None:
        batch = torch.where(draws.mirror[idx][:, None, None, None], batch.flip(-1), batch)
    if draws.corners is not None:
        batch = cutout(batch, p.cutout, draws.corners[idx], draws.fill)
    return batch


def _compiled(net: nn.Module, example: torch.Tensor, device: torch.device, bf16: bool) -> nn.Module:
    """``torch.compile`` where it can run; the eager module where it cannot (no compiler, old GPU).

    Compilation is lazy, so one forward/backward on an example batch decides; its gradients are
    discarded and batch-norm statistics restored, so the run is the same either way.
    """
    buffers = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}
    try:
        compiled = typing.cast(nn.Module, torch.compile(net))
        with autocast(device, bf16):
            compiled(example.contiguous(memory_format=torch.channels_last)).float().sum().backward()
    except Exception as exc:  # compile backends fail in many environment-specific ways
        print(f"torch.compile unavailable ({type(exc).__name__}: {str(exc).splitlines()[0]}); training eagerly")
        compiled = net
    net.zero_grad(set_to_none=True)
    net.load_state_dict(buffers, strict=False)
    return compiled
