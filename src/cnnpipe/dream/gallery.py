"""The DeepDream gallery: one row per image, the original then one dream per layer, titled."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from cnnpipe.dream.backbones import Backbone
from cnnpipe.dream.engine import DreamParams, dream, validate
from cnnpipe.progress import progress

PAD, HEADER = 4, 16


def dream_gallery(originals: Sequence[np.ndarray], backbone: Backbone, params: DreamParams) -> Image.Image:
    """Dream each uint8 H×W×3 image (all the same size) at each of ``params.layers`` separately.

    Every layer is checked before the first dream, so a bad layer fails at once.
    """
    layers = list(params.layers)
    height, width = originals[0].shape[:2]
    for layer in layers:
        validate(dataclasses.replace(params, layers={layer: 1.0}), backbone, height, width)
    grid = Image.new(
        "RGB", (PAD + (1 + len(layers)) * (width + PAD), HEADER + len(originals) * (height + PAD)), "white"
    )
    draw = ImageDraw.Draw(grid)
    for column, title in enumerate(["original", *layers]):
        draw.text((PAD + column * (width + PAD), 2), title, fill="black")
    for row, original in enumerate(originals):
        grid.paste(Image.fromarray(original), (PAD, HEADER + row * (height + PAD)))
    jobs = [(row, column, layer) for row in range(len(originals)) for column, layer in enumerate(layers, start=1)]
    for row, column, layer in progress(jobs, desc="dream gallery"):
        out = dream(originals[row], backbone, dataclasses.replace(params, layers={layer: 1.0}))
        grid.paste(Image.fromarray(out), (PAD + column * (width + PAD), HEADER + row * (height + PAD)))
    return grid
