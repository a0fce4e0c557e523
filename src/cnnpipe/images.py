"""Image files on disk: the BSDS300 layout and plain folders of images (Set5, Set14, …)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cnnpipe.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def bsds_split_dir(data_dir: Path, split: str) -> Path:
    """``BSDS300/images/<split>`` inside an extracted BSDS300 archive."""
    data_dir = Path(data_dir)
    for candidate in (data_dir / "BSDS300" / "images" / split, data_dir / "images" / split):
        if candidate.is_dir():
            return candidate
    raise DataError(f"no BSDS300/images/{split} under {data_dir}; run `dvc repro fetch_bsds300`")


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder, sorted by name so every run sees the same order."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images in {folder}")
    return files


def read_rgb(path: Path) -> np.ndarray:
    """An image file as uint8 H×W×3 RGB."""
    with Image.open(path) as img:
        return np.array(img.convert("RGB"))


def load_folder(folder: Path) -> list[np.ndarray]:
    return [read_rgb(p) for p in list_images(folder)]
