"""Explanations on constructed cases whose answer is known, checked against hand computation and Captum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnpipe.explain.attribution import (
    METHODS,
    Normalized,
    default_layer,
    explain,
    gradcam,
    rectified_gradient,
    spatial_layers,
)
from cnnpipe.explain.features import activations, first_conv
from cnnpipe.explain.render import activation_grid, filter_grid, gradient_image, heatmap_overlay
from cnnpipe.models.checkpoint import build_classifier

from .cli import run_cli
from .images import photo


class RedDetector(nn.Module):
    """Class 1's logit is the mean red-minus-rest response; class 0's a constant: the evidence for
    class 1 sits exactly where the image is red."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, 0] = 1.0
            self.conv.weight[:, 1:] = -0.5
            self.conv.bias.zero_()
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0] * 4, [1.0] * 4]))
            self.head.bias.copy_(torch.tensor([0.1, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.act(self.conv(x))).flatten(1))


def _red_quadrant(size: int = 32, noise: float = 0.05, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    image = 0.4 + noise * torch.randn(1, 3, size, size, generator=gen)
    image[:, 0, : size // 2, : size // 2] = 0.95  # red top-left
    image[:, 1:, : size // 2, : size // 2] = 0.1
    return image.clamp(0, 1)


def test_gradcam_puts_the_evidence_in_the_quadrant_that_holds_it() -> None:
    model, image = RedDetector().eval(), _red_quadrant()
    result = explain(model, image, "gradcam")
    assert result.target == 1 and result.layer == "act"  # predicted class, last spatial layer
    cam = result.cam
    assert cam is not None and cam.shape == (32, 32) and float(cam.max()) == pytest.approx(1.0)
    assert float(cam[:16, :16].sum() / cam.sum()) >= 0.8


def test_gradcam_of_a_class_without_spatial_evidence_is_zero() -> None:
    cam = gradcam(RedDetector().eval(), _red_quadrant(), target=0, layer="act")
    assert float(cam.abs().max()) == 0.0


class Rectified(nn.Module):
    """logit 0 = Σ relu(3 − relu(x)), logit 1 = Σ relu(relu(x) + 3), over every input element."""

    def __init__(self) -> None:
        super().__init__()
        self.inner, self.outer0, self.outer1 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inner(x)
        return torch.stack([self.outer0(3 - h).sum((1, 2, 3)), self.outer1(h + 3).sum((1, 2, 3))], 1)


def test_guided_backprop_and_deconvnet_equal_the_hand_computed_rules() -> None:
    """For x in (−3, 3): logit 0's true gradient is −1 where x > 0; logit 1's is 1 where x > 0.
    Guided backprop passes only positive gradients where the input was positive: 0 for logit 0,
    1[x > 0] for logit 1. The deconvnet passes positive gradients whatever the input: 0, and 1."""
    x = torch.linspace(-2.9, 2.9, 3 * 4 * 5).reshape(1, 3, 4, 5)
    positive = (x[0] > 0).float()
    model = Rectified()
    assert torch.equal(rectified_gradient(model, x, 0, "guided"), torch.zeros_like(x[0]))
    assert torch.equal(rectified_gradient(model, x, 1, "guided"), positive)
    assert torch.equal(rectified_gradient(model, x, 0, "deconvnet"), torch.zeros_like(x[0]))
    assert torch.equal(rectified_gradient(model, x, 1, "deconvnet"), torch.ones_like(x[0]))
    wrt = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(model(wrt)[0, 0], wrt)
    assert torch.equal(plain[0], -positive)  # the ordinary gradient, from the model itself: untouched


def test_guided_backprop_matches_captum_on_a_relu_net() -> None:
    from captum.attr import GuidedBackprop

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).eval()  # fmt: skip
    image = torch.rand(1, 3, 12, 12)
    ours = rectified_gradient(model, image, 3, "guided")
    theirs = GuidedBackprop(model).attribute(image.clone().requires_grad_(True), target=3)[0]
    assert torch.allclose(ours, theirs.detach(), atol=1e-6)


def test_every_method_on_the_projects_classifier_is_deterministic_and_shaped() -> None:
    torch.manual_seed(0)
    config = {"arch": "airbench", "classes": [str(i) for i in range(10)], "widths": [8, 16, 16]}
    model = build_classifier(config).eval()
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    layers = spatial_layers(model, image)
    assert layers and default_layer(model, image) == layers[-1]
    for method in METHODS:
        first, second = explain(model, image, method, target=4), explain(model, image, method, target=4)
        assert first.target == 4 and first.probabilities.shape == (10,)
        for a, b in ((first.cam, second.cam), (first.gradient, second.gradient)):
            assert (a is None) == (b is None) and (a is None or torch.equal(a, b)), method
        if first.cam is not None:
            assert first.cam.shape == (32, 32) and 0 <= float(first.cam.min()) <= float(first.cam.max()) <= 1
        if first.gradient is not None:
            assert first.gradient.shape == (3, 32, 32) and torch.isfinite(first.gradient).all()


def test_bad_choices_name_the_problem() -> None:
    model, image = RedDetector().eval(), _red_quadrant()
    with pytest.raises(ValueError, match=r"class must be in 0\.\.1, got 7"):
        explain(model, image, "gradcam", target=7)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        explain(model, image, "gradcam", layer="nope")
    with pytest.raises(ValueError, match="method must be one of"):
        explain(model, image, "lime")  # type: ignore[arg-type]


def test_normalized_wraps_a_net_that_expects_normalised_input() -> None:
    inner = nn.Identity()
    wrapped = Normalized(inner, torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.25, 0.25]))
    assert torch.allclose(wrapped(torch.full((1, 3, 2, 2), 0.75)), torch.ones(1, 3, 2, 2))


def test_filters_activations_and_pictures() -> None:
    model = RedDetector().eval()
    name, conv = first_conv(model)
    assert name == "conv"
    grid = filter_grid(conv.weight, cell=8)
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    maps = activations(model, _red_quadrant(), "act")
    assert maps.shape == (1, 4, 32, 32)
    assert activation_grid(maps, cell=32).shape[2] == 3
    rgb = np.zeros((64, 48, 3), np.uint8)
    assert heatmap_overlay(rgb, torch.rand(8, 6)).shape == (64, 48, 3)
    picture = gradient_image(torch.zeros(3, 5, 5))
    assert picture.shape == (5, 5, 3) and int(picture[0, 0, 0]) == 127  # zero gradient is mid-grey
    with pytest.raises(ValueError, match="no layer 'nope'"):
        activations(model, _red_quadrant(), "nope")


def test_default_layer_skips_pooling() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)
    ).eval()  # fmt: skip
    assert default_layer(model, torch.rand(1, 3, 8, 8)) == "1"


