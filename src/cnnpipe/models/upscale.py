"""Super-resolution inference on RGB images: luma through the model, chroma by bicubic."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from cnnpipe.data.color import resize_bicubic, rgb_to_ycbcr, to_float, to_uint8, ycbcr_to_rgb


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


DEFAULT_OVERLAP = 24
"""LR context pixels around each tile: at least the network's receptive-field radius (``context``
of the nets in :mod:`cnnpipe.models.sr`, stored in the ONNX metadata), or tiles would show seams."""


def model_upscale(
    model: nn.Module, lr_uint8: torch.Tensor, scale: int, tile: int = 1 << 16, ensemble: bool = False
) -> torch.Tensor:
    """uint8 N×3×h×w RGB → uint8 N×3×(h·s)×(w·s) through :func:`upscale` (the serving path too);
    ``ensemble``: through :func:`self_ensemble` of the model."""
    overlap = getattr(model, "context", DEFAULT_OVERLAP)
    luma = self_ensemble(torch_luma(model)) if ensemble else torch_luma(model)
    images = [upscale(img.permute(1, 2, 0).numpy(), scale, luma, tile=tile, overlap=overlap) for img in lr_uint8]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)


LumaModel = Callable[[np.ndarray], np.ndarray]
"""float32 N×1×h×w luma in [0, 1] → N×1×(h·s)×(w·s); a torch module or an ONNX Runtime session."""


def torch_luma(model: nn.Module) -> LumaModel:
    def run(y: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(y)).numpy()

    return run


def self_ensemble(luma: LumaModel) -> LumaModel:
    """The ×8 geometric self-ensemble (Timofte et al. 2016, "Seven ways to improve example-based
    SR"; EDSR+ in Lim et al. 2017): the mean of ``luma`` over the 8 flips and rotations of its
    input, each mapped back. Eight times the compute for 0.06–0.11 dB here (benchmarks/README.md); it composes with
    tiling, since each tile's eight views see the same context as the whole image's."""

    def run(y: np.ndarray) -> np.ndarray:
        total: np.ndarray | None = None
        for turns in range(4):
            for flip in (False, True):
                view = np.rot90(y, turns, axes=(2, 3))
                view = view[..., ::-1] if flip else view
                out = luma(np.ascontiguousarray(view, dtype=np.float32))
                out = out[..., ::-1] if flip else out
                out = np.rot90(out, -turns, axes=(2, 3))
                total = out.copy() if total is None else total + out
        assert total is not None
        return total / 8

    return run


def upscale_luma_tiled(
    y: np.ndarray, scale: int, luma: LumaModel, tile: int = 256, overlap: int = DEFAULT_OVERLAP
) -> np.ndarray:
    """Run ``luma`` on an h×w plane tile by tile; output (h·s)×(w·s), equal to one untiled call.

    Each tile is cut with ``overlap`` extra LR pixels of real context on every side (fewer at the
    image border, exactly like the untiled call sees it) and only its centre is kept, so as long
    as ``overlap`` covers the network's receptive-field radius there are no seams at all.
    """
    h, w = y.shape
    out = np.empty((h * scale, w * scale), dtype=np.float32)
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            t1, l1 = min(bottom + overlap, h), min(right + overlap, w)
            result = luma(np.ascontiguousarray(y[None, None, t0:t1, l0:l1], dtype=np.float32))[0, 0]
            dt, dl = (top - t0) * scale, (left - l0) * scale
            out[top * scale : bottom * scale, left * scale : right * scale] = result[
                dt : dt + (bottom - top) * scale, dl : dl + (right - left) * scale
            ]
    return out


def upscale(
    image: np.ndarray, scale: int, luma: LumaModel, tile: int = 256, overlap: int = DEFAULT_OVERLAP
) -> np.ndarray:
    """Super-resolve a uint8 image of any size: H×W (grey), H×W×3 (RGB) or H×W×4 (RGBA).

    Luma goes through the model (tiled, so memory is bounded by ``tile``, not the image);
    chroma and alpha are upscaled bicubically. The output has the input's layout, ×``scale``.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"expected uint8 H×W, H×W×3 or H×W×4, got {image.dtype} {image.shape}")
    grey = image.ndim == 2
    rgb = np.repeat(image[..., None], 3, axis=2) if grey else image[..., :3]
    alpha = image[..., 3] if image.ndim == 3 and image.shape[2] == 4 else None
    h, w = rgb.shape[:2]
    ycc = rgb_to_ycbcr(to_float(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]))
    y = np.clip(upscale_luma_tiled(ycc[0, 0].numpy(), scale, luma, tile, overlap), 0.0, 1.0)
    size = (h * scale, w * scale)
    if grey:
        # Y of a grey image is an affine map of its value, so invert it directly (no chroma).
        up = torch.from_numpy(y).sub(16 / 255).mul(255 / 219)[None, None]
        return to_uint8(up.clamp(0, 1))[0, 0].numpy()
    chroma = resize_bicubic(ycc[:, 1:], size)
    rgb_up = to_uint8(ycbcr_to_rgb(torch.cat([torch.from_numpy(y)[None, None], chroma], dim=1)).clamp(0, 1))
    out = rgb_up[0].permute(1, 2, 0).numpy()
    if alpha is not None:
        a = to_uint8(resize_bicubic(to_float(torch.from_numpy(alpha)[None, None]), size).clamp(0, 1))[0, 0].numpy()
        out = np.dstack([out, a])
    return np.ascontiguousarray(out)
