"""Progress bars that stay readable in a terminal and in captured logs (CI, `dvc repro > log`)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def progress(iterable: Any = None, **kwargs: Any) -> tqdm:
    """``tqdm`` that redraws freely on a terminal but at most every 30 s when stderr is a file."""
    kwargs.setdefault("mininterval", 0.1 if sys.stderr.isatty() else 30.0)
    return tqdm(iterable, **kwargs)
