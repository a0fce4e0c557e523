"""The nets to look inside, as functions of RGB in [0, 1]: the project's classifier or a torchvision
ImageNet model, loaded by :func:`cnnpipe.dream.backbones.load_backbone` (same weights, cache and
missing-weights message as DeepDream)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnpipe import paths
from cnnpipe.dream.backbones import load_backbone
from cnnpipe.explain.attribution import Normalized

IMAGENET_INPUT = 224


@dataclass(frozen=True)
class Explainable:
    model: nn.Module  # N×3×size×size RGB in [0, 1] → logits
    input_size: int
    classes: list[str]


def load_explainable(
    name: str,
    device: torch.device,
    weights: str = "imagenet",
    classifier_checkpoint: Path | None = None,
    download: bool = True,
) -> Explainable:
    checkpoint = Path(classifier_checkpoint or paths.CLASSIFIER_CHECKPOINT)
    backbone = load_backbone(name, device, weights=weights, classifier_checkpoint=checkpoint, download=download)
    model = backbone.model.float().to(memory_format=torch.contiguous_format)
    if name == "classifier":  # normalises its own input, was trained on 32×32
        return Explainable(model.eval(), 32, backbone.classes)
    wrapped = Normalized(model, backbone.mean, backbone.std).eval()
    classes = [str(i) for i in range(_outputs(wrapped, IMAGENET_INPUT, device))]
    return Explainable(wrapped, IMAGENET_INPUT, classes)


def _outputs(model: nn.Module, size: int, device: torch.device) -> int:
    with torch.no_grad():
        return int(model(torch.zeros(1, 3, size, size, device=device)).shape[1])
