"""Batch augmentations on device tensors: no per-image Python."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Reflect-pad N×C×H×W by ``pad`` and take one random H×W window per image."""
    n, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_cutout(images: torch.Tensor, size: int, generator: torch.Generator, fill: torch.Tensor) -> torch.Tensor:
    """Cutout (DeVries & Taylor, 2017): one ``size``×``size`` square per image, placed at random
    wholly inside it, set to ``fill`` (per channel, C×1×1), so the net cannot lean on one region."""
    n, _, h, w = images.shape
    top = torch.randint(0, h - size + 1, (n,), generator=generator).to(images.device)[:, None]
    left = torch.randint(0, w - size + 1, (n,), generator=generator).to(images.device)[:, None]
    rows, cols = torch.arange(h, device=images.device)[None], torch.arange(w, device=images.device)[None]
    inside_rows = (rows >= top) & (rows < top + size)  # N×H
    inside_cols = (cols >= left) & (cols < left + size)  # N×W
    square = (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]  # N×1×H×W
    return torch.where(square, fill.to(images), images)


def translations(images: torch.Tensor, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The images shifted by ``shift`` pixels up-left and down-right (reflect padding), for TTA."""
    _, _, h, w = images.shape
    padded = F.pad(images, (shift, shift, shift, shift), mode="reflect")
    return padded[..., :h, :w], padded[..., 2 * shift :, 2 * shift :]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left-right."""
    mask = torch.rand(len(images), generator=generator).to(images.device) < 0.5
    return torch.where(mask[:, None, None, None], images.flip(-1), images)


def random_dihedral(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply one of the 8 flips/rot90s of the square to each image (for SR patches)."""
    k = torch.randint(0, 8, (len(images),), generator=generator)
    out = images.clone()
    for code in range(8):
        idx = (k == code).nonzero().flatten().to(images.device)
        if len(idx) == 0:
            continue
        x = images[idx]
        if code & 4:
            x = x.flip(-1)
        out[idx] = torch.rot90(x, code & 3, dims=(-2, -1))
    return out
