"""One DeepDream request, four ways in (library, CLI, HTTP, gRPC): byte-identical PNGs, because all
four turn the request into DreamParams through cnnpipe.dream.presets.dream_params."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest
import torch

from cnnpipe.data.images import encode_png
from cnnpipe.dream.backbones import classifier_backbone
from cnnpipe.dream.engine import dream
from cnnpipe.dream.presets import PRESETS, DreamRequest, dream_params
from cnnpipe.serve.codec import decode_image
from cnnpipe.serve.v1 import inference_pb2 as pb
from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc
from serving.launch import REPO, bentoml_server, grpc_server

from .images import GOOD

pytestmark = pytest.mark.slow

IMAGE = GOOD["rgb png"]
# Only some fields set: the rest must come from the same preset everywhere. lr 0.03 is not a
# float32, so the gRPC float field's reading is exercised too.
REQUEST = {"layers": ["features.3"], "octaves": 2, "steps": 3, "lr": 0.03, "seed": 1}


@pytest.fixture(scope="module")
def library_png(served_models: Path) -> bytes:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the servers below and the CLI run
    try:
        backbone = classifier_backbone(served_models / "classifier.pt", torch.device("cpu"))
        params = dream_params(DreamRequest(**REQUEST), "classifier")
        assert params.jitter == PRESETS["quick"].jitter and params.octave_scale == PRESETS["quick"].octave_scale
        return encode_png(dream(decode_image(IMAGE, 10**6).rgb, backbone, params))
    finally:
        torch.set_num_threads(threads)


def test_the_cli_writes_the_same_bytes(tmp_path: Path, served_models: Path, library_png: bytes) -> None:
    (tmp_path / "in.png").write_bytes(IMAGE)
    flags = ["--layer", "features.3", "--octaves", "2", "--steps", "3", "--lr", "0.03", "--seed", "1"]
    command = [sys.executable, "-m", "cnnpipe.cli", "dream", "in.png", "out.png", "--backbone", "classifier"]
    command += ["--classifier", str(served_models / "classifier.pt"), "--device", "cpu", *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").read_bytes() == library_png


def test_http_answers_the_same_bytes(served_models: Path, library_png: bytes) -> None:
    fields = {k: (str(v) if k != "layers" else '["features.3"]') for k, v in REQUEST.items()}
    with bentoml_server(served_models, CNNPIPE_THREADS="1") as base:
        response = httpx.post(f"{base}/deepdream", files={"image": ("x.png", IMAGE)}, data=fields, timeout=120)
    assert response.status_code == 200, response.text
    assert response.content == library_png


def test_grpc_streams_the_same_bytes(served_models: Path, library_png: bytes) -> None:
    with grpc_server(served_models, "--threads", "1") as address:
        stub = pb_grpc.InferenceStub(grpc.insecure_channel(address))
        updates = list(stub.DeepDream(pb.DeepDreamRequest(image=IMAGE, **REQUEST), timeout=120))
    assert updates[-1].png == library_png
