"""gRPC server for the ``cnnpipe.v1.Inference`` service (``cnnpipe serve-grpc``).

A thin adapter over :class:`cnnpipe.serve.core.InferenceCore`: every request error becomes the
matching gRPC status (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE) with the core's message,
and anything unexpected becomes INTERNAL with the traceback in the log, never a hung call. Bytes
that are not the method's request message are the client's mistake (:class:`MalformedRequests`):
one INFO line, no traceback. Standard health checking and server reflection are registered so
grpcurl-style tools work; optional bearer-token auth (:mod:`cnnpipe.serve.auth`) and TLS.
"""

from __future__ import annotations

import functools
import logging
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cnnpipe.dream.engine import DreamCancelled, Progress, ProgressCallback
from cnnpipe.dream.presets import DreamRequest
from cnnpipe.explain.style import StyleRequest
from cnnpipe.serve.auth import REFUSAL, authorized
from cnnpipe.serve.codec import RequestError
from cnnpipe.serve.core import InferenceCore
from cnnpipe.serve.v1 import inference_pb2 as pb
from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Inference"].full_name
OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.")  # never behind the token
INTERNAL = "internal error; the server log has the details"
# gRPC's status-code spec (doc/statuscodes.md): "Error parsing request proto | INTERNAL | Server",
# what every gRPC library answers; the message says it is the request, and the log says INFO.
MALFORMED = grpc.StatusCode.INTERNAL
MAX_METADATA_BYTES = 16 * 1024  # all request headers of a call; over it the library says RESOURCE_EXHAUSTED
# After the grace period, how long stop() waits for cancelled dreams' threads (each ends at its next step).
DREAM_STOP_SECONDS = 4.0
log = logging.getLogger("cnnpipe.grpc")
R = TypeVar("R")


@dataclass(frozen=True)
class GrpcSettings:
    """How ``cnnpipe serve-grpc`` listens and what it admits."""

    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 8  # concurrent RPCs
    max_message_bytes: int = 32 * 1024 * 1024
    dream_slots: int = 1  # DeepDream and style-transfer streams at once; more answer UNAVAILABLE
    dream_leak_seconds: float = 900.0  # a slot held longer than this is a leak: health NOT_SERVING
    grace_seconds: float = 5.0  # SIGTERM: in-flight calls get this long, then are cancelled
    token: str | None = None  # bearer token required for the Inference service; None = open
    tls_cert: Path | None = None  # server certificate chain (PEM); with tls_key, TLS is on
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # when set, clients must present a certificate it signed


def _status(error: RequestError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, error.grpc_code)


def request_id(context: grpc.ServicerContext) -> str:
    """The client's ``x-request-id`` or a new one; sent back as trailing metadata, named in the log."""
    given = dict(context.invocation_metadata()).get("x-request-id")
    rid = given if isinstance(given, str) and given else uuid.uuid4().hex[:16]
    context.set_trailing_metadata((("x-request-id", rid),))
    return rid


def _refuse(context: grpc.ServicerContext, rid: str, method: str, error: BaseException) -> None:
    """End the call with the error's status: a client's mistake is one INFO line, anything else
    is a bug and logged with its traceback (and the client learns nothing of the internals)."""
    if isinstance(error, RequestError):
        log.info("%s %s refused (%s): %s", rid, method, error.grpc_code, error)
        context.abort(_status(error), str(error))
    elif isinstance(error, DreamCancelled):
        log.info("%s %s cancelled: %s", rid, method, error)
        context.abort(grpc.StatusCode.CANCELLED, str(error))
    log.error("%s %s failed", rid, method, exc_info=error)
    context.abort(grpc.StatusCode.INTERNAL, INTERNAL)


def _unary(method: Callable[..., R]) -> Callable[..., R]:
    """Every outcome of a unary RPC ends as its status (see :func:`_refuse`)."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> R:
        rid = request_id(context)
        try:
            return method(self, request, context)
        except Exception as error:
            _refuse(context, rid, method.__name__, error)
        raise AssertionError("context.abort raises")  # for type checkers

    return wrapper


def _float32(value: float) -> float:
    """A proto float as the shortest decimal that is the same float32 (0.02, not 0.0199999995529),
    so a gRPC request means what the same numbers mean over HTTP or the CLI."""
    return float(str(np.float32(value)))


def _given(message: Any, name: str) -> Any:
    """A proto3 ``optional`` field's value, or None when the client did not set it."""
    return getattr(message, name) if message.HasField(name) else None


