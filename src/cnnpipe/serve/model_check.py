"""Every model file a server needs, checked before it starts serving.

A model that cannot serve (missing, empty, truncated, garbage, the wrong task, or not the file its
export wrote) has to stop the start with one line that names the file and the fix. Found any
later it is worse: in BentoML's worker an exception while loading crashes the worker, which
BentoML restarts forever; in the gRPC server it was a traceback. Both servers call
:func:`check_models` first: ``serving/config.py`` at import, which runs in the ``bentoml serve``
process itself before it starts any worker, and ``cnnpipe serve-grpc`` before it loads the core.

Per ONNX file: present, non-empty, loads in ONNX Runtime (CPU), the metadata's task is the one its
name promises, one float input ``input`` with the right channels, a trial run gives the expected
output shape, and the sha256 equals the export's record (:mod:`cnnpipe.models.integrity`). The
classifier checkpoint: present, non-empty, a classifier that loads, and the sha256 the classifier
export recorded. A record whose model is gone means the model is missing.

Served by the torch backend (:mod:`cnnpipe.serve.backends`), the SR checkpoints are served models
too: each ``sr_x<scale>.pt`` is present, non-empty, an SR net of that scale whose weights fit its
config, and the checkpoint its ONNX export recorded the sha256 of (as the classifier's export does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from cnnpipe import paths
from cnnpipe.errors import CnnpipeError
from cnnpipe.models import integrity
from cnnpipe.models.checkpoint import CLASSIFIER_ARCHS, SR_ARCHS, build_classifier, build_sr, load_checkpoint
from cnnpipe.models.onnx_runtime import read_metadata
from cnnpipe.serve.core import CLASSIFIER_FILE, DREAM_CHECKPOINT_FILE, find_models

FIX = "restore it with `dvc pull` or rebuild it with `dvc repro export_onnx export_sr`"
SR_TRIAL = 16
"""Side of the trial input an SR model is run on (the export allows 8 and up)."""


class ModelCheckError(CnnpipeError):
    """A model file the servers need is missing, damaged, or not the one its export recorded."""


@dataclass(frozen=True)
class CheckedModels:
    """What the check found, for a server to use without opening the files again."""

    classifier: Path
    sr: dict[int, Path]
    """Scale → file."""
    checkpoint: Path
    input_size: int
    """Side of the classifier's square input."""
    classes: list[str]


def check_models(models_dir: Path, backend: str = "onnxruntime") -> CheckedModels:
    """Check every model in ``models_dir`` that ``backend`` (onnxruntime or torch) serves; raise
    :class:`ModelCheckError` (or ``ModelsMissing`` when there are none at all) on the first that fails."""
    models_dir = Path(models_dir)
    for record in sorted(models_dir.glob(paths.sha256_record(Path("*.onnx")).name)):
        model = record.with_name(record.name.removesuffix(".sha256"))
        if not model.is_file():
            raise _failed(model, f"is missing (its export's hash record {record.name} is there)")
    classifier_path, sr_paths = find_models(models_dir)
    meta, input_size = _check_classifier(classifier_path)
    sr = {}
    for path in sr_paths:
        scale, sr_meta = _check_sr(path)
        sr[scale] = path
        if backend == "torch":
            _check_sr_checkpoint(models_dir / paths.sr_checkpoint(scale).name, scale, path, sr_meta)
    checkpoint = models_dir / DREAM_CHECKPOINT_FILE
    _check_checkpoint(checkpoint, meta.get(integrity.CHECKPOINT_SHA256))
    return CheckedModels(classifier_path, dict(sorted(sr.items())), checkpoint, input_size, list(meta["classes"]))


def _failed(path: Path, problem: str) -> ModelCheckError:
    return ModelCheckError(f"{path} {problem}; {FIX}")


def _one_line(exc: BaseException, limit: int = 160) -> str:
    """ONNX Runtime's message on one line, without its preamble ("... Load model from PATH failed:")."""
    text = re.sub(r"\s+", " ", str(exc).rsplit("failed:", 1)[-1]).strip() or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _present(path: Path) -> None:
    if not path.is_file():  # also a dangling link (a DVC link to a cache file that is not there)
        raise _failed(path, "is missing")
    if path.stat().st_size == 0:
        raise _failed(path, "is empty (0 bytes)")


def _session(path: Path, task: str) -> tuple[ort.InferenceSession, dict[str, Any]]:
    """An ONNX Runtime session on the CPU (no GPU context in a process that only checks) and the
    export's metadata, with the task the file's name promises."""
    _present(path)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime's errors subclass Exception only; any of them means unloadable
        raise _failed(path, f"is not a loadable ONNX model, truncated or corrupt ({_one_line(exc)})") from None
    meta = read_metadata(session)
    found = meta.get(integrity.TASK)
    if found != task:
        problem = f"is a {found} model" if found else "has no task in its metadata (not this pipeline's export)"
        raise _failed(path, f"{problem}, where a {task} model belongs")
    return session, meta


