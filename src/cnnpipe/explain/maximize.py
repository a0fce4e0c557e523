"""Class and neuron maximisation (feature visualisation): an input optimised to drive one class
logit, or one channel of a layer, as high as it goes.

Raw pixel ascent finds adversarial noise. What makes the picture readable here follows Olah,
Mordvintsev & Schubert, "Feature Visualization", Distill 2017 (and the lucid library):

* **Decorrelated parametrisation**: the image is a Fourier spectrum scaled by 1/frequency
  (so every frequency is about equally easy to change, instead of the pixel basis favouring
  high-frequency noise), mapped through the square root of natural images' colour covariance,
  then a sigmoid into [0, 1].
* **Transformation robustness**: each step scores a few randomly jittered, rescaled, rotated and
  flipped copies (one ``affine_grid`` for the batch), so only patterns that survive those
  survive the optimisation.

All classes (or channels) asked for are optimised together as one batch, on the model's device;
progress and cancellation go through the DeepDream engine's :func:`~cnnpipe.dream.engine.report`.
Nothing is copied from lucid (TensorFlow) or its PyTorch port ``torch-lucent``, which drags
kornia 0.4, IPython and pytest in as runtime dependencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cnnpipe.dream.engine import Progress, ProgressCallback, report
from cnnpipe.errors import CnnpipeError
from cnnpipe.explain.features import activations

# Square root of ImageNet's RGB covariance (lucid's ``color_correlation_svd_sqrt``), columns scaled
# to unit max norm: a generic natural-image colour basis.
_COLOUR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_BASIS = _COLOUR_SQRT / _COLOUR_SQRT.norm(dim=0).max()
BLACK_OFFSET = -4.0  # sigmoid(-4) ≈ 0.018: where an image "from black" starts


class MaximizeError(CnnpipeError):
    """Bad class-maximisation parameters."""


@dataclass(frozen=True)
class MaximizeParams:
    """How to optimise. Transform ranges are per step: ``jitter`` pixels of shift, ``scale`` the
    ± fraction of rescale, ``rotate`` ± degrees, ``flip`` a random horizontal flip."""

    steps: int = 256
    lr: float = 0.05
    size: int | None = None  # side of the optimised image; None = the model's input size
    parametrization: Literal["fourier", "pixel"] = "fourier"
    init: Literal["noise", "black"] = "noise"
    decay: float = 1.0  # spectrum scale 1/f^decay
    samples: int = 4  # transformed copies scored per image per step
    jitter: int = 2
    scale: float = 0.1
    rotate: float = 10.0
    flip: bool = True
    seed: int = 0
    max_steps: int = 2000
    max_size: int = 512


@dataclass(frozen=True)
class Objective:
    """What to maximise: class logits (``layer=None``, ``targets`` are classes) or the mean
    activation of channels of ``layer`` (``targets`` are channels)."""

    targets: tuple[int, ...]
    layer: str | None = None


def _frequencies(height: int, width: int) -> torch.Tensor:
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    return (fy**2 + fx**2).sqrt()


class FourierImage(nn.Module):
    """N images as 1/f-scaled spectra in a decorrelated colour space; ``forward`` → N×3×H×W in [0, 1]."""

    scale: torch.Tensor  # buffers
    colours: torch.Tensor

    def __init__(self, n: int, size: int, decay: float, init: str, generator: torch.Generator) -> None:
        super().__init__()
        freqs = _frequencies(size, size)
        self.register_buffer("scale", 1.0 / freqs.clamp(min=1.0 / size) ** decay)
        self.register_buffer("colours", COLOUR_BASIS.clone())
        self.size = size
        self.offset = BLACK_OFFSET if init == "black" else 0.0
        spectrum = 0.01 * torch.randn(n, 3, *freqs.shape, 2, generator=generator)
        self.spectrum = nn.Parameter(spectrum)

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        decorrelated = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")
        rgb = torch.einsum("ij,njhw->nihw", self.colours, decorrelated)
        return torch.sigmoid(rgb + self.offset)


class PixelImage(nn.Module):
    """N images as free pixels (through a sigmoid): the naive baseline the Fourier basis beats."""

    def __init__(self, n: int, size: int, init: str, generator: torch.Generator) -> None:
        super().__init__()
        self.offset = BLACK_OFFSET if init == "black" else 0.0
        self.pixels = nn.Parameter(0.01 * torch.randn(n, 3, size, size, generator=generator))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.pixels + self.offset)


def random_views(
    images: torch.Tensor, samples: int, out_size: int, p: MaximizeParams, generator: torch.Generator
) -> torch.Tensor:
    """``samples`` randomly shifted, rescaled, rotated and (maybe) flipped copies of each image,
    resampled to out_size×out_size with reflection at the border: (N·samples)×3×out×out,
    image-major (copies of image 0 first)."""
    n = len(images) * samples
    uniform = lambda low, high: low + (high - low) * torch.rand(n, generator=generator)  # noqa: E731
    angle = uniform(-p.rotate, p.rotate) * math.pi / 180
    zoom = 1.0 / uniform(1 - p.scale, 1 + p.scale)  # theta maps output to input coordinates
    shift = (torch.randint(-p.jitter, p.jitter + 1, (n, 2), generator=generator) * 2 / images.shape[-1]).float()
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if p.flip else torch.ones(n)
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack(
        [torch.stack([cos * mirror, -sin, shift[:, 1]], 1), torch.stack([sin * mirror, cos, shift[:, 0]], 1)], 1
    ).to(images.device, images.dtype)
    repeated = images.repeat_interleave(samples, 0)
    grid = F.affine_grid(theta, [n, 3, out_size, out_size], align_corners=False)
    return F.grid_sample(repeated, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _score(model: nn.Module, views: torch.Tensor, objective: Objective, samples: int) -> torch.Tensor:
    """The objective of each view: (N·samples,)."""
    targets = torch.tensor(objective.targets, device=views.device).repeat_interleave(samples)
    rows = torch.arange(len(views), device=views.device)
    if objective.layer is None:
        return model(views)[rows, targets]
    captured: list[torch.Tensor] = []
    handle = model.get_submodule(objective.layer).register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model(views)
    finally:
        handle.remove()
    return captured[0][rows, targets].flatten(1).mean(1)


def validate(model: nn.Module, objective: Objective, p: MaximizeParams, input_size: int) -> None:
    """Refuse bad parameters before any optimisation, with the allowed range in the message."""
    if not objective.targets:
        raise MaximizeError("nothing to maximise: give at least one class (or channel)")
    if not 1 <= p.steps <= p.max_steps:
        raise MaximizeError(f"steps must be in 1..{p.max_steps}, got {p.steps}")
    size = p.size or input_size
    if not 8 <= size <= p.max_size:
        raise MaximizeError(f"size must be in 8..{p.max_size}, got {size}")
    if not 0 < p.lr <= 1:
        raise MaximizeError(f"lr must be in (0, 1], got {p.lr}")
    if not 1 <= p.samples <= 64:
        raise MaximizeError(f"samples must be in 1..64, got {p.samples}")
    if p.jitter < 0 or not 0 <= p.scale < 1 or not 0 <= p.rotate <= 180:
        raise MaximizeError("jitter must be >= 0, scale in [0, 1), rotate in [0, 180]")
    if p.parametrization not in ("fourier", "pixel") or p.init not in ("noise", "black"):
        raise MaximizeError("parametrization must be fourier or pixel, init noise or black")
    probe = torch.zeros(1, 3, input_size, input_size, device=next(model.parameters()).device)
    if objective.layer is None:
        with torch.no_grad():
            count, what = int(model(probe).shape[1]), "class"
    else:
        try:
            count, what = int(activations(model, probe, objective.layer).shape[1]), f"channel of {objective.layer}"
        except ValueError as error:  # no such layer, or not a feature map
            raise MaximizeError(str(error)) from None
    bad = [t for t in objective.targets if not 0 <= t < count]
    if bad:
        raise MaximizeError(f"{what} must be in 0..{count - 1}, got {bad[0]}")


def maximize(
    model: nn.Module,
    objective: Objective,
    input_size: int,
    params: MaximizeParams | None = None,
    progress: ProgressCallback | None = None,
) -> torch.Tensor:
    """One image per target that maximises it: ``model`` maps N×3×input×input RGB in [0, 1] to
    logits; returns len(targets)×3×size×size in [0, 1] on the model's device. Deterministic per
    seed on the CPU."""
    p = params or MaximizeParams()
    model = model.eval()
    validate(model, objective, p, input_size)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(p.seed)
    size, n = p.size or input_size, len(objective.targets)
    if p.parametrization == "fourier":
        image: nn.Module = FourierImage(n, size, p.decay, p.init, generator)
    else:
        image = PixelImage(n, size, p.init, generator)
    image = image.to(device)
    optimizer = torch.optim.Adam(image.parameters(), lr=p.lr)
    frozen = [q.requires_grad for q in model.parameters()]
    model.requires_grad_(False)
    try:
        for step in range(1, p.steps + 1):
            views = random_views(image(), p.samples, input_size, p, generator)
            loss = -_score(model, views, objective, p.samples).sum() / p.samples
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            report(progress, Progress(1, 1, step, p.steps, step / p.steps))
    finally:
        for q, requires in zip(model.parameters(), frozen, strict=True):
            q.requires_grad_(requires)
    with torch.no_grad():
        return image().detach()


@dataclass(frozen=True)
class Robustness:
    clean: float  # p(target) of the image as optimised
    worst: float  # the lowest p(target) over the perturbed copies
    mean: float


def perturbed(image: torch.Tensor, dy: int, dx: int, flip: bool, scale: float) -> torch.Tensor:
    """``image`` (1×3×S×S) rescaled by ``scale`` about its centre (cropped or reflect-padded back
    to S×S), shifted by (dy, dx) pixels with reflection, maybe mirrored. Integer-pixel code of its
    own, not the optimiser's ``affine_grid``, so the check does not share the optimiser's sampling."""
    side = image.shape[-1]
    resized = F.interpolate(image, size=max(1, round(side * scale)), mode="bilinear", antialias=True)
    extra = resized.shape[-1] - side
    if extra >= 0:
        resized = resized[..., extra // 2 : extra // 2 + side, extra // 2 : extra // 2 + side]
    else:
        before, after = -extra // 2, -extra - (-extra // 2)
        resized = F.pad(resized, (before, after, before, after), mode="reflect")
    pad = max(abs(dy), abs(dx))
    if pad:
        padded = F.pad(resized, (pad, pad, pad, pad), mode="reflect")
        resized = padded[..., pad + dy : pad + dy + side, pad + dx : pad + dx + side]
    return resized.flip(-1) if flip else resized


def robustness(
    model: nn.Module,
    images: torch.Tensor,
    targets: tuple[int, ...],
    input_size: int | None = None,
    trials: int = 32,
    shift: int = 4,
    scale: float = 0.1,
    seed: int = 0,
) -> list[Robustness]:
    """Is each image its target also after a random ±``shift`` px shift, a flip and a rescale in
    [1 - scale, 1 + scale]? Every trial shifts and rescales at random; half of them also flip.
    ``images`` N×3×S×S, first resized (antialiased) to ``input_size`` when given and different."""
    if input_size is not None and images.shape[-1] != input_size:
        images = F.interpolate(images, size=input_size, mode="bilinear", antialias=True)
    generator = torch.Generator().manual_seed(seed)
    results = []
    model = model.eval()
    for image, target in zip(images, targets, strict=True):
        x = image[None]
        copies = []
        for trial in range(trials):
            dy, dx = torch.randint(-shift, shift + 1, (2,), generator=generator).tolist()
            factor = 1 - scale + 2 * scale * float(torch.rand((), generator=generator))
            copies.append(perturbed(x, dy, dx, flip=trial % 2 == 0, scale=factor))
        with torch.no_grad():
            clean = float(model(x).softmax(1)[0, target])
            p = model(torch.cat(copies)).softmax(1)[:, target]
        results.append(Robustness(clean, float(p.min()), float(p.mean())))
    return results