def dream_request_of(message: pb.DeepDreamRequest) -> DreamRequest:
    """The message's DeepDream options; fields the client did not set stay None (the preset's)."""
    given = functools.partial(_given, message)
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


def style_request_of(message: pb.StyleTransferRequest) -> StyleRequest:
    """The message's style-transfer options; unset fields stay None (the defaults)."""
    given = functools.partial(_given, message)
    content_weight, style_weight = given("content_weight"), given("style_weight")
    return StyleRequest(
        steps=given("steps"),
        content_weight=None if content_weight is None else _float32(content_weight),
        style_weight=None if style_weight is None else _float32(style_weight),
        init=message.init or None,
        seed=given("seed"),
    )


class DreamSlots:
    """At most ``size`` DeepDreams at once, each slot held by the thread that runs the dream (so a
    client that goes away cannot strand it), with the time each was taken, to spot a leak."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._held: dict[int, float] = {}
        self._lock = threading.Condition()
        self._next = 0

    def take(self) -> int | None:
        with self._lock:
            if len(self._held) >= self.size:
                return None
            self._next += 1
            self._held[self._next] = time.monotonic()
            return self._next

    def give_back(self, ticket: int) -> None:
        with self._lock:
            self._held.pop(ticket, None)
            self._lock.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every slot is back (each dream's thread has ended); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._held, timeout)

    def oldest_seconds(self) -> float:
        with self._lock:
            return time.monotonic() - min(self._held.values()) if self._held else 0.0


class InferenceServicer(pb_grpc.InferenceServicer):
    def __init__(self, core: InferenceCore, dream_slots: int = 1) -> None:
        self.core = core
        self.dream_slots = DreamSlots(dream_slots)

    @_unary
    def Classify(self, request: pb.ClassifyRequest, context: grpc.ServicerContext) -> pb.ClassifyResponse:
        result = self.core.classify([request.image], request.top_k or 5)[0]
        return pb.ClassifyResponse(
            label=result["label"],
            index=result["index"],
            top_k=[pb.ClassProbability(**entry) for entry in result["top_k"]],
            model_version=result["model_version"],
        )

    @_unary
    def Explain(self, request: pb.ExplainRequest, context: grpc.ServicerContext) -> pb.ExplainResponse:
        target = _given(request, "target")
        result = self.core.explain(request.image, target)
        cam = result["map"]
        return pb.ExplainResponse(
            label=result["label"],
            index=result["index"],
            top_k=[pb.ClassProbability(**entry) for entry in result["top_k"]],
            model_version=result["model_version"],
            target=result["target"],
            target_label=result["target_label"],
            layer=result["layer"],
            map_height=len(cam),
            map_width=len(cam[0]),
            map=[v for row in cam for v in row],
            overlay_png=result["overlay_png"],
        )

    @_unary
    def SuperResolve(self, request: pb.SuperResolveRequest, context: grpc.ServicerContext) -> pb.SuperResolveResponse:
        png, width, height = self.core.super_resolve(request.image, request.scale, request.self_ensemble)
        version = next(m.version for m in self.core.models if m.name == f"sr_x{request.scale}")
        return pb.SuperResolveResponse(png=png, width=width, height=height, model_version=version)

    def _stream(
        self, context: grpc.ServicerContext, method: str, run: Callable[[ProgressCallback], bytes], message: Any
    ) -> Iterator[Any]:
        """An optimisation (DeepDream, style transfer) as a stream of ``message(progress=…)`` then
        ``message(png=…)``. It runs on its own thread holding one of the shared slots (UNAVAILABLE
        when all are busy); the call ending (cancel, deadline, server stop) stops it at its next step."""
        rid = request_id(context)
        ticket = self.dream_slots.take()
        if ticket is None:
            log.info("%s %s refused (UNAVAILABLE): all slots busy", rid, method)
            context.abort(grpc.StatusCode.UNAVAILABLE, "all DeepDream/style-transfer slots are busy; retry later")
            return
        updates: queue.Queue[Any] = queue.Queue()

        def on_progress(p: Progress) -> bool:
            updates.put(p)
            return context.is_active()  # a cancelled or timed-out call stops the work at the next step

        def work() -> None:
            try:
                updates.put(run(on_progress))
            except BaseException as error:  # every outcome reaches the stream, which then ends
                updates.put(error)
            finally:
                self.dream_slots.give_back(ticket)

        threading.Thread(target=work, name=method, daemon=True).start()
        while True:
            try:
                item = updates.get(timeout=0.5)
            except queue.Empty:
                if not context.is_active():  # client gone or server stopping: do not wait on the work
                    return
                continue
            if isinstance(item, Progress):
                yield message(
                    progress=pb.DeepDreamProgress(
                        octave=item.octave,
                        octaves=item.octaves,
                        step=item.step,
                        steps=item.steps,
                        fraction=item.fraction,
                    )
                )
            elif isinstance(item, bytes):
                yield message(png=item)
                return
            else:
                _refuse(context, rid, method, item)

    def DeepDream(self, request: pb.DeepDreamRequest, context: grpc.ServicerContext) -> Iterator[pb.DeepDreamUpdate]:
        dream_request = dream_request_of(request)

        def run(progress: ProgressCallback) -> bytes:
            return self.core.deepdream(request.image, dream_request, task=True, progress=progress)

        yield from self._stream(context, "DeepDream", run, pb.DeepDreamUpdate)

    def StyleTransfer(
        self, request: pb.StyleTransferRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StyleTransferUpdate]:
        style_request = style_request_of(request)

        def run(progress: ProgressCallback) -> bytes:
            return self.core.style_transfer(request.image, request.style, style_request, progress=progress)

        yield from self._stream(context, "StyleTransfer", run, pb.StyleTransferUpdate)

    @_unary
    def GetMetadata(self, request: pb.GetMetadataRequest, context: grpc.ServicerContext) -> pb.Metadata:
        meta = self.core.metadata()
        return pb.Metadata(
            classes=meta["classes"],
            scales=meta["scales"],
            models=[_model_info(m) for m in meta["models"]],
            cnnpipe_version=meta["cnnpipe_version"],
            dream_backbone=meta["dream_backbone"],
            dream_layers=meta["dream_layers"],
            dream_default_layer=meta["dream_default_layer"],
            dream_presets=list(meta["dream_presets"]),
            limits=meta["limits"],
        )


def _model_info(model: dict[str, Any]) -> pb.ModelInfo:
    """``/metadata``'s model entry as a message; params and metrics become ``google.protobuf.Struct``."""
    info = pb.ModelInfo(**{k: v for k, v in model.items() if k != "provenance"})
    if model.get("provenance"):
        info.provenance.CopyFrom(json_format.ParseDict(model["provenance"], pb.Provenance()))
    return info


