"""The comparison as text (terminal table, Markdown for a review comment, CSV) or as one
self-contained HTML file: the table (sorted by a click on a header, inline script), a chart per
headline metric and the runs' DVCLive training curves overlaid per model, inline SVG, no network."""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime

import pandas as pd

from cnnpipe import __version__
from cnnpipe.compare.charts import curve_chart, curve_models, metric_chart
from cnnpipe.compare.curves import Curves
from cnnpipe.compare.table import ID_COLUMNS, metric_columns, param_columns
from cnnpipe.compare.terminal import WIDTH, terminal
from cnnpipe.errors import CnnpipeError

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


def transposed(shown: pd.DataFrame) -> pd.DataFrame:
    """A column per run, a row per field (kind, rev, message, params, metrics): for more metrics than runs."""
    runs = shown.set_index("run").T
    return runs.rename_axis("run", axis=1).reset_index(names="run")


def render(
    table: pd.DataFrame,
    base: int,
    fmt: str,
    notes: list[str] | None = None,
    *,
    wide: bool = False,
    transpose: bool = False,
    curves: list[Curves] | None = None,
) -> str:
    """``fmt`` is one of :data:`FORMATS`; the terminal table fits :data:`WIDTH` columns unless ``wide``;
    ``transpose`` (table and md) puts the runs in columns; ``curves`` (html), one per row."""
    if transpose and fmt not in ("table", "md"):
        raise CnnpipeError(f"--transpose is for --format table or md, not {fmt}")
    if fmt == "csv":
        return table.to_csv(index=False)
    shown = display(table, base)
    if fmt == "html":
        return html_report(table, shown, base, notes or [], curves or [])
    left = 1 if transpose else len(ID_COLUMNS)
    shown = transposed(shown) if transpose else shown
    if fmt == "md":
        return shown.to_markdown(index=False, colalign=["left"] * left + ["right"] * (shown.shape[1] - left)) + "\n"
    return terminal(shown, left=left, width=None if wide else WIDTH)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2328; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.5rem; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; position: sticky; top: 0; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " ▲"; }
th[aria-sort="descending"]::after { content: " ▼"; }
td:nth-child(-n+4) { text-align: left; }
tr.baseline td { background: #fff8c5; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; margin-top: 1.5rem; }
.notes { color: #59636e; font-size: 0.85rem; }
"""

# Sorts the table by the clicked header (again: the other way); numbers by value, text by text,
# blanks last either way. The baseline row keeps its class, so it stays marked wherever it lands.
SCRIPT = """
document.querySelectorAll("table.runs th").forEach((th, column) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const up = th.getAttribute("aria-sort") !== "ascending";
  th.parentElement.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", up ? "ascending" : "descending");
  const numeric = th.dataset.type === "number";
  const key = (row) => row.cells[column].dataset.value ?? row.cells[column].textContent;
  const rows = [...body.rows].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    if (x === "" || y === "") return (x === "") - (y === "");
    const order = numeric ? Number(x) - Number(y) : x.localeCompare(y, undefined, { numeric: true });
    return up ? order : -order;
  });
  body.append(...rows);
}));
"""


def _sort_keys(table: pd.DataFrame, shown: pd.DataFrame) -> dict[str, list[str] | None]:
    """Per shown column, the values to sort numerically by (metrics, number params), or None (text)."""
    keys: dict[str, list[str] | None] = {}
    for column in shown.columns:
        values = list(table[column]) if column in table.columns else []
        present = [v for v in values if not _blank(v)]
        numbers = bool(present) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
        keys[column] = ["" if _blank(v) else json.dumps(v) for v in values] if numbers else None
    return keys


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def html_report(table: pd.DataFrame, shown: pd.DataFrame, base: int, notes: list[str], curves: list[Curves]) -> str:
    keys = _sort_keys(table, shown)
    head = "".join(
        f'<th data-type="{"number" if keys[c] is not None else "text"}" title="sort">{html.escape(str(c))}</th>'
        for c in shown.columns
    )
    rows = []
    for i, row in enumerate(shown.itertuples(index=False)):
        cells = "".join(
            f"{opening}{html.escape(str(v))}</td>"
            for opening, v in zip(_openings(keys, shown.columns, i), row, strict=True)
        )
        rows.append(f'<tr class="{"baseline" if i == base else "run"}">{cells}</tr>')
    charts = "".join(
        f'<figure class="chart" data-metric="{html.escape(c)}">{metric_chart(table, c, base)}</figure>'
        for c in metric_columns(table)
        if table[c].notna().any()
    )
    labels = list(table["run"])
    training = "".join(
        f'<figure class="curves" data-model="{html.escape(m)}">{curve_chart(m, labels, curves, base)}</figure>'
        for m in curve_models(curves)
    )
    training_html = f'<h2>Training curves (DVCLive)</h2>\n<div class="charts">{training}</div>' if training else ""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cnnpipe compare</title>
<style>{STYLE}</style></head>
<body>
<h1>cnnpipe compare</h1>
<p>{len(table)} runs, oldest first; changes are against the baseline row (highlighted).
Params listed are those that differ between the runs (or those asked for). Click a header to sort.
Made {when} by cnnpipe {__version__}.</p>
<table class="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>
<ul class="notes">{notes_html}</ul>
<h2>Headline metrics</h2>
<div class="charts">{charts}</div>
{training_html}
<script>{SCRIPT}</script>
</body></html>
"""


def _openings(keys: dict[str, list[str] | None], columns: pd.Index, i: int) -> list[str]:
    return [f'<td data-value="{html.escape(k[i])}">' if (k := keys[c]) is not None else "<td>" for c in columns]
