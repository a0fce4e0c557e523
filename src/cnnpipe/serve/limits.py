"""Request limits of the servers, from ``CNNPIPE_<LIMIT>`` environment variables."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from cnnpipe.errors import ParamError
from cnnpipe.serve.codec import DecodedImage, RequestError, decode_image


@dataclass(frozen=True)
class Limits:
    """Request limits; every one is enforced with a 4xx / gRPC status and a message."""

    max_upload_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 4096 * 4096  # decoded input image
    sr_max_output_pixels: int = 4096 * 4096  # 1920×1080 ×2 fits
    sr_self_ensemble_max_output_pixels: int = 2048 * 1024  # 8 passes: an eighth of the above; 1920×1080 out fits
    dream_sync_max_pixels: int = 320 * 320
    dream_sync_max_steps: int = 60  # octaves × steps
    dream_task_max_pixels: int = 1024 * 1024
    dream_task_max_steps: int = 400
    style_max_pixels: int = 512 * 512  # the content image (the style image is scaled to it)
    style_max_steps: int = 500
    sr_tile: int = 256  # super-resolution runs on LR tiles this big (plus context): memory bounded by it
    # The HTTP server's own limits, below the service: each is checked before BentoML or Starlette
    # sees the request (serving/middleware.py), so each answers a 4xx with the Error body, where
    # the framework's own (Starlette: 1000 files, 1000 fields, 1 MB a field) answered 500.
    max_form_files: int = 64  # files in one multipart body (/classify takes several; a batch is at most 64)
    max_form_fields: int = 32  # text fields in one multipart body (the DeepDream form has 8)
    max_form_field_bytes: int = 64 * 1024  # one text field (``layers`` is a short JSON list)
    max_json_bytes: int = 64 * 1024  # a JSON body ({"task_id": ...})
    max_url_bytes: int = 8 * 1024  # path and query string; 414 above it
    max_header_bytes: int = 16 * 1024  # all request headers together; 431 above it
    max_headers: int = 100  # request header lines; 431 above it

    def decode(self, data: bytes, max_pixels: int | None = None) -> DecodedImage:
        """Size-checked :func:`decode_image` (``max_pixels`` defaults to ``self.max_pixels``)."""
        if len(data) > self.max_upload_bytes:
            raise RequestError("too_large", f"upload is {len(data)} bytes; the limit is {self.max_upload_bytes}")
        return decode_image(data, max_pixels or self.max_pixels)

    @classmethod
    def from_env(cls) -> Limits:
        """Override any field with ``CNNPIPE_<FIELD>`` (e.g. CNNPIPE_MAX_PIXELS=1000000); a value that
        is not a positive integer is a :class:`ParamError` (a server's one line at its start)."""
        values = {}
        for field in dataclasses.fields(cls):
            name = f"CNNPIPE_{field.name.upper()}"
            raw = os.environ.get(name)
            if raw is not None:
                if not raw.strip().isdigit() or int(raw) < 1:
                    raise ParamError(f"{name}={raw!r}: must be a positive integer")
                values[field.name] = int(raw)
        return cls(**values)
