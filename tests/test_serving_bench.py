"""benchmarks/serving.py's CPU accounting: the server's clock covers the process that listens and
its children (BentoML's workers), and nothing else."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("serving_bench", ROOT / "benchmarks/serving.py")
assert _spec is not None and _spec.loader is not None
serving_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serving_bench)

SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6:\n    pass\n"
# Listens, then on "go" starts a child; each burns 0.6 s of CPU (on any load) and says so, then both wait.
LISTENER = f"""
import socket, subprocess, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
child = subprocess.Popen([sys.executable, "-c", {SPIN + 'print("spun", flush=True)' + chr(10) + "input()"!r}],
                         stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
exec({SPIN!r})
child.stdout.readline()
print("spun", flush=True)
sys.stdin.readline()
child.communicate("\\n")
"""


def test_the_server_clock_counts_the_listener_and_its_children_only() -> None:
    proc = subprocess.Popen([sys.executable, "-c", LISTENER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        clock = serving_bench.server_cpu(int(proc.stdout.readline()))
        before = clock()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "spun\n"
        spent = clock() - before
        ours = time.process_time()
        while time.process_time() - ours < 0.3:  # this process's CPU is the client's, not the server's
            pass
        assert 1.1 < spent < 2.0, spent  # 2 × 0.6 s spun, plus the child's interpreter start
        assert clock() - before - spent < 0.1
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)


def test_a_port_nobody_listens_on_is_an_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening
        port = s.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"no process listens on port {port}"):
            serving_bench.server_cpu(port)


# Two sibling processes share one listening socket, as BentoML's workers do; their parent closes
# its copy. Each spins 0.6 s of CPU on "go" and says so.
SHARED = f"""
import socket, subprocess, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
code = ("import socket, sys\\nsock = socket.socket(fileno=int(sys.argv[1]))\\ninput()\\n"
        + {SPIN!r} + "print('spun', flush=True)\\ninput()")
kids = [subprocess.Popen([sys.executable, "-c", code, str(s.fileno())], pass_fds=[s.fileno()],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
port = s.getsockname()[1]
s.close()
print(port, flush=True)
sys.stdin.readline()
for kid in kids:
    kid.stdin.write("go\\n"); kid.stdin.flush()
for kid in kids:
    kid.stdout.readline()
print("spun", flush=True)
sys.stdin.readline()
for kid in kids:
    kid.communicate("\\n")
"""


def test_the_server_clock_counts_every_process_sharing_the_listening_socket() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SHARED], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        port = int(proc.stdout.readline())
        time.sleep(1)  # the children are listening by now (they hold the socket from their start)
        clock = serving_bench.server_cpu(port)
        before = clock()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "spun\n"
        assert 1.1 < clock() - before < 1.6  # both siblings' 0.6 s, not one's
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
