"""Stage export_onnx: the classifier as ONNX (dynamic batch), checked against PyTorch in ONNX Runtime,
with its sha256 recorded beside it and its checkpoint's in its metadata (:mod:`cnnpipe.models.integrity`)."""

from __future__ import annotations

import dataclasses
import json

import torch

from cnnpipe import __version__, paths
from cnnpipe.data import cifar10
from cnnpipe.data.color import to_float
from cnnpipe.errors import exit_on_user_error
from cnnpipe.export.onnx import export_checked
from cnnpipe.models import integrity
from cnnpipe.models.checkpoint import load_classifier
from cnnpipe.params import load_params
from cnnpipe.provenance import provenance


@exit_on_user_error
def main() -> None:
    params = load_params()
    scores = json.loads(paths.CLASSIFIER_METRICS.read_text())
    gen = torch.Generator().manual_seed(0)
    classifier, config = load_classifier(paths.CLASSIFIER_CHECKPOINT)
    test = torch.from_numpy(cifar10.load(paths.CIFAR10, "test").images[:64])
    metadata = {
        integrity.TASK: integrity.CLASSIFICATION,
        "classes": config["classes"],
        "input": "N×3×32×32 RGB in [0, 1]",
        "output": "logits",
        "test_accuracy": scores["accuracy"],
        integrity.CHECKPOINT_SHA256: integrity.sha256(paths.CLASSIFIER_CHECKPOINT),
        "cnnpipe_version": __version__,
        "provenance": provenance(
            {
                "device": params.device,
                "classifier": dataclasses.asdict(params.classifier),
                "data": {"cifar10": dataclasses.asdict(params.data.cifar10)},
            },
            scores,
        ),
    }
    export_checked(
        "classifier",
        classifier,
        torch.rand(2, 3, 32, 32, generator=gen),
        paths.CLASSIFIER_ONNX,
        {0: "batch"},
        params.export,
        metadata,
        checks=[to_float(test), torch.rand(1, 3, 32, 32, generator=gen)],
        report=paths.CLASSIFIER_EXPORT_METRICS,
    )
    integrity.record_sha256(paths.CLASSIFIER_ONNX)


if __name__ == "__main__":
    main()
