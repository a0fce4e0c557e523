"""Colour conversions and the one bicubic resize used everywhere (training, evaluation, serving).

YCbCr is ITU-R BT.601 "studio swing", the convention of the SR literature:
``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with RGB in [0, 1] and Y in [16, 235] (/255 here).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_RGB_TO_YCBCR = (
    torch.tensor(
        [
            [65.481, 128.553, 24.966],
            [-37.797, -74.203, 112.0],
            [112.0, -93.786, -18.214],
        ]
    )
    / 255.0
)
_OFFSET = torch.tensor([16.0, 128.0, 128.0]) / 255.0


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """N×3×H×W RGB in [0, 1] → N×3×H×W YCbCr in [0, 1] (BT.601 studio swing)."""
    m = _RGB_TO_YCBCR.to(rgb)
    return torch.einsum("ij,njhw->nihw", m, rgb) + _OFFSET.to(rgb).view(1, 3, 1, 1)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clamped)."""
    m = torch.linalg.inv(_RGB_TO_YCBCR.double()).to(ycbcr)
    return torch.einsum("ij,njhw->nihw", m, ycbcr - _OFFSET.to(ycbcr).view(1, 3, 1, 1))


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """N×3×H×W RGB in [0, 1] → N×1×H×W luma Y in [16/255, 235/255]."""
    return rgb_to_ycbcr(rgb)[:, :1]


def resize_bicubic(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of N×C×H×W float images (matches PIL's BICUBIC, a = -0.5)."""
    return F.interpolate(images, size=size, mode="bicubic", antialias=True, align_corners=False)


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div_(255.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats → uint8 with rounding, the way an image file would store them."""
    return images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def hwc_to_nchw(image: np.ndarray) -> torch.Tensor:
    """uint8 H×W×3 numpy → 1×3×H×W uint8 tensor (a copy: decoded images may be read-only)."""
    return torch.tensor(image).permute(2, 0, 1).unsqueeze(0).contiguous()
