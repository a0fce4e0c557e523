"""The FLOP counts the benchmarks print (cnnpipe.flops), checked against counts done by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnpipe import flops
from cnnpipe.device import native_bf16
from cnnpipe.flops import fitting_size, full_backward_flops, input_gradient_flops, matmul_rate

ROOT = Path(__file__).resolve().parents[1]


def test_input_gradient_is_forward_plus_one_backward_matmul() -> None:
    layer = nn.Linear(8, 4)
    forward = 2 * 5 * 8 * 4  # N=5 rows, one multiply-add per weight per row
    assert input_gradient_flops(layer, (5, 8)) == 2 * forward  # no weight gradient asked for


def test_full_backward_also_pays_the_weight_gradient() -> None:
    layer = nn.Linear(8, 4)
    forward = 2 * 5 * 8 * 4
    assert full_backward_flops(layer, (5, 8)) == 3 * forward
    assert layer.weight.grad is None  # left as found


def test_convolution_counts_match_the_textbook_formula() -> None:
    conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
    forward = 2 * 1 * 16 * 12 * 12 * 3 * 3 * 3
    assert input_gradient_flops(conv, (1, 3, 12, 12)) == 2 * forward


def test_matmul_rate_is_a_plausible_rate() -> None:
    rate = matmul_rate(torch.float32, n=256, seconds=0.2)
    assert 1e8 < rate < 1e14  # 0.1 GFLOP/s .. 100 TFLOP/s: a CPU in either direction of this machine


def test_the_matmul_shrinks_only_where_one_call_would_not_fit() -> None:
    # emulated bf16 on an AVX2-only CPU made one 4096² call take ~2 minutes and the dream benchmark time out
    assert fitting_size(torch.float32, n=4096, seconds=1e-9) == 512
    assert fitting_size(torch.float32, n=1024, seconds=100.0) == 1024


def test_a_size_the_caller_chose_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # the benchmarks print the size they chose: a second probe must not change it under them
    def no_probe(*args: object, **kwargs: object) -> int:
        raise AssertionError("fitting_size was probed again")

    monkeypatch.setattr(flops, "fitting_size", no_probe)
    assert flops.matmul_rate(torch.float32, n=256, seconds=0.05, fit=False) > 0
    with pytest.raises(AssertionError, match="probed again"):
        flops.matmul_rate(torch.float32, n=256, seconds=0.05)


def _benchmark_output(script: str, *args: str) -> str:
    """What ``benchmarks/<script>`` prints to stdout (it must exit 0)."""
    command = [sys.executable, f"benchmarks/{script}", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True).stdout


def test_dream_benchmark_prints_flops_rates_and_the_same_run_matmul() -> None:
    out = _benchmark_output("dream.py", "--size", "48", "--octaves", "2", "--steps", "1")
    assert "same-run torch.mm 4096²: fp32" in out
    rows = {line[:42].strip(): line[42:].split() for line in out.splitlines() if line.startswith(("seed", "cnnpipe"))}
    assert set(rows) == {"seed loop (numpy + scipy, weight grads)", "cnnpipe.dream fp32", "cnnpipe.dream bf16 autocast"}
    seed_gflop = float(rows["seed loop (numpy + scipy, weight grads)"][2])
    ours_gflop = float(rows["cnnpipe.dream fp32"][2])
    assert ours_gflop > 0 and seed_gflop > ours_gflop  # the seed also computes every weight gradient
    assert rows["cnnpipe.dream bf16 autocast"][-1] == "bf16" and rows["cnnpipe.dream fp32"][-1] == "fp32"


def test_precision_benchmark_times_both_default_nets_in_both_precisions() -> None:
    args = ["--seconds", "0.1", "--classifier-batch", "2", "--sr-batch", "1", "--device", "cpu"]
    out = _benchmark_output("precision.py", *args)
    native = native_bf16(torch.device("cpu"))
    assert f"so `bf16: auto` trains in {'bf16' if native else 'fp32'}" in out
    lines = out.splitlines()

    def ratio_holds(fp32: str, bf16: str, ratio: str, word: str) -> None:
        factor = float(ratio.rstrip("×"))
        assert factor >= 1 and (word == "slower") == (float(bf16) >= float(fp32)), (fp32, bf16, ratio, word)
        expected = max(float(bf16) / float(fp32), float(fp32) / float(bf16))
        assert abs(factor - expected) <= 0.02 * expected + 0.01, (fp32, bf16, ratio, word)

    (both,) = [line for line in lines if line.strip().endswith(("slower", "faster")) and "², both" in line]
    fp32_rate, bf16_rate, ratio, word = both.rsplit(maxsplit=4)[1:]
    ratio_holds(str(1 / float(fp32_rate)), str(1 / float(bf16_rate)), ratio, word)  # a rate: time per FLOP
    jobs = {}
    for line in lines:
        if line.startswith(("classifier ", "sr ")):
            name, *cells = line.rsplit(maxsplit=4)
            jobs[name.strip()] = cells
    assert list(jobs) == ["classifier airbench [64, 256, 256], batch 2 at 32²", "sr ressr 48×8 ×2, batch 1 at 32²"]
    for cells in jobs.values():
        ratio_holds(*cells)
    per_item = [line for line in lines if "GFLOP per item" in line]
    assert "(0.7078 GFLOP per item)" in per_item[0]  # the default net's training step (issue 27 counted 0.708)
    assert all(float(v) > 0 for line in per_item for v in line.rsplit(maxsplit=2)[1:])
    steps = [line.rsplit(maxsplit=2)[1:] for line in lines if "steps timed" in line]
    assert len(steps) == 2 and all(int(n) >= 3 for pair in steps for n in pair)
