"""serving/launch.py's port choice: never a port someone holds, and, where the kernel leaves room,
never one from the range it hands outgoing connections (which could take it before the server
binds it)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from serving import launch


def test_free_ports_are_bindable_and_outside_this_machine_s_ephemeral_range() -> None:
    low, high = launch.safe_port_range()
    first, last = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert high <= first or low > last  # this machine's range leaves room (Linux's default does)
    for _ in range(50):
        port = launch.free_port()
        assert low <= port < high
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("ephemeral", "safe"),
    [
        ("32768\t60999\n", (10000, 32768)),  # Linux's default: below it
        ("12000 50000", (50001, 65536)),  # too little below: above it
        ("1024 65000", (10000, 65536)),  # no room either side
        ("", (10000, 32768)),  # unreadable: Linux's default assumed
    ],
)
def test_the_safe_range_lies_outside_the_ephemeral_one(tmp_path: Path, ephemeral: str, safe: tuple[int, int]) -> None:
    path = tmp_path / "ip_local_port_range"
    path.write_text(ephemeral)
    assert launch.safe_port_range(path) == safe


def test_a_held_port_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held, socket.socket() as spare:
        held.bind(("127.0.0.1", 0))
        held.listen()
        spare.bind(("127.0.0.1", 0))
        free = spare.getsockname()[1]
        spare.close()  # free now, and not held's port
        draws = iter([held.getsockname()[1], held.getsockname()[1], free])
        monkeypatch.setattr(launch._random, "randrange", lambda *_: next(draws))
        assert launch.free_port() == free


def test_a_range_with_nothing_free_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        monkeypatch.setattr(launch._random, "randrange", lambda *_: held.getsockname()[1])
        with pytest.raises(RuntimeError, match=r"no free port found in \d+\.\.\d+"):
            launch.free_port()
