"""Classifier evaluation: accuracy (plain and test-time augmented), per class, and the confusion table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cnnpipe.data import cifar10
from cnnpipe.models.predict import predict_logits


def classifier_report(
    model: nn.Module, test: cifar10.Split, classes: list[str], device: torch.device, tta: int = 0
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Accuracy metrics and the per-sample (actual, predicted) table DVC's confusion plot reads.

    ``accuracy`` is the plain network's, as exported and served; with ``tta`` (1 flip, 2 flip +
    translations) the test-time-augmented accuracy is reported beside it as ``accuracy_tta``.
    """
    images = torch.from_numpy(test.images)
    logits = predict_logits(model, images, device)
    predicted = logits.argmax(1).numpy()
    actual = test.labels
    per_class = {
        name: float((predicted[actual == k] == k).mean()) if (actual == k).any() else None
        for k, name in enumerate(classes)
    }
    metrics = {
        "accuracy": float((predicted == actual).mean()),
        "per_class_accuracy": per_class,
        "test_images": len(actual),
    }
    if tta:
        tta_logits = predict_logits(model, images, device, tta=tta)
        metrics["accuracy_tta"] = float((tta_logits.argmax(1).numpy() == actual).mean())
    names = np.asarray(classes)
    table = pd.DataFrame({"actual": names[actual], "predicted": names[predicted]})
    return metrics, table
