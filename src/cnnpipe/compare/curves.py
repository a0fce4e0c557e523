"""The runs' DVCLive training curves: per model (``dvclive/<model>``), each logged metric's value per
step (epoch), read for every revision at once through DVC's plots API, as ``dvc plots diff`` reads them.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from cnnpipe import paths

Curves = dict[str, dict[str, list[tuple[int, float]]]]
"""model → metric → ``(step, value)`` pairs, step order."""

PLOT_FILE = re.compile(rf"{re.escape(paths.LIVE.as_posix())}/([^/]+)/plots/metrics/(.+)\.tsv")


def training_curves(dvc_repo: Any, revisions: list[str]) -> dict[str, Curves]:
    """``{revision: curves}``; a revision without DVCLive plots (or with unreadable ones) has none.

    The curves are an extra of the report, so an unreadable plot file leaves its curve out rather than
    failing the comparison (the metrics, which are checked, fail loudly).
    """
    shown = dvc_repo.plots.show(targets=[paths.LIVE.as_posix()], revs=revisions, recursive=True, onerror=_skip)
    return {rev: _curves(shown.get(rev, {})) for rev in revisions}


def _skip(result: dict[str, Any], exception: Exception, *args: Any, **kwargs: Any) -> None:
    """DVC's ``onerror`` hook: record nothing (and so print nothing) for a missing ``dvclive/``."""


def _curves(entry: dict[str, Any]) -> Curves:
    curves: Curves = {}
    for file, source in sorted(entry.get("sources", {}).get("data", {}).items()):
        match = PLOT_FILE.fullmatch(file)
        if not match or not isinstance(source.get("data"), list):
            continue
        model, metric = match.groups()
        column = PurePosixPath(metric).name  # DVCLive's train/loss is plots/metrics/train/loss.tsv, column loss
        try:
            points = sorted((int(row["step"]), float(row[column])) for row in source["data"])
        except (KeyError, TypeError, ValueError):
            continue
        curves.setdefault(model, {})[metric] = points
    return curves
