"""Two BentoML workers behind one port: task progress, cancel and admission hold across them,
and a keep-alive connection is closed after its cap so connections get redrawn between workers.

Each test pins its connections to a worker: a connection's server end belongs to the worker
process that accepted it (psutil reads which), so a task submitted through worker A is polled,
refused beside and cancelled through worker B, which in-memory state would get wrong every time.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import uvicorn
from PIL import Image

from serving.keepalive import KeepAliveLimit
from serving.launch import bentoml_server, free_port
from serving.task_slots import TaskSlots

from .images import GOOD, encode, photo

pytestmark = pytest.mark.slow
# Pinned connections must outlive a test's polling: the cap itself is tested on its own, below.
LONG_KEEPALIVE = {"CNNPIPE_KEEPALIVE_REQUESTS": "1000"}


class Connection:
    """One keep-alive HTTP/1.1 connection (``http.client``, which never reconnects behind our
    back while the server keeps the connection open) and the server process at its other end."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.conn = http.client.HTTPConnection(host, self.port, timeout=120)
        self.call("GET", "/livez")  # a round trip: the connection is accepted by now
        self.local_port = self.conn.sock.getsockname()[1]
        self.pid = self.server_pid()

    def server_pid(self) -> int | None:
        for c in psutil.net_connections(kind="tcp"):
            if c.laddr and c.raddr and c.laddr.port == self.port and c.raddr.port == self.local_port and c.pid:
                return c.pid
        return None

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, Any]:
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        data = response.read()
        assert not response.will_close, f"{path}: the server closed a connection a test pins to a worker"
        is_json = response.getheader("content-type", "").startswith("application/json")
        return response.status, json.loads(data) if is_json else data

    def ping(self) -> None:
        """A request on the connection, so the worker does not close it as idle."""
        assert self.call("GET", "/livez")[0] == 200

    def post_json(self, path: str, body: dict) -> tuple[int, Any]:
        return self.call("POST", path, json.dumps(body).encode(), {"content-type": "application/json"})

    def post_form(self, path: str, image: bytes, **fields: object) -> tuple[int, Any]:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n".encode()
            + image
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return self.call("POST", path, b"".join(parts), {"content-type": f"multipart/form-data; boundary={boundary}"})

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def base(served_models: Path) -> Iterator[str]:
    with bentoml_server(
        served_models, CNNPIPE_WORKERS="2", CNNPIPE_THREADS="1", CNNPIPE_DREAM_QUEUE="1", **LONG_KEEPALIVE
    ) as url:
        yield url


@pytest.fixture(scope="module")
def workers(base: str) -> Iterator[tuple[Connection, Connection]]:
    """A connection to each of the two workers. /readyz answers once one worker is up, so
    connections are opened until the second has one too; the ones kept are pinged meanwhile, as
    a worker closes a connection idle for 5 s."""
    found: dict[int, Connection] = {}
    deadline = time.monotonic() + 180
    while len(found) < 2:
        assert time.monotonic() < deadline, f"3 minutes of connections all reached one worker: {set(found)}"
        connection = Connection(base)
        if connection.pid is not None and connection.pid not in found:
            found[connection.pid] = connection
        else:
            connection.close()
        for kept in found.values():
            kept.ping()
        time.sleep(0.1)
    first, second = found.values()
    yield first, second
    first.close()
    second.close()


def test_the_server_runs_two_workers_under_one_arbiter(workers: tuple[Connection, Connection]) -> None:
    a, b = workers
    assert a.pid != b.pid
    assert psutil.Process(a.pid).ppid() == psutil.Process(b.pid).ppid()  # one BentoML server


