"""What both servers start with, whoever starts them (``make serve``, tests, benchmarks): their
environment, and a check that a port is free to bind."""

from __future__ import annotations

import os
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def server_env(models: Path, **extra: str) -> dict[str, str]:
    """This checkout importable (before any outer PYTHONPATH), ``models`` as the models folder, no
    telemetry; ``extra`` added last."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), str(REPO / "src"), os.environ.get("PYTHONPATH")])),
        "CNNPIPE_MODELS_DIR": str(models),
        "BENTOML_DO_NOT_TRACK": "true",
        "DVC_NO_ANALYTICS": "1",
        **extra,
    }


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (nobody listens there or holds it)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
