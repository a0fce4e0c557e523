"""Neural style transfer: Gram matrices against a direct computation, losses that fall, limits, CLI."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnpipe.dream.backbones import Backbone, load_backbone
from cnnpipe.dream.engine import DreamCancelled
from cnnpipe.explain.style import StyleError, StyleParams, gram, transfer

from .cli import run_cli
from .images import photo

CPU = torch.device("cpu")


def _image(h: int, w: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(photo(h, w, seed=seed)).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def vgg19() -> Backbone:
    torch.manual_seed(0)
    return load_backbone("vgg19", CPU, weights="random")


def test_gram_is_the_feature_matrix_times_its_transpose() -> None:
    features = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    rows = features.reshape(6, 20)
    direct = torch.tensor(
        [[sum(float(rows[i, k] * rows[j, k]) for k in range(20)) for j in range(6)] for i in range(6)]
    )
    assert torch.allclose(gram(features), direct / (2 * 3 * 4 * 5), atol=1e-6)
    assert torch.allclose(gram(features), gram(features).T)


def test_style_and_content_losses_fall(vgg19: Backbone) -> None:
    result = transfer(_image(64, 80, 1), _image(72, 72, 2), vgg19, StyleParams(steps=40, lr=0.03))
    assert result.image.shape == (1, 3, 64, 80) and 0 <= float(result.image.min()) <= float(result.image.max()) <= 1
    style, total = np.array(result.style_losses), np.add(result.style_losses, result.content_losses)
    assert style[-1] < 0.5 * style[0]
    # in expectation: the mean of each block of 10 steps below the one before
    blocks = total.reshape(4, 10).mean(1)
    assert all(later < earlier for earlier, later in itertools.pairwise(blocks)), blocks


def test_from_noise_the_content_loss_falls_too(tiny_classifier: Path) -> None:
    backbone = load_backbone("classifier", CPU, classifier_checkpoint=tiny_classifier)
    result = transfer(_image(32, 32, 3), _image(40, 48, 4), backbone, StyleParams(steps=30, lr=0.05, init="noise"))
    assert result.content_losses[-1] < 0.5 * result.content_losses[0]


def test_without_style_weight_the_content_image_is_already_optimal(tiny_classifier: Path) -> None:
    backbone = load_backbone("classifier", CPU, classifier_checkpoint=tiny_classifier)
    content = _image(32, 32, 5)
    result = transfer(content, _image(32, 32, 6), backbone, StyleParams(steps=3, style_weight=0.0))
    assert torch.equal(result.image, content) and result.content_losses == [0.0, 0.0, 0.0]


def test_same_seed_same_image_on_cpu(tiny_classifier: Path) -> None:
    backbone = load_backbone("classifier", CPU, classifier_checkpoint=tiny_classifier)
    runs = [
        transfer(_image(32, 32, 7), _image(32, 32, 8), backbone, StyleParams(steps=3, init="noise", seed=s)).image
        for s in (1, 1, 2)
    ]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_progress_every_step_and_cancel(tiny_classifier: Path) -> None:
    backbone = load_backbone("classifier", CPU, classifier_checkpoint=tiny_classifier)
    seen: list[float] = []
    transfer(_image(32, 32, 7), _image(32, 32, 8), backbone, StyleParams(steps=3), lambda p: seen.append(p.fraction))
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])
    with pytest.raises(DreamCancelled, match="cancelled at step 2"):
        transfer(_image(32, 32, 7), _image(32, 32, 8), backbone, StyleParams(steps=9), lambda p: p.step < 2)


@pytest.mark.parametrize(
    ("params", "size", "message"),
    [
        (StyleParams(steps=0), (32, 32), "steps must be in 1..1000, got 0"),
        (StyleParams(lr=0.0), (32, 32), r"lr must be in \(0, 1\], got 0.0"),
        (StyleParams(content_weight=0.0, style_weight=0.0), (32, 32), "not both 0"),
        (StyleParams(max_pixels=100), (32, 32), "more than the limit 100"),
        (StyleParams(content_layer="nope"), (32, 32), "classifier has no layer 'nope'"),
        (StyleParams(style_layers=("features.1", "99")), (32, 32), "layer index 99 is out of range"),
        (StyleParams(init="black"), (32, 32), "init must be content or noise"),
        (StyleParams(), (4, 4), "needs at least"),
    ],
)
def test_bad_parameters_are_refused_before_any_step(
    tiny_classifier: Path, params: StyleParams, size: tuple[int, int], message: str
) -> None:
    backbone = load_backbone("classifier", CPU, classifier_checkpoint=tiny_classifier)
    steps: list[int] = []
    with pytest.raises(StyleError, match=message):
        transfer(_image(*size, 1), _image(32, 32, 2), backbone, params, lambda p: steps.append(p.step))
    assert steps == []


def test_cli_style(tiny_classifier: Path, tmp_path: Path) -> None:
    Image.fromarray(photo(36, 44, seed=1)).save(tmp_path / "content.png")
    Image.fromarray(photo(50, 50, seed=2)).save(tmp_path / "style.jpg")
    out = tmp_path / "out.png"
    args = ("--backbone", "classifier", "--classifier", tiny_classifier, "--device", "cpu")
    result = run_cli("style", tmp_path / "content.png", tmp_path / "style.jpg", out, "--steps", "3", *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("content loss 0 → ") and "style loss" in result.stdout
    assert Image.open(out).size == (44, 36)

    bad = run_cli("style", tmp_path / "content.png", tmp_path / "style.jpg", out, "--style-layers", "nope", *args)
    assert bad.returncode == 1 and bad.stderr.startswith("error: classifier has no layer 'nope'"), bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = run_cli("style", tmp_path / "none.png", tmp_path / "style.jpg", tmp_path / "new.png", *args)
    assert missing.returncode == 1 and missing.stderr.strip().splitlines() == [
        f"error: no such image {tmp_path / 'none.png'}"
    ]
    assert not (tmp_path / "new.png").exists()


def test_cli_style_missing_imagenet_weights_is_one_line(tmp_path: Path) -> None:
    Image.fromarray(photo(32, 32)).save(tmp_path / "c.png")
    command = ("style", tmp_path / "c.png", tmp_path / "c.png", tmp_path / "o.png", "--no-download")
    result = run_cli(*command, env={"TORCH_HOME": str(tmp_path / "torch")})
    assert result.returncode == 1 and result.stderr.startswith("error: no ImageNet weights for vgg19 at ")
    assert len(result.stderr.strip().splitlines()) == 1
