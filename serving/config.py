"""The HTTP service's settings, read once from the environment at import.

Every model is checked here (:func:`cnnpipe.serve.model_check.check_models`), and a bad setting or
model stops the import with one ``error:`` line and exit status 1. ``bentoml serve`` imports the
service in its own process before it starts any worker, so that is where a bad model stops it;
found in the service's ``__init__`` (in the worker) it would make BentoML restart the worker forever.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cnnpipe import paths
from cnnpipe.device import default_threads
from cnnpipe.dream.names import TORCHVISION_BACKBONES
from cnnpipe.errors import CnnpipeError
from cnnpipe.serve.auth import load_token
from cnnpipe.serve.backends import resolve
from cnnpipe.serve.limits import Limits
from cnnpipe.serve.memory import limit_malloc_arenas
from cnnpipe.serve.model_check import check_models
from serving.replica_ids import valid_replica_id


def _int_setting(name: str, default: int, least: int) -> int:
    """An integer setting from the environment, at least ``least`` (unset or empty: ``default``)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < least:
        raise CnnpipeError(f"{name}={text!r}: use a whole number, at least {least}")
    return int(text)


limit_malloc_arenas()  # in the worker, before its request threads exist (see cnnpipe.serve.memory)

MODELS_DIR = Path(os.environ.get("CNNPIPE_MODELS_DIR", str(paths.MODELS))).resolve()
# Features for DeepDream and style transfer: the trained classifier, or a torchvision net whose
# ImageNet weights are in torch's cache (servers never download).
DREAM_BACKBONE = os.environ.get("CNNPIPE_DREAM_BACKBONE", "classifier")
# What runs the models, and where (cnnpipe.serve.backends): auto | onnxruntime | torch, auto | cpu | cuda.
BACKEND = os.environ.get("CNNPIPE_BACKEND", "auto")
DEVICE = os.environ.get("CNNPIPE_DEVICE", "auto")
# Classify's micro-batching (cnnpipe.serve.microbatch): on, concurrent requests share model calls;
# off, each request is its own call on BentoML's threads.
BATCHING = os.environ.get("CNNPIPE_BATCHING", "on")
# This replica's name in its task ids ("http1.<id>"), for a load balancer to route a task's calls
# back to it (serving/replica_ids.py, deploy/haproxy/haproxy.cfg); empty: ids as BentoML makes them.
REPLICA_ID = os.environ.get("CNNPIPE_REPLICA_ID", "")

try:
    # BentoML worker processes: each loads the models and runs its own event loop and model calls.
    WORKERS = _int_setting("CNNPIPE_WORKERS", 1, least=1)
    # ONNX Runtime / torch threads per worker (0: all cores; default: cnnpipe.device.default_threads).
    THREADS = _int_setting("CNNPIPE_THREADS", default_threads(WORKERS), least=0)
    # Requests one keep-alive connection carries before the answer closes it (serving/keepalive.py); 0: no cap.
    KEEPALIVE_REQUESTS = _int_setting("CNNPIPE_KEEPALIVE_REQUESTS", 100, least=0)
    TASK_QUEUE = _int_setting("CNNPIPE_DREAM_QUEUE", 2, least=0)  # DeepDream and style-transfer tasks admitted at once
    RUNTIME = resolve(BACKEND, DEVICE)  # first: a missing GPU stops the start before any model is opened
    LIMITS = Limits.from_env()
    if DREAM_BACKBONE not in ("classifier", *TORCHVISION_BACKBONES):
        raise CnnpipeError(
            f"CNNPIPE_DREAM_BACKBONE={DREAM_BACKBONE!r}: choose classifier or one of {', '.join(TORCHVISION_BACKBONES)}"
        )
    if BATCHING not in ("on", "off"):
        raise CnnpipeError(f"CNNPIPE_BATCHING={BATCHING!r}: choose on or off")
    if REPLICA_ID and not valid_replica_id(REPLICA_ID):
        raise CnnpipeError(f"CNNPIPE_REPLICA_ID={REPLICA_ID!r}: use letters, digits, '-' and '_' only")
    TOKEN = load_token()  # CNNPIPE_API_TOKEN or CNNPIPE_API_TOKEN_FILE; None = no auth
    MODELS = check_models(MODELS_DIR, RUNTIME.backend)
except CnnpipeError as problem:  # ModelsMissing and ModelCheckError included
    sys.exit(f"error: {problem}")

SCALES = sorted(MODELS.sr)
INPUT_SIZE = MODELS.input_size
