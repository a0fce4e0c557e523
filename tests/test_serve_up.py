"""`make serve` as a new user meets it: after a demo-style `dvc exp run --temp` (models only in an
unapplied experiment), one command starts both servers on that experiment's models, a classify
answers over HTTP and gRPC, SIGTERM stops both with every process gone, and `git status` is as
clean as before."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from PIL import Image

from cnnpipe.serve.v1 import inference_pb2 as pb
from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc
from serving.launch import free_port

from .pipeline import Reproduced, dvc, env, git, tiny_pipeline_repo

pytestmark = pytest.mark.slow


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory, tiny_archives, reproduced: Reproduced) -> Path:
    """A fresh-clone-like copy whose only run is a `dvc exp run --temp`, as `make demo` leaves it.
    Its DVC cache starts as the suite's tiny `dvc repro` left it, so the experiment's stages come
    from DVC's run cache instead of training again (the same params, code and data)."""
    repo = tiny_pipeline_repo(tmp_path_factory.mktemp("demo"), tiny_archives)
    shutil.copytree(reproduced.repo / ".dvc/cache", repo / ".dvc/cache")
    ran = dvc(repo, "exp", "run", "--temp")
    assert "is cached - skipping run" in ran.stdout + ran.stderr, ran.stdout
    assert not (repo / "models").exists(), "the experiment was applied: models/ is in the workspace"
    return repo


class MakeServe:
    """`make serve` in a repo, in its own process group; its output read by a thread."""

    def __init__(self, repo: Path, *make_args: str) -> None:
        self.http_port, self.grpc_port = free_port(), free_port()
        venv = Path(sys.prefix)
        command = ["make", "-s", "-C", str(repo), "serve", f"VENV={venv}", "-o", f"{venv}/.installed"]
        command += [f"HTTP_PORT={self.http_port}", f"GRPC_PORT={self.grpc_port}", *make_args]
        self.proc = subprocess.Popen(
            command,
            env=env(repo),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout or ()), daemon=True).start()

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None:
                time.sleep(0.5)  # let the reader thread catch up
                if text in self.output():
                    return
                pytest.fail(f"make serve exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"no {text!r} after {timeout} s:\n{self.output()[-4000:]}")
            time.sleep(0.3)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(f"{pid}: {cmdline[:200]}")
    return found


@pytest.fixture
def served(demo_repo: Path) -> Iterator[MakeServe]:
    run = MakeServe(demo_repo)
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
        for line in _processes_mentioning(f"{demo_repo}/.serve"):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


def test_make_serve_serves_the_demo_experiment_over_both_protocols_and_stops_on_sigterm(
    demo_repo: Path, served: MakeServe
) -> None:
    status_before = git(demo_repo, "status", "--porcelain")
    params_before = (demo_repo / "params.yaml").read_bytes()
    served.wait_for("Ctrl-C (or SIGTERM) stops both.")
    text = served.output()
    assert "Serving experiment " in text and ".serve/" in text, text
    assert f"http://localhost:{served.http_port}/ui/" in text
    assert f"localhost:{served.grpc_port}" in text

    answer = httpx.post(
        f"http://127.0.0.1:{served.http_port}/classify", files={"image": ("red.png", _png())}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()) == 1 and answer.json()[0]["label"]
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        reply = pb_grpc.InferenceStub(channel).Classify(pb.ClassifyRequest(image=_png()), timeout=60)
    assert reply.label == answer.json()[0]["label"]

    os.kill(served.proc.pid, signal.SIGTERM)  # make's pid: make passes SIGTERM on to its recipe
    # make waits for the recipe, then dies of the signal it got, as the shell convention wants
    assert served.proc.wait(timeout=90) == -signal.SIGTERM, served.output()[-3000:]
    time.sleep(1)
    assert served.output().rstrip().endswith("stopped"), served.output()[-3000:]
    assert _processes_mentioning(f"{demo_repo}/.serve") == []
    assert "Traceback" not in served.output()
    assert git(demo_repo, "status", "--porcelain") == status_before == ""
    assert (demo_repo / "params.yaml").read_bytes() == params_before
    assert not (demo_repo / "models").exists()


def test_an_unknown_experiment_is_one_line_and_nothing_starts(demo_repo: Path) -> None:
    run = MakeServe(demo_repo, "EXP=no-such-exp")
    assert run.proc.wait(timeout=120) != 0
    time.sleep(0.5)
    errors = [line for line in run.output().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no experiment named 'no-such-exp'" in errors[0], run.output()
    assert "Traceback" not in run.output()


def _up(repo: Path, http_port: int) -> subprocess.CompletedProcess[str]:
    """`python -m serving.up` run to its end (for the cases that stop before any server starts)."""
    command = [sys.executable, "-m", "serving.up", "--http-port", str(http_port), "--grpc-port", str(free_port())]
    return subprocess.run(command, cwd=repo, env=env(repo), capture_output=True, text=True, timeout=120)


def test_a_busy_port_is_one_line(demo_repo: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _up(demo_repo, port)
    assert result.returncode == 1
    expected = f"error: port {port} on 127.0.0.1 is in use: choose another (make serve HTTP_PORT=...)"
    assert result.stderr.strip() == expected


def test_no_models_and_no_experiment_says_what_to_run(tmp_path: Path, tiny_archives) -> None:
    repo = tiny_pipeline_repo(tmp_path / "empty", tiny_archives)
    result = _up(repo, free_port())
    assert result.returncode == 1
    assert result.stderr.startswith("error: no models to serve") and "make demo" in result.stderr
    assert result.stderr.count("\n") == 1


def test_ctrl_c_stops_both_and_exits_zero(demo_repo: Path) -> None:
    """A terminal's Ctrl-C: SIGINT to the foreground process group (the servers have their own)."""
    http_port, grpc_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.up", "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
        cwd=demo_repo,
        env=env(demo_repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True).start()
    try:
        deadline = time.monotonic() + 240
        while "stops both" not in "".join(lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=90) == 0, "".join(lines)[-3000:]
        time.sleep(1)
        assert _processes_mentioning(f"{demo_repo}/.serve") == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_an_http_arbiter_killed_under_make_serve_takes_its_workers_and_the_grpc_server_along(
    demo_repo: Path, served: MakeServe
) -> None:
    """The OOM killer's case: `bentoml serve` SIGKILLed. Its workers (each in a session of its own)
    would keep the port; `make serve` says which server died and leaves no process behind."""
    import psutil

    from benchmarks.soak import listener_pid

    served.wait_for("Ctrl-C (or SIGTERM) stops both.")
    arbiter = psutil.Process(listener_pid(f"http://127.0.0.1:{served.http_port}"))
    assert arbiter.children(), "no BentoML worker under the arbiter"
    time.sleep(1)  # at least one of make serve's half-second looks at the tree
    arbiter.kill()
    assert served.proc.wait(timeout=90) != 0, served.output()[-3000:]
    time.sleep(1)
    assert "error: the HTTP server (bentoml serve) exited with status -9; stopping the other" in served.output()
    assert _processes_mentioning(f"{demo_repo}/.serve") == []
    assert "Traceback" not in served.output()
