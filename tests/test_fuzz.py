"""Coverage-guided fuzzing (atheris) of every decoder, time-boxed, and one regression test per bug
the fuzzer (or its review) found. The longer run is ``python benchmarks/fuzz.py --seconds 300``.

Each fuzz run is a child process (libFuzzer ends its process): about 4 s of start-up plus its
seconds. The whole file takes about a minute on a loaded 2-core machine.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from benchmarks.fuzz import _core, fuzz, tiny_models
from cnnpipe.dream.engine import SEEDS
from cnnpipe.dream.presets import DreamRequest
from cnnpipe.explain.style import StyleRequest
from cnnpipe.serve.codec import RequestError
from cnnpipe.serve.limits import Limits
from serving.forms import DreamFields

# Seconds of fuzzing per target and the coverage (libFuzzer edges) a run that works reaches in
# them: about half of what such a run reached here, so an instrumentation or seeding that broke
# (no edges, stuck on one path) fails the test, and a slow machine does not.
BUDGET = {"decode": 6, "forms": 5, "dream_spec": 5, "grpc": 5}
EDGES = {"decode": 500, "forms": 200, "dream_spec": 150, "grpc": 300}
# atheris ships wheels for x86-64 Linux only (pyproject.toml installs it there); the regression
# tests below need no fuzzer and run everywhere.
needs_atheris = pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris: x86-64 Linux only")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny untrained exports (classifier, ×2, ×3) through the pipeline's ONNX export: ~6 s."""
    return tiny_models(tmp_path_factory.mktemp("fuzz-models"))


@pytest.fixture(scope="module")
def core(models: Path):
    return _core(models)


@pytest.fixture(scope="module")
def png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@needs_atheris
@pytest.mark.slow
@pytest.mark.parametrize("target", list(BUDGET))
def test_only_request_errors_come_out(target: str, models: Path, tmp_path: Path) -> None:
    result = fuzz(target, BUDGET[target], models, seed=1, workdir=tmp_path)
    assert not result.failures, "\n".join(
        f"{entry['count']} × {key}: {entry['message']}\n  input (base64): {entry.get('input_b64', '')[:600]}"
        for key, entry in result.failures.items()
    )
    assert result.inputs >= 100, f"only {result.inputs} inputs in {BUDGET[target]} s:\n{result.log[-3000:]}"
    assert result.edges >= EDGES[target], f"{result.edges} edges (want >= {EDGES[target]}):\n{result.log[-3000:]}"


@needs_atheris
def test_the_harness_finds_and_reports_a_planted_bug(tmp_path: Path) -> None:
    """The canary target raises KeyError behind a 4-byte magic compared byte by byte: found in
    seconds only by coverage guidance, and reported with its input; fuzzing goes on after it."""
    result = fuzz("canary", 3, seed=1, workdir=tmp_path)
    (key, entry), *others = result.failures.items()
    assert not others and key.startswith("KeyError at fuzz.py:") and entry["message"] == "'planted'"
    assert base64.b64decode(entry["input_b64"]).startswith(b"FUZZ")
    assert entry["count"] >= 1 and result.inputs > entry["count"]


# ------------------------------------------------------------------ regressions, one per bug


def test_tiff_without_dimensions_is_refused_not_a_type_error() -> None:
    """Found by the ``decode`` target: Pillow's TIFF plugin raises TypeError("Missing dimensions")
    for a TIFF whose IFD lacks its size; the decoder let it through (a 500 over HTTP)."""
    tiff = base64.b64decode(
        "SUkqAAgAAAAKAAABBAABAAAAGAAAAAEBBAABAAAAFAAAAAIBAwABAAAAIAAAAAMBAwABAAAAAQAAAAYBAwABAAAAAQAAABEBBAABAAAAhgAA"
        "ABYBBAABAAAAFAAAABcBBAABR0lGODdhGAAUAIcAANn12Onjo9fZgr/Vge7sUPfjIdnbJtXR59nFAAAAgAcAABwBAwABAADEwc/VwsCT3sVO"
        "z8MHvcQep/LVmgD4/Y4BAPkAAFMBAwABANGj5r+S7d6PAA=="
    )
    with pytest.raises(RequestError, match="truncated or corrupted") as refused:
        Limits().decode(tiff)
    assert refused.value.http_status == 400 and refused.value.grpc_code == "INVALID_ARGUMENT"


