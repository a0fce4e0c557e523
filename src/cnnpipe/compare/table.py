"""The comparison table (pandas): a row per run, the params that differ between the rows, the headline
metrics, and each metric's change against a baseline row."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

import pandas as pd

from cnnpipe import paths
from cnnpipe.compare.runs import Run, flat_params
from cnnpipe.errors import CnnpipeError

ID_COLUMNS = ["run", "kind", "rev", "message"]
NUMBER = r"(\d+)"


def _with_scale(path: str) -> re.Pattern[str]:
    """``metrics/sr_x{scale}.json`` as a pattern capturing the scale."""
    return re.compile(re.escape(path).replace("0", NUMBER, 1))


SR_FILE = _with_scale(str(paths.sr_metrics(0)))
EXPORT_FILES = (
    re.compile(re.escape(str(paths.CLASSIFIER_EXPORT_METRICS))),
    _with_scale(str(paths.sr_export_metrics(0))),
)


def headline(metrics: dict[str, dict[str, Any]], per_class: bool = False) -> dict[str, float]:
    """The metrics a reviewer looks at, by column name, from ``{metrics file: content}``.

    Classifier accuracy (and TTA accuracy; per class on request); for each SR scale and test set,
    model PSNR and SSIM and the PSNR gain over bicubic; the worst ONNX Runtime vs PyTorch difference.
    """
    out: dict[str, float] = {}
    classifier = metrics.get(str(paths.CLASSIFIER_METRICS), {})
    for key in ("accuracy", "accuracy_tta"):
        if isinstance(classifier.get(key), int | float):
            out[key] = float(classifier[key])
    if per_class:
        for name, value in (classifier.get("per_class_accuracy") or {}).items():
            out[f"accuracy[{name}]"] = float("nan") if value is None else float(value)
    sr_files = sorted(
        ((int(m.group(1)), content) for file, content in metrics.items() if (m := SR_FILE.fullmatch(file))),
        key=lambda item: item[0],
    )
    for scale, content in sr_files:
        for test_set, scores in content.items():
            if isinstance(scores, dict) and "psnr_model" in scores:
                out[f"x{scale} {test_set} PSNR"] = float(scores["psnr_model"])
                out[f"x{scale} {test_set} SSIM"] = float(scores["ssim_model"])
                gain = scores.get("psnr_gain", scores["psnr_model"] - scores["psnr_bicubic"])
                out[f"x{scale} {test_set} PSNR gain"] = float(gain)
    diffs = [
        float(value)
        for file, content in metrics.items()
        if any(p.fullmatch(file) for p in EXPORT_FILES)
        for value in (content.get("max_abs_diff") or {}).values()
    ]
    if diffs:
        out["ONNX max abs diff"] = max(diffs)
    return out


def comparison(
    runs: list[Run], baseline: str | None = None, per_class: bool = False, params: Sequence[str] = ()
) -> tuple[pd.DataFrame, int]:
    """The table and the baseline's row number.

    Columns: ``run kind rev message``, then the params (each whose value is not the same in every
    row, or those matching a ``params`` glob), then the headline metrics, then ``Δ <metric>`` (this
    row minus the baseline row; 0 on the baseline).
    """
    if not runs:
        raise CnnpipeError("no runs with metrics to compare")
    labels = [run.label for run in runs]
    if baseline is None:
        base = 0
    elif baseline in labels:
        base = labels.index(baseline)
    else:
        matches = [i for i, run in enumerate(runs) if run.rev and baseline.startswith(run.rev)]
        if not matches:
            raise CnnpipeError(f"--baseline {baseline} is not one of the compared runs: {', '.join(labels)}")
        base = matches[0]
    ids = pd.DataFrame([[r.label, r.kind, r.rev, r.message] for r in runs], columns=ID_COLUMNS)
    # object dtype: an int param stays an int where another row lacks it (pandas would make it float).
    values = pd.DataFrame([flat_params(r) for r in runs], dtype=object)
    columns = _chosen(values, params) if params else _varying(values)
    metrics = pd.DataFrame([headline(r.metrics, per_class) for r in runs], dtype="float64")
    deltas = (metrics - metrics.iloc[base]).add_prefix("Δ ")
    return pd.concat([ids, values[columns], metrics, deltas], axis=1), base


def _varying(values: pd.DataFrame) -> list[str]:
    """The params whose value is not the same in every row (none with a single row)."""
    return [c for c in values.columns if values[c].astype(str).nunique(dropna=False) > 1]


def _chosen(values: pd.DataFrame, globs: Sequence[str]) -> list[str]:
    """The params matching any glob (``fnmatch``, case-sensitive), in params.yaml order."""
    for glob in globs:
        if not any(fnmatchcase(c, glob) for c in values.columns):
            sections = sorted({c.split(".")[0] for c in values.columns})
            raise CnnpipeError(
                f"--params {glob} matches none of the {len(values.columns)} params "
                f"(names are dotted, like classifier.epochs; sections: {', '.join(sections)})"
            )
    return [c for c in values.columns if any(fnmatchcase(c, glob) for glob in globs)]


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The headline metric columns (those with a ``Δ`` partner)."""
    return [c for c in table.columns if f"Δ {c}" in table.columns]


def param_columns(table: pd.DataFrame) -> list[str]:
    metrics = set(metric_columns(table))
    return [c for c in table.columns if c not in ID_COLUMNS and c not in metrics and not c.startswith("Δ ")]
