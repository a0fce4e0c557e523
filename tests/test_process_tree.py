"""Stopping a server reaches every process it started, as BentoML's supervisor starts them (each
worker in a session of its own, ``os.setsid()``): with a stand-in arbiter here (fast), and with a
real ``bentoml serve`` whose arbiter is SIGKILLed under it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from benchmarks.soak import GOOD, listener_pid
from serving.launch import bentoml_server
from serving.process_tree import ProcessTree

# A parent that starts a SIGTERM-deaf worker in a new session (as circus does), prints its pid,
# and exits on SIGTERM without stopping it: the worker a `killpg` on the parent never reaches.
# Both handlers are in place before the pid is printed: on a loaded machine the test's SIGTERM
# can follow the pid at once (CI saw the parent die of an unhandled SIGTERM, returncode -15).
ARBITER = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(600)"
worker = subprocess.Popen([sys.executable, "-c", deaf], start_new_session=True, stdout=subprocess.PIPE, text=True)
worker.stdout.readline()  # its SIGTERM is ignored from here on
print(worker.pid, flush=True)
time.sleep(600)
"""


def _stand_in() -> tuple[subprocess.Popen[str], psutil.Process]:
    proc = subprocess.Popen([sys.executable, "-c", ARBITER], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    worker = psutil.Process(int(proc.stdout.readline()))
    assert os.getpgid(worker.pid) != os.getpgid(proc.pid)  # out of the parent's group
    return proc, worker


def _gone(process: psutil.Process, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def test_a_stop_reaches_a_worker_in_its_own_session_that_ignores_sigterm() -> None:
    proc, worker = _stand_in()
    try:
        ProcessTree(proc).stop(grace=5)
        assert proc.returncode == 0  # the parent took its SIGTERM
        assert _gone(worker)
    finally:
        if worker.is_running():
            worker.kill()


def test_a_worker_whose_parent_was_killed_is_still_stopped() -> None:
    """The tree read while the parent lived is what finds the orphan (its parent is init now)."""
    proc, worker = _stand_in()
    try:
        tree = ProcessTree(proc)
        tree.remember()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(0.2)
        assert worker.is_running() and worker.ppid() != proc.pid  # orphaned, still running
        tree.stop(grace=5)
        assert _gone(worker)
    finally:
        if worker.is_running():
            worker.kill()


@pytest.mark.slow
def test_a_bentoml_worker_that_outlived_its_arbiter_is_stopped_with_the_server(served_models: Path) -> None:
    with bentoml_server(served_models, CNNPIPE_THREADS="1") as base:
        arbiter = psutil.Process(listener_pid(base))
        workers = arbiter.children(recursive=True)
        assert workers and all(os.getsid(w.pid) != os.getsid(arbiter.pid) for w in workers)
        arbiter.kill()
        time.sleep(1)
        # the orphaned worker keeps serving: what a plain killpg on the arbiter would leave behind
        assert httpx.post(f"{base}/classify", files={"image": ("x", GOOD)}, timeout=30).status_code == 200
    assert all(_gone(w) for w in workers), [w.pid for w in workers if w.is_running()]
