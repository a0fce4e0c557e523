"""What an export records so that a server can tell a model file is the one the export wrote.

An ONNX file cannot hold its own hash, and ``dvc.lock`` (which has each out's md5) exists only in
a repository workspace, not in a Bento or a copied ``models/``. So each export stage writes a
``<model>.sha256`` beside its model (``sha256sum`` format, so ``sha256sum -c`` checks it too; a DVC
out of that stage, so ``dvc pull``, ``dvc exp apply`` and the Bento bring it along), and the
classifier's export records the hash of the PyTorch checkpoint it was exported from in its
metadata. The metadata names the model's task, so a file in the wrong place is told apart.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from cnnpipe import paths
from cnnpipe.atomic import write_bytes
from cnnpipe.errors import CnnpipeError

TASK = "task"
"""Metadata key of the model's task: :data:`CLASSIFICATION` or :data:`SUPER_RESOLUTION`."""
CLASSIFICATION = "classification"
SUPER_RESOLUTION = "super_resolution"
CHECKPOINT_SHA256 = "checkpoint_sha256"
"""Metadata key (classifier and SR exports): sha256 of the checkpoint the ONNX model was exported from."""

_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")  # sha256sum's "<hex>  <name>" (" *<name>": binary mode)


class IntegrityError(CnnpipeError):
    """A hash record is unreadable or not in ``sha256sum`` format."""


_HASHED: dict[tuple[int, int, int, int], str] = {}
"""sha256 by (device, inode, size, mtime): a server checks each model against its record and then
lists the hash in /metadata, reading the file once, not twice. A file rewritten (an export's
atomic replace: a new inode; a copy over it: a new mtime) is hashed again."""


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        stat = os.fstat(f.fileno())
        key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key not in _HASHED:
            _HASHED[key] = hashlib.file_digest(f, "sha256").hexdigest()
        return _HASHED[key]


def record_sha256(model: Path) -> Path:
    """Write ``model``'s hash record (:func:`cnnpipe.paths.sha256_record`), atomically; returns its path."""
    record = paths.sha256_record(model)
    write_bytes(record, f"{sha256(model)}  {model.name}\n".encode())
    return record


def recorded_sha256(model: Path) -> str | None:
    """The hash ``model``'s record holds; None when there is no record."""
    record = paths.sha256_record(model)
    try:
        text = record.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{record} cannot be read ({exc})") from None
    match = _LINE.fullmatch(text.strip())
    if match is None or match.group(2) != model.name:
        raise IntegrityError(f"{record} is not a sha256sum line for {model.name}")
    return match.group(1)
