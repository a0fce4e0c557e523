"""Image uploads for the serving tests: good ones in every awkward layout, and bad ones."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def decoded(data: bytes) -> np.ndarray:
    """An encoded image's pixels as Pillow reads them (H×W, H×W×3 or H×W×4 uint8)."""
    return np.asarray(Image.open(io.BytesIO(data)))


def photo(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], axis=-1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny valid PNG header that declares a huge image (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (24, 24), c) for c in ("red", "blue", "green")]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


def palette_png() -> bytes:
    img = Image.fromarray(photo()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(img)


GOOD = {
    "rgb png": encode(Image.fromarray(photo())),
    "jpeg": encode(Image.fromarray(photo()), "JPEG", quality=90),
    "rgba png": encode(Image.fromarray(np.dstack([photo(), np.full((40, 56), 128, np.uint8)]))),
    "greyscale png": encode(Image.fromarray(photo()[..., 0])),
    "16-bit png": encode(Image.fromarray(photo()[..., 0].astype(np.uint16) * 257)),
    "cmyk jpeg": encode(Image.fromarray(photo()).convert("CMYK"), "JPEG"),
    "palette png": palette_png(),
    "animated gif": animated_gif(),
    "1x1 png": encode(Image.new("RGB", (1, 1), (10, 200, 30))),
}

BAD = {
    "empty body": (b"", "invalid", "empty upload"),
    "not an image": (b"hello, I am text", "invalid", "not an image"),
    "truncated png": (encode(Image.fromarray(photo()))[:120], "invalid", "truncated"),
    "truncated jpeg": (encode(Image.fromarray(photo(200, 200)), "JPEG")[:600], "invalid", "truncated"),
    "decompression bomb": (png_bomb(), "too_large", "pixels"),
    "over the pixel limit": (png_bomb(5000, 5000), "too_large", "the limit is"),
}

# Valid images that are awkward for a CNN: tiny, thin, huge aspect ratios.
AWKWARD = {
    f"{w}x{h}": encode(Image.fromarray(photo(h, w, seed=w + h)))
    for w, h in ((1, 1), (2, 2), (8, 8), (1, 4000), (4000, 1), (3, 300), (17, 5))
}
