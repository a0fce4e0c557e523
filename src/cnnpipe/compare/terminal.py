"""The comparison for a terminal: at most :data:`WIDTH` characters a line unless asked for everything.

Long values end in an ellipsis, long headers wrap onto up to three lines (at spaces and after dots,
so ``classifier.`` / ``epochs``), and columns that still do not fit move to a further block of the
table that repeats the first column (the run, or the field when transposed), as pandas wraps a wide
frame. tabulate lays each block out.
"""

from __future__ import annotations

import re

import pandas as pd
from tabulate import tabulate

WIDTH = 120
CELL = 24  # characters of a value shown (metric cells are shorter: 0.9000 (+0.0125))
LONG_CELL = 28  # commit subjects and run names get a little more
HEADER = 18  # a header line's width where the values are narrower
HEADER_LINES = 3
ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def wrap_header(name: str, width: int) -> str:
    """``name`` on lines of at most ``width`` characters, broken at spaces and after dots; more than
    :data:`HEADER_LINES` lines lose their middle to an ellipsis (the start and the end tell columns apart)."""
    lines: list[str] = []
    for token in re.findall(r"[^ .]+\.?|\.", name):
        if lines and len(lines[-1]) + len(token) + (not lines[-1].endswith(".")) <= width:
            lines[-1] += token if lines[-1].endswith(".") else " " + token
        else:
            lines.append(token)
    lines = [_middle(line, width) for line in lines]
    if len(lines) > HEADER_LINES:
        lines = [lines[0], ELLIPSIS, lines[-1]]
    return "\n".join(lines)


def _middle(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: (keep + 1) // 2] + ELLIPSIS + text[len(text) - keep // 2 :]


def terminal(shown: pd.DataFrame, left: int = 1, width: int | None = WIDTH) -> str:
    """``shown`` (text cells; the first ``left`` columns left-aligned, the rest right-aligned) as
    blocks at most ``width`` wide; ``width=None`` prints every value in full on one line per row."""
    headers = [str(c) for c in shown.columns]
    cells = [[str(v) for v in row] for row in shown.itertuples(index=False)]
    align = ["left" if i < left else "right" for i in range(len(headers))]
    if width is None:
        return _table(headers, cells, align, list(range(len(headers)))) + "\n"
    limits = [LONG_CELL if i < left or h in ("run", "message") else CELL for i, h in enumerate(headers)]
    cells = [[shorten(v, limit) for v, limit in zip(row, limits, strict=True)] for row in cells]
    widths = [max([len(row[i]) for row in cells] + [1]) for i in range(len(headers))]
    headers = [wrap_header(h, max(w, HEADER)) for h, w in zip(headers, widths, strict=True)]
    blocks: list[list[int]] = [[0]]
    for column in range(1, len(headers)):
        trial = [*blocks[-1], column]
        if len(blocks[-1]) > 1 and _width(_table(headers, cells, align, trial)) > width:
            blocks.append([0, column])
        else:
            blocks[-1] = trial
    return "\n\n".join(_table(headers, cells, align, block) for block in blocks) + "\n"


def _table(headers: list[str], cells: list[list[str]], align: list[str], columns: list[int]) -> str:
    return tabulate(
        [[row[i] for i in columns] for row in cells],
        headers=[headers[i] for i in columns],
        tablefmt="simple",
        disable_numparse=True,
        colalign=[align[i] for i in columns],
    )


def _width(text: str) -> int:
    return max(len(line) for line in text.splitlines())
