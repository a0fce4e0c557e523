"""`dvc repro` for real, in a copy of the repository, on tiny generated data."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cnnpipe.data import cifar10

from .pipeline import TINY, Reproduced
from .pipeline import dvc as _dvc
from .pipeline import edit_params as _edit_params
from .pipeline import git as _git

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, reproduced: Reproduced) -> Path:
    """This module's copy of the suite's tiny `dvc repro` (conftest.reproduced)."""
    return reproduced.copy_to(tmp_path_factory.mktemp("pipeline") / "repo")


def _ran(result: subprocess.CompletedProcess[str] | str) -> set[str]:
    output = result if isinstance(result, str) else result.stdout
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def test_repro_builds_every_declared_output(reproduced: Reproduced, repo: Path) -> None:
    assert _ran(reproduced.output) == {
        "fetch_cifar10",
        "fetch_bsds300",
        "train_classifier",
        "evaluate",
        "export_onnx",
        "dream_gallery",
        "explain_gallery",
        "train_sr@2",
        "train_sr@3",
        "evaluate_sr@2",
        "evaluate_sr@3",
        "export_sr@2",
        "export_sr@3",
    }

    for out in (
        "data/cifar10/cifar-10-batches-bin/test_batch.bin",
        "data/bsds300/BSDS300/images/test",
        "models/classifier.pt",
        "models/classifier.onnx",
        "plots/confusion.csv",
        "plots/dream_gallery.png",
        "plots/explain_gallery.png",
        "plots/filters.png",
        "plots/activations.png",
        "plots/class_maximization.png",
        *(f"models/sr_x{s}.{ext}" for s in (2, 3) for ext in ("pt", "onnx")),
        *(f"plots/sr_x{s}_comparison.png" for s in (2, 3)),
        *(f"dvclive/sr_x{s}/plots/metrics/train_psnr.tsv" for s in (2, 3)),
        "dvclive/classifier/plots/metrics/test_acc.tsv",
    ):
        assert (repo / out).exists(), out

    maximised = json.loads((repo / "metrics/class_maximization.json").read_text())
    assert set(maximised["per_class"]) == set(cifar10.CLASSES) and 0 <= maximised["robust_classes"] <= 10
    assert all(0 <= c["worst_p"] <= c["mean_p"] <= 1 for c in maximised["per_class"].values())

    classifier = json.loads((repo / "metrics/classifier.json").read_text())
    assert 0.0 <= classifier["accuracy"] <= 1.0
    assert set(classifier["per_class_accuracy"]) == set(cifar10.CLASSES)
    assert classifier["test_images"] == 200 and classifier["generated_sample_data"] is True

    for scale in (2, 3):
        sr = json.loads((repo / f"metrics/sr_x{scale}.json").read_text())
        assert sr["scale"] == scale and sr["generated_sample_data"] is True
        for key in ("psnr_model", "psnr_bicubic", "ssim_model", "ssim_bicubic", "psnr_gain", "psnr_model_x8"):
            assert isinstance(sr["bsds300_test"][key], float), key

    for report, name in (("export", "classifier"), ("export_sr_x2", "sr_x2"), ("export_sr_x3", "sr_x3")):
        export = json.loads((repo / f"metrics/{report}.json").read_text())
        assert set(export["max_abs_diff"]) == {name}
        assert export["max_abs_diff"][name] <= export["tolerance"]

    confusion = (repo / "plots/confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == 201

    epochs = (repo / "dvclive/classifier/plots/metrics/test_acc.tsv").read_text().splitlines()
    assert len(epochs) == 1 + TINY["classifier"]["epochs"]


def test_second_repro_does_nothing(repo: Path) -> None:
    assert "up to date" in _dvc(repo, "status").stdout
    assert _ran(_dvc(repo, "repro")) == set()


def test_editing_a_module_a_stage_runs_makes_dvc_status_report_it(repo: Path) -> None:
    """dvc.yaml's code deps are complete: colour conversion (cnnpipe/data/color.py) runs in SR
    training, evaluation and export, in the classifier export and in the explain gallery (images to
    float), so each of them goes stale."""
    module = repo / "src/cnnpipe/data/color.py"
    original = module.read_text()
    try:
        module.write_text(original + "\n# edited\n")
        stale = set(json.loads(_dvc(repo, "status", "--json").stdout))
    finally:
        module.write_text(original)
    users = {f"{stage}@{scale}" for stage in ("train_sr", "evaluate_sr", "export_sr") for scale in (2, 3)}
    assert stale == users | {"export_onnx", "explain_gallery"}
    assert "up to date" in _dvc(repo, "status").stdout


def test_a_param_change_reruns_only_what_depends_on_it_and_shows_in_diffs(repo: Path) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "run 1")

    _edit_params(repo, {"classifier": {"epochs": 3}})
    assert _ran(_dvc(repo, "repro")) == {
        "train_classifier",
        "evaluate",
        "export_onnx",
        "dream_gallery",
        "explain_gallery",
    }
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "run 2")

    params = json.loads(_dvc(repo, "params", "diff", "HEAD~1", "HEAD", "--json").stdout)
    assert params["params.yaml"]["classifier.epochs"] == {"old": 2, "new": 3, "diff": 1}

    metrics = json.loads(_dvc(repo, "metrics", "diff", "HEAD~1", "HEAD", "--json").stdout)
    live = metrics["dvclive/classifier/metrics.json"]
    assert live["step"]["old"] == 1 and live["step"]["new"] == 2
    assert "train_loss" in live

    plots = json.loads(_dvc(repo, "plots", "show", "--json").stdout)
    assert {"plots/confusion.csv", "plots/sr_x3_comparison.png", "plots/dream_gallery.png"} <= set(plots["data"])
    looks = {"plots/explain_gallery.png", "plots/filters.png", "plots/activations.png", "plots/class_maximization.png"}
    assert looks <= set(plots["data"])


def test_export_outside_tolerance_fails_and_leaves_no_onnx(repo: Path) -> None:
    _edit_params(repo, {"export": {"tolerance": 1e-15}})
    for stage, onnx in (("export_onnx", "classifier.onnx"), ("export_sr@3", "sr_x3.onnx")):
        result = _dvc(repo, "repro", stage, check=False)
        assert result.returncode != 0
        assert "ONNX Runtime differs from PyTorch" in result.stderr + result.stdout
        assert not (repo / "models" / onnx).exists()
    _git(repo, "checkout", "params.yaml")
