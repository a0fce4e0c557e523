"""ONNX Runtime sessions for the exported models: the export's parity check and the servers both open them here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch

CPU_PROVIDERS = ["CPUExecutionProvider"]
CUDA_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def cuda_available() -> bool:
    """Whether ONNX Runtime can run on a GPU here: its CUDA provider is installed (onnxruntime-gpu)
    and a GPU is actually present (the provider is listed on machines without one)."""
    return "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available()


def providers() -> list[str]:
    """CUDA when a GPU is actually present (asking for it otherwise logs errors), else CPU."""
    return CUDA_PROVIDERS if cuda_available() else CPU_PROVIDERS


def ort_session(
    path: Path, threads: int = 0, any_size: bool = False, use: list[str] | None = None
) -> ort.InferenceSession:
    """An InferenceSession for ``path``; ``threads`` = 0 lets ONNX Runtime pick; ``use``: the
    execution providers (default :func:`providers`).

    ``any_size``: the model takes inputs of any height and width (super-resolution). ONNX
    Runtime's CPU memory arena keeps the largest block each input shape needed, so a server fed
    images of many sizes grows for minutes; without the arena it does not (benchmarks/soak.py).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = not any_size
    return ort.InferenceSession(str(path), sess_options=options, providers=use or providers())


def read_metadata(session: ort.InferenceSession) -> dict[str, Any]:
    """The export's metadata (class names, scale, scores), JSON values decoded."""
    return _decoded(session.get_modelmeta().custom_metadata_map)


def file_metadata(path: Path) -> tuple[dict[str, Any], list[int | str]]:
    """The export's metadata (as :func:`read_metadata`) and its input's shape (a name for a dynamic
    axis), read from the file: for a server that runs the model in another runtime (PyTorch)."""
    import onnx  # here: only servers on the PyTorch backend read the file this way (ONNX Runtime's session has it)

    model = onnx.load(str(path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape: list[int | str] = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
    return _decoded({p.key: p.value for p in model.metadata_props}), shape


def _decoded(raw: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
