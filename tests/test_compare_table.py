"""The comparison table on constructed runs: which columns, which deltas, how they print."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cnnpipe.compare.report import display, render
from cnnpipe.compare.runs import Run, left_out
from cnnpipe.compare.table import comparison, headline, param_columns
from cnnpipe.compare.terminal import shorten, wrap_header
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


# ------------------------------------------------------------------ what the columns hold, how they read


def test_a_single_run_shows_no_params_and_globs_choose_them() -> None:
    table, _ = comparison([_run("a", 0.9, 31.0, 0.1)])
    assert param_columns(table) == []  # nothing differs between one row and itself
    table, _ = comparison([_run("a", 0.9, 31.0, 0.1)], params=["classifier.*", "sr.scales"])
    assert param_columns(table) == ["classifier.lr", "classifier.epochs", "classifier.widths", "sr.scales"]
    with pytest.raises(CnnpipeError, match=r"--params clasifier\.\* matches none of the 4 params .*: classifier, sr"):
        comparison([_run("a", 0.9, 31.0, 0.1)], params=["clasifier.*"])


def test_ints_stay_ints_and_lists_lists_where_a_row_lacks_the_param() -> None:
    bare = Run("server", "server", "abc", "http://x", _run("s", 0.9, 31.0, 0.1).metrics, {"sr": {"scales": [2]}})
    table, base = comparison([_run("a", 0.9, 31.0, 0.1), _run("b", 0.9, 31.0, 0.2), bare])
    shown = display(table, base)
    assert list(shown["classifier.epochs"]) == [10, 10, "–"] and shown["classifier.widths"].iloc[0] == "[8, 16]"
    text = render(table, base, "table")
    assert "10.0" not in text and " 10 " in text and "[8, 16]" in text
    csv = pd.read_csv(io.StringIO(render(table, base, "csv")), dtype=str, keep_default_na=False)
    assert list(csv["classifier.epochs"]) == ["10", "10", ""] and csv["classifier.widths"][0] == "[8, 16]"


def _many(n: int) -> list[Run]:
    message = "a commit subject that goes on and on past any terminal's patience"
    return [
        dataclasses.replace(
            _run(f"run-{i:02d}", 0.9 + i / 100, 31.0 + i / 10, round(0.1 * (i + 1), 1), extra_scale=True),
            message=message,
        )
        for i in range(n)
    ]


def test_the_terminal_table_fits_120_columns_unless_wide() -> None:
    table, base = comparison(_many(3), per_class=True)  # 12 metrics: far wider than a terminal
    text = render(table, base, "table")
    lines = text.splitlines()
    assert max(map(len, lines)) <= 120
    blocks = text.strip().split("\n\n")
    assert len(blocks) > 1 and all(block.startswith("run") for block in blocks)  # the run column repeats
    assert all(f"run-{i:02d}" in block for block in blocks for i in range(3))
    assert "a commit subject that goes…" in text and "patience" not in text
    header = blocks[1].splitlines()[:2]  # a long header on two lines, at a space
    assert header[0].count("x2 bsds300_test") == 3 and header[1].split() == ["PSNR", "SSIM", "PSNR", "gain"]
    wide = render(table, base, "table", wide=True).splitlines()
    assert len(wide) == 2 + 3 and max(map(len, wide)) > 120 and "patience" in wide[2]


def test_transpose_puts_the_runs_in_columns() -> None:
    table, base = comparison(_many(2))
    lines = render(table, base, "table", transpose=True).splitlines()
    assert lines[0].split() == ["run", "run-00", "(baseline)", "run-01"]
    accuracy = next(line for line in lines if line.startswith("accuracy "))
    assert accuracy.split() == ["accuracy", "0.9000", "0.9100", "(+0.0100)"]
    assert max(map(len, lines)) <= 120
    md = render(table, base, "md", transpose=True).splitlines()
    assert [cell.strip() for cell in md[0].split("|")[1:4]] == ["run", "run-00 (baseline)", "run-01"]
    assert "| a commit subject that goes on and on past any terminal's patience |" in md[4]  # md is never cut
    with pytest.raises(CnnpipeError, match="--transpose is for --format table or md, not csv"):
        render(table, base, "csv", transpose=True)


def test_headers_wrap_and_values_shorten() -> None:
    assert wrap_header("classifier.epochs", 18) == "classifier.epochs"
    assert wrap_header("classifier.weight_decay", 18) == "classifier.\nweight_decay"
    assert wrap_header("x2 bsds300_test PSNR gain", 18) == "x2 bsds300_test\nPSNR gain"
    assert wrap_header("a.b_very_long_parameter_name_indeed.c", 12) == "a.\nb_very…deed.\nc"  # middle cut
    assert wrap_header("one two three four five", 5) == "one\n…\nfive"  # at most three lines
    assert shorten("short", 8) == "short" and shorten("much too long", 8) == "much to…"


def test_left_out_rows_are_one_note() -> None:
    assert left_out("commit", "without metrics", ["a1"]) == "1 commit without metrics left out: a1"
    names = [f"c{i}" for i in range(10)]
    assert left_out("commit", "without metrics", names) == (
        "10 commits without metrics left out: c0, c1, c2, c3, c4 and 5 more"
    )


def test_html_sorts_by_a_click_marks_the_baseline_and_overlays_training_curves() -> None:
    curve = {"classifier": {"train_loss": [(0, 2.3), (1, 2.0)], "test_acc": [(0, 0.2), (1, 0.3)], "lr": [(0, 0.1)]}}
    runs = [dataclasses.replace(run, curves=curve) for run in _many(2)]
    runs.append(dataclasses.replace(_run("no-curves", 0.9, 31.0, 0.1), curves={}))
    table, base = comparison(runs, baseline="run-01")
    page = render(table, base, "html", curves=[r.curves for r in runs])
    assert page.count('<tr class="baseline">') == 1 and "<td>run-01 (baseline)</td>" in page
    assert (
        '<th data-type="number" title="sort">accuracy</th>' in page
        and '<th data-type="text" title="sort">run</th>' in page
    )
    assert '<td data-value="0.91">0.9100</td>' in page
    models = re.findall(r'<figure class="curves" data-model="([^"]+)"><svg', page)
    assert models == ["classifier"]
    assert "<script>" in page and not re.search(r"<script[^>]*src|fetch\(|XMLHttpRequest|import\(", page)


@pytest.mark.slow
def test_html_table_sorts_by_a_click_in_a_real_browser(tmp_path: Path) -> None:
    """The report's inline script in headless Chromium: numbers by value both ways, blanks last,
    the baseline still marked, and no request leaves the file."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    chromium = os.environ.get("CNNPIPE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium: `apt-get install chromium` (or set CNNPIPE_CHROMIUM)")
    runs = [*_many(3), _run("no-x4", 0.95, 31.0, 0.1)][::-1]  # accuracy 0.95, 0.92, 0.91, 0.90
    table, base = comparison(runs, baseline="run-01")
    report = tmp_path / "report.html"
    report.write_text(render(table, base, "html", curves=[r.curves for r in runs]))
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report.as_uri())

            def order(header: str) -> list[str]:
                page.click(f"table.runs th:text-is('{header}')")
                return page.eval_on_selector_all("table.runs tbody tr", "rows => rows.map(r => r.cells[0].textContent)")

            assert order("accuracy") == ["run-00", "run-01 (baseline)", "run-02", "no-x4"]
            assert order("accuracy") == ["no-x4", "run-02", "run-01 (baseline)", "run-00"]
            assert order("x4 set5 PSNR")[-1] == order("x4 set5 PSNR")[-1] == "no-x4"  # blank last, both ways
            assert page.eval_on_selector("tr.baseline", "r => r.cells[0].textContent") == "run-01 (baseline)"
            assert requests == [report.as_uri()]
        finally:
            browser.close()
