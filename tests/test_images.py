"""The image helpers the CLI, the stages and the servers share."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnpipe.data.images import center_square, encode_png, encode_png_stored


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 7, 3), (256, 256, 3), (41, 300, 3)])
def test_stored_png_decodes_to_the_same_pixels(shape: tuple[int, int, int]) -> None:
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png_stored(rgb)
    Image.open(io.BytesIO(data)).verify()  # chunk CRCs and structure
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.mode == "RGB" and image.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(image), rgb)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(rgb)))), rgb)  # as Pillow's


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)])
def test_stored_png_takes_only_uint8_rgb(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="expected uint8 H×W×3"):
        encode_png_stored(bad)


@pytest.mark.parametrize("shape", [(32, 32, 3), (32, 45, 3), (50, 32, 3), (200, 120, 3)])
def test_center_square_shortcut_agrees_with_the_resize(shape: tuple[int, int, int]) -> None:
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    side = min(shape[:2])
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    square = torch.from_numpy(rgb[top : top + side, left : left + side].copy()).permute(2, 0, 1)[None].float()
    resized = F.interpolate(square, size=(32, 32), mode="bilinear", antialias=side > 32, align_corners=False)
    out = center_square(rgb, 32)
    assert out.shape == (1, 3, 32, 32)
    torch.testing.assert_close(out, resized, atol=1e-4, rtol=0)  # same-size bilinear is the identity
