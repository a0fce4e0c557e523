"""The comparison as text (terminal table, Markdown for a review comment, CSV) or as one
self-contained HTML file: the table and a chart per headline metric, inline SVG, no network."""

from __future__ import annotations

import html
import io
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from cnnpipe import __version__
from cnnpipe.compare.table import ID_COLUMNS, metric_columns, param_columns

FORMATS = ("table", "md", "csv", "html")


def _digits(column: str) -> str:
    if "PSNR" in column:
        return ".2f"
    if column.startswith("ONNX"):
        return ".2e"
    return ".4f"


def _cell(value: float, delta: float, column: str, is_baseline: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = format(value, _digits(column))
    if is_baseline or delta is None or math.isnan(delta):
        return text
    return f"{text} ({format(delta, '+' + _digits(column))})"


def display(table: pd.DataFrame, base: int) -> pd.DataFrame:
    """Ids, differing params, then each metric as ``value (Δ vs baseline)``; the baseline row is marked."""
    shown = table[ID_COLUMNS + param_columns(table)].copy()
    shown["run"] = [f"{run} (baseline)" if i == base else run for i, run in enumerate(shown["run"])]
    for column in metric_columns(table):
        shown[column] = [
            _cell(v, d, column, i == base)
            for i, (v, d) in enumerate(zip(table[column], table[f"Δ {column}"], strict=True))
        ]
    return shown.fillna("–")


def render(table: pd.DataFrame, base: int, fmt: str, notes: list[str] | None = None) -> str:
    if fmt == "csv":
        return table.to_csv(index=False)
    shown = display(table, base)
    if fmt == "md":
        return shown.to_markdown(index=False) + "\n"
    if fmt == "table":
        return shown.to_string(index=False) + "\n"
    return html_report(table, shown, base, notes or [])


def _chart(table: pd.DataFrame, column: str, base: int) -> str:
    """One metric over the runs, oldest left, as inline SVG (matplotlib's SVG backend: no fonts fetched)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    values = table[column].to_numpy(dtype=float)
    x = np.arange(len(values))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(values) + 2.0), 2.6), dpi=96)
    try:
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
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
    finally:
        plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: inline SVG in HTML5


KIND_STYLES: dict[str, dict[str, Any]] = {
    "commit": {"marker": "o", "color": "#1f6feb"},
    "experiment": {"marker": "D", "linestyle": "none", "color": "#bf3989", "fillstyle": "none"},
    "workspace": {"marker": "s", "linestyle": "none", "color": "#9a6700"},
    "server": {"marker": "*", "linestyle": "none", "color": "#1a7f37", "markersize": 10},
}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2328; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.5rem; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; position: sticky; top: 0; }
td:nth-child(-n+4) { text-align: left; }
tr.baseline td { background: #fff8c5; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; margin-top: 1.5rem; }
.notes { color: #59636e; font-size: 0.85rem; }
"""


def html_report(table: pd.DataFrame, shown: pd.DataFrame, base: int, notes: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for i, row in enumerate(shown.itertuples(index=False)):
        cells = "".join(f"<td>{html.escape(str(v))}</td>" for v in row)
        rows.append(f'<tr class="{"baseline" if i == base else "run"}">{cells}</tr>')
    charts = "".join(
        f'<figure class="chart" data-metric="{html.escape(c)}">{_chart(table, c, base)}</figure>'
        for c in metric_columns(table)
        if table[c].notna().any()
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cnnpipe compare</title>
<style>{STYLE}</style></head>
<body>
<h1>cnnpipe compare</h1>
<p>{len(table)} runs, oldest first; changes are against the baseline row (highlighted).
Params listed are those that differ between the runs. Made {when} by cnnpipe {__version__}.</p>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>
<ul class="notes">{notes_html}</ul>
<div class="charts">{charts}</div>
</body></html>
"""
