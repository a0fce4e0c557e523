"""Write a file whole or not at all: the one temp-file-then-rename used for every output.

The data goes to ``.<name>.tmp`` beside the target, is flushed to disk (``fsync``), and is then
renamed over the target, whose folder is flushed too. What this guarantees:

* Readers (a server, a resumed run, DVC) see the previous file or the complete new one, never a
  torn write: a rename within a folder is atomic, and after a SIGKILL at any moment the target is
  one or the other (the kernel keeps written data; a SIGKILL loses none of it).
* After a power cut or kernel crash too, on a filesystem that honours ``fsync`` (ext4, xfs, btrfs):
  the data is on disk before the rename that publishes it.
* A write that fails (disk full, quota, read-only folder) raises one :class:`~cnnpipe.errors.OutputError`
  naming the file, deletes the temp file and leaves the target as it was.

A SIGKILL can leave the temp file behind (nothing runs to delete it); nothing reads it, and the
next write of the same output truncates and replaces it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnpipe.errors import CnnpipeError, os_error_in, output_error


def temp_path(path: Path) -> Path:
    """Where :func:`atomic_write` writes ``path`` first (hidden, same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}.tmp")


@contextlib.contextmanager
def atomic_write(path: Path | str) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success flush it and rename it over ``path``, on error delete it.

    An OSError inside the block (or behind a library's own error) becomes an ``OutputError``
    about ``path``: one line for the user, however the writer reported it.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        _fsync(tmp)
        tmp.replace(path)
        _fsync(path.parent)
    except CnnpipeError:
        raise
    except Exception as exc:
        cause = os_error_in(exc)
        if cause is None:
            raise
        raise output_error(path, cause) from exc
    finally:
        with contextlib.suppress(OSError):  # best effort: never hide the error that got us here
            tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's) data to disk; a write error the kernel held back surfaces here."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: Path | str, data: dict[str, Any]) -> None:
    """Indented JSON with a final newline (DVC metrics files)."""
    write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