@pytest.mark.parametrize("method", METHODS)
def test_cli_explain_writes_a_picture(tiny_classifier: Path, tmp_path: Path, method: str) -> None:
    image = tmp_path / "in.png"
    Image.fromarray(photo(40, 56)).save(image)
    out = tmp_path / "out.png"
    result = run_cli(
        "explain", str(image), str(out), "--method", method, "--class", "3", "--classifier", str(tiny_classifier)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{method} of class 3 (cat, p=")
    assert Image.open(out).size == (256, 256)


def test_cli_filters_and_activations(tiny_classifier: Path, tmp_path: Path) -> None:
    image = tmp_path / "in.png"
    Image.fromarray(photo(32, 32)).save(image)
    filters = run_cli("filters", str(tmp_path / "f.png"), "--classifier", str(tiny_classifier))
    assert filters.returncode == 0 and filters.stdout.startswith("24 filters of features.0 (2×2)")
    maps = run_cli(
        "activations",
        str(image),
        str(tmp_path / "a.png"),
        "--layer",
        "features.2",
        "--classifier",
        str(tiny_classifier),
    )
    assert maps.returncode == 0 and maps.stdout.startswith("features.2: 8 channels of 15×15"), maps.stderr
    assert Image.open(tmp_path / "a.png").mode == "RGB"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "IMG", "OUT", "--class", "12"], "error: class must be in 0..9, got 12"),
        (["explain", "IMG", "OUT", "--layer", "nope"], "error: no layer 'nope'"),
        (
            ["activations", "IMG", "OUT", "--layer", "nope"],
            "error: no layer 'nope'; layers with a feature map: features.0",
        ),
        (["explain", "missing.png", "OUT"], "error: no such image missing.png"),
    ],
)
def test_cli_bad_input_is_one_line(tiny_classifier: Path, tmp_path: Path, args: list[str], message: str) -> None:
    image = tmp_path / "in.png"
    Image.fromarray(photo(32, 32)).save(image)
    args = [str(image) if a == "IMG" else str(tmp_path / "o.png") if a == "OUT" else a for a in args]
    result = run_cli(*args, "--classifier", str(tiny_classifier))
    assert result.returncode == 1 and result.stderr.startswith(message) and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.png").exists()
