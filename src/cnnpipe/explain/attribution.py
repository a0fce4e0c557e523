"""Where a classifier's evidence lies: Grad-CAM, guided backpropagation, deconvnet, guided Grad-CAM.

* Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391): the layer's activations weighted by the
  spatial mean of the class score's gradient, ReLU, upsampled to the input. Computed by Captum's
  ``LayerGradCam`` (a well-kept implementation; nothing to gain writing it again).
* Guided backpropagation (Springenberg et al. 2015, arXiv:1412.6806) and the deconvnet
  (Zeiler & Fergus 2014, arXiv:1311.2901): the input gradient with the backward pass through
  each rectifier changed, guided: only positive gradients where the input was positive,
  deconvnet: only positive gradients, whatever the input. Written here, as backward hooks on
  the activation modules, because Captum's versions rewrite only ``nn.ReLU`` and the project's
  default classifier uses GELU: for GELU, guided keeps the positive part of the true local
  gradient (which is the ReLU rule when the activation is a ReLU), deconvnet the positive part
  of the incoming gradient.
* Guided Grad-CAM: guided backpropagation × the Grad-CAM map (class-discriminative and sharp).

Every function takes ``model`` mapping N×3×H×W RGB in [0, 1] to logits (wrap a net that expects
normalised input with :class:`Normalized`) and returns maps at the input's H×W.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from cnnpipe.explain.names import METHODS, Method

RECTIFIERS = (nn.ReLU, nn.GELU)


class Normalized(nn.Module):
    """``model((x - mean) / std)``: a net trained on normalised input, taking RGB in [0, 1]."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1))
        self.register_buffer("std", std.reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


@dataclass(frozen=True)
class Explanation:
    method: Method
    target: int  # the class explained
    layer: str  # Grad-CAM's layer ("" for the gradient methods)
    probabilities: torch.Tensor  # (classes,), softmax of the logits
    cam: torch.Tensor | None  # H×W in [0, 1] (Grad-CAM, guided Grad-CAM), else None
    gradient: torch.Tensor | None  # 3×H×W signed (guided backprop, deconvnet, guided Grad-CAM), else None


def spatial_layers(model: nn.Module, image: torch.Tensor) -> list[str]:
    """Modules whose output is an N×C×h×w map with h, w > 1, in forward order: the layers Grad-CAM can use."""
    seen: list[str] = []
    hooks = []
    for name, module in model.named_modules():
        if name:

            def hook(_m: nn.Module, _i: object, output: object, name: str = name) -> None:
                if isinstance(output, torch.Tensor) and output.dim() == 4 and min(output.shape[-2:]) > 1:
                    seen.append(name)

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(image)
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(seen))


NOT_FEATURES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Identity)


def default_layer(model: nn.Module, image: torch.Tensor) -> str:
    """The last module with a spatial output that computes features (pooling, dropout and identity
    layers don't): the usual Grad-CAM choice, the most semantic layer that still says where
    (VGG19: ``features.35``, ResNet-50: ``layer4``, the project's classifier: its last conv group)."""
    layers = [n for n in spatial_layers(model, image) if not isinstance(model.get_submodule(n), NOT_FEATURES)]
    if not layers:
        raise ValueError("the model has no layer with a spatial output for Grad-CAM")
    return layers[-1]


def _module(model: nn.Module, layer: str) -> nn.Module:
    try:
        return model.get_submodule(layer)
    except AttributeError:
        raise ValueError(f"no layer {layer!r}; layers with a spatial output: see `spatial_layers`") from None


def gradcam(model: nn.Module, image: torch.Tensor, target: int, layer: str) -> torch.Tensor:
    """Grad-CAM of ``target`` at ``layer``: 1×3×H×W in [0, 1] → H×W in [0, 1] (0 everywhere if no evidence)."""
    from captum.attr import LayerAttribution, LayerGradCam

    explainer = LayerGradCam(model, _module(model, layer))
    cam = explainer.attribute(image, target=target, relu_attributions=True, attr_dim_summation=True)
    cam = LayerAttribution.interpolate(cam.detach(), tuple(image.shape[-2:]), interpolate_mode="bilinear")
    cam = cam[0].mean(0).clamp(min=0)
    return cam / cam.max() if cam.max() > 0 else cam


def _guided_hook(rule: Literal["guided", "deconvnet"]):
    def hook(module: nn.Module, grad_input: tuple, grad_output: tuple) -> tuple:
        if rule == "deconvnet":
            return (grad_output[0].clamp(min=0),)
        return (grad_input[0].clamp(min=0),)

    return hook


@contextmanager
def _rectifier_rule(model: nn.Module, rule: Literal["guided", "deconvnet"]) -> Iterator[nn.Module]:
    """A copy of ``model`` whose rectifiers back-propagate by ``rule`` (in-place ones made out-of-place:
    backward hooks cannot see through an in-place op)."""
    twin = copy.deepcopy(model)
    hooks = []
    for module in twin.modules():
        if isinstance(module, RECTIFIERS):
            if isinstance(module, nn.ReLU):
                module.inplace = False
            hooks.append(module.register_full_backward_hook(_guided_hook(rule)))
    try:
        yield twin
    finally:
        for h in hooks:
            h.remove()


def rectified_gradient(
    model: nn.Module, image: torch.Tensor, target: int, rule: Literal["guided", "deconvnet"]
) -> torch.Tensor:
    """d logit[target] / d input with every rectifier's backward changed by ``rule``: 3×H×W."""
    with _rectifier_rule(model, rule) as twin:
        x = image.detach().clone().requires_grad_(True)
        logits = twin(x)
        (grad,) = torch.autograd.grad(logits[0, target], x)
    return grad[0]


def explain(
    model: nn.Module, image: torch.Tensor, method: Method, target: int | None = None, layer: str | None = None
) -> Explanation:
    """One explanation of ``image`` (1×3×H×W in [0, 1]); ``target`` defaults to the predicted class,
    ``layer`` (Grad-CAM) to :func:`default_layer`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    model = model.eval()
    with torch.no_grad():
        probabilities = model(image).softmax(1)[0]
    classes = probabilities.numel()
    if target is None:
        target = int(probabilities.argmax())
    if not 0 <= target < classes:
        raise ValueError(f"class must be in 0..{classes - 1}, got {target}")
    uses_cam = method in ("gradcam", "guided-gradcam")
    chosen = (layer or default_layer(model, image)) if uses_cam else ""
    cam = gradcam(model, image, target, chosen) if uses_cam else None
    gradient = None
    if method != "gradcam":
        gradient = rectified_gradient(model, image, target, "deconvnet" if method == "deconvnet" else "guided")
        if cam is not None:
            gradient = gradient * cam
    return Explanation(method, target, chosen, probabilities, cam, gradient)
