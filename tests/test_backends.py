"""The PyTorch backend beside ONNX Runtime (cnnpipe.serve.backends), over real servers: the same
answers within float tolerance, tiled super-resolution equal to untiled, explain unchanged,
/metadata and GetMetadata naming backend and device; a bad backend or a missing GPU stops each
server with one line. CUDA-only paths skip with a reason where there is no GPU."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from cnnpipe.errors import ParamError
from cnnpipe.models.checkpoint import build_sr, load_checkpoint, save_checkpoint
from cnnpipe.models.onnx_runtime import cuda_available
from cnnpipe.serve.backends import Runtime, resolve
from cnnpipe.serve.core import InferenceCore
from cnnpipe.serve.model_check import ModelCheckError, check_models
from cnnpipe.serve.v1 import inference_pb2 as pb
from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc
from serving.launch import bentoml_server, free_port, grpc_server, server_env

from .images import GOOD, encode, photo
from .imports import loaded_after
from .pipeline import REPO

NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}
"""Hides any GPU from a subprocess, so the no-GPU refusals are tested on any machine."""
SMALL_TILE = 16
"""CNNPIPE_SR_TILE of the tiled torch server: a 56×40 upload is cut into 4×3 tiles."""
START_DEADLINE = 240
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
CLASSIFY_IMAGES = [GOOD["rgb png"], GOOD["jpeg"], encode(Image.fromarray(photo(64, 48, seed=3)))]
SR_IMAGES = [GOOD["rgb png"], encode(Image.fromarray(photo(37, 61, seed=5)))]


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png))).astype(np.int16)


# ----------------------------------------------------------------------------- resolving the setting


def test_auto_on_a_machine_without_cuda_is_today_s_path() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: auto resolves to CUDA (test_auto_on_cuda)")
    assert resolve() == Runtime("onnxruntime", "cpu", "cpu")
    assert resolve("torch") == Runtime("torch", "cpu", "cpu")
    assert resolve("onnxruntime", "cpu") == Runtime("onnxruntime", "cpu", "cpu")


@pytest.mark.parametrize(
    ("backend", "device", "message"),
    [
        ("tensorrt", "auto", "backend 'tensorrt' is not one of auto, onnxruntime, torch"),
        ("torch", "gpu", "device 'gpu' is not one of auto, cpu, cuda"),
    ],
)
def test_a_bad_setting_is_one_clear_error(backend: str, device: str, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        resolve(backend, device)


def test_cuda_without_a_gpu_is_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for backend in ("auto", "onnxruntime", "torch"):
        with pytest.raises(ParamError, match="device is 'cuda' but no CUDA GPU is available"):
            resolve(backend, "cuda")


@needs_cuda
def test_auto_on_cuda() -> None:
    expected = Runtime("onnxruntime", "cuda", "cuda") if cuda_available() else Runtime("torch", "cuda", "cuda")
    assert resolve() == expected
    assert resolve("auto", "cpu") == Runtime("onnxruntime", "cpu", "cpu")
    assert resolve("torch", "cpu") == Runtime("torch", "cpu", "cpu")


# ----------------------------------------------------------------------------- CUDA paths, in process


@pytest.mark.slow
@needs_cuda
def test_torch_on_cuda_agrees_with_the_cpu(served_models: Path) -> None:
    """bf16 + channels_last classifier: the same top class and probabilities within bf16's reach;
    float32 SR on CUDA within 1/255 of the CPU's."""
    cpu = InferenceCore(served_models, threads=1, runtime=resolve("onnxruntime", "cpu"))
    gpu = InferenceCore(served_models, threads=1, runtime=resolve("torch", "cuda"))
    assert {m.device for m in gpu.models} == {"cuda"} and {m.backend for m in gpu.models} == {"torch"}
    for ours, theirs in zip(gpu.classify(CLASSIFY_IMAGES, 10), cpu.classify(CLASSIFY_IMAGES, 10), strict=True):
        probs = {p["index"]: p["probability"] for p in theirs["top_k"]}
        assert {p["index"]: p["probability"] for p in ours["top_k"]} == pytest.approx(probs, abs=2e-2)
    for image in SR_IMAGES:
        assert np.abs(_pixels(gpu.super_resolve(image, 2)[0]) - _pixels(cpu.super_resolve(image, 2)[0])).max() <= 1


@pytest.mark.slow
@needs_cuda
def test_onnxruntime_on_cuda_if_its_provider_is_there(served_models: Path) -> None:
    if not cuda_available():
        pytest.skip("onnxruntime has no CUDA provider here")
    core = InferenceCore(served_models, threads=1, runtime=resolve("onnxruntime", "cuda"))
    assert {m.device for m in core.models} == {"cuda"}


# ----------------------------------------------------------------------------- the model check


@pytest.fixture
def models(served_models: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(served_models, tmp_path / "models"))


