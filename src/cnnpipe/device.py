"""Device selection: CUDA when present (or asked for), CPU otherwise."""

from __future__ import annotations

import contextlib
import os

import torch

from cnnpipe.errors import ParamError


def default_threads(workers: int = 1) -> int:
    """Model threads per server worker: the cores but one (left to the event loops), shared among
    ``workers`` worker processes; at least one."""
    return max(1, ((os.cpu_count() or 2) - 1) // workers)


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


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast speeds this device up: CUDA, or a CPU with native bf16 (AVX-512 BF16
    or AMX). Elsewhere (AVX2-only CPUs) oneDNN emulates bf16: a training step of either default net
    took 9.6–20.6× as long as in fp32 (benchmarks/precision.py, benchmarks/results/precision-2026-12-07-avx2.txt)."""
    if device.type == "cuda":
        return True
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def use_bf16(setting: bool | str, device: torch.device) -> bool:
    """Resolve a ``bf16`` param: true, false or "auto" (= :func:`native_bf16`)."""
    return native_bf16(device) if setting == "auto" else bool(setting)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (weight init) and return a generator for data sampling."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
"""The CPU features that decide fp32/bf16 speed here (bf16 is emulated, and slow, without avx512_bf16/amx)."""


def describe_hardware() -> str:
    """One line for benchmark output: CPU model and cores, torch threads, GPU, torch version."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        present = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
        flags = [flag for flag in SIMD_FLAGS if flag in present]
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"CPU {cpu} ({' '.join(flags) or 'flags unknown'}) × {os.cpu_count()} cores, "
        f"torch threads {torch.get_num_threads()}, GPU {gpu}, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )
