"""Every file the pipeline reads or writes, relative to the repository root, named once.

Stages, the CLI and the servers use these; ``dvc.yaml`` has to spell them too (DVC reads no
Python), and ``tests/test_layout.py`` checks that it spells the same ones.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")

DATA = Path("data")
CIFAR10 = DATA / "cifar10"
BSDS300 = DATA / "bsds300"

MODELS = Path("models")
CLASSIFIER_CHECKPOINT = MODELS / "classifier.pt"
CLASSIFIER_ONNX = MODELS / "classifier.onnx"
CLASSIFIER_RESUME = Path("checkpoints/classifier_last.pt")

METRICS = Path("metrics")
CLASSIFIER_METRICS = METRICS / "classifier.json"
CLASSIFIER_EXPORT_METRICS = METRICS / "export.json"

PLOTS = Path("plots")
CONFUSION = PLOTS / "confusion.csv"
DREAM_GALLERY = PLOTS / "dream_gallery.png"
EXPLAIN_GALLERY = PLOTS / "explain_gallery.png"
FILTERS = PLOTS / "filters.png"
ACTIVATIONS = PLOTS / "activations.png"
CLASS_MAXIMIZATION = PLOTS / "class_maximization.png"
CLASS_MAXIMIZATION_METRICS = METRICS / "class_maximization.json"

LIVE = Path("dvclive")
CLASSIFIER_LIVE = LIVE / "classifier"


def dataset(name: str) -> Path:
    """Where ``fetch_<name>`` extracts a dataset (``cifar10`` → ``data/cifar10``)."""
    return {"cifar10": CIFAR10, "bsds300": BSDS300}[name]


def sr_checkpoint(scale: int) -> Path:
    return MODELS / f"sr_x{scale}.pt"


def sr_onnx(scale: int | str) -> Path:
    """``models/sr_x<scale>.onnx``; ``sr_onnx("*")`` is the glob of all scales."""
    return MODELS / f"sr_x{scale}.onnx"


def sha256_record(model: Path) -> Path:
    """``<model>.sha256`` beside an exported model: the hash its export recorded, in ``sha256sum``
    format (:mod:`cnnpipe.models.integrity`); ``sha256_record(Path("*.onnx"))`` globs them all."""
    return model.with_name(f"{model.name}.sha256")


def sr_metrics(scale: int) -> Path:
    return METRICS / f"sr_x{scale}.json"


def sr_export_metrics(scale: int) -> Path:
    return METRICS / f"export_sr_x{scale}.json"


def sr_comparison(scale: int) -> Path:
    return PLOTS / f"sr_x{scale}_comparison.png"


def sr_live(scale: int) -> Path:
    return LIVE / f"sr_x{scale}"
