"""Neural style transfer (Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016): an image optimised so that its features at one layer match the content
image's (content loss) and the Gram matrices of its features at several layers match the style
image's (style loss).

The features come from a :class:`~cnnpipe.dream.backbones.Backbone` (VGG19 as in the paper, or any
backbone DeepDream uses), whose forward pass stops at the deepest layer asked for. The loop runs
on the backbone's device with Adam on the pixels (clamped to [0, 1] after each step) and reports
through the DeepDream engine's :func:`~cnnpipe.dream.engine.report`, so the servers' progress and
cancellation work as for DeepDream.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from cnnpipe.dream.backbones import Backbone, BackboneError
from cnnpipe.dream.engine import SEEDS, Progress, ProgressCallback, report
from cnnpipe.errors import CnnpipeError

# The paper's layers: style at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1; content at relu4_2.
# For the other backbones: early-to-deep stages for style, a middle one for content.
DEFAULT_STYLE_LAYERS: dict[str, tuple[str, ...]] = {
    "vgg19": ("features.1", "features.6", "features.11", "features.20", "features.29"),
    "classifier": ("features.1", "features.2", "features.3", "features.4"),
    "resnet50": ("relu", "layer1", "layer2", "layer3"),
    "googlenet": ("conv1", "conv3", "inception3b", "inception4b"),
}
DEFAULT_CONTENT_LAYER = {
    "vgg19": "features.22",
    "classifier": "features.3",
    "resnet50": "layer3",
    "googlenet": "inception4b",
}


class StyleError(CnnpipeError):
    """Bad style-transfer input or parameters."""


@dataclass(frozen=True)
class StyleParams:
    """``content_layer`` / ``style_layers`` None = the backbone's defaults above."""

    steps: int = 200
    lr: float = 0.02
    content_weight: float = 1.0
    style_weight: float = 1e6
    content_layer: str | None = None
    style_layers: tuple[str, ...] | None = None
    init: str = "content"  # start from the content image, or "noise"
    seed: int = 0
    max_pixels: int = 1024 * 1024
    max_steps: int = 1000


@dataclass(frozen=True)
class StyleRequest:
    """What a server's caller may choose (None = :class:`StyleParams`' default); the HTTP and gRPC
    adapters both build one, and :meth:`params` applies the server's limits."""

    steps: int | None = None
    content_weight: float | None = None
    style_weight: float | None = None
    init: str | None = None
    seed: int | None = None

    def params(self, max_pixels: int, max_steps: int) -> StyleParams:
        given = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return StyleParams(**given, max_pixels=max_pixels, max_steps=max_steps)


@dataclass
class StyleResult:
    image: torch.Tensor  # 1×3×H×W in [0, 1], the content image's size
    content_losses: list[float] = field(default_factory=list)  # weighted, one per step
    style_losses: list[float] = field(default_factory=list)


def gram(features: torch.Tensor) -> torch.Tensor:
    """The Gram matrix of B×N×H×W features: F·Fᵀ of F, the (B·N)×(H·W) feature matrix, divided by
    B·N·H·W (so layers of any size weigh alike)."""
    b, n, h, w = features.shape
    matrix = features.reshape(b * n, h * w)
    return matrix @ matrix.T / (b * n * h * w)


def layers_for(backbone: Backbone, params: StyleParams) -> tuple[str, tuple[str, ...]]:
    """The content layer and style layers, resolved (indices allowed) and known to the backbone."""
    content = params.content_layer or DEFAULT_CONTENT_LAYER.get(backbone.name)
    style = params.style_layers or DEFAULT_STYLE_LAYERS.get(backbone.name)
    if content is None or not style:
        raise StyleError(f"{backbone.name} has no default style/content layers; name them")
    try:
        return backbone.resolve_layer(content), tuple(backbone.resolve_layer(layer) for layer in style)
    except BackboneError as error:
        raise StyleError(str(error)) from None


