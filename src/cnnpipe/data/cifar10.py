"""CIFAR-10 in the official *binary* layout, read with numpy (no pickle).

Each record of ``data_batch_{1..5}.bin`` / ``test_batch.bin`` is 3073 bytes: one label byte, then
the 32×32 red, green and blue planes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnpipe.errors import DataError

FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
META_FILE = "batches.meta.txt"
RECORD_BYTES = 1 + 3 * 32 * 32
CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)


@dataclass(frozen=True)
class Split:
    """Images as uint8 N×3×32×32 (CHW, the layout of the files) and int64 labels."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: slice) -> Split:
        """These rows, e.g. ``slice(45000, None)``: the last 5,000 as a validation split."""
        return Split(self.images[rows], self.labels[rows])


def find_root(data_dir: Path) -> Path:
    """The ``cifar-10-batches-bin`` folder inside an extracted archive."""
    data_dir = Path(data_dir)
    for candidate in (data_dir / FOLDER, data_dir):
        if (candidate / TEST_FILES[0]).is_file():
            return candidate
    raise DataError(
        f"no CIFAR-10 binary batches under {data_dir} (expected {FOLDER}/test_batch.bin); run `dvc repro fetch_cifar10`"
    )


def read_batch(path: Path) -> Split:
    """Parse one ``*.bin`` batch file."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise DataError(f"{path} is not a CIFAR-10 binary batch ({raw.size} bytes)")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= len(CLASSES):
        raise DataError(f"{path} has label {labels.max()} outside 0..9")
    images = records[:, 1:].reshape(-1, 3, 32, 32)
    return Split(images=np.ascontiguousarray(images), labels=labels)


def read_class_names(root: Path) -> tuple[str, ...]:
    meta = root / META_FILE
    if not meta.is_file():
        return CLASSES
    names = tuple(line.strip() for line in meta.read_text().splitlines() if line.strip())
    return names or CLASSES


def load(data_dir: Path, split: str) -> Split:
    """Load ``"train"`` (all five batches) or ``"test"``."""
    root = find_root(data_dir)
    files = {"train": TRAIN_FILES, "test": TEST_FILES}[split]
    missing = [name for name in files if not (root / name).is_file()]
    if missing:
        raise DataError(f"{root} lacks {', '.join(missing)}; re-run `dvc repro fetch_cifar10`")
    parts = [read_batch(root / name) for name in files]
    return Split(
        images=np.concatenate([p.images for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
    )


def encode_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The inverse of :func:`read_batch`: N×3×32×32 uint8 + labels → official record bytes."""
    images = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
    labels = np.asarray(labels, dtype=np.uint8).reshape(-1, 1)
    return np.concatenate([labels, images], axis=1).tobytes()
