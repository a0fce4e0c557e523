"""benchmarks/startup.py: each server's launch-to-ready time beside its framework's floor."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = ("HTTP: bentoml serve", "HTTP floor: ", "gRPC: cnnpipe serve-grpc", "gRPC floor: ", "python -c 'import torch'")


@pytest.mark.slow
def test_the_startup_benchmark_times_every_server_and_its_floor(served_models: Path) -> None:
    script = ROOT / "benchmarks" / "startup.py"
    result = subprocess.run(
        [sys.executable, str(script), "--models", str(served_models), "--reps", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("CPU ") and "torch " in lines[0]
    medians = {}
    for row in ROWS:
        line = next(line for line in lines if line.startswith(row) and re.search(r"(\d+\.\d\d\s+){2}\d+\.\d\d$", line))
        medians[row] = float(line.split()[-3])
        assert medians[row] > 0, line
    # A server that loads models and torch takes longer than its framework with nothing to load.
    assert medians["HTTP: bentoml serve"] > medians["HTTP floor: "]
    assert medians["gRPC: cnnpipe serve-grpc"] > medians["gRPC floor: "]