@pytest.mark.slow
def test_the_torch_backend_checks_the_sr_checkpoints(models: Path) -> None:
    assert sorted(check_models(models, "torch").sr) == [2, 3]
    (models / "sr_x2.pt").unlink()
    assert sorted(check_models(models, "onnxruntime").sr) == [2, 3]  # ONNX Runtime does not serve it
    with pytest.raises(ModelCheckError, match=r"sr_x2\.pt is missing; restore it with `dvc pull`"):
        check_models(models, "torch")
    shutil.copy(models / "sr_x3.pt", models / "sr_x2.pt")
    with pytest.raises(ModelCheckError, match=r"sr_x2\.pt holds a ×3 net under the name of ×2"):
        check_models(models, "torch")


@pytest.mark.slow
def test_an_sr_checkpoint_other_than_the_exported_one_is_refused(models: Path) -> None:
    config, _ = load_checkpoint(models / "sr_x3.pt")
    torch.manual_seed(123)
    save_checkpoint(models / "sr_x3.pt", build_sr(config), config)  # the right net, other weights
    with pytest.raises(ModelCheckError, match=r"sr_x3\.pt has sha256 .*, not the .* sr_x3\.onnx was exported from"):
        check_models(models, "torch")


# ----------------------------------------------------------------------------- real servers


@pytest.fixture(scope="module")
def onnx_http(served_models: Path):
    with bentoml_server(served_models, CNNPIPE_THREADS="1") as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def torch_http(served_models: Path):
    """CNNPIPE_BACKEND=torch with a small tile limit (tiled super-resolution)."""
    env = {"CNNPIPE_THREADS": "1", "CNNPIPE_BACKEND": "torch", "CNNPIPE_SR_TILE": str(SMALL_TILE)}
    with bentoml_server(served_models, **env) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def torch_grpc(served_models: Path):
    """serve-grpc --backend torch with the default tile (one tile for these uploads: untiled)."""
    with grpc_server(served_models, "--backend", "torch", "--threads", "1") as address:
        yield pb_grpc.InferenceStub(grpc.insecure_channel(address))


def _classify(http: httpx.Client, image: bytes) -> dict:
    response = http.post("/classify", files={"image": ("upload", image)})
    assert response.status_code == 200, response.text
    return response.json()[0]


def _super_resolve(http: httpx.Client, image: bytes, scale: int) -> bytes:
    response = http.post("/super_resolve", files={"image": ("upload", image)}, data={"scale": str(scale)})
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.slow
def test_metadata_says_which_backend_and_device_run_each_model(
    onnx_http: httpx.Client, torch_http: httpx.Client, torch_grpc: pb_grpc.InferenceStub
) -> None:
    onnx = {m["name"]: m for m in onnx_http.get("/metadata").json()["models"]}
    meta = torch_http.get("/metadata").json()
    assert meta["limits"]["sr_tile"] == SMALL_TILE  # CNNPIPE_SR_TILE reached the core: the tiled server tiles
    served = {m["name"]: m for m in meta["models"]}
    assert sorted(served) == sorted(onnx) == ["classifier", "sr_x2", "sr_x3"]
    for name, model in onnx.items():
        assert (model["backend"], model["device"], model["weights"]) == ("onnxruntime", "cpu", model["file"])
        expected = ("torch", "cpu", "classifier.pt" if name == "classifier" else f"{name}.pt")
        assert (served[name]["backend"], served[name]["device"], served[name]["weights"]) == expected
        assert (served[name]["file"], served[name]["sha256"]) == (model["file"], model["sha256"])  # same model
    grpc_models = {m.name: m for m in torch_grpc.GetMetadata(pb.GetMetadataRequest()).models}
    assert {n: (m.backend, m.device, m.weights) for n, m in grpc_models.items()} == {
        n: (m["backend"], m["device"], m["weights"]) for n, m in served.items()
    }


@pytest.mark.slow
def test_classify_on_torch_is_onnx_runtime_s_within_1e_4(
    onnx_http: httpx.Client, torch_http: httpx.Client, torch_grpc: pb_grpc.InferenceStub
) -> None:
    for image in CLASSIFY_IMAGES:
        expected = _classify(onnx_http, image)
        probs = {p["index"]: p["probability"] for p in expected["top_k"]}
        http = _classify(torch_http, image)
        remote = torch_grpc.Classify(pb.ClassifyRequest(image=image, top_k=5))
        assert http["index"] == remote.index == expected["index"]
        assert {p["index"]: p["probability"] for p in http["top_k"]} == pytest.approx(probs, abs=1e-4, rel=0)
        assert {p.index: p.probability for p in remote.top_k} == pytest.approx(probs, abs=1e-4, rel=0)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3])
def test_super_resolve_on_torch_is_onnx_runtime_s_within_1_255_and_tiled_is_untiled(
    onnx_http: httpx.Client, torch_http: httpx.Client, torch_grpc: pb_grpc.InferenceStub, scale: int
) -> None:
    for image in SR_IMAGES:
        expected = _pixels(_super_resolve(onnx_http, image, scale))
        tiled = _pixels(_super_resolve(torch_http, image, scale))
        untiled = _pixels(torch_grpc.SuperResolve(pb.SuperResolveRequest(image=image, scale=scale)).png)
        assert tiled.shape == untiled.shape == expected.shape
        assert np.abs(untiled - expected).max() <= 1, "torch and ONNX Runtime differ by more than 1/255"
        assert np.array_equal(tiled, untiled), "tiles show seams"