@pytest.mark.parametrize("layer", ["9" * 5000, "²", "①"])
def test_layer_index_that_int_cannot_read_is_refused(core, png: bytes, layer: str) -> None:
    """Found by ``dream_spec`` (the 4645-digit index: int() refuses over 4300 digits) and its
    review ("²".isdigit() is True, int("²") a ValueError): both were a 500 / INTERNAL."""
    with pytest.raises(RequestError) as refused:
        core.dream_plan(png, DreamRequest(layers=[layer]), task=True)
    assert refused.value.http_status == 422 and "layer" in str(refused.value)


def test_nan_smoothing_is_refused(core, png: bytes) -> None:
    """Found by ``dream_spec``: ``smoothing=nan`` (the CLI's ``--smoothing nan``) passed the
    ``< 0`` check and blurred the dream to NaN."""
    for smoothing in (math.nan, math.inf):
        with pytest.raises(RequestError, match="smoothing"):
            core.dream_plan(png, DreamRequest(smoothing=smoothing), task=True)


@pytest.mark.parametrize("weight", ["nan", "inf", "-inf", "1e400"])
def test_non_finite_layer_weight_is_refused(core, png: bytes, weight: str) -> None:
    """Review of ``dream_spec``: ``features.3:nan`` (or inf) was accepted and dreamt an all-black image."""
    with pytest.raises(RequestError, match="finite"):
        core.dream_plan(png, DreamRequest(layers=[f"features.3:{weight}"]), task=True)
    _, params = core.dream_plan(png, DreamRequest(layers=["features.3:-0.5"]), task=True)  # negative: allowed
    assert params.layers == {"features.3": -0.5}


@pytest.mark.parametrize("weights", [(math.inf, 1.0), (1.0, math.nan), (math.nan, 0.0)])
def test_non_finite_style_weights_are_refused(core, png: bytes, weights: tuple[float, float]) -> None:
    """Review of ``forms``: ``style_weight=inf`` passes the form's ``ge=0`` (and gRPC floats can be
    NaN); either made a black image after all the steps."""
    request = StyleRequest(content_weight=weights[0], style_weight=weights[1])
    with pytest.raises(RequestError, match="finite"):
        core.style_plan(png, png, request)


@pytest.mark.parametrize("seed", [SEEDS[0] - 1, SEEDS[1] + 1, 10**30])
def test_seed_torch_cannot_take_is_refused(core, png: bytes, seed: int) -> None:
    """Review of ``forms``: an HTTP ``seed`` is any integer; one past int64/uint64 passed every
    check and then overflowed torch's ``manual_seed`` in the job (a 500 after /deepdream_check said
    yes). DeepDream and style transfer both."""
    with pytest.raises(RequestError, match="seed"):
        core.dream_plan(png, DreamRequest(seed=seed), task=True)
    with pytest.raises(RequestError, match="seed"):
        core.style_plan(png, png, StyleRequest(seed=seed))


def test_the_seed_bounds_are_torchs() -> None:
    for seed in SEEDS:
        torch.Generator().manual_seed(seed)
    for seed in (SEEDS[0] - 1, SEEDS[1] + 1):
        with pytest.raises((RuntimeError, ValueError)):
            torch.Generator().manual_seed(seed)


def test_deeply_nested_layers_field_is_a_validation_error(tmp_path: Path) -> None:
    """Review of ``forms``: ``layers`` is parsed as JSON; '[' a few thousand deep (well inside the
    64 KiB field limit) raised RecursionError out of the validator, a 500, not BentoML's 400."""
    with pytest.raises(ValidationError, match="nested too deeply"):
        DreamFields.model_validate({"image": tmp_path / "x.png", "layers": "[" * 5000})
    fields = DreamFields.model_validate({"image": tmp_path / "x.png", "layers": '["features.3:0.5"]'})
    assert fields.layers == ["features.3:0.5"]
