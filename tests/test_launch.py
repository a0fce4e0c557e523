"""serving/launch.py's port choice: never a port someone holds, never one from the range the
kernel hands outgoing connections (which could take it before the server binds it)."""

from __future__ import annotations

import socket

import pytest

from serving import launch


def test_free_ports_are_bindable_and_below_the_ephemeral_range() -> None:
    low = launch._ephemeral_low()
    for _ in range(50):
        port = launch.free_port()
        assert 10000 <= port < low
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


def test_a_held_port_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        free = spare.getsockname()[1]  # closed again below: free for the draw
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        draws = iter([held.getsockname()[1], held.getsockname()[1], free])
        monkeypatch.setattr(launch.random, "randrange", lambda *_: next(draws))
        assert launch.free_port() == free


def test_a_range_with_nothing_free_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        monkeypatch.setattr(launch.random, "randrange", lambda *_: held.getsockname()[1])
        with pytest.raises(RuntimeError, match=r"no free port found in 10000\.\.\d+"):
            launch.free_port()
