"""The HTTP service's settings, read once from the environment at import.

A missing model stops the import with one line: an exception in the service's ``__init__``
would make BentoML restart the worker forever.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cnnpipe import paths
from cnnpipe.dream.backbones import TORCHVISION_BACKBONES
from cnnpipe.errors import CnnpipeError
from cnnpipe.serve.auth import load_token
from cnnpipe.serve.core import ModelsMissing, find_models
from cnnpipe.serve.limits import Limits
from cnnpipe.serve.memory import limit_malloc_arenas

limit_malloc_arenas()  # in the worker, before its request threads exist (see cnnpipe.serve.memory)

MODELS_DIR = Path(os.environ.get("CNNPIPE_MODELS_DIR", str(paths.MODELS))).resolve()
LIMITS = Limits.from_env()
# ONNX Runtime / torch threads per worker: all cores but one, which is left to the HTTP event loop.
THREADS = int(os.environ.get("CNNPIPE_THREADS", str(max(1, (os.cpu_count() or 2) - 1))))
TASK_QUEUE = int(os.environ.get("CNNPIPE_DREAM_QUEUE", "2"))  # DeepDream and style-transfer tasks admitted at once
# Features for DeepDream and style transfer: the trained classifier, or a torchvision net whose
# ImageNet weights are in torch's cache (servers never download).
DREAM_BACKBONE = os.environ.get("CNNPIPE_DREAM_BACKBONE", "classifier")

try:
    if DREAM_BACKBONE not in ("classifier", *TORCHVISION_BACKBONES):
        raise CnnpipeError(
            f"CNNPIPE_DREAM_BACKBONE={DREAM_BACKBONE!r}: choose classifier or one of {', '.join(TORCHVISION_BACKBONES)}"
        )
    CLASSIFIER_PATH, SR_PATHS = find_models(MODELS_DIR)
    SCALES = sorted(int(p.stem.removeprefix("sr_x")) for p in SR_PATHS)
    TOKEN = load_token()  # CNNPIPE_API_TOKEN or CNNPIPE_API_TOKEN_FILE; None = no auth
except (ModelsMissing, CnnpipeError) as problem:
    sys.exit(f"error: {problem}")


def _input_size() -> int:
    """The classifier's input side, read from the ONNX graph (no session needed at import)."""
    import onnx

    dims = onnx.load(str(CLASSIFIER_PATH)).graph.input[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value)


INPUT_SIZE = _input_size()
