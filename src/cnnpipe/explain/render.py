"""Explanations as pictures: heatmap overlays, gradient images, filter and activation grids
(uint8 H×W×3, ready for :func:`cnnpipe.data.images.write_png`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cnnpipe.data.color import to_uint8


def _colormap(values: np.ndarray, name: str) -> np.ndarray:
    """H×W in [0, 1] → H×W×3 uint8 through a matplotlib colormap."""
    from matplotlib import colormaps

    return (colormaps[name](np.clip(values, 0, 1))[..., :3] * 255).astype(np.uint8)


def resize_map(values: torch.Tensor, height: int, width: int) -> np.ndarray:
    """An h×w map bilinearly resized to height×width (float32 numpy)."""
    resized = F.interpolate(values[None, None].float(), size=(height, width), mode="bilinear", align_corners=False)
    return resized[0, 0].numpy()


def heatmap_overlay(rgb: np.ndarray, cam: torch.Tensor, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """``cam`` (h×w in [0, 1]) coloured and blended over ``rgb`` (uint8 H×W×3) at ``alpha``."""
    heat = _colormap(resize_map(cam, *rgb.shape[:2]), colormap).astype(np.float32)
    return np.clip((1 - alpha) * rgb.astype(np.float32) + alpha * heat, 0, 255).astype(np.uint8)


def gradient_image(gradient: torch.Tensor, percentile: float = 99.0) -> np.ndarray:
    """A signed 3×H×W gradient as an image: 0 is mid-grey, ± the ``percentile`` of |g| saturates."""
    g = gradient.detach().float()
    scale = float(torch.quantile(g.abs().flatten(), percentile / 100)) or 1.0
    picture = (g / (2 * scale) + 0.5).clamp(0, 1)
    return (picture.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def rgb_picture(image: torch.Tensor) -> np.ndarray:
    """3×H×W in [0, 1] → uint8 H×W×3."""
    return to_uint8(image.detach().float()).permute(1, 2, 0).numpy()


def upscale_nearest(image: np.ndarray, factor: int) -> np.ndarray:
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def filter_grid(weight: torch.Tensor, cell: int = 48) -> np.ndarray:
    """First-layer filters (C_out×3×k×k) as RGB tiles, each min-max normalised, ``cell`` px wide."""
    w = weight.detach().float()
    if w.shape[1] != 3:
        raise ValueError(f"filters of a first layer take 3 (RGB) channels, this one takes {w.shape[1]}")
    low = w.amin(dim=(1, 2, 3), keepdim=True)
    high = w.amax(dim=(1, 2, 3), keepdim=True)
    tiles = (w - low) / (high - low).clamp(min=1e-12)
    factor = max(1, cell // w.shape[-1])
    return _square_grid(F.interpolate(tiles, scale_factor=factor, mode="nearest"))


def activation_grid(activations: torch.Tensor, max_channels: int = 64, cell: int = 64) -> np.ndarray:
    """One layer's activations (1×C×h×w) as a grid of its first ``max_channels`` channels, each
    min-max normalised and coloured (viridis), ``cell`` px wide."""
    a = activations.detach().float()[0, :max_channels]
    low = a.amin(dim=(1, 2), keepdim=True)
    high = a.amax(dim=(1, 2), keepdim=True)
    a = (a - low) / (high - low).clamp(min=1e-12)
    factor = max(1, cell // a.shape[-1])
    a = F.interpolate(a[:, None], scale_factor=factor, mode="nearest")[:, 0]
    coloured = torch.from_numpy(np.stack([_colormap(m.numpy(), "viridis") for m in a])).permute(0, 3, 1, 2)
    return _square_grid(coloured.float() / 255)


def _square_grid(tiles: torch.Tensor) -> np.ndarray:
    """Tiles (N×3×h×w, 0..1) in a near-square grid on white, as uint8 H×W×3."""
    from torchvision.utils import make_grid  # here: torchvision pulls in torch._dynamo; servers never draw grids

    grid = make_grid(tiles, nrow=int(np.ceil(np.sqrt(len(tiles)))), padding=2, pad_value=1.0)
    return (grid.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
