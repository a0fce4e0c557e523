"""Asked for CUDA where there is none, every entry point that uses a device stops before any work:
one ``error:`` line, exit status 1, no traceback, nothing written. (The servers: test_backends.py;
the CLI: test_dream.py.) The GPU is hidden from each subprocess, so this runs on any machine.

Stages that use no device (fetch_data, export_onnx, export_sr, evaluate_sr, explain_gallery) run
on the CPU whatever ``device`` says: their results do not depend on it (the exports list it in
dvc.yaml only to record it in the models' provenance), so a ``-S device=cuda`` run goes on up to
the first stage that needs the GPU — the dvc test below sees fetch_cifar10 run first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .pipeline import REPO, dvc, env, git, tiny_pipeline_repo

pytestmark = pytest.mark.slow

NO_GPU = {"CUDA_VISIBLE_DEVICES": "", "PYTHONDONTWRITEBYTECODE": "1"}
NO_CUDA = "error: device is 'cuda' but no CUDA GPU is available; use device: auto or cpu"

STAGES = {  # the stages that use a device, as dvc.yaml runs them
    "train_classifier": ["stages.train_classifier"],
    "train_sr@2": ["stages.train_sr", "2"],
    "evaluate": ["stages.evaluate"],
    "dream_gallery": ["stages.dream_gallery"],
}
BENCHMARKS = {  # the benchmark scripts that take --device (gpu.py is tested in test_gpu_bench.py)
    "classifier": ["--data", "no-such-data"],
    "classifier_sweep": ["--data", "no-such-data", "--config", "epochs=1"],
    "dream": [],
    "style": [],
}


@pytest.fixture(scope="module")
def cuda_repo(tmp_path_factory: pytest.TempPathFactory, tiny_archives) -> Path:
    """The project with ``device: cuda`` committed and nothing fetched or trained yet."""
    repo = tiny_pipeline_repo(tmp_path_factory.mktemp("cuda"), tiny_archives)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump({**params, "device": "cuda"}, sort_keys=False))
    git(repo, "commit", "-qam", "device cuda")
    return repo


def _written(repo: Path) -> str:
    """Every file the run added or changed, ignored ones included."""
    return git(repo, "status", "--porcelain", "--ignored", "--untracked-files=all")


def _one_line(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert result.stdout == "" and result.stderr.strip() == NO_CUDA, output[-3000:]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_stage_that_uses_a_device_stops_in_one_line(cuda_repo: Path, stage: str) -> None:
    # Nothing is fetched: a stage that did any work before the check would fail on its data instead.
    result = subprocess.run(
        [sys.executable, "-m", *STAGES[stage]],
        cwd=cuda_repo,
        env=env(cuda_repo, **NO_GPU),
        capture_output=True,
        text=True,
        timeout=300,
    )
    _one_line(result)
    assert _written(cuda_repo) == ""


def test_dvc_exp_run_with_device_cuda_stops_at_the_first_stage_that_needs_it(tmp_path: Path, tiny_archives) -> None:
    repo = tiny_pipeline_repo(tmp_path / "repo", tiny_archives)
    result = dvc(repo, "exp", "run", "-S", "device=cuda", "train_classifier", check=False, **NO_GPU)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output[-3000:]
    assert output.count(NO_CUDA) == 1, output[-3000:]
    assert (repo / "data" / "cifar10").is_dir()  # fetch_cifar10 uses no device: it ran
    written = [p for folder in ("models", "dvclive", "checkpoints") for p in (repo / folder).rglob("*") if p.is_file()]
    assert written == []  # (DVC makes the outputs' folders before it runs a stage; nothing is in them)


@pytest.mark.parametrize("script", sorted(BENCHMARKS))
def test_each_benchmark_asked_for_cuda_stops_in_one_line(tmp_path: Path, script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{script}.py"), "--device", "cuda", *BENCHMARKS[script]],
        cwd=tmp_path,
        env=env(REPO, **NO_GPU),
        capture_output=True,
        text=True,
        timeout=300,
    )
    _one_line(result)
    assert list(tmp_path.iterdir()) == []
