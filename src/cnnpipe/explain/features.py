"""What a network's layers hold: its first convolution's filters, and one image's activations at a layer."""

from __future__ import annotations

import torch
from torch import nn


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first ``nn.Conv2d`` in forward-definition order that reads RGB."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return name, module
    raise ValueError("the model has no convolution reading 3 channels")


def activations(model: nn.Module, image: torch.Tensor, layer: str) -> torch.Tensor:
    """The output of ``layer`` for ``image`` (1×3×H×W in [0, 1]): 1×C×h×w."""
    try:
        module = model.get_submodule(layer)
    except AttributeError:
        raise ValueError(f"no layer {layer!r}") from None
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, output: captured.append(output.detach()))
    try:
        with torch.no_grad():
            model.eval()(image)
    finally:
        handle.remove()
    out = captured[0]
    if out.dim() != 4:
        raise ValueError(f"layer {layer!r} gives a {out.dim()}-D output, not a feature map")
    return out
