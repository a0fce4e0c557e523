"""The BentoML service as a real `bentoml serve` process on 127.0.0.1, called over HTTP."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from cnnpipe.dream.presets import DreamRequest
from cnnpipe.explain.style import StyleRequest
from cnnpipe.serve.codec import RequestError
from cnnpipe.serve.core import InferenceCore
from serving.launch import bentoml_server, server_env

from .images import BAD, GOOD, decoded, encode, photo
from .pipeline import REPO, TINY, git

pytestmark = pytest.mark.slow

STATUS = {"invalid": 400, "too_large": 413, "unprocessable": 422}


@pytest.fixture(scope="module")
def base(served_models):
    with bentoml_server(served_models, CNNPIPE_THREADS="1", CNNPIPE_DREAM_QUEUE="1") as url:
        yield url


@pytest.fixture(scope="module")
def http(base: str):
    with httpx.Client(base_url=base, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def core(served_models) -> InferenceCore:
    return InferenceCore(served_models, threads=1)


def _post(http: httpx.Client, route: str, image: bytes, **fields: object) -> httpx.Response:
    return http.post(route, files={"image": ("upload", image)}, data={k: str(v) for k, v in fields.items()})


def test_framework_endpoints(http: httpx.Client) -> None:
    for path in ("/livez", "/readyz", "/metrics", "/docs.json", "/"):
        assert http.get(path).status_code == 200, path
    spec = http.get("/docs.json").json()
    assert {"/classify", "/super_resolve", "/deepdream", "/deepdream_task/submit", "/metadata"} <= set(spec["paths"])
    assert "# TYPE bentoml_service_request_total counter" in http.get("/metrics").text


def test_metadata(http: httpx.Client, core: InferenceCore) -> None:
    meta = http.post("/metadata", json={}).json()
    assert meta["classes"] == core.classes and meta["scales"] == [2, 3]
    assert {m["name"]: m["sha256"] for m in meta["models"]} == {m.name: m.sha256 for m in core.models}


def test_metadata_says_which_commit_params_and_metrics_made_each_model(http: httpx.Client, served_models) -> None:
    repo = served_models.parent
    head = git(repo, "rev-parse", "HEAD").strip()
    models = {m["name"]: m["provenance"] for m in http.get("/metadata").json()["models"]}
    assert set(models) == {"classifier", "sr_x2", "sr_x3"}
    for name, prov in models.items():
        assert (prov["commit"], prov["dirty"], prov["experiment"]) == (head, False, ""), name
    assert models["classifier"]["params"]["classifier"]["epochs"] == TINY["classifier"]["epochs"]
    assert models["classifier"]["metrics"] == json.loads((repo / "metrics/classifier.json").read_text())
    for scale in (2, 3):
        prov = models[f"sr_x{scale}"]
        assert prov["params"]["sr"]["channels"] == TINY["sr"]["channels"]
        assert prov["params"]["data"]["bsds300"]["md5"]
        assert prov["metrics"] == json.loads((repo / f"metrics/sr_x{scale}.json").read_text())


def test_classify_equals_in_process(http: httpx.Client, core: InferenceCore) -> None:
    response = _post(http, "/classify", GOOD["jpeg"])
    assert response.status_code == 200, response.text
    (remote,) = response.json()
    local = core.classify([GOOD["jpeg"]])[0]
    assert (remote["label"], remote["index"], remote["model_version"]) == (
        local["label"],
        local["index"],
        local["model_version"],
    )
    assert [p["probability"] for p in remote["top_k"]] == pytest.approx(
        [p["probability"] for p in local["top_k"]], abs=1e-6
    )


def test_super_resolve_equals_in_process(http: httpx.Client, core: InferenceCore) -> None:
    response = _post(http, "/super_resolve", GOOD["rgb png"], scale=3)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    local_png, _, _ = core.super_resolve(GOOD["rgb png"], 3)
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(response.content))), np.asarray(Image.open(io.BytesIO(local_png)))
    )


def test_super_resolve_self_ensemble_is_the_core_s_and_not_the_single_pass(
    http: httpx.Client, core: InferenceCore
) -> None:
    ensembled = _post(http, "/super_resolve", GOOD["rgb png"], scale=2, self_ensemble="true")
    assert ensembled.status_code == 200, ensembled.text
    single = _post(http, "/super_resolve", GOOD["rgb png"], scale=2, self_ensemble="false")
    assert single.status_code == 200, single.text
    assert np.array_equal(decoded(ensembled.content), decoded(core.super_resolve(GOOD["rgb png"], 2, True)[0]))
    assert np.array_equal(decoded(single.content), decoded(core.super_resolve(GOOD["rgb png"], 2)[0]))
    assert not np.array_equal(decoded(ensembled.content), decoded(single.content))


def test_super_resolve_self_ensemble_has_its_own_size_limit_and_says_so(http: httpx.Client) -> None:
    # 730×720 ×2 = 2,102,400 output pixels: just over the self-ensemble's 2048 × 1024, far under the plain limit
    image = encode(Image.fromarray(np.full((720, 730, 3), 90, np.uint8)))
    refused = _post(http, "/super_resolve", image, scale=2, self_ensemble="true")
    assert refused.status_code == 413
    assert "with self_ensemble (8 passes) the ×2 output may have at most 2097152 pixels" in refused.json()["error"]
    assert _post(http, "/super_resolve", image, scale=2).status_code == 200
    for value in ("maybe", "0", "1", "yes"):  # JSON true or false only, as the OpenAPI document says
        bad = _post(http, "/super_resolve", GOOD["rgb png"], scale=2, self_ensemble=value)
        assert bad.status_code == 400 and "self_ensemble" in bad.json()["error"], (value, bad.text)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_awkward_but_valid_images_are_served(http: httpx.Client, name: str) -> None:
    assert _post(http, "/classify", GOOD[name]).status_code == 200
    response = _post(http, "/super_resolve", GOOD[name], scale=3)
    assert response.status_code == 200, response.text
    out, source = Image.open(io.BytesIO(response.content)), Image.open(io.BytesIO(GOOD[name]))
    assert out.size == (source.size[0] * 3, source.size[1] * 3)
    if name == "rgba png":
        assert out.mode == "RGBA" and np.asarray(out)[..., 3].min() >= 120
    if name in ("greyscale png", "16-bit png"):
        assert out.mode == "L"


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("route", ["/classify", "/super_resolve", "/deepdream"])
def test_bad_uploads_get_a_4xx_and_a_message(http: httpx.Client, name: str, route: str) -> None:
    data, kind, message = BAD[name]
    response = _post(http, route, data)
    assert response.status_code == STATUS[kind], response.text
    assert message in response.text


def test_bad_parameters_are_400_by_the_schema_and_422_by_the_models(http: httpx.Client) -> None:
    """What the OpenAPI schema states (types, ranges, the exported scales) is refused as 400 naming
    the field; a well-formed request the models cannot serve as 422."""
    cases = [
        ("/super_resolve", {"scale": 7}, 400, "scale: Input should be 2 or 3"),
        ("/deepdream", {"lr": 5}, 400, "lr: Input should be less than or equal to 1"),
        ("/deepdream", {"octaves": 50, "steps": 50}, 422, "more than the limit"),
        ("/deepdream", {"layers": '["nope"]'}, 422, "no layer 'nope'"),
    ]
    for route, fields, status, text in cases:
        response = _post(http, route, GOOD["rgb png"], **fields)
        assert response.status_code == status and response.json() == {"error": response.json()["error"]}
        assert text in response.json()["error"], (route, response.text)


def test_wrong_content_type_and_missing_field_are_400(http: httpx.Client) -> None:
    assert http.post("/classify", json={"image": "aGVsbG8="}).status_code == 400
    assert (
        http.post("/super_resolve", content=GOOD["rgb png"], headers={"content-type": "image/png"}).status_code == 400
    )
    assert http.post("/classify", files={"picture": ("x.png", GOOD["rgb png"])}).status_code == 400


def test_an_oversized_body_is_413(http: httpx.Client) -> None:
    response = _post(http, "/classify", b"\0" * (33 * 1024 * 1024))
    assert response.status_code == 413 and "limit" in response.text


def test_synchronous_deepdream(http: httpx.Client, core: InferenceCore) -> None:
    response = _post(http, "/deepdream", GOOD["rgb png"], steps=3, octaves=2, seed=1, layers='["features.3"]')
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    remote = np.asarray(Image.open(io.BytesIO(response.content)))
    local = core.deepdream(GOOD["rgb png"], DreamRequest(steps=3, octaves=2, seed=1, layers=["features.3"]))
    assert remote.shape == (40, 56, 3)
    assert np.abs(remote.astype(int) - np.asarray(Image.open(io.BytesIO(local))).astype(int)).mean() < 1.0


def _progress_route(task: str) -> str:
    """deepdream_task → /deepdream_progress, style_transfer → /style_transfer_progress."""
    return f"/{task.removesuffix('_task')}_progress"


def _wait(http: httpx.Client, task: str, task_id: str, seconds: float = 240) -> tuple[str, list[float]]:
    """Poll a task to its end: its final status and the progress fractions seen on the way."""
    fractions, deadline = [], time.monotonic() + seconds
    while True:
        fractions.append(http.post(_progress_route(task), json={"task_id": task_id}).json()["fraction"])
        status = http.get(f"/{task}/status", params={"task_id": task_id}).json()["status"]
        if status != "in_progress":
            return status, fractions
        assert time.monotonic() < deadline, f"{task} {task_id} still running"
        time.sleep(0.05)


def _until_started(http: httpx.Client, task: str, task_id: str, seconds: float = 240) -> None:
    """Poll until the task reports progress above 0."""
    deadline = time.monotonic() + seconds
    while http.post(_progress_route(task), json={"task_id": task_id}).json()["fraction"] == 0:
        assert time.monotonic() < deadline, f"{task} {task_id} never started"
        time.sleep(0.05)


def test_deepdream_task_progress_result_and_bounded_queue(http: httpx.Client) -> None:
    big = encode(Image.fromarray(photo(128, 128)))
    submitted = _post(http, "/deepdream_task/submit", big, octaves=4, steps=60)
    assert submitted.status_code == 200, submitted.text
    task_id = submitted.json()["task_id"]

    refused = _post(http, "/deepdream_task/submit", GOOD["rgb png"], steps=1)  # queue holds 1 task here
    assert refused.status_code == 429 and "queue is full" in refused.text

    _, fractions = _wait(http, "deepdream_task", task_id)
    # Progress was seen moving (a value strictly between start and end), never went back, and ended at 1.
    assert fractions == sorted(fractions) and any(0 < f < 1 for f in fractions), fractions
    assert http.post("/deepdream_progress", json={"task_id": task_id}).json()["fraction"] == 1.0
    result = http.get("/deepdream_task/get", params={"task_id": task_id})
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(result.content)).size == (128, 128)
    assert http.post("/deepdream_progress", json={"task_id": task_id}).json()["done"] is True

    again = _post(http, "/deepdream_task/submit", GOOD["rgb png"], steps=1)
    assert again.status_code == 200  # the slot is free again


def test_a_second_server_on_the_host_leaves_the_first_ones_tasks_and_metrics_alone(
    http: httpx.Client, served_models
) -> None:
    deadline = time.monotonic() + 240
    while (submitted := _post(http, "/deepdream_task/submit", GOOD["rgb png"], steps=1)).status_code == 429:
        assert time.monotonic() < deadline, "the queue never freed"  # an earlier test's task still runs
        time.sleep(0.2)
    assert submitted.status_code == 200, submitted.text
    task_id = submitted.json()["task_id"]
    _wait(http, "deepdream_task", task_id)
    with bentoml_server(served_models, CNNPIPE_THREADS="1"):  # BentoML recreates its task store at start
        result = http.get("/deepdream_task/get", params={"task_id": task_id})
        metrics = http.get("/metrics").text
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert 'cnnpipe_deepdream_jobs_total{endpoint="deepdream_task",outcome="succeeded"}' in metrics


def test_explain_gives_top5_and_a_gradcam_of_the_chosen_class(http: httpx.Client) -> None:
    image = encode(Image.fromarray(photo(48, 64)))
    (classified,) = _post(http, "/classify", image).json()
    response = _post(http, "/explain", image)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["top_k"] == classified["top_k"] and body["target"] == classified["index"]
    cam = np.array(body["map"])
    assert cam.shape == (32, 32) and cam.min() >= 0 and cam.max() <= 1
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    assert overlay.format == "PNG" and overlay.size == (256, 256)
    chosen = _post(http, "/explain", image, target=3).json()
    assert chosen["target"] == 3 and chosen["target_label"] == "cat" and chosen["layer"] == body["layer"]


@pytest.mark.parametrize(
    ("fields", "image", "status", "message"),
    [
        ({"target": 10}, None, 400, "class must be in 0..9, got 10"),
        ({"target": -1}, None, 400, "target"),
        ({}, b"not an image", 400, "the upload is not an image"),
    ],
)
def test_explain_bad_input_is_a_4xx_and_the_server_lives(
    http: httpx.Client, fields: dict, image: bytes | None, status: int, message: str
) -> None:
    response = _post(http, "/explain", image or GOOD["rgb png"], **fields)
    assert response.status_code == status and message in response.json()["error"]
    assert http.get("/readyz").status_code == 200


def test_deepdream_task_cancel_stops_it_at_the_next_step(http: httpx.Client) -> None:
    big = encode(Image.fromarray(photo(512, 512)))
    submitted = _post(http, "/deepdream_task/submit", big, octaves=4, steps=100)
    assert submitted.status_code == 200, submitted.text
    task_id = submitted.json()["task_id"]
    _until_started(http, "deepdream_task", task_id)
    asked = http.post("/deepdream_cancel", json={"task_id": task_id})
    assert asked.status_code == 200 and asked.json()["cancel_requested"] is True
    status, _ = _wait(http, "deepdream_task", task_id)
    state = http.post("/deepdream_progress", json={"task_id": task_id}).json()
    assert status == "failed" and state["cancelled"] is True and state["done"] is True
    assert state["error"].startswith("cancelled at octave") and state["fraction"] < 1
    metrics = http.get("/metrics").text
    assert 'cnnpipe_deepdream_jobs_total{endpoint="deepdream_task",outcome="cancelled"} 1.0' in metrics
    freed = _post(http, "/deepdream_task/submit", GOOD["rgb png"], steps=1)
    assert freed.status_code == 200, freed.text  # the slot is free again
    # run to its end, so the slot is free for whatever test runs next (with -k, any)
    assert _wait(http, "deepdream_task", freed.json()["task_id"])[0] == "completed"


def _post_style(http: httpx.Client, route: str, content: bytes, style: bytes, **fields: object) -> httpx.Response:
    files = {"image": ("content", content), "style": ("style", style)}
    return http.post(route, files=files, data={k: str(v) for k, v in fields.items()})


def test_style_transfer_task_progress_and_result(http: httpx.Client, core: InferenceCore) -> None:
    content, style = encode(Image.fromarray(photo(48, 64, seed=1))), encode(Image.fromarray(photo(40, 40, seed=2)))
    checked = _post_style(http, "/style_transfer_check", content, style, steps=30, seed=1)
    assert checked.status_code == 200 and checked.json()["steps"] == 30 and checked.json()["width"] == 64
    submitted = _post_style(http, "/style_transfer/submit", content, style, steps=30, seed=1)
    assert submitted.status_code == 200, submitted.text
    task_id = submitted.json()["task_id"]
    status, fractions = _wait(http, "style_transfer", task_id)
    assert status == "completed" and fractions == sorted(fractions)
    assert http.post("/style_transfer_progress", json={"task_id": task_id}).json()["fraction"] == 1.0
    result = http.get("/style_transfer/get", params={"task_id": task_id})
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    remote = np.asarray(Image.open(io.BytesIO(result.content)))
    local = np.asarray(Image.open(io.BytesIO(core.style_transfer(content, style, StyleRequest(steps=30, seed=1)))))
    assert remote.shape == (48, 64, 3) and np.abs(remote.astype(int) - local.astype(int)).mean() < 1.0
    assert not np.array_equal(remote, np.asarray(Image.open(io.BytesIO(content))))  # the image did change
    assert (
        'cnnpipe_style_transfer_jobs_total{endpoint="style_transfer",outcome="succeeded"} 1.0'
        in http.get("/metrics").text
    )


@pytest.mark.parametrize(
    ("fields", "content", "style", "status", "message"),
    [
        ({"steps": 0}, None, None, 400, "steps"),
        ({"steps": 501}, None, None, 422, "steps must be in 1..500, got 501"),
        ({"init": "black"}, None, None, 400, "init"),
        ({"style_weight": -1}, None, None, 400, "style_weight"),
        ({}, None, b"not an image", 400, "the upload is not an image"),
        ({}, b"not an image", None, 400, "the upload is not an image"),
        ({}, encode(Image.fromarray(photo(4, 4))), None, 422, "needs at least"),
        ({}, encode(Image.fromarray(photo(600, 500))), None, 413, "limit"),
    ],
)
def test_style_transfer_bad_input_is_refused_at_submit(
    http: httpx.Client, fields: dict, content: bytes | None, style: bytes | None, status: int, message: str
) -> None:
    response = _post_style(
        http, "/style_transfer/submit", content or GOOD["rgb png"], style or GOOD["rgb png"], **fields
    )
    assert response.status_code == status and message in response.json()["error"], response.text
    assert http.get("/readyz").status_code == 200


def test_style_transfer_needs_both_files(http: httpx.Client) -> None:
    only = _post(http, "/style_transfer/submit", GOOD["rgb png"])
    assert only.status_code == 400 and "style" in only.json()["error"]
    as_text = http.post("/style_transfer/submit", files={"image": ("c", GOOD["rgb png"])}, data={"style": "x"})
    assert as_text.status_code == 400 and "'style' must be a file upload" in as_text.json()["error"]
    extra = http.post(
        "/style_transfer/submit",
        files={"image": ("c", GOOD["rgb png"]), "style": ("s", GOOD["rgb png"]), "mask": ("m", GOOD["rgb png"])},
    )
    assert extra.status_code == 400 and "unexpected file field 'mask'" in extra.json()["error"]
    as_json = http.post("/explain", json={"image": "/etc/passwd"})  # never read as a path on the server
    assert as_json.status_code == 400 and "multipart" in as_json.json()["error"]


def test_style_transfer_cancel_stops_it_at_the_next_step(http: httpx.Client) -> None:
    big = encode(Image.fromarray(photo(256, 256)))
    task_id = _post_style(http, "/style_transfer/submit", big, big, steps=500).json()["task_id"]
    _until_started(http, "style_transfer", task_id)
    assert http.post("/style_transfer_cancel", json={"task_id": task_id}).json()["cancel_requested"] is True
    status, _ = _wait(http, "style_transfer", task_id)
    state = http.post("/style_transfer_progress", json={"task_id": task_id}).json()
    assert status == "failed" and state["cancelled"] is True and state["error"].startswith("cancelled at step")
    assert (
        'cnnpipe_style_transfer_jobs_total{endpoint="style_transfer",outcome="cancelled"} 1.0'
        in http.get("/metrics").text
    )


def _classify_calls(metrics: str) -> tuple[float, float]:
    """(classifier model calls, images in them) from /metrics' ``cnnpipe_classify_batch_size``."""

    def total(suffix: str) -> float:
        found = re.search(rf"^cnnpipe_classify_batch_size_{suffix}(?:{{[^}}]*}})? (\S+)$", metrics, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    return total("count"), total("sum")


def test_concurrent_classify_requests_share_model_calls_and_agree(http: httpx.Client, core: InferenceCore) -> None:
    images = [encode(Image.fromarray(photo(32, 32, seed=i))) for i in range(48)]
    calls_before, images_before = _classify_calls(http.get("/metrics").text)
    with ThreadPoolExecutor(16) as pool:
        remote = list(pool.map(lambda b: _post(http, "/classify", b).json()[0]["index"], images))
    assert remote == [r["index"] for r in core.classify(images)]
    calls, batched = _classify_calls(http.get("/metrics").text)
    assert batched - images_before == len(images)
    assert calls - calls_before < len(images)  # some requests shared a model call


@pytest.mark.parametrize("batching", ["on", "off"])
def test_a_bad_upload_among_concurrent_ones_fails_alone(
    served_models: Path, core: InferenceCore, batching: str
) -> None:
    good = [encode(Image.fromarray(photo(32, 32, seed=i))) for i in range(64)]
    uploads = good + [image for image, _kind, _text in BAD.values()] * 2
    with (
        bentoml_server(served_models, CNNPIPE_THREADS="1", CNNPIPE_BATCHING=batching) as url,
        httpx.Client(base_url=url, timeout=120) as client,
        ThreadPoolExecutor(32) as pool,
    ):
        answers = list(pool.map(lambda b: _post(client, "/classify", b), uploads))
        calls, batched = _classify_calls(client.get("/metrics").text)
    assert [a.json()[0]["index"] for a in answers[: len(good)]] == [r["index"] for r in core.classify(good)]
    assert all(400 <= a.status_code < 500 and a.json()["error"] for a in answers[len(good) :])
    assert batched == len(good)  # bad uploads never reach the model
    assert calls < batched if batching == "on" else calls == batched  # off: one call per request


def test_server_survived_everything(http: httpx.Client) -> None:
    assert http.get("/readyz").status_code == 200
    assert _post(http, "/classify", GOOD["rgb png"]).status_code == 200


def test_missing_models_stop_the_server_with_one_line(tmp_path) -> None:
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:Cnnpipe", "--port", "0"]
    result = subprocess.run(command, cwd=REPO, env=server_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "error: no exported models in" in result.stderr and "dvc repro export_onnx" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CNNPIPE_DREAM_BACKBONE", "alexnet", "CNNPIPE_DREAM_BACKBONE='alexnet': choose classifier or one of vgg19"),
        ("CNNPIPE_BATCHING", "auto", "CNNPIPE_BATCHING='auto': choose on or off"),
        ("CNNPIPE_WORKERS", "0", "CNNPIPE_WORKERS='0': use a whole number, at least 1"),
        ("CNNPIPE_KEEPALIVE_REQUESTS", "lots", "CNNPIPE_KEEPALIVE_REQUESTS='lots': use a whole number, at least 0"),
        ("CNNPIPE_DREAM_QUEUE", "-1", "CNNPIPE_DREAM_QUEUE='-1': use a whole number, at least 0"),
    ],
)
def test_a_bad_setting_stops_the_server_with_one_line(served_models, name: str, value: str, message: str) -> None:
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:Cnnpipe", "--port", "0"]
    env = {**server_env(served_models), name: value}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"error: {message}" in result.stderr


