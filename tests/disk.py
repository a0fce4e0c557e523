"""A real small disk to fill: a tmpfs mounted over a folder (root only), and a filler for it."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PAGE = 4096  # tmpfs hands out space in pages
FILLER = ".filler"


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "1m") -> Iterator[Path]:
    """Mount a fresh tmpfs of ``size`` over ``folder``, holding a copy of what the folder held.

    The folder's own files are only hidden while it is mounted and come back untouched after
    (it is unmounted however the test ends), so a test may break anything inside. Skips the
    test, with the reason, where this is not root or the mount is refused (no CAP_SYS_ADMIN).
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as held:
        shutil.copytree(folder, held, dirs_exist_ok=True)
        mount = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if mount.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip() or mount.returncode}")
        try:
            shutil.copytree(held, folder, dirs_exist_ok=True)
            yield folder
        finally:
            if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(folder)], check=True)  # still busy: detach it now


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def fill(folder: Path, leave: int = 0) -> int:
    """Fill ``folder``'s filesystem with one file (``.filler``), then free ``leave`` bytes of it
    (whole pages, rounded down). Returns the bytes left free."""
    chunk = b"\0" * (64 * 1024)
    fd = os.open(folder / FILLER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while chunk:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk = chunk[: len(chunk) // 2]  # the last pages, in smaller writes
        written = os.fstat(fd).st_size
        os.ftruncate(fd, max(0, written - leave // PAGE * PAGE))
    finally:
        os.close(fd)
    return free_bytes(folder)


def unfill(folder: Path) -> None:
    (folder / FILLER).unlink()
