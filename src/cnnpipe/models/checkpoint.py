"""Which net each config builds, and the checkpoint format.

A checkpoint is ``{"config": {...}, "state_dict": {...}}`` holding only tensors and plain Python
values, so ``torch.load(path, weights_only=True)`` reads it without unpickling code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnpipe.atomic import atomic_write
from cnnpipe.models.classifier import AirbenchNet, ResNet9
from cnnpipe.models.sr import ESPCN, ResSR


@dataclass(frozen=True)
class ClassifierArch:
    """A classifier net and the one keyword (a ``classifier`` param of the same name) that sizes it."""

    net: type[nn.Module]
    size_param: str


CLASSIFIER_ARCHS = {"airbench": ClassifierArch(AirbenchNet, "widths"), "resnet9": ClassifierArch(ResNet9, "width")}
SR_ARCHS = {"espcn": ESPCN, "ressr": ResSR}


def build_classifier(config: dict[str, Any]) -> nn.Module:
    arch = CLASSIFIER_ARCHS[config["arch"]]
    return arch.net(num_classes=len(config["classes"]), **{arch.size_param: config[arch.size_param]})


def build_sr(config: dict[str, Any]) -> nn.Module:
    extra = {"blocks": config["blocks"]} if "blocks" in config else {}
    return SR_ARCHS[config["arch"]](scale=config["scale"], channels=config["channels"], **extra)


def save_checkpoint(path: Path, model: nn.Module, config: dict[str, Any]) -> None:
    """Write ``{"config", "state_dict"}`` atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"config": config, "state_dict": state}, Path(path))


def atomic_torch_save(obj: object, path: Path) -> None:
    """``torch.save`` through :func:`cnnpipe.atomic.atomic_write`.

    Into a Python file object, not a path: given a path, torch's C++ writer reports a full disk
    as a bare "unexpected pos" RuntimeError; through a file object the OSError is kept (as the
    error's context), so a full disk reads as one.
    """
    with atomic_write(path) as tmp, tmp.open("wb") as file:
        torch.save(obj, file)


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt["config"], ckpt["state_dict"]


def load_classifier(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    config, state = load_checkpoint(path)
    model = build_classifier(config)
    model.load_state_dict(state)
    return model.eval(), config


def load_sr(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    config, state = load_checkpoint(path)
    model = build_sr(config)
    model.load_state_dict(state)
    return model.eval(), config