def test_torchvision_backbone_without_cached_weights_is_a_422(served_models, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-cache"))
    core = InferenceCore(served_models, threads=1, dream_backbone="vgg19")
    with pytest.raises(RequestError) as refused:
        core.style_transfer(GOOD["rgb png"], GOOD["rgb png"], StyleRequest(steps=1))
    assert refused.value.http_status == 422 and str(refused.value).startswith("no ImageNet weights for vgg19 at ")
    assert core.classify([GOOD["rgb png"]])[0]["top_k"]  # the rest of the core still answers


def test_bentoml_build_packages_service_library_and_models(served_models, tmp_path) -> None:
    """`bentoml build` in a pipeline checkout, then serve the built Bento from the store."""
    repo = served_models.parent
    env = {**server_env(served_models), "BENTOML_HOME": str(tmp_path / "bentoml")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # uv for `bentoml build`
    build = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", "serving/bentofile.yaml", "--output", "tag", "."],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    tag = build.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento = tmp_path / "bentoml" / "bentos" / name / version / "src"
    packaged = {p.name for p in (bento / "models").iterdir()}
    onnx = {"classifier.onnx", "sr_x2.onnx", "sr_x3.onnx"}
    checkpoints = {"classifier.pt", "sr_x2.pt", "sr_x3.pt"}  # the torch backend's
    assert packaged == {*checkpoints, *onnx, *(f"{name}.sha256" for name in onnx)}
    assert (bento / "serving" / "service.py").is_file() and (bento / "cnnpipe" / "serve" / "core.py").is_file()
    assert (bento / "serving" / "ui" / "index.html").is_file() and (bento / "serving" / "ui" / "samples").is_dir()
    assert not (bento / "serving" / "launch.py").exists()  # test tooling stays out of the Bento

    home = {"BENTOML_HOME": env["BENTOML_HOME"], "PATH": env["PATH"]}
    with bentoml_server(served_models, target=tag, cwd=tmp_path, models_env=False, **home) as url:
        response = httpx.post(f"{url}/classify", files={"image": ("a.png", GOOD["rgb png"])})
        assert response.status_code == 200 and response.json()[0]["label"]
