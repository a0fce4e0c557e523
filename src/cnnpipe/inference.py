"""The inference core: ONNX Runtime sessions, shared by the pipeline, HTTP and gRPC serving."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import torch


def providers() -> list[str]:
    """CUDA when a GPU is actually present (asking for it otherwise logs errors), else CPU."""
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available and torch.cuda.is_available():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def ort_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """An InferenceSession for ``path``; ``threads`` = 0 lets ONNX Runtime pick."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=providers())
