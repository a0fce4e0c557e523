"""The cnnpipe HTTP service (BentoML 1.4): classify, super-resolve and DeepDream.

    CNNPIPE_MODELS_DIR=models bentoml serve serving.service:Cnnpipe

Every endpoint takes the image as a multipart file field ``image`` and hands the raw bytes to
:class:`cnnpipe.inference.InferenceCore` (shared with the gRPC server), which validates them:
bad requests get 400/413/422 with ``[{"error": "<message>"}]``, never a 500.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections import OrderedDict
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException
from bentoml.validators import ContentType
from pydantic import AfterValidator
from starlette.responses import JSONResponse, Response

from cnnpipe.errors import CnnpipeError
from cnnpipe.imagecodec import RequestError
from cnnpipe.inference import CLASSIFIER_FILE, InferenceCore, Limits, ModelsMissing, classifier_input, find_models

MODELS_DIR = Path(os.environ.get("CNNPIPE_MODELS_DIR", "models")).resolve()
LIMITS = Limits.from_env()
# ONNX Runtime / torch threads per worker: all cores but one, which is left to the HTTP event loop.
THREADS = int(os.environ.get("CNNPIPE_THREADS", str(max(1, (os.cpu_count() or 2) - 1))))
TASK_QUEUE = int(os.environ.get("CNNPIPE_DREAM_QUEUE", "2"))  # DeepDream tasks admitted at once

# Fail at import with one line: an exception in __init__ would make BentoML restart the worker forever.
try:
    find_models(MODELS_DIR)
except ModelsMissing as missing:
    sys.exit(f"error: {missing}")


def _input_size() -> int:
    import onnx

    dims = onnx.load(str(MODELS_DIR / CLASSIFIER_FILE)).graph.input[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value)


INPUT_SIZE = _input_size()


def http_error(error: RequestError) -> BentoMLException:
    return BentoMLException(str(error), error_code=HTTPStatus(error.http_status))


def _classifier_input(upload: Path) -> np.ndarray:
    """Per-request validation + preprocessing, run before adaptive batching merges requests,
    so one bad upload fails only its own request."""
    try:
        return classifier_input(LIMITS.decode(upload.read_bytes()), INPUT_SIZE)
    except RequestError as error:
        raise http_error(error) from None


ClassifierUpload = Annotated[Path, AfterValidator(_classifier_input)]
# PNG results are returned as starlette Responses (no temp files); this annotation documents them
# in the OpenAPI schema as image/png.
PNG = Annotated[Path, ContentType("image/png")]

# DeepDream task progress, per worker process: task id → octave, step, fraction, done. Bounded:
# the oldest entries go first (task results themselves live in BentoML's result store).
_progress: OrderedDict[str, dict[str, Any]] = OrderedDict()
_progress_lock = threading.Lock()
PROGRESS_ENTRIES = 1000


def _set_progress(task_id: str, **state: Any) -> None:
    with _progress_lock:
        _progress.setdefault(task_id, {}).update(state)
        _progress.move_to_end(task_id)
        while len(_progress) > PROGRESS_ENTRIES:
            _progress.popitem(last=False)


class UploadGuard:
    """ASGI middleware for what BentoML would answer with a 500: oversized bodies (→ 413) and
    multipart requests whose file is not in the ``image`` field (→ 400)."""

    def __init__(self, app: Any, max_upload_bytes: int) -> None:
        self.app, self.max_upload_bytes = app, max_upload_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_upload_bytes + 64 * 1024:
            message = f"request body is {int(length)} bytes; the limit is {self.max_upload_bytes}"
            return await JSONResponse({"error": message}, status_code=413)(scope, receive, send)
        if not headers.get(b"content-type", b"").startswith(b"multipart/form-data"):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if len(body) > self.max_upload_bytes + 64 * 1024:
            error = f"request body is {len(body)} bytes; the limit is {self.max_upload_bytes}"
            return await JSONResponse({"error": error}, status_code=413)(scope, receive, send)
        problem = _multipart_problem(headers[b"content-type"], body)
        if problem:
            return await JSONResponse({"error": problem}, status_code=400)(scope, receive, send)

        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


_PART_NAME = re.compile(rb'name="([^"]*)"')


def _multipart_problem(content_type: bytes, body: bytes) -> str | None:
    """Why a multipart body would make BentoML fail (a file outside the ``image`` field), or None.

    Only the part headers are read: parts are delimited by the boundary, which by definition
    does not occur inside any part's content.
    """
    boundary = re.search(rb'boundary="?([^";]+)"?', content_type)
    if not boundary:
        return "multipart/form-data without a boundary"
    for part in body.split(b"--" + boundary.group(1))[1:-1]:
        head = part[: part.find(b"\r\n\r\n")].lower()
        name = _PART_NAME.search(head)
        if b"filename=" in head and (name is None or name.group(1) != b"image"):
            field = name.group(1).decode(errors="replace") if name else "?"
            return f"unexpected file field {field!r}: send the image as the multipart field 'image'"
    return None


class TaskQueueLimit:
    """ASGI middleware: at most ``limit`` DeepDream tasks admitted (running or waiting); more → 429.

    A ``/submit`` call's ASGI cycle lasts until its background task ends, so counting them counts
    the tasks held in memory.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit, self.admitted = app, limit, 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/submit"):
            return await self.app(scope, receive, send)
        if self.admitted >= self.limit:
            message = f"DeepDream queue is full ({self.limit} tasks); retry later"
            response = JSONResponse({"error": message}, status_code=429, headers={"Retry-After": "10"})
            return await response(scope, receive, send)
        self.admitted += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.admitted -= 1


