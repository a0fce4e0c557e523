"""What the export stages record about a model's origin (cnnpipe.provenance), in a real git repo."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnpipe.provenance import git_state, provenance

from .pipeline import git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "params.yaml").write_text("a: 1\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/classifier.json").write_text("{}\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "one"]):
        git(tmp_path, *args)
    return tmp_path


def test_clean_checkout(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    state = git_state(repo)
    assert state.commit == git(repo, "rev-parse", "HEAD").strip() and len(state.commit) == 40
    assert not state.dirty and state.experiment == ""


def test_pipeline_outputs_do_not_make_it_dirty_but_params_and_sources_do(repo: Path) -> None:
    (repo / "metrics/classifier.json").write_text('{"accuracy": 0.5}\n')
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (repo / "untracked.py").write_text("x = 1\n")
    assert not git_state(repo).dirty
    (repo / "params.yaml").write_text("a: 2\n")
    assert git_state(repo).dirty


def test_dvc_experiment_name_is_recorded(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "fuzzy-lion")
    assert git_state(repo).experiment == "fuzzy-lion"


def test_outside_git_there_is_no_commit(tmp_path: Path) -> None:
    state = git_state(tmp_path)
    assert (state.commit, state.dirty) == ("", False)


def test_provenance_entry(repo: Path) -> None:
    entry = provenance({"classifier": {"lr": 0.1}}, {"accuracy": 0.9}, repo)
    assert entry["params"] == {"classifier": {"lr": 0.1}} and entry["metrics"] == {"accuracy": 0.9}
    assert set(entry) == {"commit", "dirty", "experiment", "params", "metrics"}
