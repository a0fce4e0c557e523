"""Start the real servers as subprocesses on 127.0.0.1 and wait until they answer."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .pipeline import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(models: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}",
        "CNNPIPE_MODELS_DIR": str(models),
        "BENTOML_DO_NOT_TRACK": "true",
        **extra,
    }


@contextmanager
def grpc_server(models: Path, *args: str, **env: str) -> Iterator[str]:
    """``cnnpipe serve-grpc`` on a free port; yields "127.0.0.1:PORT"."""
    command = [sys.executable, "-m", "cnnpipe.cli", "serve-grpc", "--models", str(models), "--port", "0", *args]
    proc = subprocess.Popen(
        command, env=server_env(models, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        if not match:
            raise RuntimeError(f"gRPC server did not start: {line}{proc.stdout.read()}")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def bentoml_server(models: Path, timeout: float = 120, **env: str) -> Iterator[str]:
    """``bentoml serve serving.service:Cnnpipe`` on a free port; yields its base URL once /readyz is OK."""
    import httpx

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:Cnnpipe",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = open(models.parent / f"bentoml-{port}.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(command, cwd=REPO, env=server_env(models, **env), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"bentoml serve exited with {proc.returncode}:\n{log.read()[-3000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("bentoml serve did not become ready")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
