"""Two-node training: ``torchrun --nnodes=2`` on two network namespaces joined by a veth pair.

Each namespace stands for one machine: its own copy of the repository and data, its own network
(``lo`` and one end of the veth in 10.213.77.0/30: no route, no NAT, nothing leaves the machine),
c10d rendezvous hosted by node 0, gloo over the veth. docs/ shows the same command for two real
machines.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cnnpipe.errors import CnnpipeError
from cnnpipe.train import distributed
from serving.launch import free_port

from .pipeline import TORCHRUN, classifier_weights, edit_params, env, fetch_cifar10, tiny_pipeline_repo

IFNAME = "eth-cnn"  # the veth end in each namespace: the only interface besides lo
ADDRS = ("10.213.77.1", "10.213.77.2")  # a /30 of 10/8 that nothing here routes
EPOCHS = 6  # 5 steps each on the tiny data: long enough to kill a node during epoch 3
CHECKPOINT = Path("checkpoints/classifier_last.pt")
OUTPUT = Path("models/classifier.pt")
_netns_serial = itertools.count()


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True)


def _remove_stale_namespaces() -> None:
    """Namespaces an earlier, killed test run left behind (its pid is gone)."""
    for line in _ip("netns", "list").stdout.splitlines():
        name = line.split()[0]
        owner = re.fullmatch(r"cnnpipe-(\d+)-\d+-[01]", name)
        if owner and not Path(f"/proc/{owner[1]}").exists():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture(scope="module")
def netns_allowed() -> None:
    """Skip, before any repository is built, where network namespaces cannot be made."""
    if os.geteuid() != 0:
        pytest.skip("making network namespaces (ip netns add) needs root")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2) to make network namespaces")
    _remove_stale_namespaces()
    probe = f"cnnpipe-{os.getpid()}-{next(_netns_serial)}-0"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot make a network namespace here: {exc.stderr.strip()}")
    _ip("netns", "del", probe)


@pytest.fixture
def netns(netns_allowed: None) -> Iterator[tuple[str, str]]:
    """Two fresh network namespaces joined by a veth pair, ``lo`` up in each; deleted afterwards."""
    serial = next(_netns_serial)
    names = (f"cnnpipe-{os.getpid()}-{serial}-0", f"cnnpipe-{os.getpid()}-{serial}-1")
    made: list[str] = []
    try:
        for name in names:
            _ip("netns", "add", name)
            made.append(name)
        # created inside the namespaces: the pair never exists in the host's network
        _ip("link", "add", IFNAME, "netns", names[0], "type", "veth", "peer", "name", IFNAME, "netns", names[1])
        for name, addr in zip(names, ADDRS, strict=True):
            _ip("-n", name, "addr", "add", f"{addr}/30", "dev", IFNAME)
            _ip("-n", name, "link", "set", IFNAME, "up")
            _ip("-n", name, "link", "set", "lo", "up")
        yield names
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture(scope="module")
def machines(netns_allowed: None, tmp_path_factory: pytest.TempPathFactory, tiny_archives) -> tuple[Path, Path]:
    """Two copies of the repository, each with the tiny CIFAR-10 fetched: one per machine."""
    repos = []
    for name in ("machine-a", "machine-b"):
        repo = tiny_pipeline_repo(tmp_path_factory.mktemp(name), tiny_archives)
        edit_params(repo, {"classifier": {"epochs": EPOCHS, "widths": [8, 16, 16], "batch_size": 64, "lr": 0.4}})
        fetch_cifar10(repo)
        repos.append(repo)
    return repos[0], repos[1]


def _clear_outputs(*repos: Path) -> None:
    for repo in repos:
        for path in (repo / CHECKPOINT, repo / OUTPUT):
            path.unlink(missing_ok=True)


def _train_env(repo: Path, timeout: int) -> dict[str, str]:
    # One thread everywhere: torchrun sets it only for several processes per node, and the same
    # thread count keeps the CPU kernels' summation order, hence bitwise comparable weights.
    return env(repo, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME=IFNAME, CNNPIPE_DIST_TIMEOUT=str(timeout))


@pytest.fixture(scope="module")
def one_node_weights(machines: tuple[Path, Path]) -> dict:
    """Machine A alone: torchrun with two processes, the same global batch of 64 as two nodes × one."""
    repo = machines[0]
    _clear_outputs(repo)
    one = subprocess.run(
        [*TORCHRUN, "--standalone", "--nproc-per-node=2", "-m", "stages.train_classifier"],
        cwd=repo,
        env=env(repo, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    weights = classifier_weights(repo)
    _clear_outputs(repo)
    return weights


def _start_nodes(
    netns: tuple[str, str], machines: tuple[Path, Path], logs: Path, timeout: int = 60
) -> list[subprocess.Popen[str]]:
    """``torchrun --nnodes=2`` in each namespace, as docs/ runs it on two machines; collectives
    time out after ``timeout`` seconds (CNNPIPE_DIST_TIMEOUT)."""
    logs.mkdir(exist_ok=True)
    endpoint = f"{ADDRS[0]}:{free_port()}"  # a fresh namespace listens nowhere: any port is free there
    procs = []
    for rank, (name, addr, repo) in enumerate(zip(netns, ADDRS, machines, strict=True)):
        command = [
            "ip",
            "netns",
            "exec",
            name,
            *TORCHRUN,
            "--nnodes=2",
            "--nproc-per-node=1",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}",
            f"--rdzv-id=cnnpipe-{netns[0]}",
            f"--rdzv-conf=join_timeout=90,is_host={int(rank == 0)}",  # the hostname is not on the veth
            f"--local-addr={addr}",  # the address c10d orders nodes by: 10.213.77.1 becomes rank 0
            "-m",
            "stages.train_classifier",
        ]
        with (logs / f"node{rank}.stderr").open("w") as stderr:  # the child keeps its own copy
            procs.append(
                subprocess.Popen(
                    command, cwd=repo, env=_train_env(repo, timeout), stdout=subprocess.PIPE, stderr=stderr, text=True
                )
            )
    return procs


def _finish(procs: list[subprocess.Popen[str]], timeout: float) -> list[str]:
    try:
        return [proc.communicate(timeout=timeout)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel())


@pytest.mark.slow
def test_two_nodes_end_with_the_weights_of_one_node_with_the_same_global_batch(
    netns: tuple[str, str], machines: tuple[Path, Path], one_node_weights: dict, tmp_path: Path
) -> None:
    _clear_outputs(*machines)
    stdout = _finish(_start_nodes(netns, machines, tmp_path), timeout=300)
    errors = [(tmp_path / f"node{rank}.stderr").read_text()[-3000:] for rank in (0, 1)]
    assert "wrote models/classifier.pt" in stdout[0], errors
    assert "2 process(es)" in stdout[0]
    assert not (machines[1] / OUTPUT).exists()  # rank 0 alone writes, on its own disk

    # Tolerance 0: both runs do the same arithmetic. Same data, order and augmentation, the same
    # per-rank batch-norm batches (32 images each), one CPU thread per rank, and gloo's average of
    # two gradients (a + b is exact-commutative) whether the peer is on the same node or the other.
    diff = _max_abs_diff(one_node_weights, classifier_weights(machines[0]))
    print(f"two nodes vs one node, same global batch: max abs weight difference {diff:.3g}")
    assert diff == 0


def _kill_node(name: str) -> None:
    """SIGKILL every process in the namespace: the machine's torchrun and its worker are gone."""
    for pid in _ip("netns", "pids", name).stdout.split():
        with contextlib.suppress(ProcessLookupError):  # ended by itself meanwhile
            os.kill(int(pid), signal.SIGKILL)


