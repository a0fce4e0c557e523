"""Helpers to run the real DVC pipeline in a throwaway copy of the repository."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "classifier": {"widths": [8, 16, 16], "epochs": 2, "batch_size": 64, "lr": 0.4},
    "sr": {
        "scales": [2, 3],
        "channels": 8,
        "blocks": 1,
        "patch_size": 12,
        "patches_per_epoch": 256,
        "batch_size": 32,
        "epochs": 2,
    },
    "evaluate": {"sr_examples": 2, "sr_crop": 48},
    "dream_gallery": {"images": 2, "size": 32, "layers": ["features.1", "features.3"], "octaves": 2, "steps": 2},
    "explain_gallery": {"images": 2, "class_steps": 4},
}


def copy_repo(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files, as a fresh clone plus local edits would have."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)


def edit_params(repo: Path, changes: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def env(repo: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": f"{repo}{os.pathsep}{repo / 'src'}",
        "DVC_NO_ANALYTICS": "1",
        "BENTOML_DO_NOT_TRACK": "true",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        **extra,
    }


def git(repo: Path, *args: str, **extra_env: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=env(repo, **extra_env), capture_output=True, text=True, check=True
    ).stdout


def dvc(repo: Path, *args: str, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, env=env(repo, **extra_env), capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def tiny_pipeline_repo(root: Path, archives: dict[str, tuple[Path, str]]) -> Path:
    """A git repo copy of the project whose params point at the tiny generated archives."""
    copy_repo(root)
    data = {name: {"url": str(path), "md5": md5} for name, (path, md5) in archives.items()}
    edit_params(root, {"data": data, **TINY})
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "tiny params"]):
        git(root, *args)
    return root


@dataclasses.dataclass(frozen=True)
class Reproduced:
    """A tiny pipeline repo after one full `dvc repro` (uncommitted, as the run left it) and that
    run's output. Tests never change it: they work in a copy (:meth:`copy_to`)."""

    repo: Path
    output: str

    def copy_to(self, dest: Path) -> Path:
        """The whole repo (git history, DVC cache and lock, outputs) at ``dest``, which must not exist."""
        return Path(shutil.copytree(self.repo, dest, symlinks=True))


TORCHRUN = (sys.executable, "-m", "torch.distributed.run")


def fetch_cifar10(repo: Path) -> None:
    """The fetch_data stage for CIFAR-10 alone: what training reads, without the rest of the pipeline."""
    fetch = subprocess.run(
        [sys.executable, "-m", "stages.fetch_data", "cifar10"], cwd=repo, env=env(repo), capture_output=True, text=True
    )
    assert fetch.returncode == 0, fetch.stderr


def classifier_weights(repo: Path) -> dict:
    """The state dict of the trained classifier, models/classifier.pt."""
    import torch

    return torch.load(repo / "models/classifier.pt", weights_only=True)["state_dict"]
