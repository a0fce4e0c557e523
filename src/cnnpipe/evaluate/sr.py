"""Super-resolution evaluation by the papers' protocol: PSNR/SSIM on Y, border shaved, model vs bicubic."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from cnnpipe.data.color import hwc_to_nchw, rgb_to_y, to_float
from cnnpipe.evaluate.metrics import psnr, shave, ssim
from cnnpipe.models.upscale import bicubic_upscale, crop_to_multiple, downscale, model_upscale
from cnnpipe.progress import progress


def _y(images_uint8: torch.Tensor) -> torch.Tensor:
    return rgb_to_y(to_float(images_uint8))


Upscaler = Callable[[torch.Tensor], torch.Tensor]
"""uint8 1×3×h×w LR RGB → uint8 1×3×(h·s)×(w·s): a model's whole inference path."""


def sr_scores(
    model: nn.Module | Upscaler, images: list[np.ndarray], scale: int, desc: str, ensemble: bool = False
) -> dict[str, float]:
    """Mean PSNR/SSIM (Y channel, ``scale`` px shaved) of the model and of bicubic.

    ``model`` is one of our nets (run through :func:`cnnpipe.models.upscale.model_upscale`) or any
    :data:`Upscaler`, so a peer's own inference path is scored by exactly the same protocol.
    ``ensemble``: our net also through the ×8 self-ensemble
    (:func:`cnnpipe.models.upscale.self_ensemble`), as ``psnr_model_x8``/``ssim_model_x8``, in the
    same pass over the images (the crop, LR and bicubic are made once).
    """
    methods: dict[str, Upscaler] = {"bicubic": lambda lr: bicubic_upscale(lr, scale)}
    if isinstance(model, nn.Module):
        net = model
        methods["model"] = lambda lr: model_upscale(net, lr, scale)
        if ensemble:
            methods["model_x8"] = lambda lr: model_upscale(net, lr, scale, ensemble=True)
    else:
        methods["model"] = model
    rows = []
    for image in progress(images, desc=desc, leave=False):
        hr = crop_to_multiple(hwc_to_nchw(image), scale)
        lr = downscale(hr, scale)
        hr_y = shave(_y(hr), scale)
        row = {}
        for method, run in methods.items():
            out_y = shave(_y(run(lr)), scale)
            row[f"psnr_{method}"] = psnr(out_y, hr_y)
            row[f"ssim_{method}"] = ssim(out_y, hr_y)
        rows.append(row)
    # numpy, not pandas: this runs on bare GPU machines too (benchmarks/gpu.py)
    means = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    means["psnr_gain"] = means["psnr_model"] - means["psnr_bicubic"]
    means["images"] = len(images)
    return {k: (int(v) if k == "images" else round(float(v), 4)) for k, v in means.items()}


def _center_crop(image: torch.Tensor, size: int, scale: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    size = min(size, h, w) // scale * scale
    top, left = (h - size) // 2 // scale * scale, (w - size) // 2 // scale * scale
    return image[..., top : top + size, left : left + size]


def sr_comparison(model: nn.Module, images: list[np.ndarray], scale: int, crop: int, title: str = "") -> Image.Image:
    """A grid, one row per image: LR (nearest) | bicubic | model | HR, on the same centre crop."""
    columns = ["LR (nearest)", "bicubic", "model", "HR"]
    tiles = []
    for image in images:
        hr = _center_crop(crop_to_multiple(hwc_to_nchw(image), scale), crop, scale)
        lr = downscale(hr, scale)
        nearest = lr.repeat_interleave(scale, -2).repeat_interleave(scale, -1)
        row = [nearest, bicubic_upscale(lr, scale), model_upscale(model, lr, scale), hr]
        tiles.append([Image.fromarray(t[0].permute(1, 2, 0).numpy()) for t in row])
    size = tiles[0][0].size[0]
    pad, header = 4, 16 + (16 if title else 0)
    grid = Image.new("RGB", (len(columns) * (size + pad) + pad, header + len(tiles) * (size + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((pad, 2), title, fill="black")
    for c, name in enumerate(columns):
        draw.text((pad + c * (size + pad), header - 14), name, fill="black")
    for r, row_tiles in enumerate(tiles):
        for c, tile in enumerate(row_tiles):
            grid.paste(tile.resize((size, size)), (pad + c * (size + pad), header + r * (size + pad)))
    return grid
