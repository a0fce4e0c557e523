"""Stage dream_gallery: DeepDream a few fixed images at several layers of the trained classifier.

Writes plots/dream_gallery.png: one row per image, the original then one column per layer.
"""

from __future__ import annotations

from cnnpipe import paths
from cnnpipe.atomic import atomic_write
from cnnpipe.data.images import bsds_split_dir, center_square_rgb, list_images, read_rgb
from cnnpipe.device import pick_device
from cnnpipe.dream.backbones import classifier_backbone
from cnnpipe.dream.gallery import dream_gallery
from cnnpipe.dream.presets import DreamRequest, dream_params
from cnnpipe.errors import exit_on_user_error
from cnnpipe.params import load_params


@exit_on_user_error
def main() -> None:
    params = load_params()
    g = params.dream_gallery
    dream = dream_params(DreamRequest.of(g), "classifier")
    backbone = classifier_backbone(paths.CLASSIFIER_CHECKPOINT, pick_device(params.device))
    images = list_images(bsds_split_dir(paths.BSDS300, "test"))[: g.images]
    originals = [center_square_rgb(read_rgb(p), g.size) for p in images]
    grid = dream_gallery(originals, backbone, dream)
    with atomic_write(paths.DREAM_GALLERY) as tmp:
        grid.save(tmp, format="PNG")
    print(f"wrote {paths.DREAM_GALLERY} ({len(originals) * len(g.layers)} dreams)")


if __name__ == "__main__":
    main()