@pytest.mark.slow
def test_explain_is_unchanged(onnx_http: httpx.Client, torch_http: httpx.Client) -> None:
    image = GOOD["rgb png"]
    expected = onnx_http.post("/explain", files={"image": ("upload", image)}).json()
    served = torch_http.post("/explain", files={"image": ("upload", image)}).json()
    for key in ("target", "layer", "map"):
        assert served[key] == expected[key], key
    assert served["overlay_png"] == expected["overlay_png"]
    probs = {p["index"]: p["probability"] for p in expected["top_k"]}
    assert {p["index"]: p["probability"] for p in served["top_k"]} == pytest.approx(probs, abs=1e-4, rel=0)


# ----------------------------------------------------------------------------- refusing to start


def _refused_start(server: str, models: Path, *args: str, **env: str) -> str:
    """Start a server that must refuse: exit status 1, one ``error:`` line and nothing else."""
    if server == "bentoml":
        command = [sys.executable, "-m", "bentoml", "serve", "serving.service:Cnnpipe", "--port", str(free_port())]
    else:
        command = [sys.executable, "-m", "cnnpipe.cli", "serve-grpc", "--models", str(models), "--port", "0", *args]
    command += ["--host", "127.0.0.1"]
    try:
        proc = subprocess.run(
            command, cwd=REPO, env=server_env(models, **env), capture_output=True, text=True, timeout=START_DEADLINE
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"still running after {START_DEADLINE} s: {exc.output!r:.3000}")
    output = proc.stdout + proc.stderr
    lines = output.strip().splitlines()
    assert proc.returncode == 1, output[-3000:]
    assert "Traceback" not in output and len(lines) == 1 and lines[0].startswith("error: "), output[-3000:]
    return lines[0]


REFUSALS = [  # server, args, env, what the line says
    ("bentoml", (), {"CNNPIPE_BACKEND": "tensorrt"}, "backend 'tensorrt' is not one of auto, onnxruntime, torch"),
    ("bentoml", (), {"CNNPIPE_DEVICE": "cuda", **NO_GPU}, "device is 'cuda' but no CUDA GPU is available"),
    ("grpc", (), {"CNNPIPE_BACKEND": "tensorrt"}, "backend 'tensorrt' is not one of auto, onnxruntime, torch"),
    ("grpc", ("--backend", "tensorrt"), {}, "backend 'tensorrt' is not one of"),
    ("grpc", (), {"CNNPIPE_DEVICE": "cuda", **NO_GPU}, "device is 'cuda' but no CUDA GPU is available"),
    ("grpc", ("--backend", "torch", "--device", "cuda"), NO_GPU, "device is 'cuda' but no CUDA GPU is available"),
    ("bentoml", (), {"CNNPIPE_SR_TILE": "0"}, "CNNPIPE_SR_TILE='0': must be a positive integer"),
    ("grpc", (), {"CNNPIPE_SR_TILE": "big"}, "CNNPIPE_SR_TILE='big': must be a positive integer"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("server", "args", "env", "says"), REFUSALS, ids=[f"{s}-{e or a}" for s, a, e, _ in REFUSALS])
def test_a_bad_backend_or_a_missing_gpu_stops_the_server_with_one_line(
    served_models: Path, server: str, args: tuple[str, ...], env: dict[str, str], says: str
) -> None:
    assert says in _refused_start(server, served_models, *args, **env)


@pytest.mark.slow
@pytest.mark.parametrize("server", ["bentoml", "grpc"])
def test_the_torch_backend_without_an_sr_checkpoint_stops_the_server_with_one_line(models: Path, server: str) -> None:
    (models / "sr_x3.pt").unlink()
    line = _refused_start(server, models, "--backend", "torch", CNNPIPE_BACKEND="torch")
    assert f"{models / 'sr_x3.pt'} is missing; restore it with `dvc pull`" in line


@pytest.mark.parametrize(("backend", "reads_the_file"), [("onnxruntime", False), ("torch", True)])
def test_a_core_reads_the_exports_metadata_without_the_onnx_package_unless_on_torch(
    served_models: Path, backend: str, reads_the_file: bool
) -> None:
    """ONNX Runtime's session has the export's metadata and input shape; only the PyTorch backend,
    which opens no session, reads them from the file with the onnx package.
    torchvision never loads at start (it pulls in torch._dynamo); benchmarks/startup.py times both."""
    build = (
        "import sys; from pathlib import Path; from cnnpipe.serve.backends import resolve; "
        "from cnnpipe.serve.core import InferenceCore; "
        f"core = InferenceCore(Path(sys.argv[1]), threads=1, runtime=resolve({backend!r}, 'cpu')); "
        "print(core.input_size, len(core.classes), sorted(core.sr_context), core.models[0].provenance is not None)"
    )
    watched = ("onnx", "torchvision", "torch._dynamo")
    printed, loaded = loaded_after(build, watched, str(served_models), env=server_env(served_models))
    assert printed == ["32 10 [2, 3] True"], printed
    assert loaded == (["onnx"] if reads_the_file else []), loaded
