"""Build a session fixture's files once for every test process of one `make test`.

`make test` runs two pytest processes one after the other (the xdist workers, then the serial
tests), and the workers run side by side. The tiny `dvc repro` costs each of them a minute or more of
CPU, yet tests only ever read it (they work in copies). So the first process to ask builds it, under
a file lock, in a folder they share; the others wait for it and reuse it.

The shared folder is ``$CNNPIPE_TEST_SHARED`` (`make test` makes a new one per invocation and removes
it afterwards; nothing checks whether a build there matches the code, so never point it at a folder
an earlier run used), else, in an xdist worker, the folder above the workers' base temp dirs, which
belongs to that one pytest run. A plain ``pytest`` builds per session, as before.

A build goes into a hidden folder of its own and is renamed into place when complete: the name
exists only for a whole build. One that raised is removed; one whose builder was killed is left
aside (its orphaned processes may still be writing there). Either way the next process that asks
builds again.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SHARED_ENV = "CNNPIPE_TEST_SHARED"


def shared_root(tmp_path_factory: pytest.TempPathFactory | None) -> Path | None:
    """Where processes of this run share builds, or None for a process on its own."""
    if os.environ.get(SHARED_ENV):
        return Path(os.environ[SHARED_ENV])
    if os.environ.get("PYTEST_XDIST_WORKER") and tmp_path_factory is not None:
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


def built_once(tmp_path_factory: pytest.TempPathFactory | None, name: str, build: Callable[[Path], None]) -> Path:
    """A folder ``build`` has filled: this process's own, or the one the first process of the run
    built. ``build`` gets an empty folder; a build that raised is retried by the next process
    that asks (and fails there the same way, so each process reports it)."""
    root = shared_root(tmp_path_factory)
    if root is None:
        assert tmp_path_factory is not None, f"no {SHARED_ENV} and no pytest temp dirs"
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    root.mkdir(parents=True, exist_ok=True)
    folder = root / name
    with _locked(root / f"{name}.lock"):
        if not folder.exists():
            building = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
            try:
                build(building)
            except BaseException:
                shutil.rmtree(building, ignore_errors=True)
                raise
            building.rename(folder)
    return folder
