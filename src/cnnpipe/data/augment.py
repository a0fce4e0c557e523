"""Batch augmentations on device tensors: no per-image Python."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop(images: torch.Tensor, pad: int, offsets: torch.Tensor) -> torch.Tensor:
    """Reflect-pad N×C×H×W by ``pad`` and take each image's H×W window at ``offsets`` (N×2: row
    and column of its corner in the padded image, each in 0..2·pad): a translation by up to ``pad``."""
    n, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    rows = (offsets[:, 0, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (offsets[:, 1, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def cutout(images: torch.Tensor, size: int, corners: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Cutout (DeVries & Taylor, 2017): set each image's ``size``×``size`` square with top-left
    corner ``corners`` (N×2, row and column) to ``fill`` (C×1×1), so the net cannot lean on one region."""
    _, _, h, w = images.shape
    rows, cols = torch.arange(h, device=images.device)[None], torch.arange(w, device=images.device)[None]
    top, left = corners[:, 0, None], corners[:, 1, None]
    inside_rows = (rows >= top) & (rows < top + size)  # N×H
    inside_cols = (cols >= left) & (cols < left + size)  # N×W
    square = (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]  # N×1×H×W
    return torch.where(square, fill, images)


def translations(images: torch.Tensor, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The images shifted by ``shift`` pixels up-left and down-right (reflect padding), for TTA."""
    _, _, h, w = images.shape
    padded = F.pad(images, (shift, shift, shift, shift), mode="reflect")
    return padded[..., :h, :w], padded[..., 2 * shift :, 2 * shift :]


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
