"""Models checked before serving: each damaged model file stops both servers at start-up with
one line naming the file and the fix (exit status 1, no traceback, no restart loop), and the
checker itself tells every kind of damage apart."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from cnnpipe import paths
from cnnpipe.data.cifar10 import CLASSES
from cnnpipe.export.onnx import SR_DYNAMIC_AXES, export
from cnnpipe.models import integrity
from cnnpipe.models.checkpoint import build_classifier, build_sr, save_checkpoint
from cnnpipe.serve.core import ModelsMissing
from cnnpipe.serve.model_check import FIX, ModelCheckError, check_models
from serving.launch import REPO, free_port, server_env

CLASSIFIER_CONFIG = {"arch": "airbench", "classes": list(CLASSES), "widths": [8, 16, 16]}
SR_CONFIG = {"arch": "ressr", "scale": 2, "channels": 8, "blocks": 1}
START_DEADLINE = 180  # seconds for a server to refuse its models and exit, on a loaded 2-core machine


# ----------------------------------------------------------------------------- damage, as it happens


def _missing(path: Path) -> None:
    path.unlink()


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    """A copy cut short (`dvc pull` interrupted, a full disk): the first half of the bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    """As long as the file, random bytes."""
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _other_model(path: Path) -> None:
    """A valid model of the same task with different weights: one weight of the largest tensor
    changed; the metadata, graph and shapes are untouched."""
    model = onnx.load(str(path))
    largest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights = numpy_helper.to_array(largest).copy()
    weights.flat[0] += 1.0
    largest.CopyFrom(numpy_helper.from_array(weights, largest.name))
    onnx.save(model, str(path))


def _other_checkpoint(path: Path) -> None:
    """A valid classifier checkpoint of the same config, other weights."""
    torch.manual_seed(123)
    save_checkpoint(path, build_classifier(CLASSIFIER_CONFIG), CLASSIFIER_CONFIG)


def _wrong_task(source: str) -> Callable[[Path], None]:
    """Another of the exported files (a different task) copied over this one."""
    return lambda path: shutil.copyfile(path.with_name(source), path)


