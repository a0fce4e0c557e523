"""Classifier inference in PyTorch, optionally test-time augmented (used by training and evaluation)."""

from __future__ import annotations

import torch
from torch import nn

from cnnpipe.data.augment import translations
from cnnpipe.device import autocast


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    batch_size: int = 1000,
    bf16: bool = False,
    tta: int = 0,
) -> torch.Tensor:
    """Logits (float32, on CPU) for uint8 N×3×32×32 images.

    ``tta`` 1 averages with the mirror image; 2 also with the image shifted one pixel up-left and
    down-right (each mirrored too), weighted ½ untranslated, ¼ each shift, as airbench does.
    """
    model.eval()

    def mirrored(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (model(x).float() + model(x.flip(-1)).float())

    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().div_(255)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, bf16):
            if tta == 0:
                logits = model(x).float()
            elif tta == 1:
                logits = mirrored(x)
            else:
                shifted = [mirrored(t.contiguous(memory_format=torch.channels_last)) for t in translations(x, 1)]
                logits = 0.5 * mirrored(x) + 0.25 * (shifted[0] + shifted[1])
        out.append(logits.cpu())
    return torch.cat(out)
