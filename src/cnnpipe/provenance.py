"""Where an exported model came from: the git commit, whether the sources differed from it, the DVC
experiment, the params that trained it and its evaluation metrics.

The export stages write this into the ONNX metadata (key ``provenance``) so a served model can say
which commit and params produced it (``/metadata``, gRPC ``GetMetadata``, ``cnnpipe compare --server``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

from cnnpipe import paths

GENERATED = (paths.METRICS, paths.PLOTS, paths.LIVE, Path("dvc.lock"))
"""Tracked files the pipeline itself rewrites: a run changes them, so they do not make a tree dirty."""


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


@dataclasses.dataclass(frozen=True)
class GitState:
    commit: str
    """Full sha of HEAD; "" outside a git checkout (a source tarball, say)."""
    dirty: bool
    """Tracked sources (params.yaml included) differ from ``commit``; pipeline outputs don't count."""
    experiment: str
    """The DVC experiment's name under ``dvc exp run`` (its params are ``commit``'s plus ``-S``), else ""."""


def git_state(root: Path = Path()) -> GitState:
    commit = _git(root, "rev-parse", "HEAD") or ""
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{p}" for p in GENERATED))
    return GitState(commit=commit, dirty=bool(commit) and bool(status), experiment=os.environ.get("DVC_EXP_NAME", ""))


def provenance(params: dict[str, Any], metrics: dict[str, Any], root: Path = Path()) -> dict[str, Any]:
    """The ``provenance`` metadata entry: git state plus the training params and evaluation metrics."""
    return {**dataclasses.asdict(git_state(root)), "params": params, "metrics": metrics}
