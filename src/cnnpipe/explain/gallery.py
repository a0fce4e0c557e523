"""The look-inside gallery of the trained classifier: per test image, Grad-CAM of the true and of the
predicted class, guided backpropagation and guided Grad-CAM; the first layer's filters; one image's
activation maps at each of the classifier's main layers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from cnnpipe.explain.attribution import default_layer, explain
from cnnpipe.explain.features import activations, first_conv
from cnnpipe.explain.maximize import Robustness
from cnnpipe.explain.render import (
    activation_grid,
    filter_grid,
    gradient_image,
    heatmap_overlay,
    rgb_picture,
    upscale_nearest,
)
from cnnpipe.progress import progress

PAD, HEADER, CELL = 4, 28, 128
COLUMNS = ("image", "Grad-CAM: true", "Grad-CAM: predicted", "guided backprop", "guided Grad-CAM")


def _titled(panels: Sequence[tuple[str, np.ndarray]]) -> Image.Image:
    """Pictures side by side, each under its title (ASCII: Pillow's default font lacks ×, →, …)."""
    width = sum(p.shape[1] for _, p in panels) + PAD * (len(panels) + 1)
    height = max(p.shape[0] for _, p in panels) + HEADER + PAD
    sheet = Image.new("RGB", (width, height), "white")
    draw, x = ImageDraw.Draw(sheet), PAD
    for title, picture in panels:
        draw.text((x, 4), title, fill="black")
        sheet.paste(Image.fromarray(picture), (x, HEADER))
        x += picture.shape[1] + PAD
    return sheet


def _stack(rows: Sequence[Image.Image]) -> Image.Image:
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    return sheet


def attribution_gallery(
    model: nn.Module, images: torch.Tensor, labels: Sequence[int], classes: Sequence[str]
) -> Image.Image:
    """One row per image (N×3×32×32 in [0, 1]): the image, Grad-CAM of its true and of the predicted
    class, guided backprop and guided Grad-CAM of the predicted class."""
    rows = []
    layer = default_layer(model, images[:1])
    for image, label in progress(list(zip(images, labels, strict=True)), desc="explain gallery"):
        x = image[None]
        predicted = explain(model, x, "guided-gradcam", layer=layer)
        true = explain(model, x, "gradcam", target=int(label), layer=layer) if predicted.target != label else predicted
        guided = explain(model, x, "guided-backprop", target=predicted.target)
        rgb = upscale_nearest(rgb_picture(image), CELL // image.shape[-1])
        assert true.cam is not None and predicted.cam is not None
        assert guided.gradient is not None and predicted.gradient is not None
        p = float(predicted.probabilities[predicted.target])
        rows.append(
            _titled(
                [
                    (f"true: {classes[label]}", rgb),
                    ("Grad-CAM (true)", heatmap_overlay(rgb, true.cam)),
                    (f"Grad-CAM ({classes[predicted.target]}, {p:.2f})", heatmap_overlay(rgb, predicted.cam)),
                    ("guided backprop", upscale_nearest(gradient_image(guided.gradient), CELL // image.shape[-1])),
                    ("guided Grad-CAM", upscale_nearest(gradient_image(predicted.gradient), CELL // image.shape[-1])),
                ]
            )
        )
    return _stack(rows)


def filters_picture(model: nn.Module) -> Image.Image:
    name, conv = first_conv(model)
    return _titled(
        [
            (
                f"{name}: {conv.out_channels} filters, {conv.kernel_size[0]}x{conv.kernel_size[1]}",
                filter_grid(conv.weight),
            )
        ]
    )


def activations_picture(model: nn.Module, image: torch.Tensor, layers: Sequence[str]) -> Image.Image:
    """One image's activations at each layer (first 32 channels each), one titled panel per layer."""
    panels = []
    for layer in layers:
        maps = activations(model, image[None], layer)
        title = f"{layer}: {maps.shape[1]} maps of {maps.shape[2]}x{maps.shape[3]}"
        panels.append((title, activation_grid(maps, 32, cell=48)))
    rgb = upscale_nearest(rgb_picture(image), 4)
    return _titled([("image", rgb), *panels])


def class_maximization_picture(
    images: torch.Tensor, classes: Sequence[str], checks: Sequence[Robustness]
) -> Image.Image:
    """One optimised image per class (N×3×S×S in [0, 1]), titled with its class, its probability and
    the worst probability under the robustness check."""
    factor = max(1, CELL // images.shape[-1])
    return _titled(
        [
            (f"{name} {check.clean:.2f}/{check.worst:.2f}", upscale_nearest(rgb_picture(image), factor))
            for image, name, check in zip(images, classes, checks, strict=True)
        ]
    )
