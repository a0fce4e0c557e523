"""The cnnpipe HTTP service (BentoML 1.4): classify, super-resolve and DeepDream.

    CNNPIPE_MODELS_DIR=models bentoml serve serving.service:Cnnpipe

Every endpoint takes the image as a multipart file field ``image`` and hands the raw bytes to
:class:`cnnpipe.serve.core.InferenceCore` (shared with the gRPC server), which validates them:
bad requests get 400/413/422 with ``[{"error": "<message>"}]``, never a 500. Settings:
``serving/config.py``; middleware: ``serving/middleware.py``.
"""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException
from bentoml.validators import ContentType
from pydantic import AfterValidator
from starlette.responses import Response

from cnnpipe.dream.engine import Progress
from cnnpipe.dream.presets import DreamRequest
from cnnpipe.errors import CnnpipeError
from cnnpipe.serve.codec import RequestError
from cnnpipe.serve.core import InferenceCore, classifier_input
from serving import logs
from serving.config import INPUT_SIZE, LIMITS, MODELS_DIR, TASK_QUEUE, THREADS, TOKEN
from serving.middleware import BearerAuth, ErrorBodies, TaskQueueLimit, UploadGuard
from serving.progress_store import ProgressStore

# DeepDream jobs by endpoint and outcome (succeeded, refused, cancelled, failed), beside BentoML's
# request counts by endpoint and status code, on /metrics.
DREAMS = bentoml.metrics.Counter(
    name="cnnpipe_deepdream_jobs", documentation="DeepDream jobs by outcome", labelnames=["endpoint", "outcome"]
)


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

progress_store = ProgressStore()


def _png(png: bytes) -> Response:
    return Response(content=png, media_type="image/png")


@bentoml.service(
    workers=1,
    threads=4,
    traffic={"timeout": 300, "max_concurrency": 128},
)
class Cnnpipe:
    """Classification, super-resolution and DeepDream from the pipeline's exported models."""

    def __init__(self) -> None:
        logs.install()  # here, in the worker, after BentoML has configured its logging
        if THREADS > 0:
            import torch

            torch.set_num_threads(THREADS)
        self.core = InferenceCore(MODELS_DIR, threads=THREADS, limits=LIMITS)

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
        return _png(png)  # type: ignore[return-value]  # a Response is returned as is

    def _dream(self, image: Path, request: DreamRequest, task: bool, task_id: str | None = None) -> Response:
        def progress(p: Progress) -> None:
            if task_id is not None:
                progress_store.update(task_id, octave=p.octave, step=p.step, fraction=p.fraction)

        endpoint = "deepdream_task" if task else "deepdream"
        outcome = "failed"
        try:
            png = self.core.deepdream(image.read_bytes(), request, task=task, progress=progress)
            outcome = "succeeded"
            return _png(png)
        except RequestError as error:
            outcome = "refused"
            raise http_error(error) from None
        except CnnpipeError as error:  # e.g. the dream backbone cannot load: the request cannot be served
            outcome = "refused"
            raise BentoMLException(str(error), error_code=HTTPStatus.UNPROCESSABLE_ENTITY) from None
        finally:
            DREAMS.labels(endpoint=endpoint, outcome=outcome).inc()

    @bentoml.api
    def deepdream(
        self,
        image: Path,
        preset: str | None = None,
        layers: list[str] | None = None,
        octaves: int | None = None,
        octave_scale: float | None = None,
        steps: int | None = None,
        lr: float | None = None,
        jitter: int | None = None,
        seed: int | None = None,
    ) -> PNG:
        """Synchronous DeepDream with tight limits (see /metadata limits.dream_sync_*). PNG out.

        Fields left out take the preset's values (``quick`` unless ``preset`` names another; /metadata lists them)."""
        request = DreamRequest(
            preset=preset,
            layers=layers,
            octaves=octaves,
            octave_scale=octave_scale,
            steps=steps,
            lr=lr,
            jitter=jitter,
            seed=seed,
        )
        return self._dream(image, request, task=False)  # type: ignore[return-value]

    @bentoml.task
    def deepdream_task(
        self,
        image: Path,
        ctx: bentoml.Context,
        preset: str | None = None,
        layers: list[str] | None = None,
        octaves: int | None = None,
        octave_scale: float | None = None,
        steps: int | None = None,
        lr: float | None = None,
        jitter: int | None = None,
        seed: int | None = None,
    ) -> PNG:
        """DeepDream as a task for larger jobs: POST /deepdream_task/submit → task_id; poll
        /deepdream_task/status and /deepdream_progress; GET /deepdream_task/get → PNG."""
        task_id = getattr(ctx.request.state, "task_id", None)
        request = DreamRequest(
            preset=preset,
            layers=layers,
            octaves=octaves,
            octave_scale=octave_scale,
            steps=steps,
            lr=lr,
            jitter=jitter,
            seed=seed,
        )
        try:
            return self._dream(image, request, task=True, task_id=task_id)  # type: ignore[return-value]
        finally:
            if task_id is not None:
                progress_store.update(task_id, done=True)

    @bentoml.api(route="/deepdream_progress")
    async def deepdream_progress(self, task_id: str) -> dict:
        """Progress of a DeepDream task: octave, step, fraction (0..1), done."""
        return progress_store.get(task_id)

    @bentoml.api(route="/metadata")
    async def metadata(self) -> dict:
        """Class names, available scales, model files with SHA-256 and versions, DeepDream presets, limits."""
        return self.core.metadata()

    @bentoml.api
    def noop(self, image: Path) -> dict:
        """Accepts an upload like /classify and does nothing: the framework's floor for benchmarks."""
        return {"bytes": image.stat().st_size}


# Outermost first (see serving/middleware.py).
Cnnpipe.add_asgi_middleware(ErrorBodies)
Cnnpipe.add_asgi_middleware(BearerAuth, token=TOKEN)
Cnnpipe.add_asgi_middleware(UploadGuard, max_upload_bytes=LIMITS.max_upload_bytes)
Cnnpipe.add_asgi_middleware(TaskQueueLimit, limit=TASK_QUEUE)
