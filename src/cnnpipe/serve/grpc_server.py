"""gRPC server for the ``cnnpipe.v1.Inference`` service (``cnnpipe serve-grpc``).

A thin adapter over :class:`cnnpipe.serve.core.InferenceCore`: every request error becomes the
matching gRPC status (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE) with the core's message.
Standard health checking and server reflection are registered so grpcurl-style tools work.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cnnpipe.dream.engine import DreamCancelled, Progress
from cnnpipe.dream.presets import DreamRequest
from cnnpipe.serve.codec import RequestError
from cnnpipe.serve.core import InferenceCore
from cnnpipe.serve.v1 import inference_pb2 as pb
from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Inference"].full_name


def _abort(context: grpc.ServicerContext, error: RequestError) -> None:
    context.abort(getattr(grpc.StatusCode, error.grpc_code), str(error))


def _float32(value: float) -> float:
    """A proto float as the shortest decimal that is the same float32 (0.02, not 0.0199999995529),
    so a gRPC request means what the same numbers mean over HTTP or the CLI."""
    return float(str(np.float32(value)))


def dream_request_of(message: pb.DeepDreamRequest) -> DreamRequest:
    """The message's DeepDream options; fields the client did not set stay None (the preset's)."""

    def given(name: str) -> Any:
        return getattr(message, name) if message.HasField(name) else None

    scale, lr = given("octave_scale"), given("lr")
    return DreamRequest(
        preset=message.preset or None,
        layers=list(message.layers) or None,
        octaves=given("octaves"),
        octave_scale=None if scale is None else _float32(scale),
        steps=given("steps"),
        lr=None if lr is None else _float32(lr),
        jitter=given("jitter"),
        seed=given("seed"),
    )


class InferenceServicer(pb_grpc.InferenceServicer):
    def __init__(self, core: InferenceCore, max_concurrent_dreams: int = 1) -> None:
        self.core = core
        self.dream_slots = threading.BoundedSemaphore(max_concurrent_dreams)

    def Classify(self, request: pb.ClassifyRequest, context: grpc.ServicerContext) -> pb.ClassifyResponse:
        try:
            result = self.core.classify([request.image], request.top_k or 5)[0]
        except RequestError as error:
            _abort(context, error)
        return pb.ClassifyResponse(
            label=result["label"],
            index=result["index"],
            top_k=[pb.ClassProbability(**entry) for entry in result["top_k"]],
            model_version=result["model_version"],
        )

    def SuperResolve(self, request: pb.SuperResolveRequest, context: grpc.ServicerContext) -> pb.SuperResolveResponse:
        try:
            png, width, height = self.core.super_resolve(request.image, request.scale)
        except RequestError as error:
            _abort(context, error)
        version = next(m.version for m in self.core.models if m.name == f"sr_x{request.scale}")
        return pb.SuperResolveResponse(png=png, width=width, height=height, model_version=version)

    def DeepDream(self, request: pb.DeepDreamRequest, context: grpc.ServicerContext) -> Iterator[pb.DeepDreamUpdate]:
        if not self.dream_slots.acquire(blocking=False):
            context.abort(grpc.StatusCode.UNAVAILABLE, "all DeepDream slots are busy; retry later")
        try:
            yield from self._dream(request, context)
        finally:
            self.dream_slots.release()

    def _dream(self, request: pb.DeepDreamRequest, context: grpc.ServicerContext) -> Iterator[pb.DeepDreamUpdate]:
        updates: queue.Queue[Any] = queue.Queue()
        dream_request = dream_request_of(request)

        def on_progress(p: Progress) -> bool:
            updates.put(p)
            return context.is_active()  # a cancelled call stops the dream at the next step

        def work() -> None:
            try:
                updates.put(self.core.deepdream(request.image, dream_request, task=True, progress=on_progress))
            except (RequestError, DreamCancelled) as error:
                updates.put(error)

        threading.Thread(target=work, daemon=True).start()
        while True:
            item = updates.get()
            if isinstance(item, Progress):
                yield pb.DeepDreamUpdate(
                    progress=pb.DeepDreamProgress(
                        octave=item.octave,
                        octaves=item.octaves,
                        step=item.step,
                        steps=item.steps,
                        fraction=item.fraction,
                    )
                )
            elif isinstance(item, RequestError):
                _abort(context, item)
            elif isinstance(item, DreamCancelled):
                context.abort(grpc.StatusCode.CANCELLED, str(item))
            else:
                yield pb.DeepDreamUpdate(png=item)
                return

    def GetMetadata(self, request: pb.GetMetadataRequest, context: grpc.ServicerContext) -> pb.Metadata:
        meta = self.core.metadata()
        return pb.Metadata(
            classes=meta["classes"],
            scales=meta["scales"],
            models=[pb.ModelInfo(**m) for m in meta["models"]],
            cnnpipe_version=meta["cnnpipe_version"],
            dream_backbone=meta["dream_backbone"],
            dream_layers=[meta["dream_default_layer"]],
            dream_presets=list(meta["dream_presets"]),
        )


def build_server(
    core: InferenceCore, address: str, workers: int = 8, max_message_bytes: int = 32 * 1024 * 1024
) -> tuple[grpc.Server, int]:
    """A started-ready (not yet started) server bound to ``address``; returns it and the port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 4 * max_message_bytes),
        ],
    )
    pb_grpc.add_InferenceServicer_to_server(InferenceServicer(core), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port


def serve(core: InferenceCore, host: str, port: int, workers: int, max_message_bytes: int) -> None:
    """Run until SIGINT/SIGTERM, then drain in-flight calls for up to 5 s."""
    server, bound = build_server(core, f"{host}:{port}", workers, max_message_bytes)
    server.start()
    print(f"cnnpipe gRPC server listening on {host}:{bound}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=5).wait()
