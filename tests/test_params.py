"""Bad params fail before any work, with one line that names the param."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnpipe.errors import ParamError
from cnnpipe.params import load_params

from .conftest import REPO


def _write(tmp_path: Path, edit) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_repository_params_are_valid() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.data.cifar10.url.startswith("https://")
    assert set(params.sr.scales) <= {2, 3, 4}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["classifier"].update(lr=-1), r"classifier\.lr must be > 0"),
        (lambda p: p["classifier"].update(arch="vgg99"), r"classifier\.arch must be one of"),
        (lambda p: p["classifier"].update(epochs="ten"), r"classifier\.epochs must be an integer"),
        (lambda p: p["classifier"].update(bf16="yes"), r"classifier\.bf16 must be true, false or auto, got 'yes'"),
        (lambda p: p["classifier"].update(lrate=0.1), r"unknown param classifier\.lrate"),
        (lambda p: p["classifier"].update(widths=[64, 256]), r"classifier\.widths must be three positive integers"),
        (lambda p: p["classifier"].update(flip="sometimes"), r"classifier\.flip must be one of alternating, random"),
        (lambda p: p["classifier"].update(tta=True), r"classifier\.tta must be an integer"),
        (lambda p: p["classifier"].update(tta=3), r"classifier\.tta must be 0 \(none\), 1 \(flip\) or 2"),
        (lambda p: p["classifier"].update(ema=0.99), r"classifier\.ema and classifier\.lookahead are alternatives"),
        (lambda p: p["classifier"].update(translate=-1), r"classifier\.translate must be in 0\.\.8"),
        (lambda p: p["classifier"].update(cutout=32), r"classifier\.cutout must be in 0\.\.31"),
        (lambda p: p["classifier"].update(warmup=1.5), r"classifier\.warmup must be in \[0, 1\)"),
        (lambda p: p["sr"].update(scales=[3, 5]), r"sr\.scales must be distinct values of 2, 3 and 4"),
        (lambda p: p["sr"].update(scales=[3, 3]), r"sr\.scales must be distinct values of 2, 3 and 4"),
        (lambda p: p["sr"].update(scales=["x3"]), r"sr\.scales\[0\] must be an integer"),
        (lambda p: p["sr"].update(loss="l3"), r"sr\.loss must be one of l1, mse, got .l3."),
        (lambda p: p["sr"].update(scale=3), r"unknown param sr\.scale "),
        (lambda p: p["sr"].update(finish_fraction=1.5), r"sr\.finish_fraction must be in \[0, 1\], got 1\.5"),
        (lambda p: p["data"]["cifar10"].update(md5="abc"), r"data\.cifar10\.md5 must be 32 hex digits"),
        (lambda p: p["data"].pop("bsds300"), r"missing param data\.bsds300"),
        (lambda p: p.update(device="tpu"), r"device must be one of auto, cpu, cuda, got .tpu."),
        (lambda p: p["evaluate"].update(sr_extra_sets={"Set5": "/no/such/dir"}), r"sr_extra_sets\.Set5"),
        (lambda p: p["dream_gallery"].update(preset="wild"), r"dream_gallery\.preset must be one of quick, detailed"),
        (lambda p: p["dream_gallery"].update(steps=0), r"dream_gallery\.octaves and dream_gallery\.steps must be >= 1"),
        (lambda p: p["dream_gallery"].update(octave_scale=1.0), r"dream_gallery\.octave_scale must be in \(1, 4\]"),
    ],
)
def test_invalid_params_are_named(tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        load_params(_write(tmp_path, edit))


def test_batch_larger_than_the_dataset_fails_before_training() -> None:
    import numpy as np
    import torch

    from cnnpipe.data.cifar10 import Split
    from cnnpipe.params import ClassifierParams
    from cnnpipe.train.classifier import train

    split = Split(np.zeros((10, 3, 32, 32), np.uint8), np.zeros(10, np.int64))
    with pytest.raises(ParamError, match=r"batch_size \(64\) is larger than the training set \(10 images\)"):
        train(ClassifierParams(batch_size=64), split, None, torch.device("cpu"))


@pytest.mark.parametrize(
    "stage",
    ["train_classifier", "train_sr 3", "evaluate", "evaluate_sr 3", "export_onnx", "export_sr 3"],
)
def test_a_stage_with_a_bad_param_exits_with_one_line(tmp_path: Path, stage: str) -> None:
    _write(tmp_path, lambda p: p["classifier"].update(lr=-0.5))
    result = _run_stage(tmp_path, *stage.split())
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: classifier.lr must be > 0, got -0.5"]
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train_sr"], "error: usage: python -m stages.train_sr SCALE (one of sr.scales [2, 3, 4])"),
        (["evaluate_sr", "x3"], "error: usage: python -m stages.evaluate_sr SCALE (one of sr.scales [2, 3, 4])"),
        (["export_sr", "8"], "error: scale 8 is not in sr.scales [2, 3, 4]"),
    ],
)
def test_a_per_scale_stage_with_a_bad_scale_exits_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    _write(tmp_path, lambda p: None)
    result = _run_stage(tmp_path, *args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [message]


def _run_stage(cwd: Path, stage: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_bf16_takes_true_false_or_auto(tmp_path: Path) -> None:
    import torch

    from cnnpipe.device import native_bf16, use_bf16

    for value in (True, False, "auto"):
        assert load_params(_write(tmp_path, lambda p, v=value: p["sr"].update(bf16=v))).sr.bf16 == value
    cpu = torch.device("cpu")
    assert use_bf16(True, cpu) is True and use_bf16(False, cpu) is False
    assert use_bf16("auto", cpu) == native_bf16(cpu)


def test_benchmark_overrides_are_read_as_yaml_and_validated(tmp_path: Path) -> None:
    from cnnpipe.params import ClassifierParams, SRParams, section_with_overrides

    path = _write(tmp_path, lambda p: None)
    p = section_with_overrides(SRParams, "sr", ["scales=[2, 3]", "bf16=false", "lr=2e-3"], path)
    assert (p.scales, p.bf16, p.lr) == ([2, 3], False, 0.002)
    assert section_with_overrides(ClassifierParams, "classifier", ["width=16"], path).width == 16
    with pytest.raises(ParamError, match=r"classifier\.width must be an integer"):
        section_with_overrides(ClassifierParams, "classifier", ["width=wide"], path)
    with pytest.raises(ParamError, match=r"classifier\.lr must be > 0, got -1"):  # ranges too, not only types
        section_with_overrides(ClassifierParams, "classifier", ["lr=-1"], path)
    with pytest.raises(ParamError, match="expected key=value"):
        section_with_overrides(ClassifierParams, "classifier", ["width"], path)
