"""Every output writer on a real full (and a read-only) filesystem: one OutputError naming the
file, the previous file intact, no temp file left; and the one-line report for writers that do
not go through cnnpipe.atomic. The filesystem is a small tmpfs (root only; skipped otherwise)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnpipe.atomic import atomic_write, write_bytes
from cnnpipe.data.images import write_png
from cnnpipe.errors import OutputError, exit_on_user_error
from cnnpipe.export.onnx import export
from cnnpipe.models.checkpoint import atomic_torch_save
from cnnpipe.models.sr import ESPCN

from .disk import FILLER, PAGE, fill, tmpfs

PREVIOUS = b"the previous, complete file\n"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "1m") as folder:
        yield folder


def _onnx(path: Path) -> None:
    export(ESPCN(scale=2, channels=64).eval(), torch.rand(1, 1, 16, 16), path, {0: "batch"}, 18, {})


WRITERS: dict[str, Callable[[Path], None]] = {  # each writes far more than the pages left free
    "bytes": lambda path: write_bytes(path, os.urandom(300_000)),
    "torch.save": lambda path: atomic_torch_save({"w": torch.randn(100_000)}, path),
    "png": lambda path: write_png(path, np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)),
    "onnx": _onnx,
}


@pytest.mark.parametrize("leave", [0, 2 * PAGE], ids=["full", "nearly-full"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_write_on_a_full_disk_is_one_error_and_keeps_the_previous_file(disk: Path, writer: str, leave: int) -> None:
    path = disk / "out.bin"
    path.write_bytes(PREVIOUS)
    assert fill(disk, leave) <= leave
    with pytest.raises(OutputError) as error:
        WRITERS[writer](path)
    assert str(error.value) == f"no space left on device writing {path} (free space and rerun)"
    assert path.read_bytes() == PREVIOUS
    assert sorted(os.listdir(disk)) == sorted([FILLER, path.name])  # no temp file


def test_a_write_to_a_read_only_filesystem_says_so(disk: Path) -> None:
    path = disk / "report.csv"
    path.write_bytes(PREVIOUS)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    with pytest.raises(OutputError, match=rf"^read-only file system writing {path} \(write to a writable"):
        write_bytes(path, b"new")
    assert path.read_bytes() == PREVIOUS


def test_a_full_disk_met_by_any_writer_is_one_line_and_exit_1(disk: Path, capsys: pytest.CaptureFixture) -> None:
    """DVCLive's logs, say: written with plain open(), so the guard at the entry point reports it."""

    @exit_on_user_error
    def log() -> None:
        with (disk / "metrics.json").open("w") as file:
            file.write("x" * 100_000)

    fill(disk)
    with pytest.raises(SystemExit) as exit_:
        log()
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "error: no space left on device (free space and rerun)\n"


def test_other_errors_still_raise_and_leave_nothing(tmp_path: Path) -> None:
    """A bug inside the block is not a disk problem: it raises as itself (with its traceback)."""
    path = tmp_path / "out.bin"
    path.write_bytes(PREVIOUS)
    with pytest.raises(ZeroDivisionError), atomic_write(path) as tmp:
        tmp.write_bytes(b"half")
        _ = 1 / 0
    assert path.read_bytes() == PREVIOUS and os.listdir(tmp_path) == [path.name]

    @exit_on_user_error
    def read_missing() -> None:
        (tmp_path / "missing").read_bytes()

    with pytest.raises(FileNotFoundError):
        read_missing()


def test_the_published_file_is_the_whole_new_one_and_the_temp_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "out.bin"
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / ".out.bin.tmp").write_bytes(b"left by a killed run")
    data = os.urandom(100_000)
    write_bytes(path, data)
    assert path.read_bytes() == data and os.listdir(path.parent) == ["out.bin"]
