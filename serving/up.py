"""``make serve``: both servers on the models of the workspace or of a DVC experiment, in one command.

    python -m serving.up                 # models/ if the workspace has them, else the newest experiment's
    python -m serving.up --exp NAME      # one experiment's (``dvc exp show`` lists them)

``make demo`` leaves its models in an unapplied experiment, and ``dvc exp apply`` would rewrite
``params.yaml``; instead the experiment's ``models/`` is read through DVC's file system
(``dvc.api.DVCFileSystem`` at the experiment's commit, from the local cache) into the git-ignored
``.serve/<sha>/``, so ``params.yaml``, ``dvc.lock`` and the workspace stay as they are. Then
``bentoml serve`` and ``cnnpipe serve-grpc`` start in their own process groups; Ctrl-C or SIGTERM
stops both (SIGTERM, then SIGKILL after a grace period), and if either dies the other is stopped,
and so is every worker the dead one started (BentoML's workers would otherwise keep the port).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from cnnpipe import paths
from cnnpipe.errors import CnnpipeError
from serving.environment import REPO, port_free, server_env
from serving.process_tree import ProcessTree

SERVE_CACHE = Path(".serve")
"""Where an experiment's models are copied, relative to the repository root (git-ignored)."""
NEEDED = paths.CLASSIFIER_ONNX.name  # the one model both servers need
STOP_GRACE = 30.0


class UpError(CnnpipeError):
    """Something the user can fix; printed as one ``error:`` line."""


@dataclass(frozen=True)
class ModelSource:
    """The folder the servers read and where it came from, in words."""

    folder: Path
    origin: str


def _experiments(repo: object) -> list[tuple[str, str]]:
    """Every experiment of the repository as (name, sha), any baseline commit."""
    listed = repo.experiments.ls(all_commits=True)  # type: ignore[attr-defined]
    return [(name, sha) for runs in listed.values() for name, sha in runs if sha]


def resolve_models(root: Path, experiment: str | None) -> ModelSource:
    """``models/`` of the workspace when it has a classifier and no experiment was asked for;
    otherwise the asked-for (or the newest) experiment's ``models/``, copied once into ``.serve/``."""
    workspace = root / "models"
    if experiment is None and (workspace / NEEDED).is_file():
        return ModelSource(workspace, "the workspace's models/")
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except NotDvcRepoError:
        raise UpError(f"{root} is not a DVC repository: run this from the cnnpipe checkout") from None
    with repo:
        runs = _experiments(repo)
        if experiment is not None:
            chosen = [(name, sha) for name, sha in runs if experiment in (name, sha, sha[:7])]
            if not chosen:
                names = ", ".join(sorted(name for name, _ in runs)) or "none"
                raise UpError(f"no experiment named {experiment!r} (experiments: {names}; `dvc exp show` lists them)")
        elif not runs:
            raise UpError(
                "no models to serve: models/ is empty and there is no DVC experiment; "
                "run `make demo` (or `dvc repro export_onnx export_sr`) first"
            )
        else:
            chosen = [max(runs, key=lambda run: repo.scm.resolve_commit(run[1]).commit_time)]
        name, sha = chosen[0]
        folder = root / SERVE_CACHE / sha[:12] / "models"
        if not (folder / NEEDED).is_file():
            _copy_models(root, sha, name, folder)
    return ModelSource(folder, f"experiment {name} ({sha[:7]}), copied to {folder.relative_to(root)}/")


def _copy_models(root: Path, sha: str, name: str, folder: Path) -> None:
    """``models/`` at the experiment's commit, whole or not at all (a temp folder, then a rename)."""
    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(str(root), rev=sha)  # a Repo object would be read at the workspace, not at rev
    if not fs.exists("models/" + NEEDED):
        raise UpError(f"experiment {name} has no models/{NEEDED}: it did not get as far as the export stages")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        fs.get("models", str(partial), recursive=True)
    except Exception as error:  # a cache without the files (another machine's experiment, gc'ed)
        shutil.rmtree(partial, ignore_errors=True)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UpError(f"cannot read experiment {name}'s models from the DVC cache ({first}); try `dvc pull`") from None
    partial.replace(folder)


