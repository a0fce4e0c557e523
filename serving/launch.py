"""Start the real servers as subprocesses on 127.0.0.1 and wait until they answer (tests, benchmarks)."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from serving.environment import REPO, port_free, server_env
from serving.process_tree import ProcessTree


def free_port() -> int:
    """A loopback port no socket holds now, for a server that binds it itself a moment later.

    Drawn at random (from the OS, not the seedable global generator: two test processes must not
    draw alike) outside the kernel's ephemeral range, which outgoing connections take their local
    ports from. A port the kernel handed out (``bind(0)``) could be taken by any connection in
    between; one outside that range only by a program that binds it by number.
    """
    low, high = safe_port_range()
    for _ in range(200):
        port = _random.randrange(low, high)
        if port_free("127.0.0.1", port):
            return port
    raise RuntimeError(f"no free port found in {low}..{high - 1}")


_random = random.SystemRandom()


def safe_port_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> tuple[int, int]:
    """[low, high) of ports outside the kernel's ephemeral range: 10000 up to its start where that
    leaves 5000 or more (Linux's default, 32768–60999, leaves 22768), else above its end; with no
    such gap, 10000–65535, and the race a ``bind(0)`` port has."""
    try:
        first, last = (int(x) for x in path.read_text().split()[:2])
    except (OSError, ValueError):
        first, last = 32768, 60999  # Linux's default
    if first - 10000 >= 5000:
        return 10000, first
    if 65535 - last >= 5000:
        return last + 1, 65536
    return 10000, 65536


@dataclass
class RunningServer:
    """A server subprocess, its address and what it has printed so far (read by a thread, so a
    chatty server never blocks on a full pipe)."""

    proc: subprocess.Popen[str]
    address: str
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_grpc_server(models: Path, *args: str, command: list[str] | None = None, **env: str) -> RunningServer:
    """``cnnpipe serve-grpc`` on a free port (``--port 0``), once it says it listens (``command``:
    another server that prints the same "listening on HOST:PORT" line)."""
    if command and args:
        raise ValueError("pass the server's arguments in command")
    serve = ["-m", "cnnpipe.cli", "serve-grpc", "--models", str(models), "--port", "0", *args]
    command = command or [sys.executable, *serve]
    proc = subprocess.Popen(
        command, env=server_env(models, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        match = re.search(r"listening on (\S+)", line)
        if match:
            break
    else:
        proc.wait()
        raise RuntimeError(f"gRPC server did not start:\n{''.join(lines)}")
    server = RunningServer(proc, match.group(1), lines)
    threading.Thread(target=lambda: server.lines.extend(proc.stdout or ()), daemon=True).start()
    return server


@contextmanager
def grpc_server(models: Path, *args: str, **env: str) -> Iterator[str]:
    """:func:`start_grpc_server` for the length of a ``with``; yields "127.0.0.1:PORT"."""
    server = start_grpc_server(models, *args, **env)
    try:
        yield server.address
    finally:
        server.stop()


@contextmanager
def bentoml_server(
    models: Path,
    timeout: float = 120,
    target: str = "serving.service:Cnnpipe",
    cwd: Path = REPO,
    models_env: bool = True,
    **env: str,
) -> Iterator[str]:
    """``bentoml serve serving.service:Cnnpipe`` on a free port; yields its base URL once /readyz is OK.

    A port found free can be taken again before the server binds it (e.g. as the local end of an
    outgoing connection); then the start is retried on another port.
    """
    import httpx

    for _attempt in range(5):
        port = free_port()
        log = open(models.parent / f"bentoml-{port}.log", "w+")  # noqa: SIM115
        command = [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)]
        # BentoML clears its task store and metrics folder under BENTOML_HOME when a server starts:
        # servers sharing one would wipe each other's tasks and /metrics (or fail to start).
        home = models.parent / f"bentoml-home-{port}"  # removed after the stop, unless the caller named one
        environ = server_env(models, **{"BENTOML_HOME": str(home), **env})
        if not models_env:
            environ.pop("CNNPIPE_MODELS_DIR")
        # Its own process group, and its workers (each in a session of its own) remembered: the stop
        # reaches a worker BentoML restarted, or one that outlived its arbiter.
        proc = subprocess.Popen(
            command, cwd=cwd, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        tree = ProcessTree(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                output = log.read()
                if "Address already in use" in output:
                    break  # retry on another port
                raise RuntimeError(f"bentoml serve exited with {proc.returncode}:\n{output[-3000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                tree.stop(grace=0)
                raise RuntimeError("bentoml serve did not become ready")
            time.sleep(0.1)
        if proc.poll() is None:
            break
        log.close()
    else:
        raise RuntimeError("bentoml serve could not bind a free port in 5 attempts")
    tree.remember()
    try:
        yield base
    finally:
        tree.stop(grace=30)
        log.close()
        if "BENTOML_HOME" not in env:
            shutil.rmtree(home, ignore_errors=True)
