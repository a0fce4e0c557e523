"""Write a file whole or not at all: the one temp-file-then-rename used for every output.

Readers (a server, a resumed run, DVC) see the previous file or the complete new one, never a
torn write, even after SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_write(path: Path | str) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it over ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: Path | str, data: dict[str, Any]) -> None:
    """Indented JSON with a final newline (DVC metrics files)."""
    write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