def _lose_node_mid_run(procs: list[subprocess.Popen[str]], lose: Callable[[], None]) -> tuple[str, float]:
    """Wait for node 0 to finish epoch 2 (its checkpoint written), ``lose()`` node 1, and
    return node 0's remaining stdout and how long its torchrun took to exit after that."""
    assert procs[0].stdout is not None
    for line in procs[0].stdout:
        if line.startswith("epoch=2 "):
            break
    lost = time.monotonic()
    lose()
    try:
        rest = procs[0].communicate(timeout=150)[0]
    finally:
        _finish(procs, timeout=10)
    return rest, time.monotonic() - lost


@pytest.mark.slow
def test_a_killed_node_is_reported_not_hung_and_both_nodes_resume(
    netns: tuple[str, str], machines: tuple[Path, Path], one_node_weights: dict, tmp_path: Path
) -> None:
    _clear_outputs(*machines)
    procs = _start_nodes(netns, machines, tmp_path)
    rest, took = _lose_node_mid_run(procs, lambda: _kill_node(netns[1]))
    log = (tmp_path / "node0.stderr").read_text()
    print(f"node 1 killed: node 0's torchrun exited {procs[0].returncode} after {took:.1f} s:\n{log[-2500:]}")
    assert procs[0].returncode != 0 and "wrote" not in rest
    # torchrun's report (the stage's @record) gives the root cause: gloo lost the peer at node 1's address
    assert "ChildFailedError" in log and "stages.train_classifier FAILED" in log, log[-3000:]
    cause = log.split("Root Cause")[-1]
    assert re.search(r"Connection (reset|closed) by peer", cause) and f"[{ADDRS[1]}]" in cause, log[-3000:]
    assert took < 60

    # Machine B has no checkpoint (rank 0 writes on A): rank 0's decides for both nodes.
    assert (machines[0] / CHECKPOINT).exists() and not (machines[1] / CHECKPOINT).exists()
    stdout = _finish(_start_nodes(netns, machines, tmp_path / "resumed"), timeout=300)
    errors = (tmp_path / "resumed/node1.stderr").read_text()[-3000:]
    assert re.search(r"resuming from checkpoints/classifier_last.pt after epoch [23]\n", stdout[0]), errors
    assert "wrote models/classifier.pt" in stdout[0], errors
    diff = _max_abs_diff(one_node_weights, classifier_weights(machines[0]))
    print(f"resumed two-node run vs uninterrupted one-node run: max abs weight difference {diff:.3g}")
    assert diff == 0