def test_a_task_run_by_one_worker_is_admitted_polled_and_cancelled_through_the_other(
    workers: tuple[Connection, Connection],
) -> None:
    a, b = workers
    big = encode(Image.fromarray(photo(512, 512)))
    status, submitted = a.post_form("/deepdream_task/submit", big, octaves=4, steps=100)
    assert status == 200, submitted
    task_id = submitted["task_id"]

    status, refused = b.post_form("/deepdream_task/submit", GOOD["rgb png"], steps=1)  # one slot, held by a
    assert status == 429 and "queue is full" in refused["error"]

    deadline = time.monotonic() + 240
    while (state := b.post_json("/deepdream_progress", {"task_id": task_id})[1])["fraction"] == 0:
        assert time.monotonic() < deadline, "worker b never saw the task start"
        a.ping()
        time.sleep(0.5)
    assert 0 < state["fraction"] < 1 and state["done"] is False

    status, asked = b.post_json("/deepdream_cancel", {"task_id": task_id})
    assert status == 200 and asked["cancel_requested"] is True
    while (task := b.call("GET", f"/deepdream_task/status?task_id={task_id}")[1])["status"] == "in_progress":
        assert time.monotonic() < deadline, "the cancel sent to worker b never stopped the task on worker a"
        a.ping()
        time.sleep(0.5)
    state = a.post_json("/deepdream_progress", {"task_id": task_id})[1]
    assert task["status"] == "failed" and state["cancelled"] is True and state["done"] is True
    assert state["error"].startswith("cancelled at octave") and state["fraction"] < 1

    # The slot is free again once worker a has unwound the task's request (just after its status).
    while (again := b.post_form("/deepdream_task/submit", GOOD["rgb png"], steps=1))[0] == 429:
        assert time.monotonic() < deadline, "the cancelled task's slot was never freed"
        a.ping()
        time.sleep(0.2)
    status, submitted_again = again
    assert status == 200, submitted_again
    again_id = submitted_again["task_id"]
    while b.call("GET", f"/deepdream_task/status?task_id={again_id}")[1]["status"] == "in_progress":
        assert time.monotonic() < deadline, "the second task never ended"
        a.ping()
        time.sleep(0.5)
    assert a.post_json("/deepdream_progress", {"task_id": again_id})[1]["fraction"] == 1.0


def _hold_a_slot(folder: str, taken: Any) -> None:
    with TaskSlots(Path(folder), 1).take() as held:
        taken.put(held)
        time.sleep(600)


def test_a_slot_held_by_a_process_that_dies_is_free_again(tmp_path: Path) -> None:
    slots = TaskSlots(tmp_path / "slots", 1)
    taken: Any = multiprocessing.get_context("spawn").Queue()
    holder = multiprocessing.get_context("spawn").Process(target=_hold_a_slot, args=(str(slots.folder), taken))
    holder.start()
    try:
        assert taken.get(timeout=60) is True
        with slots.take() as held:
            assert held is False  # the other process has the only slot
        os.kill(holder.pid, signal.SIGKILL)  # no clean-up runs
        holder.join(timeout=30)
        with slots.take() as held:
            assert held is True
            with slots.take() as second:
                assert second is False  # requests in one process contend as processes do
    finally:
        holder.kill()


async def _ok(scope: dict, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def capped_server() -> Iterator[int]:
    """uvicorn (BentoML's HTTP server) serving a bare app behind KeepAliveLimit(requests=3)."""
    port = free_port()
    config = uvicorn.Config(KeepAliveLimit(_ok, requests=3), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=30)


def _read_response(stream: Any) -> tuple[dict[str, str], bytes]:
    """One HTTP/1.1 response off a buffered socket stream: its headers (lower-case) and body."""
    assert stream.readline().startswith(b"HTTP/1.1 200")
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, stream.read(int(headers["content-length"]))


def test_a_keep_alive_connection_is_closed_after_its_cap(capped_server: int) -> None:
    with socket.create_connection(("127.0.0.1", capped_server), timeout=30) as sock:
        stream = sock.makefile("rb")
        for number in (1, 2, 3):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            headers, body = _read_response(stream)
            assert body == b"ok" and (headers.get("connection") == "close") == (number == 3), (number, headers)
        assert stream.read() == b""  # the server closed it after the third answer
    conn = http.client.HTTPConnection("127.0.0.1", capped_server, timeout=30)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"ok"  # a new connection starts its own count
    conn.close()


def test_requests_a_local_proxy_forwarded_are_not_counted(capped_server: int) -> None:
    """uvicorn swaps a trusted local proxy's X-Forwarded-For in for the client address, port 0:
    such a request's connection cannot be told apart, so the cap leaves it alone."""
    conn = http.client.HTTPConnection("127.0.0.1", capped_server, timeout=30)
    for _ in range(5):
        conn.request("GET", "/", headers={"X-Forwarded-For": "10.1.2.3"})
        response = conn.getresponse()
        assert response.read() == b"ok" and response.getheader("connection") is None
    conn.close()
