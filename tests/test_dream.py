"""DeepDream engine: it must actually amplify the layer, be deterministic, bounded and cancellable."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnpipe.dream.backbones import BackboneError, classifier_backbone, torchvision_backbone
from cnnpipe.dream.engine import DreamCancelled, DreamError, DreamParams, dream, pyramid_sizes, tile_sides
from cnnpipe.models.checkpoint import save_checkpoint
from cnnpipe.models.classifier import ResNet9

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "classifier.pt"
    save_checkpoint(path, ResNet9(width=8), {"arch": "resnet9", "width": 8, "classes": [str(i) for i in range(10)]})
    return path


@pytest.fixture(scope="module")
def backbone(checkpoint: Path):
    return classifier_backbone(checkpoint, CPU)


def _image(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _objective(backbone, image: np.ndarray, layer: str) -> float:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return backbone.activations(x, [layer])[layer].pow(2).mean().item()


def test_dreaming_increases_the_layer_activation(backbone) -> None:
    image = _image()
    p = DreamParams(layers={"features.3": 1.0}, octaves=1, steps=10, bf16=False)
    out = dream(image, backbone, p)
    assert _objective(backbone, out, "features.3") > 1.5 * _objective(backbone, image, "features.3")


def test_activation_grows_step_by_step(backbone) -> None:
    image = _image()
    values = [_objective(backbone, image, "features.4")]
    for steps in (3, 6, 9):
        out = dream(image, backbone, DreamParams(layers={"4": 1.0}, octaves=1, steps=steps, bf16=False))
        values.append(_objective(backbone, out, "features.4"))
    assert values == sorted(values) and values[-1] > values[0]


def test_output_is_uint8_rgb_of_the_input_size(backbone) -> None:
    image = _image(97, 61)
    out = dream(image, backbone, DreamParams(layers={"features.3": 1.0}, octaves=3, octave_scale=1.4, steps=2))
    assert out.shape == (97, 61, 3) and out.dtype == np.uint8
    assert not np.array_equal(out, image)


def test_same_seed_same_result_other_seed_differs(backbone) -> None:
    image = _image()
    p = DreamParams(layers={"features.3": 1.0, "features.6": 0.5}, octaves=2, steps=4, jitter=4, seed=1)
    first, second = dream(image, backbone, p), dream(image, backbone, p)
    other = dream(image, backbone, DreamParams(**{**p.__dict__, "seed": 2}))
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_channels_smoothing_and_tiles_run(backbone) -> None:
    image = _image(96, 80)
    p = DreamParams(layers={"features.3": 1.0}, channels=(0, 3), octaves=2, steps=2, smoothing=1.0, tile_size=32)
    assert dream(image, backbone, p).shape == (96, 80, 3)


def test_weights_get_no_gradients(backbone) -> None:
    dream(_image(), backbone, DreamParams(layers={"features.3": 1.0}, octaves=1, steps=2))
    assert all(not p.requires_grad and p.grad is None for p in backbone.model.parameters())


def test_pyramid_sizes_for_odd_sizes() -> None:
    assert pyramid_sizes(97, 61, 4, 2.0) == [(12, 8), (24, 15), (49, 31), (97, 61)]
    assert pyramid_sizes(5, 3, 4, 2.0)[0] == (1, 1)
    assert pyramid_sizes(100, 100, 1, 1.4) == [(100, 100)]


def test_progress_is_monotone_and_cancellation_stops_early(backbone) -> None:
    seen = []
    p = DreamParams(layers={"features.3": 1.0}, octaves=2, steps=3)
    dream(_image(), backbone, p, progress=seen.append)
    fractions = [s.fraction for s in seen]
    assert len(seen) == 6 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [(s.octave, s.step) for s in seen][:4] == [(1, 1), (1, 2), (1, 3), (2, 1)]

    calls = []
    with pytest.raises(DreamCancelled):
        dream(_image(), backbone, p, progress=lambda s: calls.append(s) or len(calls) < 2)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (DreamParams(layers={"features.3": 1.0}, max_pixels=1000), "more than the limit 1000"),
        (DreamParams(layers={"features.3": 1.0}, octaves=10, steps=200), "octaves × steps = 2000"),
        (DreamParams(layers={"features.3": 1.0}, octave_scale=1.0), "octave_scale"),
        (DreamParams(layers={"features.3": 1.0}, lr=-1), "lr must be"),
        (DreamParams(layers={}), "no layer chosen"),
    ],
)
def test_limits_and_bad_params_are_refused(backbone, params: DreamParams, message: str) -> None:
    with pytest.raises(DreamError, match=message):
        dream(_image(), backbone, params)


def test_unknown_layer_lists_real_ones(backbone) -> None:
    with pytest.raises(BackboneError, match="has no layer 'conv9'"):
        dream(_image(), backbone, DreamParams(layers={"conv9": 1.0}))
    with pytest.raises(BackboneError, match="out of range"):
        dream(_image(), backbone, DreamParams(layers={"99": 1.0}))


@pytest.mark.parametrize(
    ("name", "layer"), [("vgg19", "features.26"), ("googlenet", "inception4c"), ("resnet50", "layer3")]
)
def test_torchvision_backbones_with_random_weights(name: str, layer: str) -> None:
    bb = torchvision_backbone(name, CPU, weights="random")
    out = dream(_image(48, 40), bb, DreamParams(layers={layer: 1.0}, octaves=1, steps=1))
    assert out.shape == (48, 40, 3)


def test_missing_imagenet_weights_offline_names_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BackboneError) as err:
        torchvision_backbone("vgg19", CPU, download=False)
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message
    assert "torchvision.models.vgg19(weights='DEFAULT')" in message


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run([sys.executable, "-m", "cnnpipe.cli", *args], capture_output=True, text=True, env=env)


def test_cli_dreams_a_file(tmp_path: Path, checkpoint: Path) -> None:
    Image.fromarray(_image(50, 70)).save(tmp_path / "in.jpg")
    result = _cli(
        "dream",
        str(tmp_path / "in.jpg"),
        str(tmp_path / "out.png"),
        "--backbone",
        "classifier",
        "--classifier",
        str(checkpoint),
        "--layer",
        "features.3:1",
        "--layer",
        "features.6:0.5",
        "--octaves",
        "2",
        "--steps",
        "2",
        "--jitter",
        "2",
    )
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (70, 50) and out.mode == "RGB"


def test_cli_bad_input_is_one_line(tmp_path: Path, checkpoint: Path) -> None:
    (tmp_path / "in.png").write_bytes(b"not an image")
    result = _cli(
        "dream",
        str(tmp_path / "in.png"),
        str(tmp_path / "out.png"),
        "--backbone",
        "classifier",
        "--classifier",
        str(checkpoint),
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: cannot read") and "Traceback" not in result.stderr
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("shape", [(1, 1), (8, 8), (1, 4000), (4000, 2)])
def test_images_too_small_or_thin_for_the_layer_are_refused_before_any_step(backbone, shape) -> None:
    steps = []
    params = DreamParams(layers={"features.8": 1.0}, octaves=3, steps=2)
    with pytest.raises(DreamError, match=r"needs at least \d+ px on the short side of every octave"):
        dream(_image(*shape), backbone, params, progress=steps.append)
    assert steps == []


def test_the_smallest_accepted_image_dreams(backbone) -> None:
    need, _ = backbone.probe(["features.8"])
    side = math.ceil(need * 1.4**2)  # the smallest octave of 3 at ×1.4 is just big enough
    out = dream(_image(side, side), backbone, DreamParams(layers={"features.8": 1.0}, octaves=3, steps=1))
    assert out.shape == (side, side, 3)


def test_tiles_leave_no_sliver_at_the_edge(backbone) -> None:
    """513 px with 512-px tiles used to leave a 1-px tile that no conv net can take."""
    assert tile_sides((513, 1025), 512) == (257, 342)
    out = dream(_image(66, 33), backbone, DreamParams(layers={"features.6": 1.0}, octaves=1, steps=1, tile_size=32))
    assert out.shape == (66, 33, 3)


def test_channels_beyond_the_layer_are_refused(backbone) -> None:
    with pytest.raises(DreamError, match=r"channels must be in 0\.\.\d+ for features\.3, got \[999\]"):
        dream(_image(), backbone, DreamParams(layers={"features.3": 1.0}, channels=(999,), octaves=1, steps=1))


def test_threads_dreaming_on_one_backbone_do_not_mix_activations(backbone) -> None:
    """A server runs requests in threads on one backbone; each dream must see only its own layers."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [("features.3", 0), ("features.6", 1), ("features.4", 2), ("features.8", 3)]

    def run(job: tuple[str, int]) -> np.ndarray:
        layer, seed = job
        return dream(_image(seed=seed), backbone, DreamParams(layers={layer: 1.0}, octaves=1, steps=3, bf16=False))

    alone = [run(job) for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(run, jobs * 3))
    for i, out in enumerate(together):
        assert np.array_equal(out, alone[i % len(jobs)])
