"""ONNX export with dynamic axes, ``onnx.checker`` and an ONNX Runtime vs PyTorch parity check."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from cnnpipe.atomic import atomic_write, write_json
from cnnpipe.errors import CnnpipeError
from cnnpipe.models.onnx_runtime import ort_session
from cnnpipe.params import ExportParams

SR_DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}
"""SR models take any batch and any LR size."""


def export(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    dynamic: dict[int, str],
    opset: int,
    metadata: dict[str, Any],
) -> None:
    """Export ``model`` (input "input", output "output") with the named dims dynamic.

    Uses torch's default (dynamo) exporter; ``metadata`` is stored as JSON strings in the
    model's ``metadata_props`` so a server can read class names, scale and scores from the file.
    """
    path = Path(path)
    model = model.eval().cpu()
    dims = {axis: torch.export.Dim(name, min=1 if name == "batch" else 8) for axis, name in dynamic.items()}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(
            model,
            (example,),
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({**dims},),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    assert program is not None  # the dynamo exporter always returns the program
    proto = program.model_proto
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    with atomic_write(path) as tmp:
        onnx.save_model(proto, tmp)
        onnx.checker.check_model(str(tmp), full_check=True)


def max_abs_diff(model: nn.Module, path: Path, inputs: list[torch.Tensor]) -> float:
    """Largest |ONNX Runtime − PyTorch| over the given inputs (float32, CPU)."""
    session = ort_session(path, threads=0)
    worst = 0.0
    model = model.eval().cpu()
    with torch.no_grad():
        for x in inputs:
            expected = model(x).numpy()
            got = session.run(None, {"input": x.numpy()})[0]
            if got.shape != expected.shape:
                raise AssertionError(f"{path}: ONNX output shape {got.shape} != PyTorch {expected.shape}")
            worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst


def export_checked(
    name: str,
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    dynamic: dict[int, str],
    settings: ExportParams,
    metadata: dict[str, Any],
    checks: list[torch.Tensor],
    report: Path,
) -> float:
    """:func:`export`, then the parity check; a model off by more than ``export.tolerance`` is
    deleted (no half-trusted file is left for serving to pick up) and the stage fails.

    Writes ``report`` (a DVC metric: the max |diff|, tolerance and opset) either way.
    """
    export(model, example, path, dynamic, settings.opset, metadata)
    diff = max_abs_diff(model, path, checks)
    write_json(report, {"max_abs_diff": {name: diff}, "tolerance": settings.tolerance, "opset": settings.opset})
    print(f"{name}: ONNX Runtime vs PyTorch max |diff| = {diff:.3g} (tolerance {settings.tolerance:g})")
    if diff > settings.tolerance:
        path.unlink(missing_ok=True)
        raise CnnpipeError(
            f"{name}: ONNX Runtime differs from PyTorch by {diff:.3g} > export.tolerance {settings.tolerance:g}"
        )
    return diff
