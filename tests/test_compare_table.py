"""The comparison table on constructed runs: which columns, which deltas, how they print."""

from __future__ import annotations

import math

import pytest

from cnnpipe.compare.report import display, render
from cnnpipe.compare.runs import Run
from cnnpipe.compare.table import comparison, headline
from cnnpipe.errors import CnnpipeError


def _run(label: str, accuracy: float, psnr: float, lr: float, extra_scale: bool = False) -> Run:
    sr = {"bsds300_test": {"psnr_model": psnr, "psnr_bicubic": 30.0, "ssim_model": 0.9, "ssim_bicubic": 0.8}}
    metrics = {
        "metrics/classifier.json": {"accuracy": accuracy, "per_class_accuracy": {"cat": 0.5, "dog": None}},
        "metrics/sr_x2.json": {"scale": 2, **sr},
        "metrics/export.json": {"max_abs_diff": {"classifier": 1e-6}},
        "metrics/export_sr_x2.json": {"max_abs_diff": {"sr_x2": 3e-6}},
    }
    if extra_scale:
        metrics["metrics/sr_x4.json"] = {"scale": 4, "set5": {**sr["bsds300_test"], "psnr_model": 28.0}}
    params = {"classifier": {"lr": lr, "epochs": 10, "widths": [8, 16]}, "sr": {"scales": [2]}}
    return Run(label, "commit", label[:7], f"msg {label}", metrics, params)


def test_headline_reads_each_file_by_name() -> None:
    values = headline(_run("a", 0.9, 31.5, 0.1, extra_scale=True).metrics, per_class=True)
    assert values["accuracy"] == 0.9 and "accuracy_tta" not in values
    assert values["x2 bsds300_test PSNR"] == 31.5 and values["x2 bsds300_test PSNR gain"] == pytest.approx(1.5)
    assert values["x4 set5 PSNR"] == 28.0 and values["x2 bsds300_test SSIM"] == 0.9
    assert values["ONNX max abs diff"] == 3e-6  # the worst of every export report
    assert values["accuracy[cat]"] == 0.5 and math.isnan(values["accuracy[dog]"])


def test_only_params_that_differ_and_deltas_against_the_baseline() -> None:
    runs = [_run("aaaaaaa1", 0.90, 31.0, 0.1), _run("bbbbbbb2", 0.92, 31.4, 0.2), _run("ccccccc3", 0.91, 31.2, 0.2)]
    table, base = comparison(runs)
    assert base == 0 and "classifier.lr" in table.columns and "classifier.epochs" not in table.columns
    assert list(table["Δ accuracy"]) == pytest.approx([0.0, 0.02, 0.01])
    table, base = comparison(runs, baseline="bbbbbbb2ffff")  # a longer sha of a row's rev
    assert base == 1 and list(table["Δ x2 bsds300_test PSNR"]) == pytest.approx([-0.4, 0.0, -0.2])


def test_a_metric_missing_in_one_run_is_blank_not_zero() -> None:
    runs = [_run("a", 0.9, 31.0, 0.1), _run("b", 0.9, 31.0, 0.1, extra_scale=True)]
    table, _ = comparison(runs)
    assert math.isnan(table["x4 set5 PSNR"].iloc[0]) and table["x4 set5 PSNR"].iloc[1] == 28.0
    assert list(display(table, 0)["x4 set5 PSNR"]) == ["–", "28.00"]  # no delta against nothing


def test_markdown_marks_the_baseline_and_signs_the_deltas() -> None:
    table, base = comparison([_run("a", 0.9, 31.0, 0.1), _run("b", 0.8875, 31.25, 0.2)])
    lines = render(table, base, "md").splitlines()
    assert "a (baseline)" in lines[2] and "0.9000 " in lines[2] and "(+" not in lines[2]
    assert "0.8875 (-0.0125)" in lines[3] and "31.25 (+0.25)" in lines[3]


def test_bad_baseline_and_no_runs() -> None:
    with pytest.raises(CnnpipeError, match="--baseline zzz is not one of the compared runs: a, b"):
        comparison([_run("a", 0.9, 31.0, 0.1), _run("b", 0.9, 31.0, 0.1)], baseline="zzz")
    with pytest.raises(CnnpipeError, match="no runs with metrics"):
        comparison([])
