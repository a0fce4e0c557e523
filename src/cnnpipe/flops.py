"""FLOP counts of a job and the machine's same-run matmul rate, so a benchmark can say how far a
timing is from the limit rather than only how fast it is.

Counts come from :class:`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions,
forward and backward, 2 FLOPs per multiply-add); element-wise work is not counted, so an achieved
rate is a lower bound on the work done. The matmul rate is ``torch.mm`` of two square matrices, the
kernel the convolutions here end up in on a CPU (oneDNN) or GPU (cuBLAS/cuDNN).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def counted_flops(fn: Callable[[], object]) -> float:
    """FLOPs that ``fn()`` runs (it is run once, for real)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def input_gradient_flops(
    forward: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...], device: torch.device | str = "cpu"
) -> float:
    """One DeepDream step: ``forward`` of an N×C×H×W input of ``shape`` and the gradient of the
    objective with respect to the input only (weights frozen or not, only ``x`` is asked for)."""
    x = torch.rand(shape, device=device, requires_grad=True)

    def step() -> None:
        # backward(inputs=[x]) rather than autograd.grad: FlopCounterMode's module tracker refuses
        # autograd.grad when a module's input is a leaf (torch 2.14); both compute only x's gradient.
        forward(x).float().pow(2).mean().backward(inputs=[x])

    return counted_flops(step)


def full_backward_flops(model: nn.Module, shape: tuple[int, ...], device: torch.device | str = "cpu") -> float:
    """One step of a loop that calls ``loss.backward()`` with the weights' ``requires_grad`` on:
    the input gradient *and* every weight gradient (what the seed DeepDream loop pays)."""
    x = torch.rand(shape, device=device, requires_grad=True)

    def step() -> None:
        model.zero_grad()
        model(x).norm().backward()

    flops = counted_flops(step)
    model.zero_grad()
    return flops


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a CUDA GPU runs asynchronously; a CPU does not), so a
    clock read after it times the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fitting_size(dtype: torch.dtype, device: torch.device | str = "cpu", n: int = 4096, seconds: float = 3.0) -> int:
    """The largest of n, n/2, n/4, … (down to 512) whose one ``torch.mm`` takes about ``seconds`` or less.

    Why: where ``dtype`` is emulated (bf16 on an AVX2-only CPU runs ``torch.mm`` at ~1 GFLOP/s,
    benchmarks/results/precision-2026-12-07-avx2.txt) one 4096² call takes ~2 minutes; elsewhere
    4096² fits and is kept. Judged from a 512² probe (one untimed call first).
    """
    device = torch.device(device)
    probe = 512
    a = torch.randn(probe, probe, device=device).to(dtype)
    torch.mm(a, a)
    synchronize(device)
    began = time.perf_counter()
    torch.mm(a, a)
    synchronize(device)
    rate = 2 * probe**3 / max(time.perf_counter() - began, 1e-9)
    while n > probe and 2 * n**3 / rate > seconds:
        n //= 2
    return n


def matmul_rate(
    dtype: torch.dtype, device: torch.device | str = "cpu", n: int = 4096, seconds: float = 3.0, fit: bool = True
) -> float:
    """FLOP/s of ``torch.mm`` on two n×n ``dtype`` matrices, best of repeated calls over ``seconds``
    (one untimed call first). With ``fit``, ``n`` shrinks to :func:`fitting_size` where one call
    would not fit; without, ``n`` is used as given (a caller that chose and printed the size)."""
    device = torch.device(device)
    if fit:
        n = fitting_size(dtype, device, n, seconds)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    synchronize(device)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        began = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - began)
        if time.perf_counter() >= deadline:
            break
    return 2 * n**3 / best
