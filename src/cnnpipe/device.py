"""Device selection: CUDA when present (or asked for), CPU otherwise."""

from __future__ import annotations

import contextlib

import torch

from cnnpipe.errors import ParamError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("device is 'cuda' but no CUDA GPU is available; use device: auto or cpu")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA when enabled; a no-op context otherwise."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (weight init) and return a generator for data sampling."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
