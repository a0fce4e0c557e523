"""DeepDream: gradient ascent on the input image to amplify what chosen layers respond to.

The whole loop stays on the device: an octave pyramid built with ``F.interpolate``, gradients
taken with respect to the image only (the model's weights are frozen), optional bf16 autocast,
random jitter (roll) per step, optional Gaussian smoothing of the gradient, and the detail
gained at one octave carried up to the next. Large images are processed in tiles so memory is
bounded by the tile size, not the image size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from cnnpipe.device import autocast, native_bf16
from cnnpipe.dream.backbones import Backbone
from cnnpipe.errors import CnnpipeError


class DreamError(CnnpipeError):
    """Bad DeepDream input or parameters."""


class DreamCancelled(CnnpipeError):
    """The progress callback asked to stop."""


@dataclass(frozen=True)
class Progress:
    octave: int  # 1-based
    octaves: int
    step: int  # 1-based, within the octave
    steps: int
    fraction: float  # of all steps, 0..1


ProgressCallback = Callable[[Progress], bool | None]


def report(progress: ProgressCallback | None, state: Progress) -> None:
    """Tell ``progress`` where the loop is; it returning False stops the loop (DreamCancelled).
    Shared by every on-device optimisation loop (DeepDream, class maximisation, style transfer)."""
    if progress is not None and progress(state) is False:
        where = f"octave {state.octave}, step {state.step}" if state.octaves > 1 else f"step {state.step}"
        raise DreamCancelled(f"cancelled at {where}")


@dataclass(frozen=True)
class DreamParams:
    """What to amplify and how hard. ``layers`` maps layer name (or index) to its weight.

    The defaults are the ``quick`` preset of :mod:`cnnpipe.dream.presets`, which every entry point
    (CLI, HTTP, gRPC, the gallery stage) starts from.
    """

    layers: dict[str, float] = field(default_factory=dict)
    channels: tuple[int, ...] = ()  # only these channels of the layers (empty = all)
    octaves: int = 3
    octave_scale: float = 1.4
    steps: int = 10  # per octave
    lr: float = 0.02  # step = lr / mean|grad|
    jitter: int = 4  # max random roll in pixels per step
    smoothing: float = 0.0  # sigma (pixels) of a Gaussian blur of the gradient; 0 = off
    seed: int = 0
    tile_size: int = 512  # gradients computed on tiles at most this big (memory bound)
    max_pixels: int = 4096 * 4096
    max_total_steps: int = 1000
    bf16: bool | None = None  # None = auto: on for CUDA and for CPUs with native bf16


SEEDS = (-(2**63), 2**64 - 1)
"""The seeds torch's generator takes (``manual_seed`` overflows outside them)."""


def validate(params: DreamParams, backbone: Backbone, height: int, width: int) -> dict[str, float]:
    """Check limits and resolve layer names; return name → weight."""
    if height * width > params.max_pixels:
        raise DreamError(
            f"image has {height}×{width} = {height * width} pixels, more than the limit {params.max_pixels}"
        )
    if min(height, width) < 1:
        raise DreamError("image is empty")
    if params.octaves < 1 or params.steps < 1:
        raise DreamError(f"octaves and steps must be >= 1, got {params.octaves} and {params.steps}")
    total = params.octaves * params.steps
    if total > params.max_total_steps:
        raise DreamError(f"octaves × steps = {total} is more than the limit {params.max_total_steps}")
    if not params.octave_scale > 1.0 or params.octave_scale > 4.0:
        raise DreamError(f"octave_scale must be in (1, 4], got {params.octave_scale}")
    if not 0 < params.lr <= 1:
        raise DreamError(f"lr must be in (0, 1], got {params.lr}")
    if params.jitter < 0 or not 0 <= params.smoothing < math.inf:  # NaN too: it blurs the image to NaN
        raise DreamError(f"jitter and smoothing must be >= 0 (and finite), got {params.jitter} and {params.smoothing}")
    if not SEEDS[0] <= params.seed <= SEEDS[1]:
        raise DreamError(f"seed must be in {SEEDS[0]}..{SEEDS[1]}, got {params.seed}")
    if params.tile_size < 32:
        raise DreamError(f"tile_size must be >= 32, got {params.tile_size}")
    if not params.layers:
        raise DreamError(f"no layer chosen; {backbone.name} layers include {', '.join(backbone.layer_names()[:8])}, …")
    weights = {backbone.resolve_layer(name): float(w) for name, w in params.layers.items()}
    if not all(math.isfinite(w) for w in weights.values()):
        raise DreamError(f"layer weights must be finite numbers, got {weights}")
    need, channels = backbone.probe(list(weights))
    sizes = pyramid_sizes(height, width, params.octaves, params.octave_scale)
    smallest = min(min(tile_sides(size, params.tile_size)) for size in sizes)  # octave, or tile of one
    if smallest < need:
        raise DreamError(
            f"image is {width}×{height}: {backbone.name} at {', '.join(weights)} needs at least {need} px on the "
            f"short side of every octave (and tile), and with {params.octaves} octaves ×{params.octave_scale} the "
            f"smallest is {smallest} px; send a larger image or ask for fewer octaves"
        )
    fewest = min(channels.values())
    if any(not 0 <= c < fewest for c in params.channels):
        raise DreamError(f"channels must be in 0..{fewest - 1} for {', '.join(weights)}, got {list(params.channels)}")
    return weights


