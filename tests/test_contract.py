"""The HTTP contract: Schemathesis (every check, DeepDream included with small limits) against
the real `bentoml serve`, with zero failures; and the error bodies the OpenAPI document states."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serving.launch import bentoml_server

from .images import BAD, GOOD

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
SMALL_DREAMS = {  # DeepDream stays cheap while every operation is fuzzed; the default preset fits
    "CNNPIPE_THREADS": "1",
    "CNNPIPE_DREAM_SYNC_MAX_PIXELS": str(64 * 64),
    "CNNPIPE_DREAM_TASK_MAX_PIXELS": str(64 * 64),
    "CNNPIPE_DREAM_SYNC_MAX_STEPS": "80",
    "CNNPIPE_DREAM_TASK_MAX_STEPS": "80",
    "CNNPIPE_MAX_PIXELS": str(256 * 256),
}


@pytest.fixture(scope="module")
def base(served_models: Path):
    with bentoml_server(served_models, **SMALL_DREAMS) as url:
        yield url


def test_schemathesis_finds_nothing(base: str) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    command = [str(schemathesis), "--config-file", str(HERE / "schemathesis.toml"), "run", f"{base}/docs.json"]
    command += ["--url", base, "--checks", "all", "--max-examples", "25", "--seed", "1", "--request-timeout", "60"]
    command += ["--suppress-health-check", "all"]  # fuzzing a live server: slow data is expected
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    generated, passed = map(int, re.search(r"(\d+) generated, (\d+) passed", summary).groups())
    assert generated == passed > 300, summary  # every operation really exercised


def test_every_error_is_one_json_object_with_a_message(base: str) -> None:
    """The shape the OpenAPI document declares (components.schemas.Error), from every source."""
    spec = httpx.get(f"{base}/docs.json").json()
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]
    ref = spec["paths"]["/classify"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/Error"}
    refused = [
        httpx.post(f"{base}/classify", files={"image": ("x", BAD["not an image"][0])}),  # the core's check
        httpx.post(f"{base}/super_resolve", files={"image": ("x", GOOD["rgb png"])}, data={"scale": "x"}),  # pydantic
        httpx.post(f"{base}/classify", data={"image": "/etc/passwd"}),  # the upload guard
        httpx.post(f"{base}/classify", files={"picture": ("x.png", GOOD["rgb png"])}),
        httpx.post(f"{base}/deepdream_progress", json={}),
        httpx.get(f"{base}/deepdream_task/status", params={"task_id": "nope"}),  # BentoML's own
        httpx.put(f"{base}/metadata"),
    ]
    for response in refused:
        assert 400 <= response.status_code < 500, response.text
        body = response.json()
        assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
