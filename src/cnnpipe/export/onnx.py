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


def to_onnx(
    model: nn.Module,
    example: torch.Tensor,
    dynamic: dict[int, str],
    opset: int,
    metadata: dict[str, Any],
) -> onnx.ModelProto:
    """``model`` as an ONNX model in memory (input "input", output "output"), the named dims dynamic.

    Uses torch's default (dynamo) exporter, which returns the model rather than writing it, so
    nothing reaches the disk until :func:`save_checked`; ``metadata`` is stored as JSON strings
    in ``metadata_props`` so a server can read class names, scale and scores from the file.
    """
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
    return proto


def save_checked(proto: onnx.ModelProto, path: Path) -> None:
    """Write ``proto`` to ``path`` as one self-contained file and run ``onnx.checker`` on what was written.

    No external data: the weights are in the file itself, so the rename that publishes it
    publishes all of it (our models are far below protobuf's 2 GB limit).
    """
    onnx.save_model(proto, path, save_as_external_data=False)
    onnx.checker.check_model(str(path), full_check=True)


def export(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    dynamic: dict[int, str],
    opset: int,
    metadata: dict[str, Any],
) -> None:
    """:func:`to_onnx`, written to ``path`` atomically and checked (benchmarks, tests)."""
    proto = to_onnx(model, example, dynamic, opset, metadata)
    with atomic_write(path) as tmp:
        save_checked(proto, tmp)


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
    """:func:`to_onnx`, then ``onnx.checker`` and the parity check on the written temp file; only a
    model that passes both is renamed to ``path``. One off by more than ``export.tolerance`` never
    reaches ``path``, and the model already there (made from an older checkpoint) is deleted too:
    no stale or half-trusted file is left for serving to pick up, and the stage fails.

    Writes ``report`` (a DVC metric: the max |diff|, tolerance and opset) either way.
    """
    proto = to_onnx(model, example, dynamic, settings.opset, metadata)
    with atomic_write(path) as tmp:
        save_checked(proto, tmp)
        diff = max_abs_diff(model, tmp, checks)
        write_json(report, {"max_abs_diff": {name: diff}, "tolerance": settings.tolerance, "opset": settings.opset})
        print(f"{name}: ONNX Runtime vs PyTorch max |diff| = {diff:.3g} (tolerance {settings.tolerance:g})")
        if diff > settings.tolerance:
            path.unlink(missing_ok=True)
            raise CnnpipeError(
                f"{name}: ONNX Runtime differs from PyTorch by {diff:.3g} > export.tolerance {settings.tolerance:g}"
            )
    return diff
