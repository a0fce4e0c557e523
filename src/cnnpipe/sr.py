"""Super-resolution inference on RGB images: luma through the model, chroma by bicubic."""

from __future__ import annotations

import torch
from torch import nn

from cnnpipe.color import resize_bicubic, rgb_to_ycbcr, to_float, to_uint8, ycbcr_to_rgb


def crop_to_multiple(images: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop N×C×H×W so H and W are multiples of ``scale`` (the protocol's first step)."""
    h, w = images.shape[-2:]
    return images[..., : h - h % scale, : w - w % scale]


def downscale(hr_uint8: torch.Tensor, scale: int) -> torch.Tensor:
    """uint8 HR → uint8 LR by antialiased bicubic (H and W must be multiples of ``scale``)."""
    h, w = hr_uint8.shape[-2:]
    return to_uint8(resize_bicubic(to_float(hr_uint8), (h // scale, w // scale)))


def bicubic_upscale(lr_uint8: torch.Tensor, scale: int) -> torch.Tensor:
    """The baseline: uint8 LR → uint8 bicubic-upscaled RGB."""
    h, w = lr_uint8.shape[-2:]
    return to_uint8(resize_bicubic(to_float(lr_uint8), (h * scale, w * scale)))


@torch.no_grad()
def model_upscale(model: nn.Module, lr_uint8: torch.Tensor, scale: int) -> torch.Tensor:
    """uint8 N×3×h×w RGB → uint8 N×3×(h·s)×(w·s): Y from the model, Cb/Cr bicubic."""
    h, w = lr_uint8.shape[-2:]
    ycc_lr = rgb_to_ycbcr(to_float(lr_uint8))
    y = model(ycc_lr[:, :1]).clamp(0, 1)
    ycc_up = resize_bicubic(ycc_lr, (h * scale, w * scale))
    return to_uint8(ycbcr_to_rgb(torch.cat([y, ycc_up[:, 1:]], dim=1)).clamp(0, 1))
