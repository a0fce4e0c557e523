"""ONNX Runtime sessions for the exported models: the export's parity check and the servers both open them here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch


def providers() -> list[str]:
    """CUDA when a GPU is actually present (asking for it otherwise logs errors), else CPU."""
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available and torch.cuda.is_available():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def ort_session(path: Path, threads: int = 0, any_size: bool = False) -> ort.InferenceSession:
    """An InferenceSession for ``path``; ``threads`` = 0 lets ONNX Runtime pick.

    ``any_size``: the model takes inputs of any height and width (super-resolution). ONNX
    Runtime's CPU memory arena keeps the largest block each input shape needed, so a server fed
    images of many sizes grows for minutes; without the arena it does not (benchmarks/soak.py).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = not any_size
    return ort.InferenceSession(str(path), sess_options=options, providers=providers())


def read_metadata(session: ort.InferenceSession) -> dict[str, Any]:
    """The export's metadata (class names, scale, scores), JSON values decoded."""
    raw = session.get_modelmeta().custom_metadata_map
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
