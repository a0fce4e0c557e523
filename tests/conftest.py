"""Shared fixtures: generated archives in the official layouts and a real HTTP server on loopback."""

from __future__ import annotations

import atexit
import functools
import http.server
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnpipe.data.sample import SAMPLE_SIZES, write_archives

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
# BentoML keeps task results and builds under BENTOML_HOME: keep the tests' out of ~/bentoml.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="cnnpipe-tests-bentoml-")

from .once import built_once
from .pipeline import REPO, Reproduced, dvc, tiny_pipeline_repo

atexit.register(shutil.rmtree, os.environ["BENTOML_HOME"], ignore_errors=True)

__all__ = ["REPO"]


@pytest.fixture(scope="session")
def tiny_archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """The tiny generated CIFAR-10 binary and BSDS300 archives: dataset → (path, md5). Built once
    per run (tests/once.py): the shared tiny `dvc repro` reads them by path."""

    def build(folder: Path) -> None:
        written = write_archives(folder, SAMPLE_SIZES["tiny"])
        (folder / "md5.json").write_text(json.dumps({name: [p.name, md5] for name, (p, md5) in written.items()}))

    folder = built_once(tmp_path_factory, "archives", build)
    listed = json.loads((folder / "md5.json").read_text())
    return {name: (folder / filename, md5) for name, (filename, md5) in listed.items()}


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files; ``/short/NAME`` promises the full length but sends only half the bytes."""

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/short/"):
            data = Path(self.directory, self.path.removeprefix("/short/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small untrained CIFAR-10 classifier checkpoint (seed 0) for the look-inside commands."""
    import torch

    from cnnpipe.data.cifar10 import CLASSES
    from cnnpipe.models.checkpoint import build_classifier, save_checkpoint

    torch.manual_seed(0)
    config = {"arch": "airbench", "classes": list(CLASSES), "widths": [8, 16, 16]}
    path = tmp_path_factory.mktemp("classifier") / "classifier.pt"
    save_checkpoint(path, build_classifier(config), config)
    return path


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a temporary folder: (base URL, folder)."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory: pytest.TempPathFactory, tiny_archives) -> Reproduced:
    """The suite's one full tiny `dvc repro` (a minute of CPU): the pipeline, runs-compared and
    serving tests start from copies of it instead of each training their own. Built once per run,
    not per test process (tests/once.py)."""

    def build(folder: Path) -> None:
        repo = tiny_pipeline_repo(folder / "repo", tiny_archives)
        (folder / "repro.log").write_text(dvc(repo, "repro").stdout)

    folder = built_once(tmp_path_factory, "reproduced", build)
    return Reproduced(folder / "repo", (folder / "repro.log").read_text())


@pytest.fixture(scope="session")
def served_models(tmp_path_factory: pytest.TempPathFactory, reproduced: Reproduced) -> Path:
    """models/ (ONNX exports plus the PyTorch checkpoints) of a copy of the tiny `dvc repro`'s repo:
    servers started on it write their logs beside it, and tests read the run's commit and metrics
    there (``served_models.parent``) or build a Bento from it."""
    return reproduced.copy_to(tmp_path_factory.mktemp("served") / "repo") / "models"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    """Keeps each phase's report on the test (``item.rep_call``), so a fixture can tell a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
