"""Super-resolution nets on the luma channel: ESPCN with an anchor and the residual ResSR.

Input N×1×h×w Y in [0, 1] at low resolution; output N×1×(h·s)×(w·s). Each net has a ``context``
attribute, its LR receptive-field radius, which tiled inference needs as overlap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
        first = nn.Conv2d(channels, channels, 3, padding=1)  # built first: the RNG draws stay in layer order
        last = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)  # type: ignore[arg-type]  # Conv2d(bias=True) has one
        self.body = nn.Sequential(first, nn.ReLU(inplace=True), last)

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

    bicubic: torch.Tensor  # buffer

    def __init__(self, scale: int = 3, channels: int = 32, blocks: int = 6) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(1, channels, 3, padding=1)
        self.blocks = nn.Sequential(
            *(ResBlock(channels) for _ in range(blocks)), nn.Conv2d(channels, channels, 3, padding=1)
        )
        self.tail = nn.Conv2d(channels, scale * scale, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # start exactly at bicubic, not at bicubic + noise
        nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]  # Conv2d(bias=True) has one
        self.upscale = nn.PixelShuffle(scale)
        self.register_buffer("bicubic", bicubic_phase_weights(scale), persistent=False)
        self.context = 2 * blocks + 3  # LR receptive-field radius: one pixel per 3×3 conv

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        anchor = F.conv2d(F.pad(y, (2, 2, 2, 2), mode="replicate"), self.bicubic.to(y.dtype))
        features = self.head(y)
        features = features + self.blocks(features)
        return self.upscale(self.tail(features) + anchor)