def tile_sides(size: tuple[int, int], tile: int) -> tuple[int, int]:
    """The tile height and width that cover ``size`` in as few tiles as ``tile`` allows, all
    (nearly) equal, so no sliver of a few pixels is left at the edge for the network to choke on."""
    height, width = size
    return math.ceil(height / math.ceil(height / tile)), math.ceil(width / math.ceil(width / tile))


def pyramid_sizes(height: int, width: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """Octave sizes from smallest to the original; never below 1 pixel."""

    def size(n: int, i: int) -> int:
        return max(1, math.floor(n / scale**i + 0.5))  # round half up, unlike round()

    return [(size(height, i), size(width, i)) for i in reversed(range(octaves))]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """N×C×H×W blurred by a separable Gaussian of ``sigma`` pixels (radius 3σ, edges replicated)."""
    radius = max(1, math.ceil(3 * sigma))
    coords = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _objective(acts: dict[str, torch.Tensor], weights: dict[str, float], channels: tuple[int, ...]) -> torch.Tensor:
    loss = torch.zeros((), device=next(iter(acts.values())).device)
    for name, weight in weights.items():
        act = acts[name].float()
        if channels:
            act = act[:, list(channels)]
        loss = loss + weight * act.pow(2).mean()
    return loss


def _gradient(
    backbone: Backbone, image: torch.Tensor, weights: dict[str, float], p: DreamParams, bf16: bool
) -> torch.Tensor:
    """d(objective)/d(image), computed tile by tile when the image exceeds ``tile_size``."""
    _, _, h, w = image.shape
    grad = torch.zeros_like(image)
    tile_h, tile_w = tile_sides((h, w), p.tile_size)
    for top in range(0, h, tile_h):
        for left in range(0, w, tile_w):
            patch = image[:, :, top : top + tile_h, left : left + tile_w].detach().requires_grad_(True)
            with autocast(image.device, bf16):
                acts = backbone.activations(patch, list(weights))
            loss = _objective(acts, weights, p.channels)
            (g,) = torch.autograd.grad(loss, patch)
            grad[:, :, top : top + tile_h, left : left + tile_w] = g
    return grad


def dream_tensor(
    image: torch.Tensor,
    backbone: Backbone,
    params: DreamParams,
    progress: ProgressCallback | None = None,
) -> torch.Tensor:
    """Dream on a 1×3×H×W float image in [0, 1] (on the backbone's device); returns the same layout."""
    _, _, height, width = image.shape
    weights = validate(params, backbone, height, width)
    device = image.device
    bf16 = native_bf16(device) if params.bf16 is None else params.bf16
    generator = torch.Generator().manual_seed(params.seed)
    sizes = pyramid_sizes(height, width, params.octaves, params.octave_scale)
    total = params.octaves * params.steps
    base_levels = [F.interpolate(image, size=s, mode="bilinear", align_corners=False, antialias=True) for s in sizes]
    detail = torch.zeros_like(base_levels[0])
    done = 0
    img = base_levels[0]
    for octave, base in enumerate(base_levels, start=1):
        if detail.shape[-2:] != base.shape[-2:]:
            detail = F.interpolate(detail, size=base.shape[-2:], mode="bilinear", align_corners=False)
        img = (base + detail).clamp(0, 1)
        for step in range(1, params.steps + 1):
            if params.jitter:
                dy, dx = (torch.randint(-params.jitter, params.jitter + 1, (2,), generator=generator)).tolist()
                img = img.roll((dy, dx), dims=(2, 3))
            grad = _gradient(backbone, img, weights, params, bf16)
            if params.smoothing:
                grad = gaussian_blur(grad, params.smoothing)
            with torch.no_grad():
                img = (img + params.lr * grad / (grad.abs().mean() + 1e-8)).clamp(0, 1)
            if params.jitter:
                img = img.roll((-dy, -dx), dims=(2, 3))
            done += 1
            report(progress, Progress(octave, params.octaves, step, params.steps, done / total))
        detail = img - base
    return img


def dream(
    image: np.ndarray,
    backbone: Backbone,
    params: DreamParams,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Dream on a uint8 H×W×3 RGB image; returns a uint8 H×W×3 RGB image of the same size."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DreamError(f"expected a uint8 H×W×3 RGB image, got {image.dtype} {image.shape}")
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float().div(255).to(backbone.device)
    out = dream_tensor(x, backbone, params, progress)
    return out[0].mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