def grpc_serving(address: str, timeout: float = 2) -> bool:
    """Whether the gRPC health service at ``address`` answers SERVING now (no answer: False)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.RpcError:
        return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def _ready(http_base: str, grpc_address: str) -> bool:
    import httpx

    try:
        if httpx.get(f"{http_base}/readyz", timeout=2).status_code != 200:
            return False
    except httpx.HTTPError:
        return False
    return grpc_serving(grpc_address)


class Servers:
    """The two server processes, each the leader of its own process group, and what each started
    (BentoML's workers sit in sessions of their own: see serving/process_tree.py)."""

    def __init__(self, models: Path, host: str, http_port: int, grpc_port: int) -> None:
        python = sys.executable
        env = server_env(models)
        target = "serving.service:Cnnpipe"
        http = [python, "-m", "bentoml", "serve", target, "--host", host, "--port", str(http_port)]
        grpc_ = [python, "-m", "cnnpipe.cli", "serve-grpc", "--models", str(models), "--host", host]
        grpc_ += ["--port", str(grpc_port)]
        self.trees = {
            "HTTP server (bentoml serve)": ProcessTree(
                subprocess.Popen(http, cwd=REPO, env=env, start_new_session=True)
            ),
            "gRPC server (cnnpipe serve-grpc)": ProcessTree(
                subprocess.Popen(grpc_, cwd=REPO, env=env, start_new_session=True)
            ),
        }

    def exited(self) -> tuple[str, int] | None:
        """The first server that exited, with its status; else ``None`` (and the trees re-read, so
        a worker started since is known if its arbiter dies later)."""
        for name, tree in self.trees.items():
            if tree.proc.poll() is not None:
                return name, tree.proc.returncode
            tree.remember()
        return None

    def stop(self) -> None:
        """SIGTERM to both, one shared grace period, then SIGKILL to whatever of either is left."""
        for tree in self.trees.values():
            tree.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for tree in self.trees.values():
            tree.wait(deadline - time.monotonic())
        for tree in self.trees.values():
            tree.kill()


class _Stop(Exception):
    pass


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--exp", help="serve this DVC experiment's models (default: models/, else the newest)")
    parser.add_argument("--host", default="127.0.0.1", help="address both servers bind (default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, default=3000)
    parser.add_argument("--grpc-port", type=int, default=50051)
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for both servers to be ready")
    args = parser.parse_args(argv)
    try:
        for port, knob in ((args.http_port, "HTTP_PORT"), (args.grpc_port, "GRPC_PORT")):
            if not port_free(args.host, port):
                raise UpError(f"port {port} on {args.host} is in use: choose another (make serve {knob}=...)")
        source = resolve_models(Path.cwd().resolve(), args.exp)
    except UpError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Serving {source.origin}", flush=True)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    servers = Servers(source.folder, args.host, args.http_port, args.grpc_port)
    shown = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host
    http_base = f"http://{shown}:{args.http_port}"
    grpc_address = f"{shown}:{args.grpc_port}"
    try:
        deadline = time.monotonic() + args.timeout
        while not _ready(f"http://{args.host}:{args.http_port}", f"{args.host}:{args.grpc_port}"):
            if (gone := servers.exited()) is not None:
                raise UpError(f"the {gone[0]} exited with status {gone[1]} before it was ready (its output is above)")
            if time.monotonic() > deadline:
                raise UpError(f"the servers were not ready after {args.timeout:.0f} s (their output is above)")
            time.sleep(0.5)
        print(
            "\ncnnpipe is up:\n"
            f"  page         {http_base}/ui/\n"
            f"  Swagger UI   {http_base}/   (OpenAPI: {http_base}/docs.json)\n"
            f"  gRPC         {grpc_address}   (cnnpipe.v1.Inference; reflection on)\n"
            "Ctrl-C (or SIGTERM) stops both.\n",
            flush=True,
        )
        while (gone := servers.exited()) is None:
            time.sleep(0.5)
        raise UpError(f"the {gone[0]} exited with status {gone[1]}; stopping the other")
    except _Stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stopping both servers …", file=sys.stderr, flush=True)
        servers.stop()
        print("stopped", file=sys.stderr, flush=True)
        return 0
    except UpError as error:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        servers.stop()
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
