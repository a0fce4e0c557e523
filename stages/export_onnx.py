"""Stage export_onnx: the classifier as ONNX (dynamic batch), checked against PyTorch in ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cnnpipe import __version__, cifar10
from cnnpipe.color import to_float
from cnnpipe.errors import exit_on_user_error
from cnnpipe.export import export_checked
from cnnpipe.nets import load_classifier
from cnnpipe.params import load_params


@exit_on_user_error
def main() -> None:
    params = load_params()
    scores = json.loads(Path("metrics/classifier.json").read_text())
    gen = torch.Generator().manual_seed(0)
    classifier, config = load_classifier(Path("models/classifier.pt"))
    test = torch.from_numpy(cifar10.load(Path("data/cifar10"), "test").images[:64])
    export_checked(
        "classifier", classifier, torch.rand(2, 3, 32, 32, generator=gen), Path("models/classifier.onnx"),
        {0: "batch"}, params.export,
        {"task": "classification", "classes": config["classes"], "input": "N×3×32×32 RGB in [0, 1]",
         "output": "logits", "test_accuracy": scores["accuracy"], "cnnpipe_version": __version__},
        checks=[to_float(test), torch.rand(1, 3, 32, 32, generator=gen)], report=Path("metrics/export.json"),
    )  # fmt: skip


if __name__ == "__main__":
    main()
