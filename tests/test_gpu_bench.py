"""benchmarks/gpu.py: the GPU window's one command, run here as --dry-run on the CPU.

The dry run goes through every row's code path on tiny generated data with dvc, dvclive, bentoml
and pandas blocked (a bare GPU machine has none of them), so no line of it first runs on a GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnpipe.data.sample import scene

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"
BLOCKED = ("dvc", "dvclive", "bentoml", "pandas")
# Run the script with the modules a GPU machine lacks made unimportable (None in sys.modules).
WRAPPER = (
    "import runpy, sys\n"
    f"for name in {BLOCKED!r}:\n"
    "    sys.modules[name] = None\n"
    f"sys.argv = [{str(SCRIPT)!r}] + sys.argv[1:]\n"
    f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
)
ROWS = [
    "classifier: ours, default params",
    "classifier: airbench94 (peer)",
    "classifier: ours, 95 % profile",
    "classifier: airbench95 (peer)",
    "classifier: ours, 96 % profile",
    "classifier: airbench96 (peer)",
    "deepdream: ours",
    "deepdream: seed loop",
    "super-resolution ×3",
    "super-resolution ×2",
    "super-resolution ×4",
    "torch inference: classify",
    "torch inference: super-resolve ×2 96×54",
    "peak GPU memory: deepdream 64² tiled",
    "peak GPU memory: super-resolution ×2 to 384×216",
]


def _env() -> dict[str, str]:
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "BENTOML_DO_NOT_TRACK": "true", "PYTHONUNBUFFERED": "1"}


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, timeout=timeout, env=_env(), cwd=ROOT
    )


@pytest.fixture(scope="module")
def bench_data(tiny_archives: dict[str, tuple[Path, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layout --data expects: CIFAR-10 and BSDS300 from the tiny generated archives, small Set5/Set14."""
    root = tmp_path_factory.mktemp("gpubench")
    for path, _ in tiny_archives.values():
        with tarfile.open(path) as archive:
            archive.extractall(root, filter="data")
    rng = np.random.default_rng(0)
    for name in ("Set5", "Set14"):
        (root / name).mkdir()
        for i, size in enumerate(((48, 64), (60, 52))):
            scene(size, rng).save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_dry_run_writes_every_row_in_order_without_the_missing_modules(bench_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.txt"
    result = _run("--data", str(bench_data), "--out", str(out), "--dry-run", timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("cnnpipe GPU benchmark: DRY RUN"), lines[0]
    assert lines[1].startswith("command: ") and "--dry-run" in lines[1]
    assert lines[2].startswith("hardware: CPU ") and "torch " in lines[2]
    headers = [line[3:-3] for line in lines if line.startswith("== ") and line.endswith(" ==")]
    assert headers == ROWS
    assert "failed:" not in text, text
    assert "skipped: time budget" not in text  # the dry run goes through every optional row too
    sections = text.split("\n== ")[1:]
    for section in sections:  # each row measured something (or says why the peer could not run)
        body = section.split("\n", 1)[1]
        assert body.strip() and "(row took " in body, section
    by_name = {s.split(" ==", 1)[0]: s for s in sections}
    assert "seed 1: test accuracy" in by_name[ROWS[0]]
    peer = by_name[ROWS[1]]
    assert "data: 128 train / 200 test images" not in peer  # airbench reads all of ours, not the trainer's cap
    assert "data: 320 train / 200 test images, batch (64, 3, 32, 32) torch.float16" in peer
    if not torch.cuda.is_available():
        assert "skipped: needs CUDA" in peer
    assert "TFLOP (forward + input gradient)" in by_name["deepdream: ours"]
    assert "ours bf16 autocast:" in by_name["deepdream: ours"] and "ours fp32:" in by_name["deepdream: ours"]
    assert "seed loop (numpy + scipy zoom" in by_name["deepdream: seed loop"]
    x3 = by_name["super-resolution ×3"]
    assert "x3 Set5 (2 images): Y-PSNR" in x3 and "x3 Set14 (2 images): Y-PSNR" in x3 and "target ≥ 34.0" in x3
    classify = by_name["torch inference: classify"]
    assert all(f"batch {b}: " in classify for b in (1, 8, 32)) and "served request: not measured" in classify
    assert "model ×2 on 96×54 luma → 192×108 (bf16)" in by_name[ROWS[12]]
    assert lines[-1].startswith("finished in ")
    assert result.stdout.count("\n== ") == len(ROWS)  # the same rows went to stdout as they were written


@pytest.mark.slow
def test_a_spent_budget_skips_only_the_optional_rows_and_keeps_the_order(bench_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.txt"
    result = _run("--data", str(bench_data), "--out", str(out), "--dry-run", "--budget", "0", timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    sections = {s.split(" ==", 1)[0]: s for s in text.split("\n== ")[1:]}
    assert list(sections) == ROWS  # a skipped row still has its header, in its place
    optional = {ROWS[i] for i in (2, 3, 4, 5, 9, 10)}  # the 95/96 % profiles with peers, SR ×2 and ×4
    for name, section in sections.items():
        assert ("skipped: time budget" in section) == (name in optional), section
    assert "failed:" not in text and "seed 1: test accuracy" in sections[ROWS[0]]
    assert "x3 Set5 (2 images): Y-PSNR" in sections["super-resolution ×3"]


def test_real_run_without_cuda_stops_with_one_line_before_any_work(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "results.txt"
    result = _run("--data", str(tmp_path / "none"), "--out", str(out))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: device is 'cuda' but no CUDA GPU is available; use device: auto or cpu"
    ]
    assert not out.exists()


def test_missing_inputs_are_one_line(bench_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.txt"
    result = _run("--data", str(tmp_path), "--out", str(out), "--dry-run")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: no CIFAR-10 binary batches under ")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "cifar-10-batches-bin").symlink_to(bench_data / "cifar-10-batches-bin")
    result = _run("--data", str(partial), "--out", str(out), "--dry-run")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: no folder {partial / 'BSDS300' / 'images' / 'train'}: --data must hold")
    assert not out.exists()


def test_airbench_table_is_read_from_its_own_printer() -> None:
    """The peer's accuracy and time come from airbench's printed eval row: format it with airbench's
    own printer and read it back through the script's parser."""
    code = (
        "import contextlib, io, runpy, sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None\n"
        f"bench = runpy.run_path({str(SCRIPT)!r})\n"
        "from airbench.utils import print_columns, print_training_details, logging_columns_list\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    print_columns(logging_columns_list, is_head=True)\n"
        "    print_training_details(dict(run=0, epoch=9, train_loss=0.81, train_acc=0.9, val_acc=0.93), False)\n"
        "    row = dict(run=None, epoch='eval', train_loss=0.8, train_acc=0.91, val_acc=0.935,\n"
        "               tta_val_acc=0.9402, total_time_seconds=3.8312)\n"
        "    print_training_details(row, is_final_entry=True)\n"
        "print(bench['parse_airbench'](out.getvalue()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env())
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "(0.9402, 3.8312)"