def validate(backbone: Backbone, params: StyleParams, content_size: tuple[int, int]) -> tuple[str, tuple[str, ...]]:
    """Refuse bad parameters and sizes before any step; returns the layers."""
    height, width = content_size
    if height * width > params.max_pixels:
        raise StyleError(
            f"content image has {height}×{width} = {height * width} pixels, more than the limit {params.max_pixels}"
        )
    if not 1 <= params.steps <= params.max_steps:
        raise StyleError(f"steps must be in 1..{params.max_steps}, got {params.steps}")
    if not 0 < params.lr <= 1:
        raise StyleError(f"lr must be in (0, 1], got {params.lr}")
    weights = (params.content_weight, params.style_weight)
    if not all(0 <= w < math.inf for w in weights) or sum(weights) == 0:  # NaN and inf make a NaN (black) image
        raise StyleError(f"content_weight and style_weight must be >= 0 and finite, and not both 0, got {weights}")
    if not SEEDS[0] <= params.seed <= SEEDS[1]:
        raise StyleError(f"seed must be in {SEEDS[0]}..{SEEDS[1]}, got {params.seed}")
    if params.init not in ("content", "noise"):
        raise StyleError(f"init must be content or noise, got {params.init!r}")
    content, style = layers_for(backbone, params)
    need, _ = backbone.probe([content, *style])
    if min(height, width) < need:
        raise StyleError(
            f"content image is {width}×{height}: {backbone.name} at {', '.join([content, *style])} needs at least "
            f"{need} px on the short side"
        )
    return content, style


def _fit_style(style: torch.Tensor, content_size: tuple[int, int]) -> torch.Tensor:
    """The style image scaled (aspect kept) so its short side is the content's short side."""
    factor = min(content_size) / min(style.shape[-2:])
    size = (max(1, round(style.shape[-2] * factor)), max(1, round(style.shape[-1] * factor)))
    return F.interpolate(style, size=size, mode="bilinear", antialias=True, align_corners=False)


def transfer(
    content: torch.Tensor,
    style: torch.Tensor,
    backbone: Backbone,
    params: StyleParams | None = None,
    progress: ProgressCallback | None = None,
) -> StyleResult:
    """``content`` and ``style``: 1×3×H×W RGB in [0, 1] on the backbone's device (any sizes). Returns
    the stylised image at the content's size and the loss of every step. Deterministic per seed on
    the CPU."""
    p = params or StyleParams()
    size = (content.shape[-2], content.shape[-1])
    content_layer, style_layers = validate(backbone, p, size)
    style = _fit_style(style, size)  # its short side is the content's: big enough, as validated
    wanted = [content_layer, *style_layers]
    with torch.no_grad():
        target_content = backbone.activations(content, [content_layer])[content_layer].float()
        style_acts = backbone.activations(style, list(style_layers))
        target_grams = {name: gram(style_acts[name].float()) for name in style_layers}
    generator = torch.Generator().manual_seed(p.seed)
    start = content if p.init == "content" else torch.rand(content.shape, generator=generator).to(content.device)
    image = start.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=p.lr)
    result = StyleResult(image)
    for step in range(1, p.steps + 1):
        acts = backbone.activations(image, wanted)
        content_loss = p.content_weight * F.mse_loss(acts[content_layer].float(), target_content)
        style_loss = p.style_weight * sum(
            (F.mse_loss(gram(acts[name].float()), target_grams[name]) for name in style_layers),
            torch.zeros((), device=image.device),
        )
        optimizer.zero_grad(set_to_none=True)
        (content_loss + style_loss).backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 1)
        result.content_losses.append(float(content_loss.detach()))
        result.style_losses.append(float(style_loss.detach()))
        report(progress, Progress(1, 1, step, p.steps, step / p.steps))
    result.image = image.detach()
    return result


def as_layers(text: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """Comma-separated or listed layer names (or indices); empty or None = the defaults."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    layers = tuple(item.strip() for item in items if item.strip())
    return layers or None
