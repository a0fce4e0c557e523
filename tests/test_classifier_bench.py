"""benchmarks/classifier.py's own arithmetic and options: the training FLOPs it prints per run
follow the schedule (progressive resizing, whitening bias, Muon), and a validation split held out
of the training images replaces the test set."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnpipe.data.fetch import Source, fetch
from cnnpipe.params import ClassifierParams

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from classifier import training_flops  # noqa: E402  # benchmarks/classifier.py

CPU = torch.device("cpu")
FAST = ("--final-eval-only", "--skip-peer", "--skip-onnx")
SMALL = ClassifierParams(widths=[8, 16, 16], batch_size=32, epochs=2, whiten_bias_epochs=0, bf16=False)


def test_flops_add_up_epoch_by_epoch_at_each_epoch_s_resolution() -> None:
    full = training_flops(SMALL, 64, CPU)  # 2 steps of 32 per epoch, 2 epochs at 32²
    one_small = training_flops(dataclasses.replace(SMALL, low_res=24, low_res_epochs=1), 64, CPU)
    all_small = training_flops(dataclasses.replace(SMALL, low_res=24, low_res_epochs=2), 64, CPU)
    per_epoch_32, per_epoch_24 = full / 2, all_small / 2
    assert one_small == pytest.approx(per_epoch_24 + per_epoch_32)
    assert 0.4 < per_epoch_24 / per_epoch_32 < 0.7  # about (23/31)² of the pixels at every stage
    assert training_flops(SMALL, 96, CPU) == pytest.approx(full * 1.5)  # 3 steps an epoch, not 2


def test_a_learning_whitening_bias_and_muon_cost_more() -> None:
    base = training_flops(SMALL, 64, CPU)
    assert training_flops(dataclasses.replace(SMALL, whiten_bias_epochs=1), 64, CPU) > base  # one more input grad
    muon = training_flops(dataclasses.replace(SMALL, optimizer="muon", lookahead=False), 64, CPU)
    assert base < muon < base * 1.5  # the Newton–Schulz matmuls, small beside the convolutions


def test_holdout_trains_on_the_rest_and_reports_validation_accuracy(tmp_path: Path, tiny_archives) -> None:
    path, md5 = tiny_archives["cifar10"]
    fetch(Source(str(path), md5, "data.cifar10"), tmp_path)
    sets = ["widths=[8,16,16]", "batch_size=32", "epochs=1", "bf16=false", "optimizer=muon", "lookahead=false"]
    command = [sys.executable, "benchmarks/classifier.py", "--data", str(tmp_path), "--holdout", "100", *FAST]
    out = subprocess.run(
        [*command, "--set", *sets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "/ 100 validation (the last 100 training images; the test set is not used)" in out.stdout
    run = next(line for line in out.stdout.splitlines() if line.startswith("run 1/1"))
    assert "validation accuracy" in run and "TFLOP in" in run and "of the same-run fp32 torch.mm" in run


def test_a_holdout_as_big_as_the_training_set_is_one_line(tmp_path: Path, tiny_archives) -> None:
    path, md5 = tiny_archives["cifar10"]
    fetch(Source(str(path), md5, "data.cifar10"), tmp_path)
    out = subprocess.run(
        [sys.executable, "benchmarks/classifier.py", "--data", str(tmp_path), "--holdout", "10000000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 1 and out.stderr.startswith("error: --holdout must be in 0..")
    assert "Traceback" not in out.stderr
