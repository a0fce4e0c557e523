import math

import pytest
import torch

from cnnpipe.data.color import resize_bicubic, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from cnnpipe.evaluate.metrics import psnr, shave, ssim


def test_psnr_of_identical_images_is_infinite() -> None:
    x = torch.rand(1, 1, 16, 16)
    assert psnr(x, x.clone()) == math.inf


@pytest.mark.parametrize(("offset", "expected_db"), [(0.1, 20.0), (0.01, 40.0), (0.5, 6.0206)])
def test_psnr_of_a_known_mse(offset: float, expected_db: float) -> None:
    a = torch.full((1, 1, 8, 8), 0.25)
    assert psnr(a, a + offset) == pytest.approx(expected_db, abs=1e-3)


def test_psnr_respects_the_data_range() -> None:
    a = torch.zeros(4, 4)
    assert psnr(a, a + 25.5, data_range=255.0) == pytest.approx(20.0)


def test_ssim_of_identical_images_is_one() -> None:
    x = torch.rand(1, 1, 32, 40)
    assert ssim(x, x.clone()) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_two_flat_images_has_the_closed_form() -> None:
    # Both variances and the covariance are 0, so SSIM = (2ab + C1) / (a² + b² + C1).
    a, b, c1 = 0.2, 0.6, 0.01**2
    got = ssim(torch.full((20, 20), a, dtype=torch.float64), torch.full((20, 20), b, dtype=torch.float64))
    assert got == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)


def test_ssim_drops_with_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 48, 48, generator=g)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert 0.0 < ssim(x, noisy) < 0.9


def test_shave_removes_the_border() -> None:
    assert shave(torch.zeros(1, 1, 10, 12), 3).shape == (1, 1, 4, 6)
    assert shave(torch.zeros(1, 1, 10, 12), 0).shape == (1, 1, 10, 12)


def test_luma_uses_bt601_studio_swing() -> None:
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    y = rgb_to_y(rgb).flatten() * 255
    assert y.tolist() == pytest.approx([235.0, 16.0, 16 + 65.481], abs=1e-4)


def test_ycbcr_round_trip() -> None:
    x = torch.rand(2, 3, 7, 5)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5)


def test_bicubic_matches_pillow() -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    image = (rng.random((60, 90, 3)) * 255).astype(np.uint8)
    expected = np.asarray(Image.fromarray(image).resize((30, 20), Image.BICUBIC)).astype(np.float64)
    got = resize_bicubic(torch.from_numpy(image).permute(2, 0, 1)[None].double(), (20, 30))
    got = got.round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
    assert np.abs(got - expected).max() <= 1.0
