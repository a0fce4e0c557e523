"""CIFAR-10 classifiers, built from PyTorch primitives: airbench94's whitened VGG-like net and ResNet-9.

Both take RGB in [0, 1], N×3×32×32, and normalise inside ``forward`` (so the ONNX export does too).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# CIFAR-10 channel statistics; the classifier normalises inside forward(), so its input (and
# the ONNX model's) is plain RGB in [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """The ResNet-9 of the fast CIFAR-10 trainers (Page, 2018), width-scalable.

    prep → layer1 (+res) → layer2 → layer3 (+res) → global max-pool → linear, with a fixed
    output scale that keeps logits small at initialisation.
    """

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        w = width
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1))
        self.features = nn.Sequential(
            conv_bn(3, w),
            conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w),
            conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
            conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(8 * w, num_classes, bias=False)
        self.logit_scale = 0.125

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.head(self.features(x)) * self.logit_scale


def frozen_scale_bn(channels: int, momentum: float = 0.4) -> nn.BatchNorm2d:
    """Batch-norm with its scale fixed at 1: only the shift learns (airbench; the conv before it
    already sets the scale, and a learnable one only adds a direction for SGD to wander in)."""
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=momentum)
    bn.weight.requires_grad_(False)
    return bn


class ConvGroup(nn.Sequential):
    """conv → max-pool → BN → GELU → conv → BN → GELU, both convs dirac-initialised (the first
    ``c_in`` filters start as the identity, so the untrained stack passes its input through)."""

    def __init__(self, c_in: int, c_out: int, bn_momentum: float = 0.4) -> None:
        convs = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)]
        for conv in convs:
            with torch.no_grad():
                nn.init.dirac_(conv.weight[: min(conv.in_channels, conv.out_channels)])
        super().__init__(
            convs[0], nn.MaxPool2d(2), frozen_scale_bn(c_out, bn_momentum), nn.GELU(),
            convs[1], frozen_scale_bn(c_out, bn_momentum), nn.GELU(),
        )  # fmt: skip


class AirbenchNet(nn.Module):
    """The small VGG-like net of airbench94 (Jordan, 2024: 94 % on CIFAR-10 in 3.29 A100-seconds).

    A frozen 2×2 conv that whitens the input patches (:meth:`init_whitening`, 12 eigen-filters and
    their negations) → GELU → three :class:`ConvGroup` s of ``widths`` → global max-pool → linear,
    scaled by 1/9. ``widths`` (64, 256, 256) is airbench94; narrower ones suit CPUs.
    """

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, num_classes: int = 10, widths: Sequence[int] = (64, 256, 256)) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1))
        whiten = nn.Conv2d(3, 24, 2, bias=True)
        whiten.weight.requires_grad_(False)
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            whiten,
            nn.GELU(),
            ConvGroup(24, w1),
            ConvGroup(w1, w2),
            ConvGroup(w2, w3),
            nn.AdaptiveMaxPool2d(1),  # = airbench's 3×3 max-pool at 32² (3×3 maps); also progressive resizing's smaller
            nn.Flatten(),
        )
        self.head = nn.Linear(w3, num_classes, bias=False)
        self.logit_scale = 1 / 9

    @property
    def whiten(self) -> nn.Conv2d:
        return typing.cast(nn.Conv2d, self.features[0])

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first conv to whiten 2×2 patches of ``images`` (uint8 N×3×32×32): its filters are
        the eigenvectors of the patch covariance over sqrt(eigenvalue + eps), and their negations, so
        every direction of patch space starts at unit variance and GELU sees both signs."""
        covariance = torch.zeros(12, 12, dtype=torch.float64, device=images.device)
        count = 0
        for chunk in images.split(500):
            x = (chunk.float().div(255) - self.mean) / self.std
            patches = F.unfold(x.double(), kernel_size=2).transpose(1, 2).reshape(-1, 12)  # 3·2·2 per patch
            covariance += patches.T @ patches
            count += len(patches)
        covariance /= count
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]).reshape(12, 3, 2, 2)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight))
        self.whiten.bias.zero_()  # type: ignore[union-attr]  # built with bias=True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.head(self.features(x)) * self.logit_scale
