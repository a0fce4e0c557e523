"""Stop a server and every process it started, including those that left its process group.

BentoML's supervisor (circus) starts each worker with ``os.setsid()``, so a worker is the leader
of a session and group of its own: ``killpg`` on ``bentoml serve`` never reaches it, and a worker
whose arbiter died (the OOM killer, a SIGKILL after a stop that hung) keeps serving on the port.
So the tree is read from psutil while its root lives, and whatever of it outlives the stop is
killed by pid (psutil refuses a pid that was reused since).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import psutil

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


class ProcessTree:
    """A child started with ``start_new_session=True`` and the descendants seen under it so far."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.seen: dict[int, psutil.Process] = {}

    def remember(self) -> None:
        """Note the root's descendants now (call it while the root lives: orphans are reparented)."""
        with contextlib.suppress(*_GONE):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)

    def terminate(self) -> None:
        """SIGTERM to the root's group: the root stops its workers the way it knows."""
        self.remember()
        self._signal_group(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        """Up to ``timeout`` seconds for the root to exit (:meth:`kill` then deals with the rest)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=max(0.0, timeout))

    def kill(self) -> None:
        """SIGKILL to the root's group and to every descendant seen that still runs; wait for them."""
        self.remember()
        self._signal_group(signal.SIGKILL)
        alive = []
        for process in self.seen.values():
            with contextlib.suppress(*_GONE):
                process.kill()
                alive.append(process)
        psutil.wait_procs(alive, timeout=10)
        self.proc.wait(timeout=10)

    def stop(self, grace: float) -> None:
        """SIGTERM, ``grace`` seconds for a clean stop, then :meth:`kill` for what is left."""
        if grace > 0:
            self.terminate()
            self.wait(grace)
        self.kill()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
            os.killpg(self.proc.pid, sig)