@bentoml.service(
    workers=1,
    threads=4,
    traffic={"timeout": 300, "max_concurrency": 128},
)
class Cnnpipe:
    """Classification, super-resolution and DeepDream from the pipeline's exported models."""

    def __init__(self) -> None:
        if THREADS > 0:
            import torch

            torch.set_num_threads(THREADS)
        self.core = InferenceCore(MODELS_DIR, threads=THREADS, limits=LIMITS)

    def _png(self, png: bytes) -> Response:
        return Response(content=png, media_type="image/png")

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=10_000)
    async def classify(self, image: list[ClassifierUpload]) -> list[dict]:
        """Top-5 classes of an image of any size: centre square crop, antialiased resize to
        32×32, RGB in [0, 1]. Adaptive batching runs concurrent requests as one ONNX Runtime call.

        Async on purpose: a batch runs on the event loop, skipping a thread hop per batch; the
        loop is busy only for the model call, which is the one thing this worker exists for."""
        return self.core.classify_arrays(np.stack(image), top_k=5)  # type: ignore[arg-type]

    @bentoml.api
    def super_resolve(self, image: Path, scale: int = 3) -> PNG:
        """Upscale by one of the exported scales (see /metadata). Returns PNG; RGBA and greyscale kept."""
        try:
            png, _, _ = self.core.super_resolve(image.read_bytes(), scale)
        except RequestError as error:
            raise http_error(error) from None
        return self._png(png)

    def _dream(self, image: Path, options: dict[str, Any], task: bool, task_id: str | None = None) -> Response:
        def progress(p: Any) -> None:
            if task_id is not None:
                _set_progress(task_id, octave=p.octave, step=p.step, fraction=p.fraction)

        try:
            return self._png(self.core.deepdream(image.read_bytes(), options, task=task, progress=progress))
        except RequestError as error:
            raise http_error(error) from None
        except CnnpipeError as error:
            raise BentoMLException(str(error), error_code=HTTPStatus.UNPROCESSABLE_ENTITY) from None

    @bentoml.api
    def deepdream(
        self, image: Path, layers: list[str] | None = None, octaves: int = 3, octave_scale: float = 1.4,
        steps: int = 10, lr: float = 0.02, jitter: int = 0, seed: int = 0,
    ) -> PNG:  # fmt: skip
        """Synchronous DeepDream with tight limits (see /metadata limits.dream_sync_*). PNG out."""
        options = {"layers": layers, "octaves": octaves, "octave_scale": octave_scale, "steps": steps,
                   "lr": lr, "jitter": jitter, "seed": seed}  # fmt: skip
        return self._dream(image, options, task=False)

    @bentoml.task
    def deepdream_task(
        self, image: Path, ctx: bentoml.Context, layers: list[str] | None = None, octaves: int = 4,
        octave_scale: float = 1.4, steps: int = 20, lr: float = 0.02, jitter: int = 8, seed: int = 0,
    ) -> PNG:  # fmt: skip
        """DeepDream as a task for larger jobs: POST /deepdream_task/submit → task_id; poll
        /deepdream_task/status and /deepdream_progress; GET /deepdream_task/get → PNG."""
        task_id = getattr(ctx.request.state, "task_id", None)
        options = {"layers": layers, "octaves": octaves, "octave_scale": octave_scale, "steps": steps,
                   "lr": lr, "jitter": jitter, "seed": seed}  # fmt: skip
        try:
            return self._dream(image, options, task=True, task_id=task_id)
        finally:
            if task_id is not None:
                _set_progress(task_id, done=True)

    @bentoml.api(route="/deepdream_progress")
    async def deepdream_progress(self, task_id: str) -> dict:
        """Progress of a DeepDream task: octave, step, fraction (0..1), done."""
        with _progress_lock:
            state = dict(_progress.get(task_id, {}))
        return {"task_id": task_id, "fraction": 0.0, "done": False, **state}

    @bentoml.api(route="/metadata")
    async def metadata(self) -> dict:
        """Class names, available scales, model files with SHA-256 and versions, limits."""
        return self.core.metadata()

    @bentoml.api
    def noop(self, image: Path) -> dict:
        """Accepts an upload like /classify and does nothing: the framework's floor for benchmarks."""
        return {"bytes": image.stat().st_size}


Cnnpipe.add_asgi_middleware(TaskQueueLimit, limit=TASK_QUEUE)
Cnnpipe.add_asgi_middleware(UploadGuard, max_upload_bytes=LIMITS.max_upload_bytes)
