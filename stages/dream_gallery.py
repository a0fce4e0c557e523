"""Stage dream_gallery: DeepDream a few fixed images at several layers of the trained classifier.

Writes plots/dream_gallery.png: one row per image, the original then one column per layer.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from cnnpipe.backbones import classifier_backbone
from cnnpipe.device import pick_device
from cnnpipe.dream import DreamParams, dream
from cnnpipe.errors import exit_on_user_error
from cnnpipe.images import bsds_split_dir, center_square, list_images, read_rgb
from cnnpipe.params import load_params
from cnnpipe.progress import progress


@exit_on_user_error
def main() -> None:
    params = load_params()
    g = params.dream_gallery
    backbone = classifier_backbone(Path("models/classifier.pt"), pick_device(params.device))
    paths = list_images(bsds_split_dir(Path("data/bsds300"), "test"))[: g.images]
    originals = [
        center_square(read_rgb(p), g.size).round().clamp(0, 255).byte()[0].permute(1, 2, 0).numpy() for p in paths
    ]
    pad, header = 4, 16
    grid = Image.new(
        "RGB", (pad + (1 + len(g.layers)) * (g.size + pad), header + len(originals) * (g.size + pad)), "white"
    )
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(["original", *g.layers]):
        draw.text((pad + c * (g.size + pad), 2), title, fill="black")
    jobs = [(r, c, layer) for r in range(len(originals)) for c, layer in enumerate(g.layers, start=1)]
    for r, original in enumerate(originals):
        grid.paste(Image.fromarray(original), (pad, header + r * (g.size + pad)))
    for r, c, layer in progress(jobs, desc="dream gallery"):
        p = DreamParams(
            layers={layer: 1.0}, octaves=g.octaves, octave_scale=g.octave_scale, steps=g.steps,
            lr=g.lr, jitter=g.jitter, seed=g.seed,
        )  # fmt: skip
        out = dream(originals[r], backbone, p)
        grid.paste(Image.fromarray(out), (pad + c * (g.size + pad), header + r * (g.size + pad)))
    Path("plots").mkdir(exist_ok=True)
    grid.save("plots/dream_gallery.png")
    print(f"wrote plots/dream_gallery.png ({len(jobs)} dreams)")


if __name__ == "__main__":
    main()
