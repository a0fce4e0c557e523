"""Which runtime runs the served models: ONNX Runtime on the exported ``.onnx`` files, or PyTorch on
the checkpoints they were exported from (``models/classifier.pt``, ``models/sr_x*.pt``).

Either backend hands the inference core a :class:`Loaded` model, a function from a float32
N×C×H×W array to the model's float32 output, so preprocessing, batching, tiling and limits exist
once, in :mod:`cnnpipe.serve.core`, whichever runtime computes. The setting is ``backend: auto |
onnxruntime | torch`` and ``device: auto | cpu | cuda`` (``CNNPIPE_BACKEND`` / ``CNNPIPE_DEVICE``, or
``cnnpipe serve-grpc --backend/--device``), resolved once by :func:`resolve` before a server does
anything else, so a bad value or a missing GPU is one line at the start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from cnnpipe.device import autocast, pick_device
from cnnpipe.errors import ParamError
from cnnpipe.models import integrity
from cnnpipe.models.checkpoint import load_classifier, load_sr
from cnnpipe.models.onnx_runtime import (
    CPU_PROVIDERS,
    CUDA_PROVIDERS,
    cuda_available,
    file_metadata,
    ort_session,
    read_metadata,
)

BACKENDS = ("auto", "onnxruntime", "torch")
DEVICES = ("auto", "cpu", "cuda")
BF16_TASKS = {integrity.CLASSIFICATION}
"""Where the torch backend autocasts to bf16 on CUDA. Not super-resolution: bf16 keeps 8 bits of
mantissa, about the 1/255 step of the 8-bit output, so it would change output pixels."""

Model = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Runtime:
    """A resolved setting: ``backend`` is onnxruntime or torch, ``device`` (where it runs) cpu or cuda."""

    backend: str
    device: str
    torch_device: str = "cpu"
    """Where the PyTorch work beside the models runs (DeepDream, style transfer): the GPU wherever
    one is and the device setting is not cpu, even when ONNX Runtime serves the models on the CPU."""


@dataclass(frozen=True)
class Loaded:
    """A model ready to run, and what /metadata says about it."""

    run: Model
    weights: Path
    """The file the backend runs: the ONNX export or the checkpoint it was exported from."""
    device: str
    metadata: dict[str, Any]
    """The ONNX export's metadata (class names, scale, provenance), whichever backend runs it."""
    input_shape: list[int | str]
    """The export's input shape; a dynamic axis by its name."""


def resolve(backend: str = "auto", device: str = "auto") -> Runtime:
    """The runtime a setting means here, or a :class:`ParamError` saying why it cannot run.

    ``auto`` is ONNX Runtime's CUDA provider where it is available, else PyTorch on CUDA where a GPU
    is there, else ONNX Runtime on the CPU. ``device: cpu`` keeps any backend on the CPU.
    """
    if backend not in BACKENDS:
        raise ParamError(f"backend {backend!r} is not one of {', '.join(BACKENDS)} (--backend or CNNPIPE_BACKEND)")
    if device not in DEVICES:
        raise ParamError(f"device {device!r} is not one of {', '.join(DEVICES)} (--device or CNNPIPE_DEVICE)")
    torch_device = pick_device(device).type  # device cuda without a GPU: ParamError
    gpu = torch_device == "cuda"
    if backend == "auto":
        if gpu and cuda_available():
            return Runtime("onnxruntime", "cuda", torch_device)
        return Runtime("torch", "cuda", torch_device) if gpu else Runtime("onnxruntime", "cpu", torch_device)
    if backend == "onnxruntime" and gpu and not cuda_available():
        if device == "cuda":
            raise ParamError("backend onnxruntime has no CUDA provider here (onnxruntime-gpu); use backend torch")
        return Runtime("onnxruntime", "cpu", torch_device)
    return Runtime(backend, torch_device, torch_device)


class Backend(Protocol):
    runtime: Runtime

    def load(self, onnx_path: Path, checkpoint: Path, task: str) -> Loaded:
        """The model of ``task`` (:data:`integrity.CLASSIFICATION` or ``SUPER_RESOLUTION``) whose
        export is ``onnx_path`` and whose PyTorch checkpoint is ``checkpoint``."""
        ...


class OnnxRuntimeBackend:
    """The exported ONNX files in ONNX Runtime (CUDA provider or CPU)."""

    def __init__(self, runtime: Runtime, threads: int = 0) -> None:
        self.runtime, self.threads = runtime, threads

    def load(self, onnx_path: Path, checkpoint: Path, task: str) -> Loaded:
        use = CUDA_PROVIDERS if self.runtime.device == "cuda" else CPU_PROVIDERS
        session = ort_session(onnx_path, self.threads, any_size=task == integrity.SUPER_RESOLUTION, use=use)
        device = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"  # what it got

        def run(x: np.ndarray) -> np.ndarray:
            return session.run(None, {"input": x})[0]

        shape = [d if isinstance(d, int) else str(d) for d in session.get_inputs()[0].shape]
        return Loaded(run, onnx_path, device, read_metadata(session), shape)


class TorchBackend:
    """The checkpoints in PyTorch: eval mode, ``inference_mode``; on CUDA ``channels_last`` and, for
    the classifier, bf16 autocast. On the CPU float32 (bf16 is emulated, and slow, on most CPUs,
    and float32 keeps the CPU results within 1e-4 of ONNX Runtime's)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.device = torch.device(runtime.device)

    def load(self, onnx_path: Path, checkpoint: Path, task: str) -> Loaded:
        loader = load_classifier if task == integrity.CLASSIFICATION else load_sr
        net, _ = loader(checkpoint)
        cuda = self.device.type == "cuda"
        net = net.to(self.device).to(memory_format=torch.channels_last) if cuda else net
        run = _torch_run(net, self.device, bf16=cuda and task in BF16_TASKS)
        return Loaded(run, checkpoint, self.runtime.device, *file_metadata(onnx_path))


def _torch_run(net: nn.Module, device: torch.device, bf16: bool) -> Model:
    layout = torch.channels_last if device.type == "cuda" else torch.contiguous_format

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), autocast(device, bf16):
            inputs = torch.from_numpy(x).to(device).contiguous(memory_format=layout)
            return net(inputs).float().cpu().numpy()

    return run


def open_backend(runtime: Runtime, threads: int = 0) -> Backend:
    """The backend a resolved :class:`Runtime` names."""
    return TorchBackend(runtime) if runtime.backend == "torch" else OnnxRuntimeBackend(runtime, threads)
