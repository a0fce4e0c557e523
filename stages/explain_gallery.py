"""Stage explain_gallery: look inside the trained classifier on a few CIFAR-10 test images.

Writes plots/explain_gallery.png (per image: Grad-CAM of the true and the predicted class, guided
backprop, guided Grad-CAM), plots/filters.png (the first layer's filters),
plots/activations.png (the first image's activations at each conv group) and
plots/class_maximization.png (one image optimised to be each class), with
metrics/class_maximization.json: how surely each such image is its class, as optimised and at worst
under a ±4 px shift, a flip and a 0.9-1.1 rescale (readable images hold up; adversarial noise
does not).
"""

from __future__ import annotations

import torch

from cnnpipe import paths
from cnnpipe.atomic import atomic_write, write_json
from cnnpipe.data import cifar10
from cnnpipe.data.color import to_float
from cnnpipe.errors import exit_on_user_error
from cnnpipe.explain.gallery import (
    activations_picture,
    attribution_gallery,
    class_maximization_picture,
    filters_picture,
)
from cnnpipe.explain.maximize import MaximizeParams, Objective, maximize, robustness
from cnnpipe.models.checkpoint import load_classifier
from cnnpipe.params import load_params
from cnnpipe.progress import progress

ROBUST = 0.9
"""An optimised image counts as robustly its class when p ≥ this under every perturbation tried."""


@exit_on_user_error
def main() -> None:
    g = load_params().explain_gallery
    model, config = load_classifier(paths.CLASSIFIER_CHECKPOINT)
    model = model.float().eval()  # on the CPU: a few images, and the gradients hooks want float32
    test = cifar10.load(paths.CIFAR10, "test")
    images = to_float(torch.from_numpy(test.images[: g.images]))
    labels = [int(label) for label in test.labels[: g.images]]
    classes = list(config["classes"])
    targets = tuple(range(len(classes)))
    with progress(total=g.class_steps, desc="class maximisation", unit="step") as bar:
        optimised = maximize(
            model, Objective(targets), images.shape[-1], MaximizeParams(steps=g.class_steps), lambda _p: bar.update(1)
        )
    checks = robustness(model, optimised, targets)
    pictures = {
        paths.EXPLAIN_GALLERY: attribution_gallery(model, images, labels, classes),
        paths.FILTERS: filters_picture(model),
        paths.ACTIVATIONS: activations_picture(model, images[0], g.layers),
        paths.CLASS_MAXIMIZATION: class_maximization_picture(optimised, classes, checks),
    }
    for path, picture in pictures.items():
        with atomic_write(path) as tmp:
            picture.save(tmp, format="PNG")
        print(f"wrote {path}")
    write_json(
        paths.CLASS_MAXIMIZATION_METRICS,
        {
            "robust_classes": sum(c.worst >= ROBUST for c in checks),
            "worst_p_min": round(min(c.worst for c in checks), 4),
            "per_class": {
                name: {"p": round(c.clean, 4), "worst_p": round(c.worst, 4), "mean_p": round(c.mean, 4)}
                for name, c in zip(classes, checks, strict=True)
            },
        },
    )
    print(f"wrote {paths.CLASS_MAXIMIZATION_METRICS}")


if __name__ == "__main__":
    main()