def _input_shape(session: ort.InferenceSession, path: Path, channels: int) -> list[Any]:
    inputs = session.get_inputs()
    shape = inputs[0].shape if len(inputs) == 1 else []
    if len(inputs) != 1 or inputs[0].name != "input" or inputs[0].type != "tensor(float)" or len(shape) != 4:
        found = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
        raise _failed(path, f"takes {found}, not one float N×{channels}×H×W tensor named input")
    if shape[1] != channels:
        raise _failed(path, f"takes {shape[1]} channels, not {channels}")
    return shape


def _trial(session: ort.InferenceSession, path: Path, x: np.ndarray, expected: tuple[int, ...]) -> None:
    """One run on zeros: the model computes, and its output has the shape its metadata implies."""
    try:
        out = session.run(None, {"input": x})[0]
    except Exception as exc:  # as in _session
        raise _failed(path, f"fails to run ({_one_line(exc)})") from None
    if tuple(out.shape) != expected:
        raise _failed(path, f"gives output {tuple(out.shape)} for input {x.shape}, not {expected}")


def _matches_record(path: Path) -> None:
    record = paths.sha256_record(path)
    try:
        expected = integrity.recorded_sha256(path)
    except integrity.IntegrityError as exc:
        raise _failed(path, f"has a damaged hash record ({exc})") from None
    if expected is None:
        raise _failed(path, f"has no hash record from its export ({record.name} is missing)")
    actual = integrity.sha256(path)
    if actual != expected:
        raise _failed(path, f"has sha256 {actual[:12]}…, not the {expected[:12]}… its export recorded in {record.name}")


def _check_classifier(path: Path) -> tuple[dict[str, Any], int]:
    """The classifier's metadata and input side."""
    session, meta = _session(path, integrity.CLASSIFICATION)
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise _failed(path, "has no class names in its metadata")
    shape = _input_shape(session, path, 3)
    side = shape[-1]
    if not isinstance(side, int) or shape[-2] != side:
        raise _failed(path, f"takes input {shape}, not a fixed square N×3×S×S")
    _trial(session, path, np.zeros((1, 3, side, side), np.float32), (1, len(classes)))
    if not meta.get(integrity.CHECKPOINT_SHA256):
        raise _failed(path, f"does not record the hash of the {DREAM_CHECKPOINT_FILE} it was exported from")
    _matches_record(path)
    return meta, side


def _check_sr(path: Path) -> tuple[int, dict[str, Any]]:
    """The scale of a ``sr_x<scale>.onnx`` and its metadata."""
    named = path.stem.removeprefix("sr_x")
    if not named.isdigit():
        raise _failed(path, "does not name its scale (sr_x<scale>.onnx)")
    scale = int(named)
    session, meta = _session(path, integrity.SUPER_RESOLUTION)
    if meta.get("scale") != scale:
        raise _failed(path, f"is a ×{meta.get('scale')} model under the name of ×{scale}")
    _input_shape(session, path, 1)
    side = SR_TRIAL
    _trial(session, path, np.zeros((1, 1, side, side), np.float32), (1, 1, side * scale, side * scale))
    _matches_record(path)
    return scale, meta


def _check_checkpoint(path: Path, expected: str | None) -> None:
    """The PyTorch classifier (explain, DeepDream, the torch backend): loads, is a classifier, and
    is the checkpoint the classifier export recorded (``expected``)."""
    config, state = _loaded_checkpoint(path, CLASSIFIER_ARCHS, "a classifier")
    try:
        build_classifier(config).load_state_dict(state)
    except Exception:  # missing config keys, or weights of other shapes (torch's message is a page long)
        raise _failed(path, "has weights that do not fit its config") from None
    _exported_from(path, expected, CLASSIFIER_FILE)


def _check_sr_checkpoint(path: Path, scale: int, onnx_path: Path, meta: dict[str, Any]) -> None:
    """An SR checkpoint the torch backend serves: loads, is an SR net of ``scale``, and is the
    checkpoint ``onnx_path`` (metadata ``meta``) was exported from."""
    expected = meta.get(integrity.CHECKPOINT_SHA256)
    if not expected:
        raise _failed(onnx_path, f"does not record the hash of the {path.name} it was exported from")
    config, state = _loaded_checkpoint(path, SR_ARCHS, "a super-resolution net")
    if config.get("scale") != scale:
        raise _failed(path, f"holds a ×{config.get('scale')} net under the name of ×{scale}")
    try:
        build_sr(config).load_state_dict(state)
    except Exception:  # as in _check_checkpoint
        raise _failed(path, "has weights that do not fit its config") from None
    _exported_from(path, expected, onnx_path.name)


def _loaded_checkpoint(path: Path, archs: dict[str, Any], kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkpoint's config and weights, its config naming one of ``archs``."""
    _present(path)
    try:
        config, state = load_checkpoint(path)
    except Exception:  # torch.load raises many kinds (zip, unpickling, EOF), none of them telling the user more
        raise _failed(path, "is not a loadable PyTorch checkpoint, truncated or corrupt") from None
    arch = config.get("arch") if isinstance(config, dict) else None
    if arch not in archs:
        raise _failed(path, f"holds a {arch} net, not {kind} ({', '.join(archs)})")
    return config, state


def _exported_from(path: Path, expected: str | None, export: str) -> None:
    actual = integrity.sha256(path)
    if actual != expected:
        raise _failed(path, f"has sha256 {actual[:12]}…, not the {str(expected)[:12]}… {export} was exported from")
