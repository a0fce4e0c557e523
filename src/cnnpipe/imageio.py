"""Reading and writing image files for the CLI and stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnpipe.errors import CnnpipeError


def read_image_rgb(path: Path) -> np.ndarray:
    """Any image Pillow reads → uint8 H×W×3 RGB (first frame of an animation)."""
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except FileNotFoundError:
        raise CnnpipeError(f"no such image {path}") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise CnnpipeError(f"cannot read {path} as an image: {exc}") from None


def write_png(path: Path, image: np.ndarray) -> None:
    """Write uint8 H×W×3 as PNG atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(image).save(tmp, format="PNG")
    tmp.replace(path)
