"""The HTML report's charts, as inline SVG (matplotlib's SVG backend: text as paths, no fonts fetched):
a headline metric over the runs, and a model's DVCLive training curves with a line per run."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import pandas as pd

from cnnpipe.compare.curves import Curves

KIND_STYLES: dict[str, dict[str, Any]] = {
    "commit": {"marker": "o", "color": "#1f6feb"},
    "experiment": {"marker": "D", "linestyle": "none", "color": "#bf3989", "fillstyle": "none"},
    "workspace": {"marker": "s", "linestyle": "none", "color": "#9a6700"},
    "server": {"marker": "*", "linestyle": "none", "color": "#1a7f37", "markersize": 10},
}

# Which logged values a model's two panels show: how training went (loss) and how good it got
# (accuracy for the classifier, PSNR for SR). The learning rate and epoch times are left out.
PANELS = {"loss": re.compile(r"loss"), "accuracy": re.compile(r"acc|psnr|ssim")}
DASHES: list[Literal["-", "--", ":", "-."]] = ["-", "--", ":", "-."]  # one per metric on a panel (train, test, ...)


@contextmanager
def _figure(width: float, height: float, panels: int = 1) -> Iterator[tuple[Any, list[Any], io.StringIO]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width, height), dpi=96, squeeze=False)
    buffer = io.StringIO()
    try:
        yield fig, list(axes[0]), buffer
        fig.tight_layout()
        fig.savefig(buffer, format="svg")
    finally:
        plt.close(fig)


def _inline(buffer: io.StringIO) -> str:
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: inline SVG in HTML5


def metric_chart(table: pd.DataFrame, column: str, base: int) -> str:
    """One metric over the runs, oldest left."""
    values = table[column].to_numpy(dtype=float)
    x = np.arange(len(values))
    with _figure(max(4.0, 0.55 * len(values) + 2.0), 2.6) as (_, (ax,), buffer):
        # Commits are a history (a line); experiments, the workspace and a server branch off it (markers).
        for kind, style in KIND_STYLES.items():
            rows = (table["kind"] == kind).to_numpy()
            if rows.any():
                ax.plot(x[rows], values[rows], label=kind, **style)
        ax.axhline(values[base], color="#999999", linestyle="--", linewidth=0.8, label="baseline")
        ax.legend(fontsize=6, loc="best")
        ax.set_xticks(list(x), [str(label)[:18] for label in table["run"]], rotation=30, ha="right", fontsize=7)
        ax.set_title(column, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
    return _inline(buffer)


def curve_models(curves: list[Curves]) -> list[str]:
    """The models any run logged a loss or accuracy curve for, in name order."""
    return sorted(
        {m for c in curves for m, metrics in c.items() if any(p.search(k) for k in metrics for p in PANELS.values())}
    )


def curve_chart(model: str, labels: list[str], curves: list[Curves], base: int) -> str:
    """``model``'s loss and accuracy per epoch: a colour per run (the baseline's line thicker), a dash
    per logged metric (train, test); the legend names each once."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    colours = [colormaps["tab10"](i) for i in range(10)]
    with _figure(9.0, 3.2, panels=len(PANELS)) as (_, axes, buffer):
        for ax, (panel, pattern) in zip(axes, PANELS.items(), strict=True):
            names = sorted({k for c in curves for k in c.get(model, {}) if pattern.search(k)})
            drawn: dict[str, Line2D] = {}
            for i, (label, run) in enumerate(zip(labels, curves, strict=True)):
                name_of = f"{label[:18]} (baseline)" if i == base else label[:18]
                colour, width = colours[i % len(colours)], 2.4 if i == base else 1.2
                for name, dash in zip(names, DASHES * len(names), strict=False):
                    points = run.get(model, {}).get(name)
                    if points:
                        steps, values = zip(*points, strict=True)
                        ax.plot(
                            [step + 1 for step in steps],
                            values,
                            linestyle=dash,
                            marker=".",
                            color=colour,
                            linewidth=width,
                        )
                        drawn.setdefault(name_of, Line2D([], [], color=colour, linewidth=width))
            dashes = (
                [Line2D([], [], color="#59636e", linestyle=d) for d in DASHES[: len(names)]] if len(names) > 1 else []
            )
            if drawn:
                ax.legend([*drawn.values(), *dashes], [*drawn, *names[: len(dashes)]], fontsize=6, loc="best")
            ax.set_title(f"{model}: {', '.join(names) or panel}", fontsize=9)
            ax.set_xlabel("epoch", fontsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    return _inline(buffer)
