"""Training reliability: SIGKILL + restart resumes exactly; torchrun DDP matches one process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .pipeline import TORCHRUN, classifier_weights, edit_params, env, fetch_cifar10, tiny_pipeline_repo

pytestmark = pytest.mark.slow

CHECKPOINT = Path("checkpoints/classifier_last.pt")
COMPARED = ("train_loss", "train_acc", "test_acc", "lr")


@pytest.fixture
def repo(tmp_path: Path, tiny_archives) -> Path:
    root = tiny_pipeline_repo(tmp_path / "repo", tiny_archives)
    # lookahead (default) and the whitening bias freezing after epoch 3: both must survive a resume
    edit_params(root, {"classifier": {"epochs": 6, "widths": [8, 16, 16], "batch_size": 64, "lr": 0.4}})
    fetch_cifar10(root)
    return root


def _history(repo: Path) -> list[dict[str, float]]:
    import torch

    state = torch.load(repo / CHECKPOINT, weights_only=True)
    return [{k: row[k] for k in COMPARED} for row in state["history"]]


def _train(repo: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    command = (
        [*prefix, "-m", "stages.train_classifier"] if prefix else [sys.executable, "-m", "stages.train_classifier"]
    )
    return subprocess.run(command, cwd=repo, env=env(repo), capture_output=True, text=True, timeout=600)


MUON_LOW_RES = {"optimizer": "muon", "lookahead": False, "low_res": 24, "low_res_epochs": 2}


@pytest.mark.parametrize("recipe", [{}, MUON_LOW_RES], ids=["sgd-lookahead", "muon-low-res"])
def test_sigkilled_training_resumes_and_ends_like_an_uninterrupted_run(repo: Path, recipe: dict) -> None:
    """Both optimizers' states (SGD's and Muon's momentum, both schedules) survive the restart."""
    import torch

    edit_params(repo, {"classifier": recipe})
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.train_classifier"],
        cwd=repo,
        env=env(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in proc.stdout:
        if line.startswith("epoch=2 "):
            os.kill(proc.pid, signal.SIGKILL)  # mid-training: epoch 3 is under way
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (repo / "models/classifier.pt").exists()
    assert 2 <= torch.load(repo / CHECKPOINT, weights_only=True)["epoch"] < 6

    resumed = _train(repo)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoints/classifier_last.pt after epoch" in resumed.stdout
    resumed_history, resumed_weights = _history(repo), classifier_weights(repo)
    # DVC clears dvclive/ before a run: the replay after resuming makes the epoch log whole again.
    assert len((repo / "dvclive/classifier/plots/metrics/test_acc.tsv").read_text().splitlines()) == 1 + 6

    (repo / CHECKPOINT).unlink()
    fresh = _train(repo)
    assert fresh.returncode == 0, fresh.stderr
    assert "resuming" not in fresh.stdout
    assert resumed_history == _history(repo)
    fresh_weights = classifier_weights(repo)
    assert all(torch.equal(resumed_weights[k], fresh_weights[k]) for k in fresh_weights)


def test_a_checkpoint_from_other_params_is_not_resumed(repo: Path) -> None:
    assert _train(repo).returncode == 0
    edit_params(repo, {"classifier": {"lr": 0.1}})
    again = _train(repo)
    assert again.returncode == 0 and "resuming" not in again.stdout and "starting afresh" in again.stdout


def test_torchrun_two_processes_match_one_process_with_the_same_global_batch(repo: Path) -> None:
    single = _train(repo)
    assert single.returncode == 0, single.stderr
    one = _history(repo)
    (repo / CHECKPOINT).unlink()

    double = _train(repo, *TORCHRUN, "--standalone", "--nproc_per_node=2")
    assert double.returncode == 0, double.stderr[-3000:]
    assert double.stdout.count("wrote models/classifier.pt") == 1  # rank 0 alone writes outputs
    two = _history(repo)

    # Same data, same order, same augmentation and the gradient averaged over the global batch;
    # batch-norm statistics are per process (32 images instead of 64), hence the tolerance.
    assert len(one) == len(two) == 6
    for a, b in zip(one, two, strict=True):
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-9)
        assert abs(a["train_loss"] - b["train_loss"]) < 0.08
    assert abs(one[-1]["test_acc"] - two[-1]["test_acc"]) < 0.08
