"""The HTTP service under hostile and awkward clients: no 5xx, quiet logs for client errors,
metrics by endpoint and status, a bounded DeepDream queue, bearer tokens."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from benchmarks.soak import listener_pid, rss_mb
from cnnpipe.serve.auth import REFUSAL
from serving.launch import bentoml_server

from .images import AWKWARD, BAD, GOOD, encode, photo

pytestmark = pytest.mark.slow


def _log(models: Path, base: str) -> str:
    return (models.parent / f"bentoml-{base.rsplit(':', 1)[1]}.log").read_text()


def _files(image: bytes) -> dict:
    return {"image": ("upload", image)}


def test_awkward_and_bad_uploads_get_4xx_or_answers_and_one_log_line_each(served_models: Path) -> None:
    with bentoml_server(served_models, CNNPIPE_THREADS="1") as base, httpx.Client(base_url=base, timeout=120) as http:
        for name, image in AWKWARD.items():
            assert http.post("/classify", files=_files(image)).status_code == 200, name
            assert http.post("/super_resolve", files=_files(image), data={"scale": "2"}).status_code == 200, name
            dream = http.post("/deepdream", files=_files(image), data={"layers": "features.3", "octaves": "2"})
            assert dream.status_code in (200, 422), (name, dream.text)
            if dream.status_code == 422:
                assert "needs at least" in dream.json()["error"]
                # the task is refused at submission, not queued to fail
                task = http.post("/deepdream_task/submit", files=_files(image), data={"layers": "features.3"})
                assert task.status_code == 422 and "needs at least" in task.json()["error"], name
        refused = 0
        for _name, (image, _kind, _text) in BAD.items():
            assert 400 <= http.post("/classify", files=_files(image)).status_code < 500
            refused += 1
        log = _log(served_models, base)
    assert "Traceback" not in log and "[ERROR]" not in log
    lines = [line for line in log.splitlines() if "Refused /classify" in line]
    assert len(lines) == refused and all("[INFO]" in line and "trace=" in line for line in lines)


def test_metrics_count_requests_by_endpoint_and_status_and_dreams_by_outcome(served_models: Path) -> None:
    with bentoml_server(served_models, CNNPIPE_THREADS="1") as base, httpx.Client(base_url=base, timeout=120) as http:
        http.post("/classify", files=_files(GOOD["rgb png"]))
        http.post("/classify", files=_files(b"nope"))
        http.post("/deepdream", files=_files(GOOD["rgb png"]), data={"octaves": "1", "steps": "1"})
        http.post("/deepdream", files=_files(AWKWARD["1x1"]))
        metrics = http.get("/metrics").text

    def count(pattern: str) -> float:
        found = [float(m.group(1)) for m in re.finditer(pattern + r"[^\n]* ([0-9.e+]+)\n", metrics)]
        return sum(found)

    def requests(status: int) -> str:
        return r'bentoml_service_request_total\{[^}]*endpoint="/classify"[^}]*http_response_code="' + f'{status}"'

    def dreams(outcome: str) -> str:
        return r'cnnpipe_deepdream_jobs_total\{endpoint="deepdream",outcome="' + outcome + r'"\}'

    assert count(requests(200)) >= 1 and count(requests(400)) >= 1, metrics
    assert count(dreams("succeeded")) == 1 and count(dreams("refused")) == 1, metrics


def test_a_flood_of_dream_tasks_is_bounded_and_every_admitted_one_finishes(served_models: Path) -> None:
    """64 submissions at once, each with ~1 MB of upload: 429s for the excess (whose bodies are
    never read), memory bounded, and every admitted task finishes."""
    image = encode(Image.fromarray(photo(96, 96))) + b"\0" * (1 << 20)  # PNG readers stop at IEND
    server = bentoml_server(served_models, CNNPIPE_THREADS="1", CNNPIPE_DREAM_QUEUE="2")
    with server as base, httpx.Client(base_url=base, timeout=120) as http, ThreadPoolExecutor(64) as pool:
        submit = lambda _: http.post("/deepdream_task/submit", files=_files(image), data={"steps": "20"})  # noqa: E731
        http.post("/deepdream", files=_files(image), data={"steps": "1", "octaves": "1"})  # load the backbone first
        before = rss_mb(listener_pid(base))
        answers = list(pool.map(submit, range(64)))
        assert rss_mb(listener_pid(base)) - before < 64, "the refused uploads were held in memory"
        statuses = [a.status_code for a in answers]
        assert set(statuses) <= {200, 429} and 1 <= statuses.count(200) <= 2 + 62  # some admitted, none lost
        assert statuses.count(429) >= 1
        refused = [a for a in answers if a.status_code == 429]
        assert all(a.headers["retry-after"] == "10" and "queue is full" in a.json()["error"] for a in refused)
        for task in (a.json()["task_id"] for a in answers if a.status_code == 200):
            deadline = time.monotonic() + 240
            while http.get("/deepdream_task/status", params={"task_id": task}).json()["status"] == "in_progress":
                assert time.monotonic() < deadline, "an admitted task never finished"
                time.sleep(0.2)
            result = http.get("/deepdream_task/get", params={"task_id": task})
            assert result.status_code == 200 and result.headers["content-type"] == "image/png"


def test_a_token_guards_everything_but_health_metrics_and_docs(served_models: Path) -> None:
    server = bentoml_server(served_models, CNNPIPE_THREADS="1", CNNPIPE_API_TOKEN="s3cret")
    with server as base, httpx.Client(base_url=base, timeout=60) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = http.post("/classify", files=_files(GOOD["rgb png"]), headers=headers)
            assert response.status_code == 401 and response.json() == {"error": REFUSAL}
            assert http.get("/metadata", headers=headers).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert http.post("/classify", files=_files(GOOD["rgb png"]), headers=right).status_code == 200
        assert http.get("/metadata", headers=right).status_code == 200
        for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
            assert http.get(path).status_code == 200, path
