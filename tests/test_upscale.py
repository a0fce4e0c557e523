"""The library's `upscale`: any layout, tiled without seams, alpha and greyscale preserved."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnpipe.evaluate.sr import sr_scores
from cnnpipe.models.sr import ESPCN, ResSR
from cnnpipe.models.upscale import model_upscale, self_ensemble, torch_luma, upscale, upscale_luma_tiled


@pytest.fixture(scope="module")
def luma():
    torch.manual_seed(0)
    net = ESPCN(scale=3, channels=16).eval()
    with torch.no_grad():  # make the untrained net non-trivial so seams would show
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


@pytest.fixture(scope="module")
def deep():
    """The default SR architecture (receptive-field radius 11 here), made non-trivial."""
    torch.manual_seed(0)
    net = ResSR(scale=2, channels=8, blocks=4).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def _image(h: int, w: int, c: int | None = 3) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)


def test_tiled_luma_equals_untiled(luma) -> None:
    y = np.random.default_rng(0).random((70, 53), dtype=np.float32)
    whole = torch_luma(luma)(y[None, None])[0, 0]
    tiled = upscale_luma_tiled(y, 3, torch_luma(luma), tile=16, overlap=8)
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).max() < 1e-5


def test_tiled_rgb_output_matches_untiled_within_one_level(luma) -> None:
    image = _image(61, 47)
    untiled = upscale(image, 3, torch_luma(luma), tile=1024)
    tiled = upscale(image, 3, torch_luma(luma), tile=20, overlap=8)
    assert untiled.shape == (183, 141, 3)
    assert np.abs(tiled.astype(int) - untiled.astype(int)).max() <= 1


def test_too_little_overlap_shows_seams(luma) -> None:
    y = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    whole = torch_luma(luma)(y[None, None])[0, 0]
    seamy = upscale_luma_tiled(y, 3, torch_luma(luma), tile=16, overlap=0)
    assert np.abs(seamy - whole).max() > 1e-3  # the overlap is what makes tiling exact


def test_rgb_upscale_agrees_with_the_evaluation_path(luma) -> None:
    image = _image(30, 40)
    ours = upscale(image, 3, torch_luma(luma))
    reference = model_upscale(luma, torch.from_numpy(image).permute(2, 0, 1)[None], 3)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1


def test_rgba_keeps_alpha_and_grey_stays_grey(luma) -> None:
    rgba = _image(12, 9, 4)
    rgba[..., 3] = 200
    out = upscale(rgba, 3, torch_luma(luma))
    assert out.shape == (36, 27, 4) and (out[..., 3] == 200).all()

    grey = _image(12, 9, None)
    out = upscale(grey, 3, torch_luma(luma))
    assert out.shape == (36, 27) and out.dtype == np.uint8


def test_a_one_pixel_image(luma) -> None:
    assert upscale(_image(1, 1), 3, torch_luma(luma)).shape == (3, 3, 3)


def test_bad_layout_is_refused(luma) -> None:
    with pytest.raises(ValueError, match="expected uint8"):
        upscale(np.zeros((4, 4, 2), np.uint8), 3, torch_luma(luma))


def test_deep_net_tiled_with_its_context_equals_untiled(deep) -> None:
    image = _image(75, 58)
    untiled = upscale(image, 2, torch_luma(deep), tile=1024)
    tiled = upscale(image, 2, torch_luma(deep), tile=24, overlap=deep.context)
    assert np.abs(tiled.astype(int) - untiled.astype(int)).max() <= 1
    y = np.random.default_rng(0).random((75, 58), dtype=np.float32)
    whole = torch_luma(deep)(y[None, None])[0, 0]
    assert np.abs(upscale_luma_tiled(y, 2, torch_luma(deep), tile=24, overlap=deep.context) - whole).max() < 1e-5
    # one pixel less context than the receptive field and the tile borders show
    assert np.abs(upscale_luma_tiled(y, 2, torch_luma(deep), tile=24, overlap=deep.context - 1) - whole).max() > 1e-6


def test_the_evaluation_path_tiles_with_the_models_context(deep) -> None:
    lr = torch.from_numpy(_image(50, 61)).permute(2, 0, 1)[None]
    tiled, whole = model_upscale(deep, lr, 2, tile=16), model_upscale(deep, lr, 2)
    assert (tiled.int() - whole.int()).abs().max() <= 1


def test_self_ensemble_averages_the_eight_views_mapped_back(deep) -> None:
    y = np.random.default_rng(2).random((1, 1, 19, 27), dtype=np.float32)
    nearest = lambda v: np.repeat(np.repeat(v, 2, axis=2), 2, axis=3)  # noqa: E731  # commutes with flips/rotations
    np.testing.assert_allclose(self_ensemble(nearest)(y), nearest(y), atol=1e-6)  # each view maps back exactly
    net = torch_luma(deep)
    views = []
    for turns in range(4):
        for flip in (False, True):
            view = np.rot90(y, turns, axes=(2, 3))
            view = np.ascontiguousarray(view[..., ::-1] if flip else view)
            out = net(view)
            views.append(np.rot90(out[..., ::-1] if flip else out, -turns, axes=(2, 3)))
    ensembled = self_ensemble(net)(y)
    assert ensembled.shape == (1, 1, 38, 54)
    np.testing.assert_allclose(ensembled, np.mean(views, axis=0), atol=1e-6)
    assert np.abs(ensembled - net(y)).max() > 1e-3  # the net is not equivariant: the views differ


def test_self_ensemble_tiles_without_seams(deep) -> None:
    y = np.random.default_rng(3).random((41, 37), dtype=np.float32)
    ensembled = self_ensemble(torch_luma(deep))
    whole = upscale_luma_tiled(y, 2, ensembled, tile=1 << 16, overlap=deep.context)
    tiled = upscale_luma_tiled(y, 2, ensembled, tile=16, overlap=deep.context)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_scores_take_the_ensemble_in_the_same_pass(deep) -> None:
    images = [_image(23, 31), _image(18, 20)]
    single = sr_scores(deep, images, 2, "single")
    both = sr_scores(deep, images, 2, "both", ensemble=True)
    assert "psnr_model_x8" not in single and both.keys() - single.keys() == {"psnr_model_x8", "ssim_model_x8"}
    assert {k: both[k] for k in single} == single  # the single pass and bicubic are unchanged
    assert both["psnr_model_x8"] != both["psnr_model"]  # the net is not equivariant
