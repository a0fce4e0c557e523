"""benchmarks/serving_cost.py's split of a server's CPU: its workers' main threads (the event
loops) apart from their other threads (the model calls), the listener itself not counted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.serving_cost import worker_threads

# A child that burns 0.3 s of CPU on its main thread and 0.6 s on another thread that then ends
# (its time still counts), then says so.
WORKER = """
import threading, time
def spin(seconds):
    t = time.thread_time()
    while time.thread_time() - t < seconds:
        pass
other = threading.Thread(target=spin, args=(0.6,))
other.start()
spin(0.3)
other.join()
print("spun", flush=True)
input()
"""
# Listens (as BentoML's arbiter does), starts the worker on "go" and burns nothing itself.
LISTENER = f"""
import socket, subprocess, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
child = subprocess.Popen([sys.executable, "-c", {WORKER!r}], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
print("started", flush=True)
print(child.stdout.readline(), end="", flush=True)
sys.stdin.readline()
child.communicate("\\n")
"""


def test_the_event_loop_threads_and_the_model_threads_are_counted_apart() -> None:
    proc = subprocess.Popen([sys.executable, "-c", LISTENER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        port = int(proc.stdout.readline())
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "started"
        used = worker_threads(port)
        assert proc.stdout.readline().strip() == "spun"
        loop, other = used()
        assert loop == pytest.approx(0.3, abs=0.1) and other == pytest.approx(0.6, abs=0.1), (loop, other)
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
    finally:
        proc.kill()
