"""Disk and kill faults in the pipeline, for real: `export_onnx`, `export_sr`, the classifier's
checkpointing and `cnnpipe compare --out`, writing into a small tmpfs that is filled up, and
SIGKILLed at several moments (when the temp file appears, and at random delays).

Each time: no half-written file where a reader looks (the previous file or the complete new
one), one `error: ...` line and exit 1 for a full disk, and `dvc status` saying exactly whether
the outputs still match dvc.lock. Root only (the tmpfs mounts); skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .disk import FILLER, PAGE, fill, tmpfs, unfill
from .pipeline import dvc, edit_params, env, git, tiny_pipeline_repo

pytestmark = pytest.mark.slow

UP_TO_DATE = "Data and pipelines are up to date."
CHECKPOINT = Path("checkpoints/classifier_last.pt")
EXPORTS = {  # stage command args → (its DVC stage, the model it writes, the metric it writes)
    "export_onnx": (("export_onnx",), "export_onnx", Path("models/classifier.onnx"), Path("metrics/export.json")),
    "export_sr": (("export_sr", "2"), "export_sr@2", Path("models/sr_x2.onnx"), Path("metrics/export_sr_x2.json")),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, tiny_archives) -> Path:
    """A tiny repo whose pipeline ran up to the exports (one SR scale; three classifier epochs, so
    a killed training run has checkpoints to resume from)."""
    root = tiny_pipeline_repo(tmp_path_factory.mktemp("faults") / "repo", tiny_archives)
    edit_params(root, {"sr": {"scales": [2]}, "classifier": {"epochs": 3}})
    git(root, "commit", "-qam", "one SR scale, three epochs")
    dvc(root, "repro", "export_onnx", "export_sr")
    return root


@pytest.fixture(autouse=True)
def lock_kept(repo: Path) -> Iterator[None]:
    """Each test's folders are tmpfs mounts that vanish after it; dvc.lock is put back too."""
    lock = (repo / "dvc.lock").read_bytes()
    yield
    (repo / "dvc.lock").write_bytes(lock)


