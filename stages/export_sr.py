"""Stage export_sr@<scale>: the ×scale SR net as ONNX (dynamic batch, height, width), checked
against PyTorch in ONNX Runtime on a real test image and an odd-sized random one; its sha256 is
recorded beside it and its checkpoint's in its metadata (:mod:`cnnpipe.models.integrity`).

python -m stages.export_sr SCALE
"""

from __future__ import annotations

import dataclasses
import json
import sys

import torch

from cnnpipe import __version__, paths
from cnnpipe.data.color import hwc_to_nchw, rgb_to_y, to_float
from cnnpipe.data.images import bsds_split_dir, list_images, read_rgb
from cnnpipe.errors import exit_on_user_error
from cnnpipe.export.onnx import SR_DYNAMIC_AXES, export_checked
from cnnpipe.models import integrity
from cnnpipe.models.checkpoint import load_sr
from cnnpipe.params import load_params, scale_argument
from cnnpipe.provenance import provenance


@exit_on_user_error
def main(argv: list[str]) -> None:
    params = load_params()
    scale = scale_argument(argv, params, "export_sr")
    scores = json.loads(paths.sr_metrics(scale).read_text())
    gen = torch.Generator().manual_seed(0)
    model, config = load_sr(paths.sr_checkpoint(scale))
    image = read_rgb(list_images(bsds_split_dir(paths.BSDS300, "test"))[0])
    metadata = {
        integrity.TASK: integrity.SUPER_RESOLUTION,
        "scale": scale,
        "context": model.context,
        "arch": config["arch"],
        integrity.CHECKPOINT_SHA256: integrity.sha256(paths.sr_checkpoint(scale)),  # the torch backend checks it
        "input": "N×1×H×W luma Y (BT.601) in [0, 1]",
        "output": "N×1×(H·scale)×(W·scale) luma Y",
        "sr_scores": scores,
        "cnnpipe_version": __version__,
        "provenance": provenance(
            {
                "device": params.device,
                "sr": {k: v for k, v in dataclasses.asdict(params.sr).items() if k != "scales"},
                "data": {"bsds300": dataclasses.asdict(params.data.bsds300)},
            },
            scores,
        ),
    }
    export_checked(
        f"sr_x{scale}",
        model,
        torch.rand(2, 1, 24, 24, generator=gen),
        paths.sr_onnx(scale),
        SR_DYNAMIC_AXES,
        params.export,
        metadata,
        checks=[rgb_to_y(to_float(hwc_to_nchw(image))), torch.rand(3, 1, 17, 29, generator=gen)],
        report=paths.sr_export_metrics(scale),
    )
    integrity.record_sha256(paths.sr_onnx(scale))


if __name__ == "__main__":
    main(sys.argv[1:])