# ----------------------------------------------------------------------------- fast: the checker


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained classifier (+ checkpoint) and ×2 SR model, exported with the metadata and
    hash records the export stages write."""
    folder = tmp_path_factory.mktemp("exported")
    torch.manual_seed(0)
    classifier = build_classifier(CLASSIFIER_CONFIG)
    save_checkpoint(folder / "classifier.pt", classifier, CLASSIFIER_CONFIG)
    sr = build_sr(SR_CONFIG)
    save_checkpoint(folder / "sr_x2.pt", sr, SR_CONFIG)  # not served; the wrong-task checkpoint below
    meta = {
        integrity.TASK: integrity.CLASSIFICATION,
        "classes": list(CLASSES),
        integrity.CHECKPOINT_SHA256: integrity.sha256(folder / "classifier.pt"),
    }
    export(classifier, torch.rand(2, 3, 32, 32), folder / "classifier.onnx", {0: "batch"}, 18, meta)
    meta = {integrity.TASK: integrity.SUPER_RESOLUTION, "scale": 2, "context": sr.context}
    export(sr, torch.rand(1, 1, 24, 24), folder / "sr_x2.onnx", SR_DYNAMIC_AXES, 18, meta)
    for name in ("classifier.onnx", "sr_x2.onnx"):
        integrity.record_sha256(folder / name)
    return folder


@pytest.fixture
def models(exported: Path, tmp_path: Path) -> Path:
    """A fresh copy of :func:`exported` to damage."""
    return Path(shutil.copytree(exported, tmp_path / "models"))


def test_the_hash_records_are_sha256sum_lines_that_sha256sum_accepts(exported: Path) -> None:
    records = sorted(p.name for p in exported.glob("*.sha256"))
    assert records == ["classifier.onnx.sha256", "sr_x2.onnx.sha256"]
    digest = hashlib.sha256((exported / "sr_x2.onnx").read_bytes()).hexdigest()
    assert (exported / "sr_x2.onnx.sha256").read_text() == f"{digest}  sr_x2.onnx\n"
    result = subprocess.run(["sha256sum", "-c", *records], cwd=exported, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_intact_exports_pass_and_say_what_they_hold(models: Path) -> None:
    checked = check_models(models)
    assert checked.classifier == models / "classifier.onnx" and checked.sr == {2: models / "sr_x2.onnx"}
    assert checked.checkpoint == models / "classifier.pt"
    assert (checked.input_size, checked.classes) == (32, list(CLASSES))


DAMAGES = {
    # file: {damage: (how, what the message says)}
    "classifier.onnx": {
        "missing": (_missing, "is missing (its export's hash record classifier.onnx.sha256 is there)"),
        "empty": (_empty, "is empty (0 bytes)"),
        "truncated": (_truncated, "is not a loadable ONNX model, truncated or corrupt"),
        "garbage": (_garbage, "is not a loadable ONNX model, truncated or corrupt"),
        "wrong-task": (_wrong_task("sr_x2.onnx"), "is a super_resolution model, where a classification model belongs"),
        "hash-mismatch": (_other_model, "not the"),
    },
    "sr_x2.onnx": {
        "missing": (_missing, "is missing (its export's hash record sr_x2.onnx.sha256 is there)"),
        "empty": (_empty, "is empty (0 bytes)"),
        "truncated": (_truncated, "is not a loadable ONNX model, truncated or corrupt"),
        "garbage": (_garbage, "is not a loadable ONNX model, truncated or corrupt"),
        "wrong-task": (_wrong_task("classifier.onnx"), "is a classification model, where a super_resolution model"),
        "hash-mismatch": (_other_model, "not the"),
    },
    "classifier.pt": {
        "missing": (_missing, "is missing"),
        "empty": (_empty, "is empty (0 bytes)"),
        "truncated": (_truncated, "is not a loadable PyTorch checkpoint, truncated or corrupt"),
        "garbage": (_garbage, "is not a loadable PyTorch checkpoint, truncated or corrupt"),
        "wrong-task": (_wrong_task("sr_x2.pt"), "holds a ressr net, not a classifier"),
        "hash-mismatch": (_other_checkpoint, "not the"),
    },
}
CASES = [(file, damage) for file, damages in DAMAGES.items() for damage in damages]


@pytest.mark.parametrize(("file", "damage"), CASES)
def test_each_damage_is_refused_naming_the_file_and_the_fix(models: Path, file: str, damage: str) -> None:
    how, says = DAMAGES[file][damage]
    how(models / file)
    with pytest.raises(ModelCheckError) as refused:
        check_models(models)
    message = str(refused.value)
    assert message.startswith(f"{models / file} ") and message.endswith(FIX), message
    assert says in message and "\n" not in message, message
    if damage == "hash-mismatch":
        recorded = "its export recorded in" if file.endswith(".onnx") else "classifier.onnx was exported from"
        assert recorded in message, message


def test_a_model_without_its_hash_record_or_with_a_damaged_one_is_refused(models: Path) -> None:
    record = paths.sha256_record(models / "sr_x2.onnx")
    text = record.read_text()
    record.unlink()
    with pytest.raises(ModelCheckError, match=r"sr_x2\.onnx has no hash record from its export"):
        check_models(models)
    record.write_text(text.replace("sr_x2.onnx", "sr_x3.onnx"))  # a record of another file
    with pytest.raises(ModelCheckError, match=r"sr_x2\.onnx has a damaged hash record .*not a sha256sum line"):
        check_models(models)


def test_an_sr_model_under_another_scale_s_name_is_refused(models: Path) -> None:
    (models / "sr_x2.onnx").rename(models / "sr_x3.onnx")
    (models / "sr_x2.onnx.sha256").unlink()
    integrity.record_sha256(models / "sr_x3.onnx")  # even with a matching record
    with pytest.raises(ModelCheckError, match=r"sr_x3\.onnx is a ×2 model under the name of ×3"):
        check_models(models)


def test_an_export_that_does_not_record_its_checkpoint_is_refused(models: Path) -> None:
    model = onnx.load(str(models / "classifier.onnx"))
    kept = [p for p in model.metadata_props if p.key != integrity.CHECKPOINT_SHA256]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(models / "classifier.onnx"))
    with pytest.raises(ModelCheckError, match=r"does not record the hash of the classifier\.pt"):
        check_models(models)


def test_no_models_at_all_says_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(ModelsMissing, match=r"run `dvc repro export_onnx export_sr` \(or `dvc pull`\)"):
        check_models(tmp_path)


# ----------------------------------------------------------------------------- slow: both servers


def _failed_start(command: list[str], models: Path, cwd: Path = REPO) -> tuple[int, str, float]:
    """Run a server that should refuse to start: its exit status, its whole output, seconds taken.
    A server still running at the deadline is killed and the test fails."""
    started = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=cwd, env=server_env(models), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = proc.communicate(timeout=START_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"still running after {START_DEADLINE} s (a restart loop?); output:\n{output[-3000:]}")
    return proc.returncode, output, time.monotonic() - started


SERVERS = {
    "bentoml": lambda models, port: [
        *(sys.executable, "-m", "bentoml", "serve", "serving.service:Cnnpipe"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ],
    "grpc": lambda models, port: [
        *(sys.executable, "-m", "cnnpipe.cli", "serve-grpc"),
        *("--models", str(models), "--port", str(port), "--threads", "1"),
    ],
}
SERVED_DAMAGE = [  # one damaged file each, every kind of file among them
    ("missing", "sr_x3.onnx", _missing),
    ("empty", "classifier.pt", _empty),
    ("truncated", "sr_x3.onnx", _truncated),
    ("garbage", "classifier.onnx", _garbage),
    ("wrong-task", "classifier.onnx", _wrong_task("sr_x2.onnx")),
    ("hash-mismatch", "sr_x2.onnx", _other_model),
]


@pytest.mark.slow
def test_the_pipeline_s_exports_pass_and_sha256sum_accepts_their_records(served_models: Path) -> None:
    checked = check_models(served_models)
    assert sorted(checked.sr) == [2, 3] and checked.classes == list(CLASSES)
    records = sorted(p.name for p in served_models.glob("*.sha256"))
    assert records == ["classifier.onnx.sha256", "sr_x2.onnx.sha256", "sr_x3.onnx.sha256"]
    result = subprocess.run(["sha256sum", "-c", *records], cwd=served_models, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("server", sorted(SERVERS))
@pytest.mark.parametrize(("damage", "file", "how"), SERVED_DAMAGE, ids=[d for d, _, _ in SERVED_DAMAGE])
def test_a_damaged_model_stops_the_server_with_one_line(
    served_models: Path, tmp_path: Path, server: str, damage: str, file: str, how: Callable[[Path], None]
) -> None:
    models = Path(shutil.copytree(served_models, tmp_path / "models"))
    how(models / file)
    rc, output, seconds = _failed_start(SERVERS[server](models, free_port()), models)
    lines = output.strip().splitlines()
    assert rc == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert lines == [line for line in lines if line.startswith("error: ")] and len(lines) == 1, output[-3000:]
    assert str(models / file) in lines[0] and "`dvc pull`" in lines[0], lines[0]
    assert "dvc repro export_onnx export_sr" in lines[0], lines[0]
    print(f"{server} {damage} {file}: exit {rc} after {seconds:.1f} s: {lines[0]}")


def test_a_model_is_read_once_for_its_check_and_its_metadata_and_again_once_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    digest = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda f, name: reads.append(f.name) or digest(f, name))
    model = tmp_path / "m.onnx"
    model.write_bytes(b"one")
    first = integrity.sha256(model)
    assert integrity.sha256(model) == first == hashlib.sha256(b"one").hexdigest()
    assert len(reads) == 1
    model.write_bytes(b"other")  # in place: the same inode, a new size (and mtime)
    assert integrity.sha256(model) == hashlib.sha256(b"other").hexdigest()
    (tmp_path / "new").write_bytes(b"one")
    (tmp_path / "new").replace(model)  # an export's atomic replace: same bytes as the first, a new inode
    assert integrity.sha256(model) == first and len(reads) == 3
