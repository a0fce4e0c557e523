"""tests/once.py: processes of one run that ask for the same build at once get one build, and a
build that failed or was killed is done again, never handed out half made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .once import SHARED_ENV

ROOT = Path(__file__).resolve().parents[1]
# One process asking for the build "x": it notes that it asks, then the build notes its pid, waits
# for a go file (so the others ask while it builds), and fails if told to; the process prints the
# folder it got.
ASK = """
import os, sys, time
from pathlib import Path
from tests.once import built_once
asks, builds, go, fail = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "fail"

def note(path):
    with path.open("a") as f:
        f.write(f"{os.getpid()}\\n")

def build(folder):
    note(builds)
    (folder / "part").write_text("half")
    deadline = time.monotonic() + 300
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if fail:
        raise RuntimeError("build failed")
    (folder / "part").write_text("whole")

note(asks)
print(built_once(None, "x", build))
"""


class Askers:
    """The shared folder, the notes and the go file of one test, and the processes asking."""

    def __init__(self, tmp_path: Path) -> None:
        self.shared, self.asks, self.builds, self.go = (tmp_path / n for n in ("shared", "asks", "builds", "go"))
        self.procs: list[subprocess.Popen[str]] = []

    def ask(self, fail: bool = False) -> subprocess.Popen[str]:
        env = {**os.environ, SHARED_ENV: str(self.shared), "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-c", ASK, str(self.asks), str(self.builds), str(self.go), "fail" if fail else "ok"]
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def wait_for(self, note: Path, count: int) -> None:
        deadline = time.monotonic() + 120
        while not (note.exists() and len(note.read_text().split()) >= count):
            assert time.monotonic() < deadline, f"{count} not noted in {note.name}"
            time.sleep(0.05)

    def built(self) -> int:
        return len(self.builds.read_text().split())


@pytest.fixture
def askers(tmp_path: Path) -> Iterator[Askers]:
    them = Askers(tmp_path)
    yield them
    them.go.touch()  # a failed assertion leaves no build waiting for it
    for proc in them.procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_three_processes_asking_at_once_get_one_build(askers: Askers) -> None:
    asking = [askers.ask() for _ in range(3)]
    askers.wait_for(askers.builds, 1)
    askers.wait_for(askers.asks, 3)  # all asked before the build could end: the other two wait
    time.sleep(0.5)
    assert not (askers.shared / "x").exists()  # not there until complete
    askers.go.touch()
    outputs = [p.communicate(timeout=120) for p in asking]
    assert [p.returncode for p in asking] == [0, 0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {str(askers.shared / "x")}
    assert askers.built() == 1
    assert (askers.shared / "x" / "part").read_text() == "whole"


def test_a_failed_build_is_not_handed_out_and_the_next_asker_builds_again(askers: Askers) -> None:
    failing = askers.ask(fail=True)
    askers.wait_for(askers.builds, 1)
    waiting = askers.ask()
    askers.wait_for(askers.asks, 2)
    askers.go.touch()
    _, err = failing.communicate(timeout=120)
    assert failing.returncode == 1 and "RuntimeError: build failed" in err
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert out.strip() == str(askers.shared / "x")
    assert askers.built() == 2  # the waiter built it again, from an empty folder
    assert (askers.shared / "x" / "part").read_text() == "whole"
    assert sorted(p.name for p in askers.shared.iterdir()) == ["x", "x.lock"]  # the failed one removed


def test_a_builder_killed_midway_leaves_a_build_the_next_asker_redoes(askers: Askers) -> None:
    killed = askers.ask()
    askers.wait_for(askers.builds, 1)
    os.kill(killed.pid, signal.SIGKILL)  # its lock goes with it
    killed.communicate(timeout=60)
    assert not (askers.shared / "x").exists()
    [left] = askers.shared.glob(".x-*")  # set aside, not handed out
    assert (left / "part").read_text() == "half"
    askers.go.touch()
    again = askers.ask()
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert out.strip() == str(askers.shared / "x")
    assert askers.built() == 2
    assert (askers.shared / "x" / "part").read_text() == "whole"
