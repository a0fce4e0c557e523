"""Request limits of the servers, from ``CNNPIPE_<LIMIT>`` environment variables."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from cnnpipe.serve.codec import DecodedImage, RequestError, decode_image


@dataclass(frozen=True)
class Limits:
    """Request limits; every one is enforced with a 4xx / gRPC status and a message."""

    max_upload_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 4096 * 4096  # decoded input image
    sr_max_output_pixels: int = 4096 * 4096  # 1920×1080 ×2 fits
    dream_sync_max_pixels: int = 320 * 320
    dream_sync_max_steps: int = 60  # octaves × steps
    dream_task_max_pixels: int = 1024 * 1024
    dream_task_max_steps: int = 400
    style_max_pixels: int = 512 * 512  # the content image (the style image is scaled to it)
    style_max_steps: int = 500

    def decode(self, data: bytes, max_pixels: int | None = None) -> DecodedImage:
        """Size-checked :func:`decode_image` (``max_pixels`` defaults to ``self.max_pixels``)."""
        if len(data) > self.max_upload_bytes:
            raise RequestError("too_large", f"upload is {len(data)} bytes; the limit is {self.max_upload_bytes}")
        return decode_image(data, max_pixels or self.max_pixels)

    @classmethod
    def from_env(cls) -> Limits:
        """Override any field with ``CNNPIPE_<FIELD>`` (e.g. CNNPIPE_MAX_PIXELS=1000000)."""
        values = {}
        for field in dataclasses.fields(cls):
            raw = os.environ.get(f"CNNPIPE_{field.name.upper()}")
            if raw is not None:
                values[field.name] = int(raw)
        return cls(**values)
