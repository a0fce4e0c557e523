"""Stage export_onnx: ONNX models with dynamic axes, checked against PyTorch in ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cnnpipe import __version__, cifar10
from cnnpipe.color import hwc_to_nchw, rgb_to_y, to_float
from cnnpipe.errors import CnnpipeError, exit_on_user_error
from cnnpipe.evaluate import write_json
from cnnpipe.export import export, max_abs_diff
from cnnpipe.images import bsds_split_dir, list_images, read_rgb
from cnnpipe.nets import load_classifier, load_sr
from cnnpipe.params import load_params


@exit_on_user_error
def main() -> None:
    params = load_params()
    opset, tolerance = params.export.opset, params.export.tolerance
    scores = {name: json.loads(Path(f"metrics/{name}.json").read_text()) for name in ("classifier", "sr")}
    gen = torch.Generator().manual_seed(0)
    diffs = {}

    classifier, config = load_classifier(Path("models/classifier.pt"))
    path = Path("models/classifier.onnx")
    export(
        classifier, torch.rand(2, 3, 32, 32, generator=gen), path, {0: "batch"}, opset,
        {"task": "classification", "classes": config["classes"], "input": "N×3×32×32 RGB in [0, 1]",
         "output": "logits", "test_accuracy": scores["classifier"]["accuracy"], "cnnpipe_version": __version__},
    )  # fmt: skip
    test = torch.from_numpy(cifar10.load(Path("data/cifar10"), "test").images[:64])
    diffs["classifier"] = max_abs_diff(classifier, path, [to_float(test), torch.rand(1, 3, 32, 32, generator=gen)])

    sr_model, sr_config = load_sr(Path(f"models/sr_x{params.sr.scale}.pt"))
    path = Path(f"models/sr_x{params.sr.scale}.onnx")
    export(
        sr_model, torch.rand(2, 1, 24, 24, generator=gen), path, {0: "batch", 2: "height", 3: "width"}, opset,
        {"task": "super_resolution", "scale": sr_config["scale"], "input": "N×1×H×W luma Y (BT.601) in [0, 1]",
         "output": "N×1×(H·scale)×(W·scale) luma Y", "sr_scores": scores["sr"], "cnnpipe_version": __version__},
    )  # fmt: skip
    image = read_rgb(list_images(bsds_split_dir(Path("data/bsds300"), "test"))[0])
    diffs[f"sr_x{params.sr.scale}"] = max_abs_diff(
        sr_model, path, [rgb_to_y(to_float(hwc_to_nchw(image))), torch.rand(3, 1, 17, 29, generator=gen)]
    )

    write_json(Path("metrics/export.json"), {"max_abs_diff": diffs, "tolerance": tolerance, "opset": opset})
    for name, diff in diffs.items():
        print(f"{name}: ONNX Runtime vs PyTorch max |diff| = {diff:.3g} (tolerance {tolerance:g})")
        if diff > tolerance:
            for written in Path("models").glob("*.onnx"):
                written.unlink()  # no half-trusted model is left for serving to pick up
            raise CnnpipeError(
                f"{name}: ONNX Runtime differs from PyTorch by {diff:.3g} > export.tolerance {tolerance:g}"
            )


if __name__ == "__main__":
    main()
