"""The networks, built from PyTorch primitives, and their checkpoint format.

A checkpoint is ``{"config": {...}, "state_dict": {...}}`` holding only tensors and plain Python
values, so ``torch.load(path, weights_only=True)`` reads it without unpickling code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    their negations) → GELU → three :class:`ConvGroup` s of ``widths`` → 3×3 max-pool → linear,
    scaled by 1/9. ``widths`` (64, 256, 256) is airbench94; narrower ones suit CPUs.
    """

    def __init__(self, num_classes: int = 10, widths: Sequence[int] = (64, 256, 256)) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1))
        whiten = nn.Conv2d(3, 24, 2, bias=True)
        whiten.weight.requires_grad_(False)
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            whiten, nn.GELU(), ConvGroup(24, w1), ConvGroup(w1, w2), ConvGroup(w2, w3), nn.MaxPool2d(3), nn.Flatten()
        )
        self.head = nn.Linear(w3, num_classes, bias=False)
        self.logit_scale = 1 / 9

    @property
    def whiten(self) -> nn.Conv2d:
        return self.features[0]

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
        self.whiten.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.head(self.features(x)) * self.logit_scale


class ESPCN(nn.Module):
    """Efficient sub-pixel CNN (Shi et al., 2016) on the luma channel, with an anchor residual.

    Input: N×1×h×w Y in [0, 1] at low resolution; output: N×1×(h·s)×(w·s). Convolutions run at
    low resolution and one ``PixelShuffle`` rearranges s² channels into the upscaled image. The
    input, repeated s² times, is added before the shuffle (the "anchor" of ABPN, Du et al. 2021),
    so the convolutions learn only the detail missing from a nearest-neighbour upscale: it trains
    far faster than plain ESPCN and exports to ONNX as plain Conv/Add/DepthToSpace.
    """

    def __init__(self, scale: int = 3, channels: int = 64) -> None:
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels // 2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, scale * scale, 3, padding=1),
        )
        self.upscale = nn.PixelShuffle(scale)
        self.context = 4  # LR receptive-field radius: 5×5 + 3×3 + 3×3

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        anchor = y.repeat(1, self.scale * self.scale, 1, 1)
        return self.upscale(self.body(y) + anchor)


def bicubic_phase_weights(scale: int, a: float = -0.5) -> torch.Tensor:
    """A fixed s²×1×5×5 convolution whose output channels, after ``PixelShuffle(scale)``, are the
    bicubic (Keys, ``a`` = -0.5 as PIL and the evaluation's antialiased resize) upscale.

    Output pixel phase p along an axis samples the LR grid at offset d = (p + ½)/s − ½ from its
    LR pixel (half-pixel centres), from the four nearest taps; 5 taps cover every phase.
    """

    def cubic(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for phase in range(scale):
        d = (phase + 0.5) / scale - 0.5
        for t in range(-2, 3):
            taps[phase, t + 2] = cubic(d - t)
        taps[phase] /= taps[phase].sum()
    kernel = taps[:, None, :, None] * taps[None, :, None, :]  # (row phase, col phase, 5, 5)
    return kernel.reshape(scale * scale, 1, 5, 5).float()


class ResBlock(nn.Module):
    """conv-ReLU-conv with an identity skip; no batch-norm (it hurts SR, Lim et al. 2017).

    The second conv starts at zero, so every block starts as the identity (SkipInit, De & Smith
    2020): without batch-norm this keeps the signal scale of a deep stack sane at the start.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        nn.init.zeros_(self.body[2].weight)
        nn.init.zeros_(self.body[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResSR(nn.Module):
    """A small EDSR-style net on luma: residual blocks at low resolution, then PixelShuffle.

    head conv → ``blocks`` residual blocks (+ a long skip) → conv to s² sub-pixel channels, added
    to a fixed bicubic upscale computed in the same sub-pixel layout (:func:`bicubic_phase_weights`),
    then one ``PixelShuffle``. The net starts as bicubic and learns only the missing detail, which
    is what makes short CPU trainings pay off; everything runs at LR resolution and exports as
    plain Pad/Conv/Add/DepthToSpace.
    """

    def __init__(self, scale: int = 3, channels: int = 32, blocks: int = 6) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(1, channels, 3, padding=1)
        self.blocks = nn.Sequential(
            *(ResBlock(channels) for _ in range(blocks)), nn.Conv2d(channels, channels, 3, padding=1)
        )
        self.tail = nn.Conv2d(channels, scale * scale, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # start exactly at bicubic, not at bicubic + noise
        nn.init.zeros_(self.tail.bias)
        self.upscale = nn.PixelShuffle(scale)
        self.register_buffer("bicubic", bicubic_phase_weights(scale), persistent=False)
        self.context = 2 * blocks + 3  # LR receptive-field radius: one pixel per 3×3 conv

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        anchor = F.conv2d(F.pad(y, (2, 2, 2, 2), mode="replicate"), self.bicubic.to(y.dtype))
        features = self.head(y)
        features = features + self.blocks(features)
        return self.upscale(self.tail(features) + anchor)


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
    """Write ``{"config", "state_dict"}`` atomically (temp file + rename)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"config": config, "state_dict": state}, Path(path))


def atomic_torch_save(obj: object, path: Path) -> None:
    """``torch.save`` to a temp file, then rename: readers (or a restart after SIGKILL) see the
    previous file or the complete new one, never a torn write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


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