def start(repo: Path, *args: str) -> subprocess.Popen[str]:
    """``python ARGS`` in the repo, output captured, in a session of its own (to kill it whole)."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=repo,
        env=env(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=repo, env=env(repo), capture_output=True, text=True, timeout=300)


def stage(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(repo, "-m", f"stages.{args[0]}", *args[1:])


def status(repo: Path, *targets: str) -> str:
    return dvc(repo, "status", *targets).stdout.strip()


def full_disk_line(path: Path | str) -> str:
    return f"error: no space left on device writing {path} (free space and rerun)"


def assert_one_error_line(output: str, line: str) -> None:
    errors = [x for x in output.splitlines() if x.startswith("error:")]
    assert errors == [line], output
    assert "Traceback" not in output, output


def temp_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def kill_when(proc: subprocess.Popen[str], seconds: float | None = None, appears: Path | None = None) -> bool:
    """SIGKILL ``proc`` (its whole session) after ``seconds`` or once ``appears`` exists; False if it
    ended first."""
    deadline = time.monotonic() + (seconds if seconds is not None else 120)
    while proc.poll() is None and time.monotonic() < deadline and not (appears and appears.exists()):
        time.sleep(0.005)
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    return True


def moments(seconds: float, points: int = 3) -> list[float]:
    """``points`` random delays over a run of ``seconds`` (seed printed, so a failure reruns)."""
    seed = random.randrange(10**6)
    print(f"kill delays: seed {seed}")
    rng = random.Random(seed)
    return sorted(round(rng.uniform(0, seconds), 2) for _ in range(points))


# --------------------------------------------------------------------------------- full disk


@pytest.mark.parametrize(
    ("name", "leave"),
    [("export_onnx", 0), ("export_onnx", None), ("export_sr", None)],
    ids=["classifier-full", "classifier-nearly-full", "sr-nearly-full"],
)
def test_an_export_on_a_full_disk_is_one_line_and_keeps_the_previous_model(
    repo: Path, name: str, leave: int | None
) -> None:
    args, dvc_stage, model, metric = EXPORTS[name]
    with tmpfs(repo / "models"), tmpfs(repo / "metrics"):
        previous, report = (repo / model).read_bytes(), (repo / metric).read_bytes()
        names = sorted(os.listdir(repo / "models"))
        # None: room for part of the model (half of it), so the write fails midway
        free = fill(repo / "models", len(previous) // 2 if leave is None else leave)
        assert free < len(previous)

        failed = stage(repo, *args)
        assert failed.returncode == 1
        assert_one_error_line(failed.stderr, full_disk_line(model))
        assert (repo / model).read_bytes() == previous
        assert sorted(os.listdir(repo / "models")) == sorted([*names, FILLER])  # no temp file
        assert (repo / metric).read_bytes() == report
        assert status(repo, dvc_stage) == UP_TO_DATE  # nothing changed, and DVC says so

        unfill(repo / "models")
        again = stage(repo, *args)
        assert again.returncode == 0, again.stderr
        assert sorted(os.listdir(repo / "models")) == names
        assert status(repo, dvc_stage) == UP_TO_DATE  # the same model again (the export is deterministic)


def test_dvc_repro_on_a_full_disk_fails_in_one_line_and_dvc_status_tells(repo: Path) -> None:
    model = Path("models/classifier.onnx")
    with tmpfs(repo / "models"), tmpfs(repo / "metrics"):
        # DVC deletes a stage's outputs before running it; a second link keeps the model's pages
        # allocated, so the space freed is not enough for the new one.
        os.link(repo / model, repo / "models" / ".held")
        fill(repo / "models")

        failed = dvc(repo, "repro", "-f", "-s", "export_onnx", check=False)
        assert failed.returncode != 0
        assert_one_error_line(f"{failed.stdout}\n{failed.stderr}", full_disk_line(model))
        assert not (repo / model).exists() and not temp_of(repo / model).exists()
        told = status(repo, "export_onnx")
        assert "deleted:            models/classifier.onnx" in told, told

        unfill(repo / "models")
        (repo / "models" / ".held").unlink()
        dvc(repo, "repro", "export_onnx")
        assert status(repo, "export_onnx") == UP_TO_DATE
        assert not temp_of(repo / model).exists()


# ----------------------------------------------------------------------------------- SIGKILL


@pytest.mark.parametrize("name", list(EXPORTS))
def test_a_sigkilled_export_leaves_the_previous_or_the_complete_model(repo: Path, name: str) -> None:
    """Killed once its temp file appears (the model checked, not yet published) and at random
    moments: the model is the previous one or the complete new one, byte for byte, and
    `dvc status` is clean exactly when it is the one dvc.lock records."""
    import onnx

    args, dvc_stage, model, _ = EXPORTS[name]
    command = ("-m", f"stages.{args[0]}", *args[1:])
    with tmpfs(repo / "models"), tmpfs(repo / "metrics"):
        new = (repo / model).read_bytes()  # what dvc.lock records; the export is deterministic
        older = onnx.load_from_string(new)
        older.metadata_props.add(key="generation", value="older")  # a valid model, another file
        old = older.SerializeToString()

        def kill(at: float | None) -> bytes:
            (repo / model).write_bytes(old)
            proc = start(repo, *command)
            killed = kill_when(proc, at, temp_of(repo / model) if at is None else None)
            assert killed or at is not None, "the export ended before its temp file was seen"
            found = (repo / model).read_bytes()
            assert found in (old, new), f"killed at {at or 'temp file'}: {len(found)} bytes"
            assert (status(repo, dvc_stage) == UP_TO_DATE) == (found == new)
            return found

        began = time.monotonic()
        assert kill(None) == old  # the temp exists only until the rename
        for at in moments(1.5 * (time.monotonic() - began), points=2):
            kill(at)

        done = stage(repo, *args)
        assert done.returncode == 0, done.stderr
        assert (repo / model).read_bytes() == new
        assert not temp_of(repo / model).exists()  # a leftover temp is replaced by the next write
        assert status(repo, dvc_stage) == UP_TO_DATE


def test_a_sigkilled_dvc_repro_mid_export_leaves_no_model_and_dvc_status_tells(repo: Path) -> None:
    model = Path("models/sr_x2.onnx")
    with tmpfs(repo / "models"), tmpfs(repo / "metrics"):
        expected = (repo / model).read_bytes()
        proc = start(repo, "-m", "dvc", "repro", "-f", "-s", "export_sr@2")
        assert kill_when(proc, appears=temp_of(repo / model))  # dvc and the stage, mid-export
        assert not (repo / model).exists()  # DVC had deleted it before running the stage
        told = status(repo, "export_sr@2")
        assert "deleted:            models/sr_x2.onnx" in told, told

        dvc(repo, "repro", "export_sr@2")  # DVC finds the killed run's lock stale and carries on
        assert (repo / model).read_bytes() == expected
        assert status(repo, "export_sr@2") == UP_TO_DATE


def test_checkpointing_survives_a_full_disk_and_sigkill_at_any_moment(repo: Path) -> None:
    """A disk that fills up mid-training keeps the last checkpoint and says so in one line; runs
    killed at random moments, each resuming the last, find the checkpoint absent or whole; and the
    run that finally ends, resumed, ends exactly where the unbroken run of the fixture did."""
    import torch

    command = ("-m", "stages.train_classifier")
    trained = repo / "models/classifier.pt"
    with tmpfs(repo / "models"), tmpfs(repo / "checkpoints"), tmpfs(repo / "dvclive"):
        reference = torch.load(trained, weights_only=True)["state_dict"]
        (repo / CHECKPOINT).unlink()
        began = time.monotonic()
        proc = start(repo, *command)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("epoch=1 "):  # printed after its checkpoint was written
                break
        seconds = time.monotonic() - began
        kill_when(proc, 0)
        epoch = torch.load(repo / CHECKPOINT, weights_only=True)["epoch"]
        assert epoch < 3, "training ended before it was killed"
        checkpoint, model = (repo / CHECKPOINT).read_bytes(), trained.read_bytes()

        fill(repo / "checkpoints")
        failed = stage(repo, "train_classifier")
        assert failed.returncode == 1
        assert f"resuming from {CHECKPOINT} after epoch {epoch}" in failed.stdout
        assert_one_error_line(failed.stderr, full_disk_line(CHECKPOINT))
        assert (repo / CHECKPOINT).read_bytes() == checkpoint
        assert sorted(os.listdir(repo / "checkpoints")) == sorted([FILLER, CHECKPOINT.name])
        assert trained.read_bytes() == model
        told = status(repo, "train_classifier")
        assert f"modified:           {CHECKPOINT}" in told, told  # mid-training, not what dvc.lock has

        unfill(repo / "checkpoints")
        for at in moments(1.5 * seconds, points=2):
            kill_when(start(repo, *command), at)
            assert 1 <= torch.load(repo / CHECKPOINT, weights_only=True)["epoch"] <= 3, at
        resumed = stage(repo, "train_classifier")
        assert resumed.returncode == 0, resumed.stderr
        assert f"resuming from {CHECKPOINT} after epoch" in resumed.stdout
        assert not temp_of(repo / CHECKPOINT).exists()
        weights = torch.load(trained, weights_only=True)["state_dict"]
        assert all(torch.equal(weights[k], reference[k]) for k in reference)


def test_compare_out_on_a_full_disk_and_under_sigkill(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "runs.html"
    command = ("-m", "cnnpipe.cli", "compare", "--format", "html", "--out", str(out))
    with tmpfs(out.parent):
        out.write_bytes(b"<p>the previous report</p>\n")
        previous = out.read_bytes()
        fill(out.parent, 4 * PAGE)  # the report is over 100 kB
        began = time.monotonic()
        failed = run(repo, *command)
        seconds = time.monotonic() - began  # all of the work; only the write failed
        assert failed.returncode == 1
        assert_one_error_line(failed.stderr, full_disk_line(out))
        assert out.read_bytes() == previous
        assert sorted(os.listdir(out.parent)) == sorted([FILLER, out.name])

        unfill(out.parent)
        for kill_at in moments(seconds):
            out.write_bytes(previous)
            kill_when(start(repo, *command), kill_at)
            found = out.read_bytes()
            assert found == previous or found.rstrip().endswith(b"</html>"), f"killed at {kill_at}: {found[-80:]!r}"
        done = run(repo, *command)
        assert done.returncode == 0, done.stderr
        assert out.read_bytes().rstrip().endswith(b"</html>")
        assert sorted(os.listdir(out.parent)) == [out.name]  # a killed run's temp, replaced and gone
    assert status(repo, "export_onnx", "export_sr") == UP_TO_DATE  # compare writes nothing of the pipeline's
