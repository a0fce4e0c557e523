"""Decoding untrusted image uploads into arrays for the inference core (results are encoded by
:func:`cnnpipe.data.images.encode_png`).

Every failure is a :class:`RequestError` with a message a client can act on; nothing here may
raise anything else for bad bytes. Pillow's own decompression-bomb guard is replaced by an
explicit pixel limit checked *before* the pixels are decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnpipe.errors import CnnpipeError

# Formats a client may send; anything else Pillow can open (EPS, PDF, …) is refused.
ACCEPTED_FORMATS = {"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM"}
ACCEPTED = "PNG, JPEG, GIF, BMP, WebP or TIFF"


class RequestError(CnnpipeError):
    """A request the client must change. ``kind`` maps to HTTP and gRPC status codes."""

    HTTP: ClassVar[dict[str, int]] = {
        "invalid": 400,
        "too_large": 413,
        "unprocessable": 422,
        "busy": 503,
        "not_found": 404,
    }
    GRPC: ClassVar[dict[str, str]] = {
        "invalid": "INVALID_ARGUMENT",
        "too_large": "RESOURCE_EXHAUSTED",
        "unprocessable": "INVALID_ARGUMENT",
        "busy": "UNAVAILABLE",
        "not_found": "NOT_FOUND",
    }

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.http_status = self.HTTP[kind]
        self.grpc_code = self.GRPC[kind]


@dataclass(frozen=True)
class DecodedImage:
    """An upload as uint8 arrays: ``rgb`` H×W×3, ``alpha`` H×W or None; ``grey`` if it had no colour."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    grey: bool
    source_format: str
    frames: int

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit integer ('I;16', 'I') or float ('F') greyscale → 8-bit 'L' by scaling, not clipping."""
    arr = np.asarray(img).astype(np.float64)
    if img.mode != "F":
        arr = arr * (255.0 / 65535.0)
    elif arr.max(initial=0.0) <= 1.0:
        arr = arr * 255.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Validate and decode an uploaded image (first frame of an animation)."""
    if not data:
        raise RequestError("invalid", "empty upload: send the image file's bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            width, height = img.size
            if img.format not in ACCEPTED_FORMATS:
                raise RequestError("invalid", f"unsupported image format {img.format}; send {ACCEPTED}")
            if width * height > max_pixels:
                raise RequestError(
                    "too_large", f"image is {width}×{height} = {width * height} pixels; the limit is {max_pixels}"
                )
            frames = getattr(img, "n_frames", 1)
            img.seek(0)
            img.load()
    except RequestError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RequestError("too_large", f"image refused as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise RequestError("invalid", f"the upload is not an image ({ACCEPTED})") from None
    except Exception as exc:  # Pillow's plugins raise TypeError, struct.error, … for bad bytes
        raise RequestError("invalid", f"the image is truncated or corrupted: {exc}") from None

    source_format = img.format or "unknown"
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        img = _to_8bit(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    grey = img.mode in ("1", "L", "LA", "I", "F")
    if img.mode == "P":
        grey = False
    rgba = img.convert("RGBA") if has_alpha else None
    rgb = np.array((rgba or img).convert("RGB"))
    alpha = np.array(rgba)[..., 3] if rgba is not None else None
    return DecodedImage(rgb=rgb, alpha=alpha, grey=grey, source_format=source_format, frames=frames)
