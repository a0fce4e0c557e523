"""Stage explain_gallery: look inside the trained classifier on a few CIFAR-10 test images.

Writes plots/explain_gallery.png (per image: Grad-CAM of the true and the predicted class, guided
backprop, guided Grad-CAM), plots/filters.png (the first layer's filters) and
plots/activations.png (the first image's activations at each conv group).
"""

from __future__ import annotations

import torch

from cnnpipe import paths
from cnnpipe.atomic import atomic_write
from cnnpipe.data import cifar10
from cnnpipe.data.color import to_float
from cnnpipe.errors import exit_on_user_error
from cnnpipe.explain.gallery import activations_picture, attribution_gallery, filters_picture
from cnnpipe.models.checkpoint import load_classifier
from cnnpipe.params import load_params


@exit_on_user_error
def main() -> None:
    g = load_params().explain_gallery
    model, config = load_classifier(paths.CLASSIFIER_CHECKPOINT)
    model = model.float().eval()  # on the CPU: a few images, and the gradients hooks want float32
    test = cifar10.load(paths.CIFAR10, "test")
    images = to_float(torch.from_numpy(test.images[: g.images]))
    labels = [int(label) for label in test.labels[: g.images]]
    pictures = {
        paths.EXPLAIN_GALLERY: attribution_gallery(model, images, labels, config["classes"]),
        paths.FILTERS: filters_picture(model),
        paths.ACTIVATIONS: activations_picture(model, images[0], g.layers),
    }
    for path, picture in pictures.items():
        with atomic_write(path) as tmp:
            picture.save(tmp, format="PNG")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