@pytest.mark.slow
def test_a_node_cut_off_without_a_word_fails_the_other_after_the_collective_timeout(
    netns: tuple[str, str], machines: tuple[Path, Path], tmp_path: Path
) -> None:
    def power_off() -> None:  # the link goes first: no FIN or RST reaches node 0, as when a machine dies
        _ip("-n", netns[1], "link", "set", IFNAME, "down")
        _kill_node(netns[1])

    _clear_outputs(*machines)
    procs = _start_nodes(netns, machines, tmp_path, timeout=15)
    rest, took = _lose_node_mid_run(procs, power_off)
    log = (tmp_path / "node0.stderr").read_text()
    print(f"node 1 cut off: node 0's torchrun exited {procs[0].returncode} after {took:.1f} s:\n{log[-2500:]}")
    assert procs[0].returncode != 0 and "wrote" not in rest
    assert "ChildFailedError" in log and "stages.train_classifier FAILED" in log, log[-3000:]
    # gloo's timeout: the op that timed out raises "Timed out waiting 15000ms", and gloo closes every
    # pair of the context with "Application timeout caused pair closure" (gloo unbound_buffer.cc), so
    # whichever op the worker was blocked in surfaces one or the other as the root cause.
    cause = log.split("Root Cause")[-1]
    assert re.search(r"Timed out waiting 15000ms|Application timeout caused pair closure", cause), log[-3000:]
    assert 10 < took < 90  # the 15 s CNNPIPE_DIST_TIMEOUT, not torch's 30 minutes


@pytest.mark.parametrize("raw", ["", "soon", "0", "-5", "nan", "inf"])
def test_a_bad_collective_timeout_is_a_one_line_error(raw: str) -> None:
    with pytest.raises(CnnpipeError, match="CNNPIPE_DIST_TIMEOUT must be a positive number of seconds"):
        distributed.collective_timeout({"CNNPIPE_DIST_TIMEOUT": raw})


def test_the_collective_timeout_is_torchs_default_unless_set() -> None:
    assert distributed.collective_timeout({}) is None
    assert distributed.collective_timeout({"CNNPIPE_DIST_TIMEOUT": "2.5"}) == timedelta(seconds=2.5)
