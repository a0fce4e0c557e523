"""The cnnpipe HTTP service (BentoML 1.4): classify, explain, super-resolve, DeepDream and style transfer.

    CNNPIPE_MODELS_DIR=models bentoml serve serving.service:Cnnpipe

Every endpoint takes the image as a multipart file field ``image`` and hands the raw bytes to
:class:`cnnpipe.serve.core.InferenceCore` (shared with the gRPC server), which validates them:
bad requests get 400/413/422 with ``[{"error": "<message>"}]``, never a 500. Settings:
``serving/config.py``; middleware: ``serving/middleware.py``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import bentoml
import numpy as np
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml.exceptions import BentoMLException
from bentoml.validators import ContentType
from pydantic import AfterValidator, Field, ValidatorFunctionWrapHandler, WrapValidator
from starlette.datastructures import UploadFile
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from cnnpipe.dream.engine import DreamCancelled, Progress, ProgressCallback
from cnnpipe.dream.presets import DreamRequest
from cnnpipe.errors import CnnpipeError
from cnnpipe.serve.codec import RequestError
from cnnpipe.serve.core import InferenceCore, classifier_input
from cnnpipe.serve.microbatch import GreedyBatcher
from serving import logs
from serving.config import (
    BATCHING,
    DREAM_BACKBONE,
    INPUT_SIZE,
    KEEPALIVE_REQUESTS,
    LIMITS,
    MODELS_DIR,
    REPLICA_ID,
    RUNTIME,
    SCALES,
    TASK_QUEUE,
    THREADS,
    TOKEN,
    WORKERS,
)
from serving.forms import DreamFields, StyleFields, dream_form, style_form
from serving.keepalive import KeepAliveLimit
from serving.middleware import (
    TASK_ROUTES,
    BearerAuth,
    ErrorBodies,
    Precheck,
    RequestLimits,
    TaskQueueLimit,
    UploadGuard,
)
from serving.progress_store import ProgressStore
from serving.replica_ids import ReplicaTaskIds
from serving.task_slots import TaskSlots

# DeepDream jobs by endpoint and outcome (succeeded, refused, cancelled, failed), beside BentoML's
# request counts by endpoint and status code, on /metrics.
DREAMS = bentoml.metrics.Counter(
    name="cnnpipe_deepdream_jobs", documentation="DeepDream jobs by outcome", labelnames=["endpoint", "outcome"]
)
CLASSIFY_BATCH = bentoml.metrics.Histogram(
    name="cnnpipe_classify_batch_size",
    documentation="Images per classifier model call",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
STYLES = bentoml.metrics.Counter(
    name="cnnpipe_style_transfer_jobs",
    documentation="Style-transfer jobs by outcome",
    labelnames=["endpoint", "outcome"],
)


def http_error(error: RequestError) -> BentoMLException:
    return BentoMLException(str(error), error_code=HTTPStatus(error.http_status))


def _upload_bytes(upload: Any, as_path: ValidatorFunctionWrapHandler) -> bytes:
    """An upload's bytes. A multipart part is read as it is: BentoML's ``Path`` handling would
    first copy it into a temp file to be read back (8 % of the worker's samples per classify
    under load, by py-spy). Anything else takes BentoML's own ``Path`` validation."""
    if isinstance(upload, UploadFile):
        upload.file.seek(0)
        return upload.file.read()
    return as_path(upload).read_bytes()


def _classifier_input(data: bytes) -> np.ndarray:
    """Per-request validation + preprocessing, run before micro-batching merges requests,
    so one bad upload fails only its own request."""
    try:
        return classifier_input(LIMITS.decode(data), INPUT_SIZE)
    except RequestError as error:
        raise http_error(error) from None


# Both are BentoML file fields (``Path``) to clients and in the OpenAPI schema; the handler gets bytes / an array.
UploadBytes = Annotated[Path, WrapValidator(_upload_bytes)]
ClassifierUpload = Annotated[Path, WrapValidator(_upload_bytes), AfterValidator(_classifier_input)]
# PNG results are returned as starlette Responses (no temp files); this annotation documents them
# in the OpenAPI schema as image/png.
PNG = Annotated[Path, ContentType("image/png")]