class TokenAuth(grpc.ServerInterceptor):
    """UNAUTHENTICATED for calls to the Inference service without the bearer token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(OPEN_METHODS):
            return handler
        header = dict(details.invocation_metadata).get("authorization")
        if authorized(header, self.token):
            return handler

        def deny(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)

        kind = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.unary_unary_rpc_method_handler
        return kind(deny, handler.request_deserializer, handler.response_serializer)


@dataclass(frozen=True)
class Unparsable:
    """Stands in for a request whose bytes are not the method's message (see :class:`MalformedRequests`)."""

    message: str


def _tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """The deserializer, answering :class:`Unparsable` where it would raise: grpcio logs a raising
    deserializer's traceback as an ERROR on every call, which any client could flood the log with."""
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)  # of Message.FromString
    name = descriptor.full_name if descriptor is not None else "the method's request"

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return Unparsable(f"the request bytes are not a valid {name} message")

    return parse


class MalformedRequests(grpc.ServerInterceptor):
    """A request that does not parse, for every RPC of every service (health and reflection too),
    ends as :data:`MALFORMED` with the reason, logged as one INFO line with the request id."""

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]

        def refuse(context: grpc.ServicerContext, request: Unparsable) -> None:
            rid = request_id(context)
            log.info("%s %s refused (%s): %s", rid, method, MALFORMED.name, request.message)
            context.abort(MALFORMED, request.message)

        def single(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                if isinstance(request, Unparsable):
                    refuse(context, request)
                return behavior(request, context)

            return call

        def streamed(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def call(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                def checked() -> Iterator[Any]:
                    for request in requests:
                        if isinstance(request, Unparsable):
                            refuse(context, request)
                        yield request

                return behavior(checked(), context)

            return call

        kind = ("stream_" if handler.request_streaming else "unary_") + (
            "stream" if handler.response_streaming else "unary"
        )
        wrap = streamed if handler.request_streaming else single
        return handler._replace(
            request_deserializer=_tolerant(handler.request_deserializer), **{kind: wrap(getattr(handler, kind))}
        )


class Server:
    """The gRPC server with its health service, leak watch and drain-on-stop."""

    def __init__(self, core: InferenceCore, settings: GrpcSettings) -> None:
        self.settings = settings
        # The token first: a caller without it learns nothing, not even that its bytes did not parse.
        interceptors: list[grpc.ServerInterceptor] = [TokenAuth(settings.token)] if settings.token else []
        interceptors.append(MalformedRequests())
        self.grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="grpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", 4 * settings.max_message_bytes),
                # Soft and hard limit alike, so a call over it is always refused, never by chance.
                ("grpc.max_metadata_size", MAX_METADATA_BYTES),
                ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
            ],
        )
        self.servicer = InferenceServicer(core, settings.dream_slots)
        pb_grpc.add_InferenceServicer_to_server(self.servicer, self.grpc)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.grpc)
        address = f"{settings.host}:{settings.port}"
        self.port = (
            self.grpc.add_secure_port(address, self._credentials())
            if settings.tls_cert
            else (self.grpc.add_insecure_port(address))
        )
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        self._stopped = threading.Event()

    def _credentials(self) -> grpc.ServerCredentials:
        s = self.settings
        assert s.tls_cert is not None and s.tls_key is not None
        ca = s.tls_client_ca.read_bytes() if s.tls_client_ca else None
        return grpc.ssl_server_credentials(
            [(s.tls_key.read_bytes(), s.tls_cert.read_bytes())],
            root_certificates=ca,
            require_client_auth=ca is not None,
        )

    def _set_health(self, status: int) -> None:
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def _watch_slots(self) -> None:
        """A DeepDream slot held past ``dream_leak_seconds`` is capacity that never comes back:
        say NOT_SERVING so orchestrators restart the process (it cannot happen by design; this is
        the alarm if it does)."""
        while not self._stopped.wait(1.0):
            if self.servicer.dream_slots.oldest_seconds() > self.settings.dream_leak_seconds:
                log.error(
                    "a DeepDream slot has been held for over %.0f s: NOT_SERVING", self.settings.dream_leak_seconds
                )
                self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
                return

    def start(self) -> None:
        self.grpc.start()
        threading.Thread(target=self._watch_slots, name="slot-watch", daemon=True).start()

    def stop(self) -> None:
        """NOT_SERVING at once, then ``grace_seconds`` for in-flight calls, then cancel the rest.

        A cancelled dream's thread ends at its next step; it is waited for (a few seconds at most),
        because a process that exits with it still inside torch aborts in C++ teardown
        ("terminate called without an active exception", SIGABRT) instead of exiting 0."""
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._stopped.set()
        self.grpc.stop(grace=self.settings.grace_seconds).wait()
        if not self.servicer.dream_slots.wait_idle(timeout=DREAM_STOP_SECONDS):
            log.warning("a DeepDream/style-transfer thread did not stop within %g s of shutdown", DREAM_STOP_SECONDS)


def serve(core: InferenceCore, settings: GrpcSettings) -> None:
    """Run until SIGINT/SIGTERM, then drain (see :meth:`Server.stop`) and return."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = Server(core, settings)
    server.start()
    scheme = "TLS" if settings.tls_cert else "plaintext"
    print(f"cnnpipe gRPC server listening on {settings.host}:{server.port} ({scheme})", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
