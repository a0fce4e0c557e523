"""Build a session fixture's files once for every test process of one `make test`.

`make test` runs two pytest processes one after the other (the xdist workers, then the serial
tests), and the workers run side by side. The tiny `dvc repro` costs each of them a minute or more of
CPU, yet tests only ever read it (they work in copies). So the first process to ask builds it, under
a file lock, in a folder they share; the others wait for it and reuse it.

The shared folder is ``$CNNPIPE_TEST_SHARED`` (`make test` makes one per invocation and removes it
afterwards, so nothing outlives the run that built it), else, in an xdist worker, the folder above
the workers' base temp dirs, which belongs to that one pytest run. A plain ``pytest`` builds per
session, as before.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SHARED_ENV = "CNNPIPE_TEST_SHARED"
COMPLETE = ".complete"  # written last: a folder without it is a build that failed or was killed


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Where processes of this run share builds, or None for a process on its own."""
    if os.environ.get(SHARED_ENV):
        return Path(os.environ[SHARED_ENV])
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.getbasetemp().parent
    return None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or its process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder ``build`` has filled: this process's own, or the one the first process of the run
    built. ``build`` gets an empty folder; a build that raised is retried by the next process
    that asks (and fails there the same way, so each process reports it)."""
    root = shared_root(tmp_path_factory)
    if root is None:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    root.mkdir(parents=True, exist_ok=True)
    folder = root / name
    with _locked(root / f"{name}.lock"):
        if not (folder / COMPLETE).exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / COMPLETE).touch()
    return folder