# Task state every worker of this server shares, beside BentoML's task results (under BENTOML_HOME).
TASK_STATE = Path(BentoMLContainer.bentoml_home.get()) / "cnnpipe-tasks"
progress_store = ProgressStore(TASK_STATE / "progress.db")
task_slots = TaskSlots(TASK_STATE / "slots", TASK_QUEUE)
PLAN_FIELDS = ("layers", "channels", "octaves", "octave_scale", "steps", "lr", "jitter", "smoothing", "seed")


Scale = Literal[tuple(SCALES)]  # type: ignore[valid-type]  # the exported ones
DEFAULT_SCALE = 3 if 3 in SCALES else SCALES[0]


def _png(png: bytes) -> Response:
    return Response(content=png, media_type="image/png")


# The page for people (serving/ui/: static HTML, JS and CSS, nothing from a CDN); it calls the APIs below.
UI = StaticFiles(directory=Path(__file__).with_name("ui"), html=True)


@bentoml.asgi_app(UI, path="/ui", name="ui")
@bentoml.service(
    workers=WORKERS,
    threads=4,
    traffic={"timeout": 300, "max_concurrency": 128},
)
class Cnnpipe:
    """Classification, super-resolution and DeepDream from the pipeline's exported models."""

    @bentoml.on_deployment
    def _fresh_task_state() -> None:
        """Once per start, before any worker: no progress of an earlier run's tasks (BentoML
        clears its task results here too)."""
        progress_store.reset()

    def __init__(self) -> None:
        logs.install()  # here, in the worker, after BentoML has configured its logging
        if THREADS > 0:
            import torch

            torch.set_num_threads(THREADS)
        self.core = InferenceCore(
            MODELS_DIR, threads=THREADS, limits=LIMITS, dream_backbone=DREAM_BACKBONE, runtime=RUNTIME
        )
        # Two calls at once: one runs while the next batch forms (measured: benchmarks/README.md).
        self.batcher = GreedyBatcher(self._classify_batch, max_batch=64, parallel=2) if BATCHING == "on" else None

    @bentoml.api
    async def classify(self, image: list[ClassifierUpload]) -> list[dict]:
        """Top-5 classes of each image, of any size: centre square crop, antialiased resize to
        32×32, RGB in [0, 1]. Concurrent requests share model calls (``CNNPIPE_BATCHING``)."""
        if self.batcher is not None:
            return list(await asyncio.gather(*(self.batcher.submit(one) for one in image)))
        return await anyio.to_thread.run_sync(self._classify_batch, np.stack(image))  # type: ignore[arg-type]

    def _classify_batch(self, batch: np.ndarray) -> list[dict]:
        CLASSIFY_BATCH.observe(len(batch))
        return self.core.classify_arrays(batch, top_k=5)

    @bentoml.api
    def super_resolve(
        self,
        image: Path,
        scale: Scale = DEFAULT_SCALE,  # type: ignore[valid-type]
        self_ensemble: Annotated[bool, Field(strict=True)] = False,  # JSON true/false: "0", "yes" are a 400
    ) -> PNG:
        """Upscale by one of the exported scales (see /metadata). Returns PNG; RGBA and greyscale kept.
        ``self_ensemble=true``: the mean over the 8 flips and rotations of the input (sharper, 8× the
        compute, at most CNNPIPE_SR_SELF_ENSEMBLE_MAX_OUTPUT_PIXELS output pixels)."""
        try:
            png, _, _ = self.core.super_resolve(image.read_bytes(), scale, self_ensemble)
        except RequestError as error:
            raise http_error(error) from None
        return _png(png)  # type: ignore[return-value]  # a Response is returned as is

    @bentoml.api
    def explain(self, image: Path, target: Annotated[int | None, Field(ge=0, strict=True)] = None) -> dict:
        """Top-5 (as /classify) plus Grad-CAM of class ``target`` (default: the top class): ``map``,
        the raw map at the model's input size in [0, 1], and ``overlay_png`` (base64), the map over
        the centre square the model saw."""
        try:
            result = self.core.explain(image.read_bytes(), target)
        except RequestError as error:
            raise http_error(error) from None
        return {**result, "overlay_png": base64.b64encode(result["overlay_png"]).decode()}

    def _job(
        self, endpoint: str, counter: Any, run: Callable[[ProgressCallback], bytes], task_id: str | None = None
    ) -> Response:
        """Run an optimisation (DeepDream, style transfer) to a PNG response. A task's progress goes
        to ``progress_store``, whose cancel flag stops it at the next step; the outcome is counted."""

        def progress(p: Progress) -> bool:
            if task_id is None:
                return True
            progress_store.update(task_id, octave=p.octave, step=p.step, fraction=p.fraction)
            return not progress_store.cancel_requested(task_id)  # False stops the work (the cancel endpoints)

        outcome = "failed"
        try:
            png = run(progress)
            outcome = "succeeded"
            return _png(png)
        except RequestError as error:
            outcome = "refused"
            raise http_error(error) from None
        except DreamCancelled as error:
            outcome = "cancelled"
            if task_id is not None:
                progress_store.update(task_id, cancelled=True, error=str(error))
            raise BentoMLException(str(error), error_code=HTTPStatus.CONFLICT) from None
        except CnnpipeError as error:  # e.g. the backbone cannot load: the request cannot be served
            outcome = "refused"
            raise BentoMLException(str(error), error_code=HTTPStatus.UNPROCESSABLE_ENTITY) from None
        finally:
            counter.labels(endpoint=endpoint, outcome=outcome).inc()
            if task_id is not None:
                progress_store.update(task_id, done=True)

    def _dream(self, image: Path, request: DreamRequest, task: bool, task_id: str | None = None) -> Response:
        def run(progress: ProgressCallback) -> bytes:
            return self.core.deepdream(image.read_bytes(), request, task=task, progress=progress)

        return self._job("deepdream_task" if task else "deepdream", DREAMS, run, task_id)

    @bentoml.api(input_spec=DreamFields)
    def deepdream(self, **fields: Any) -> PNG:
        """Synchronous DeepDream with tight limits (see /metadata limits.dream_sync_*). PNG out.

        Fields left out take the preset's values (``quick`` unless ``preset`` names another; /metadata lists them)."""
        return self._dream(*dream_form(fields), task=False)  # type: ignore[return-value]

    @bentoml.api(input_spec=DreamFields)
    def deepdream_check(self, **fields: Any) -> dict:
        """What a DeepDream task with these fields would run (the resolved settings), or the 4xx it
        would get, without running it: /deepdream_task/submit checks this way before queueing."""
        upload, request = dream_form(fields)
        try:
            image, params = self.core.dream_plan(upload.read_bytes(), request, task=True)
        except RequestError as error:
            raise http_error(error) from None
        settings = dataclasses.asdict(params)
        return {"width": image.width, "height": image.height, **{k: settings[k] for k in PLAN_FIELDS}}

    @bentoml.task(input_spec=DreamFields)
    def deepdream_task(self, ctx: bentoml.Context, **fields: Any) -> PNG:
        """DeepDream as a task for larger jobs: POST /deepdream_task/submit → task_id (checked
        first, as /deepdream_check, so a bad request is refused at once); poll
        /deepdream_task/status and /deepdream_progress; GET /deepdream_task/get → PNG."""
        task_id = getattr(ctx.request.state, "task_id", None)
        return self._dream(*dream_form(fields), task=True, task_id=task_id)  # type: ignore[return-value]

    # The progress and cancel endpoints read and write SQLite on a thread of their own (asyncio's
    # default pool): a write may wait for another worker's, which must not hold up the event loop,
    # and BentoML's own threads (4) can all be busy with long jobs, which must not hold up a cancel.
    @bentoml.api(route="/deepdream_progress")
    async def deepdream_progress(self, task_id: str) -> dict:
        """Progress of a DeepDream task: octave, step, fraction (0..1), done."""
        return await asyncio.to_thread(progress_store.get, task_id)

    @bentoml.api(route="/deepdream_cancel")
    async def deepdream_cancel(self, task_id: str) -> dict:
        """Stop a DeepDream task: it ends at its next step (its status becomes failure, its
        /deepdream_progress says ``cancelled``). Returns the task's progress as it stands."""
        return await asyncio.to_thread(progress_store.cancel, task_id)

    @bentoml.api(input_spec=StyleFields)
    def style_transfer_check(self, **fields: Any) -> dict:
        """What a style-transfer task with these fields would run, or the 4xx it would get, without
        running it: /style_transfer/submit checks this way before queueing."""
        content, style_upload, request = style_form(fields)
        try:
            image, style, params = self.core.style_plan(content.read_bytes(), style_upload.read_bytes(), request)
        except RequestError as error:
            raise http_error(error) from None
        settings = dataclasses.asdict(params)
        chosen = {k: settings[k] for k in ("steps", "content_weight", "style_weight", "init", "seed")}
        return {"width": image.width, "height": image.height, "style_width": style.width, **chosen}

    @bentoml.task(input_spec=StyleFields)
    def style_transfer(self, ctx: bentoml.Context, **fields: Any) -> PNG:
        """Neural style transfer (Gatys et al. 2016) as a task: the content ``image`` painted in the
        style of ``style``, with the DeepDream backbone's features. POST /style_transfer/submit →
        task_id (checked first, as /style_transfer_check); poll /style_transfer/status and
        /style_transfer_progress; GET /style_transfer/get → PNG at the content's size."""
        task_id = getattr(ctx.request.state, "task_id", None)
        content_upload, style_upload, request = style_form(fields)
        content, style = content_upload.read_bytes(), style_upload.read_bytes()

        def run(progress: ProgressCallback) -> bytes:
            return self.core.style_transfer(content, style, request, progress=progress)

        return self._job("style_transfer", STYLES, run, task_id)  # type: ignore[return-value]

    @bentoml.api(route="/style_transfer_progress")
    async def style_transfer_progress(self, task_id: str) -> dict:
        """Progress of a style-transfer task: step, fraction (0..1), done."""
        return await asyncio.to_thread(progress_store.get, task_id)

    @bentoml.api(route="/style_transfer_cancel")
    async def style_transfer_cancel(self, task_id: str) -> dict:
        """Stop a style-transfer task at its next step (as /deepdream_cancel)."""
        return await asyncio.to_thread(progress_store.cancel, task_id)

    @bentoml.api(route="/metadata")
    async def metadata(self) -> dict:
        """Class names, available scales, model files with SHA-256 and versions and the backend and
        device each runs on, DeepDream presets, limits."""
        return self.core.metadata()

    @bentoml.api
    def noop(self, image: UploadBytes) -> dict:  # type: ignore[valid-type]
        """Accepts an upload like /classify and does nothing: the framework's floor for benchmarks."""
        return {"bytes": len(image)}  # type: ignore[arg-type]  # bytes, by UploadBytes


# Outermost first (see serving/middleware.py).
Cnnpipe.add_asgi_middleware(KeepAliveLimit, requests=KEEPALIVE_REQUESTS)
Cnnpipe.add_asgi_middleware(ErrorBodies)
Cnnpipe.add_asgi_middleware(RequestLimits, limits=LIMITS)
Cnnpipe.add_asgi_middleware(BearerAuth, token=TOKEN)
Cnnpipe.add_asgi_middleware(TaskQueueLimit, slots=task_slots, paths=tuple(TASK_ROUTES))  # before any body is read
Cnnpipe.add_asgi_middleware(UploadGuard, limits=LIMITS)
if REPLICA_ID:  # inside UploadGuard: the JSON bodies it buffers are already capped
    Cnnpipe.add_asgi_middleware(ReplicaTaskIds, replica=REPLICA_ID)
Cnnpipe.add_asgi_middleware(Precheck, routes=TASK_ROUTES)

# BentoML works a response's media type out of the output's JSON schema on every response (a
# pydantic schema build per /classify request, 4 % of the worker under load by py-spy): once here.
for _api in Cnnpipe.apis.values():
    _api.output_spec.media_type = _api.output_spec.mime_type()
