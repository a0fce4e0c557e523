"""Class and neuron maximisation on nets whose best input is known, its robustness check, and its CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from cnnpipe.dream.engine import DreamCancelled
from cnnpipe.explain.maximize import (
    FourierImage,
    MaximizeError,
    MaximizeParams,
    Objective,
    maximize,
    perturbed,
    random_views,
    robustness,
)

from .cli import run_cli

QUICK = MaximizeParams(steps=200, lr=0.1, samples=2)


class ColourNet(nn.Module):
    """Logit 0 = mean(green) − mean(red) − mean(blue), logit 1 = mean(red) − mean(green) − mean(blue):
    the best class-1 image is pure red, the best class-0 image pure green. ``conv`` has 3 channels,
    one per colour, for the neuron objective."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-1.0, 1.0, -1.0], [1.0, -1.0, -1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.conv(x)).flatten(1))


@pytest.mark.parametrize("parametrization", ["fourier", "pixel"])
def test_maximising_a_class_finds_its_colour(parametrization: str) -> None:
    params = MaximizeParams(**{**QUICK.__dict__, "parametrization": parametrization})
    images = maximize(ColourNet(), Objective((1, 0)), 16, params)
    assert images.shape == (2, 3, 16, 16) and float(images.min()) >= 0 and float(images.max()) <= 1
    red, green = images[0].mean((1, 2)), images[1].mean((1, 2))
    # The Fourier basis maps through natural images' colour correlations, where pure saturated
    # colours are far away (ill-conditioned): dominant, not saturated, after the same steps.
    dominant = 0.9 if parametrization == "pixel" else 0.55
    assert red[0] > dominant and red[1] < 0.2 and red[2] < 0.2, red
    assert green[1] > dominant and green[0] < 0.2 and green[2] < 0.2, green


def test_maximising_a_neuron_drives_its_channel() -> None:
    net = ColourNet()
    blue = maximize(net, Objective((2,), layer="conv"), 16, QUICK)
    assert float(blue[0, 2].mean()) > 0.8  # channel 2 of conv is the blue input, unbounded above


def test_from_black_starts_black_and_noise_starts_grey() -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        black, grey = FourierImage(1, 16, 1.0, "black", gen)(), FourierImage(1, 16, 1.0, "noise", gen)()
    assert float(black.max()) < 0.05
    assert abs(float(grey.mean()) - 0.5) < 0.05


def test_same_seed_same_image_on_cpu() -> None:
    first = maximize(ColourNet(), Objective((1,)), 16, MaximizeParams(steps=5, seed=3))
    again = maximize(ColourNet(), Objective((1,)), 16, MaximizeParams(steps=5, seed=3))
    other = maximize(ColourNet(), Objective((1,)), 16, MaximizeParams(steps=5, seed=4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_model_weights_stay_trainable_and_untouched() -> None:
    net = ColourNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    maximize(net, Objective((1,)), 16, MaximizeParams(steps=3))
    assert all(p.requires_grad for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_progress_counts_every_step_and_can_cancel() -> None:
    seen: list[int] = []
    maximize(ColourNet(), Objective((1,)), 16, MaximizeParams(steps=4), lambda p: seen.append(p.step))
    assert seen == [1, 2, 3, 4]
    with pytest.raises(DreamCancelled, match="cancelled at step 2"):
        maximize(ColourNet(), Objective((1,)), 16, MaximizeParams(steps=10), lambda p: p.step < 2)


@pytest.mark.parametrize(
    ("objective", "params", "message"),
    [
        (Objective((2,)), MaximizeParams(), "class must be in 0..1, got 2"),
        (Objective(()), MaximizeParams(), "nothing to maximise"),
        (Objective((3,), "conv"), MaximizeParams(), "channel of conv must be in 0..2, got 3"),
        (Objective((0,), "nope"), MaximizeParams(), "no layer 'nope'"),
        (Objective((0,)), MaximizeParams(steps=0), "steps must be in 1..2000, got 0"),
        (Objective((0,)), MaximizeParams(size=4), "size must be in 8..512, got 4"),
        (Objective((0,)), MaximizeParams(lr=2.0), "lr must be in (0, 1], got 2.0"),
        (Objective((0,)), MaximizeParams(samples=0), "samples must be in 1..64, got 0"),
    ],
)
def test_bad_parameters_are_refused_before_any_step(objective: Objective, params: MaximizeParams, message: str) -> None:
    steps: list[int] = []
    with pytest.raises(MaximizeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        maximize(ColourNet(), objective, 16, params, lambda p: steps.append(p.step))
    assert steps == []


def test_views_without_randomness_are_the_image() -> None:
    image = torch.rand(2, 3, 16, 16)
    still = MaximizeParams(jitter=0, scale=0.0, rotate=0.0, flip=False)
    views = random_views(image, 3, 16, still, torch.Generator().manual_seed(0))
    assert views.shape == (6, 3, 16, 16)
    assert torch.allclose(views[:3], image[:1].expand(3, -1, -1, -1), atol=1e-5)
    assert torch.allclose(views[3:], image[1:].expand(3, -1, -1, -1), atol=1e-5)


def test_perturbed_shifts_flips_and_rescales() -> None:
    image = torch.zeros(1, 3, 16, 16)
    image[..., 8, 5] = 1.0
    assert torch.equal(perturbed(image, 0, 0, False, 1.0), image)
    shifted = perturbed(image, 2, -3, False, 1.0)
    assert shifted[0, 0, 6, 8] == 1.0 and float(shifted.sum()) == 3.0
    assert torch.equal(perturbed(image, 0, 0, True, 1.0), image.flip(-1))
    for factor in (0.9, 1.1):
        assert perturbed(image, 0, 0, False, factor).shape == image.shape


def test_robustness_reports_clean_worst_and_mean() -> None:
    net = ColourNet()
    red = torch.zeros(1, 3, 16, 16)
    red[:, 0] = 1.0
    half = red.clone()
    half[..., 8:] = 0.0  # red on the left only: shifts and rescales change its mean
    solid, split = robustness(net, torch.cat([red, half]), (1, 1), trials=8)
    assert solid.clean == pytest.approx(solid.worst) == pytest.approx(solid.mean)  # every view is all red
    assert split.worst < split.mean and split.worst < split.clean  # a shift that shows less red costs p


def test_cli_visualize_class(tiny_classifier: Path, tmp_path: Path) -> None:
    out = tmp_path / "cat.png"
    result = run_cli("visualize-class", "cat", out, "--steps", "3", "--classifier", tiny_classifier, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("class 3 (cat): p=") and "worst p=" in result.stdout
    assert Image.open(out).size == (256, 256)
    neuron = run_cli(
        "visualize-class", "5", out, "--layer", "features.2", "--steps", "2", "--classifier", tiny_classifier
    )
    assert neuron.returncode == 0 and neuron.stdout.strip() == f"wrote {out}", neuron.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["visualize-class", "zebra", "OUT"], "error: 'zebra' is not a class name or index; classes: airplane,"),
        (["visualize-class", "10", "OUT"], "error: class must be in 0..9, got 10"),
        (["visualize-class", "1", "OUT", "--steps", "0"], "error: steps must be in 1..2000, got 0"),
        (["visualize-class", "99", "OUT", "--layer", "features.2"], "error: channel of features.2 must be in 0..7"),
    ],
)
def test_cli_visualize_class_bad_input_is_one_line(
    tiny_classifier: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [str(tmp_path / "o.png") if a == "OUT" else a for a in args]
    result = run_cli(*args, "--classifier", tiny_classifier)
    assert result.returncode == 1
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "o.png").exists()
