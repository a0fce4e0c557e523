"""benchmarks/sr.py end to end on a few generated images with a tiny net: the score table and the
×8 self-ensemble's speed row are printed and saved in its JSON, and the ensemble runs slower than
one pass (it runs the net eight times)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from .images import encode, photo

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _folder(path: Path, count: int, size: tuple[int, int], seed: int) -> Path:
    path.mkdir()
    for i in range(count):
        (path / f"{i}.png").write_bytes(encode(Image.fromarray(photo(*size, seed=seed + i))))
    return path


def test_the_sr_benchmark_prints_and_saves_every_row(tmp_path: Path) -> None:
    train = _folder(tmp_path / "train", 3, (96, 128), 0)
    test = _folder(tmp_path / "test", 2, (48, 64), 10)
    out = tmp_path / "sr.json"
    tiny = ["channels=8", "blocks=1", "patch_size=8", "patches_per_epoch=32", "batch_size=16", "epochs=2"]
    args = ["--train", str(train), "--set5", str(test), "--scales", "2", "--budget", "0", "--self-ensemble"]
    run = subprocess.run(
        [sys.executable, "benchmarks/sr.py", *args, "--skip-reference", "--json", str(out), "--set", *tiny],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| x2 | Set5 |" in run.stdout and "x2 through the ×8 self-ensemble" in run.stdout
    results = json.loads(out.read_text())
    set5 = results["scales"]["2"]["Set5"]
    assert set5["ours_x8"] > set5["bicubic"] - 1  # a 2-epoch net: near bicubic, not broken
    speed = results["onnx_cpu_output_mpix_s"]
    assert 0 < speed["2_self_ensemble"] < speed["2"]
