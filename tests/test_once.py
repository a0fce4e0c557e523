"""tests/once.py: processes of one run that ask for the same build at once get one build, and a
build that failed or was killed is done again, never handed out half made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .once import COMPLETE, SHARED_ENV

ROOT = Path(__file__).resolve().parents[1]
# One process asking for the build "x": the build notes its pid, waits for a go file (so the others
# ask while it builds), then fails if told to; the process prints the folder it got.
ASK = """
import os, sys, time
from pathlib import Path
from tests.once import built_once
log, go, fail = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "fail"

def build(folder):
    with log.open("a") as f:
        f.write(f"{os.getpid()}\\n")
    (folder / "part").write_text("half")
    while not go.exists():
        time.sleep(0.05)
    if fail:
        raise RuntimeError("build failed")
    (folder / "part").write_text("whole")

print(built_once(None, "x", build))
"""


def _ask(shared: Path, log: Path, go: Path, fail: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, SHARED_ENV: str(shared), "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", ASK, str(log), str(go), "fail" if fail else "ok"]
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_builders(log: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while not (log.exists() and len(log.read_text().split()) >= count):
        assert time.monotonic() < deadline, "no build started"
        time.sleep(0.05)


def test_three_processes_asking_at_once_get_one_build(tmp_path: Path) -> None:
    shared, log, go = tmp_path / "shared", tmp_path / "builds.log", tmp_path / "go"
    asking = [_ask(shared, log, go) for _ in range(3)]
    _wait_for_builders(log, 1)
    time.sleep(1.0)  # the other two are asking now, and must wait rather than build
    go.touch()
    outputs = [p.communicate(timeout=120) for p in asking]
    assert [p.returncode for p in asking] == [0, 0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {str(shared / "x")}
    assert len(log.read_text().split()) == 1
    assert (shared / "x" / "part").read_text() == "whole" and (shared / "x" / COMPLETE).exists()


def test_a_failed_build_is_not_handed_out_and_the_next_asker_builds_again(tmp_path: Path) -> None:
    shared, log, go = tmp_path / "shared", tmp_path / "builds.log", tmp_path / "go"
    failing = _ask(shared, log, go, fail=True)
    _wait_for_builders(log, 1)
    waiting = _ask(shared, log, go)
    time.sleep(1.0)
    go.touch()
    _, err = failing.communicate(timeout=120)
    assert failing.returncode == 1 and "RuntimeError: build failed" in err
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert out.strip() == str(shared / "x")
    assert len(log.read_text().split()) == 2  # the waiter built it again, from an empty folder
    assert (shared / "x" / "part").read_text() == "whole"


def test_a_builder_killed_midway_leaves_a_build_the_next_asker_redoes(tmp_path: Path) -> None:
    shared, log, go = tmp_path / "shared", tmp_path / "builds.log", tmp_path / "go"
    killed = _ask(shared, log, go)
    _wait_for_builders(log, 1)
    os.kill(killed.pid, signal.SIGKILL)  # its lock goes with it
    killed.communicate(timeout=60)
    assert (shared / "x" / "part").read_text() == "half" and not (shared / "x" / COMPLETE).exists()
    go.touch()
    again = _ask(shared, log, go)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert out.strip() == str(shared / "x")
    assert len(log.read_text().split()) == 2
    assert (shared / "x" / "part").read_text() == "whole"
