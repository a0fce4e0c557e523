"""Every endpoint through BentoML's own clients (``bentoml.SyncHTTPClient``, ``AsyncHTTPClient``)
against a real `bentoml serve` on 127.0.0.1: results, tasks (submit, status, progress, get,
cancel) and errors as ``BentoMLException`` subclasses carrying the status and the server's message."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pytest
from bentoml.exceptions import BentoMLException, InvalidArgument, NotFound, UnprocessableEntity
from PIL import Image

from serving.client import fix_task_submit
from serving.launch import bentoml_server

from .images import encode, photo

pytestmark = pytest.mark.slow

FINAL = ("completed", "failed")  # a task's status once it has ended (BentoML's result store)


@pytest.fixture(scope="module")
def base(served_models: Path) -> Iterator[str]:
    with bentoml_server(served_models, CNNPIPE_THREADS="1", CNNPIPE_DREAM_QUEUE="1") as url:
        yield url


@pytest.fixture(scope="module")
def client(base: str) -> Iterator[bentoml.SyncHTTPClient]:
    with fix_task_submit(bentoml.SyncHTTPClient(base, timeout=120)) as sync_client:
        yield sync_client


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Uploads as files on disk, the way the client takes them: tiny photos, two larger ones, text."""
    folder = tmp_path_factory.mktemp("uploads")
    images = {
        "photo": photo(40, 56),
        "other": photo(48, 64, seed=1),
        "style": photo(40, 40, seed=2),
        "medium": photo(256, 256, seed=3),
        "big": photo(512, 512, seed=4),
    }
    paths = {name: folder / f"{name}.png" for name in images}
    for name, pixels in images.items():
        paths[name].write_bytes(encode(Image.fromarray(pixels)))
    paths["text"] = folder / "notes.txt"
    paths["text"].write_text("hello, I am text")
    return paths


def _png(path: Path) -> Image.Image:
    image = Image.open(path)
    assert image.format == "PNG", path
    return image


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _finish(task: Any, progress: Callable[..., dict], seconds: float = 240) -> tuple[str, list[float]]:
    """Poll a task to its end: its final status and the progress fractions seen on the way."""
    fractions, deadline = [], time.monotonic() + seconds
    while True:
        fractions.append(progress(task_id=task.id)["fraction"])
        status = task.get_status().value
        if status in FINAL:
            return status, fractions
        assert time.monotonic() < deadline, f"task {task.id} still {status}"
        time.sleep(0.05)


def _until_started(task: Any, progress: Callable[..., dict], seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while progress(task_id=task.id)["fraction"] == 0:
        assert time.monotonic() < deadline, f"task {task.id} never started"
        time.sleep(0.05)


def _open_handles(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path`` (Linux /proc)."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve()))


def test_classify_takes_a_list_of_images(client: bentoml.SyncHTTPClient, files: dict[str, Path]) -> None:
    both = client.classify(image=[files["photo"], files["other"]])
    singles = [client.classify(image=[files[name]])[0] for name in ("photo", "other")]
    assert len(both) == 2
    for together, alone in zip(both, singles, strict=True):
        assert (together["label"], together["index"]) == (alone["label"], alone["index"])
        assert [p["probability"] for p in together["top_k"]] == pytest.approx(
            [p["probability"] for p in alone["top_k"]], abs=1e-6
        )
        assert len(together["top_k"]) == 5


def test_explain_gives_the_gradcam_of_the_chosen_class(client: bentoml.SyncHTTPClient, files: dict[str, Path]) -> None:
    (classified,) = client.classify(image=[files["other"]])
    body = client.explain(image=files["other"], target=3)
    assert body["target"] == 3 and body["target_label"] == "cat" and body["top_k"] == classified["top_k"]
    cam = np.array(body["map"])
    assert cam.shape == (32, 32) and cam.min() >= 0 and cam.max() <= 1
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    assert overlay.format == "PNG" and overlay.size == (256, 256)


@pytest.mark.parametrize("scale", [2, 3])
def test_super_resolve_returns_a_png_of_the_scaled_size(
    client: bentoml.SyncHTTPClient, files: dict[str, Path], scale: int
) -> None:
    result = client.super_resolve(image=files["photo"], scale=scale)
    assert _png(result).size == (56 * scale, 40 * scale)


def test_super_resolve_takes_self_ensemble_as_a_python_bool(
    client: bentoml.SyncHTTPClient, files: dict[str, Path]
) -> None:
    ensembled = _pixels(client.super_resolve(image=files["photo"], scale=2, self_ensemble=True))
    single = _pixels(client.super_resolve(image=files["photo"], scale=2, self_ensemble=False))
    assert ensembled.shape == single.shape == (80, 112, 3)
    assert 0 < np.abs(ensembled.astype(int) - single.astype(int)).mean() < 8  # the same picture, not the same pixels


def test_deepdream_returns_the_dreamed_png(client: bentoml.SyncHTTPClient, files: dict[str, Path]) -> None:
    result = client.deepdream(image=files["photo"], steps=3, octaves=2, seed=1, layers=["features.3"])
    assert _png(result).size == (56, 40)
    assert np.abs(_pixels(result) - _pixels(files["photo"])).mean() > 0.5  # it did dream


def test_metadata_and_noop(client: bentoml.SyncHTTPClient, files: dict[str, Path]) -> None:
    meta = client.metadata()
    assert meta["scales"] == [2, 3] and len(meta["classes"]) == 10 and "quick" in meta["dream_presets"]
    assert client.noop(image=files["photo"]) == {"bytes": files["photo"].stat().st_size}


def test_deepdream_task_check_submit_status_progress_get(
    client: bentoml.SyncHTTPClient, files: dict[str, Path]
) -> None:
    fields: dict[str, Any] = {"steps": 3, "octaves": 2, "seed": 1, "layers": ["features.3"], "preset": "quick"}
    plan = client.deepdream_check(image=files["photo"], **fields)
    assert (plan["width"], plan["height"], plan["steps"], plan["octaves"]) == (56, 40, 3, 2)
    assert plan["layers"] == {"features.3": 1.0}  # the list arrived as a list

    task = client.deepdream_task.submit(image=files["photo"], **fields)
    assert _open_handles(files["photo"]) == 0  # submit closed the upload it opened (serving.client)
    status, fractions = _finish(task, client.deepdream_progress)
    assert status == "completed" and fractions == sorted(fractions)
    state = client.deepdream_progress(task_id=task.id)
    assert state["fraction"] == 1.0 and state["done"] is True
    result = task.get()
    assert _png(result).size == (56, 40)
    same = client.deepdream(image=files["photo"], **fields)  # the same fields, synchronously
    assert np.abs(_pixels(result) - _pixels(same)).mean() < 1.0
    assert _png(client.deepdream_task.get(task.id)).size == (56, 40)  # by id, as another process would


def test_style_transfer_task_check_submit_status_progress_get(
    client: bentoml.SyncHTTPClient, files: dict[str, Path]
) -> None:
    plan = client.style_transfer_check(image=files["other"], style=files["style"], steps=5, seed=1)
    assert (plan["width"], plan["height"], plan["style_width"], plan["steps"]) == (64, 48, 40, 5)
    task = client.style_transfer.submit(image=files["other"], style=files["style"], steps=5, seed=1)
    status, fractions = _finish(task, client.style_transfer_progress)
    assert status == "completed" and fractions == sorted(fractions)
    assert client.style_transfer_progress(task_id=task.id)["fraction"] == 1.0
    result = task.get()
    assert _png(result).size == (64, 48)
    assert np.abs(_pixels(result) - _pixels(files["other"])).mean() > 0.5  # painted


def test_deepdream_task_cancel_and_the_full_queue(client: bentoml.SyncHTTPClient, files: dict[str, Path]) -> None:
    task = client.deepdream_task.submit(image=files["big"], octaves=4, steps=100)
    _until_started(task, client.deepdream_progress)

    with pytest.raises(BentoMLException) as full:  # the server's queue holds one task here
        client.deepdream_task.submit(image=files["photo"], steps=1)
    assert full.value.error_code == HTTPStatus.TOO_MANY_REQUESTS and "task queue is full" in str(full.value)

    # BentoML's own cancel is refused by `bentoml serve` (and would not stop the work): use the service's.
    with pytest.raises(InvalidArgument) as refused:
        task.cancel()
    assert refused.value.error_code == HTTPStatus.BAD_REQUEST and "not supported" in str(refused.value)
    assert client.deepdream_cancel(task_id=task.id)["cancel_requested"] is True

    status, _ = _finish(task, client.deepdream_progress)
    state = client.deepdream_progress(task_id=task.id)
    assert status == "failed" and state["cancelled"] is True and state["done"] is True and state["fraction"] < 1
    with pytest.raises(BentoMLException) as cancelled:
        task.get()
    assert cancelled.value.error_code == HTTPStatus.CONFLICT and "cancelled at octave" in str(cancelled.value)

    after = client.deepdream_task.submit(image=files["photo"], steps=1)  # the slot is free again
    assert _finish(after, client.deepdream_progress)[0] == "completed"


def test_style_transfer_cancel(client: bentoml.SyncHTTPClient, files: dict[str, Path]) -> None:
    task = client.style_transfer.submit(image=files["medium"], style=files["medium"], steps=500)
    _until_started(task, client.style_transfer_progress)
    assert client.style_transfer_cancel(task_id=task.id)["cancel_requested"] is True
    status, _ = _finish(task, client.style_transfer_progress)
    state = client.style_transfer_progress(task_id=task.id)
    assert status == "failed" and state["cancelled"] is True and state["error"].startswith("cancelled at step")
    with pytest.raises(BentoMLException) as cancelled:
        task.get()
    assert cancelled.value.error_code == HTTPStatus.CONFLICT


Call = Callable[[bentoml.SyncHTTPClient, dict[str, Path]], object]
ERRORS: dict[str, tuple[Call, type[BentoMLException], int, str]] = {
    "classify a text file": (
        lambda c, f: c.classify(image=[f["photo"], f["text"]]),
        InvalidArgument,
        400,
        "the upload is not an image",
    ),
    "super-resolve a text file": (
        lambda c, f: c.super_resolve(image=f["text"]),
        InvalidArgument,
        400,
        "the upload is not an image",
    ),
    "a scale not exported": (
        lambda c, f: c.super_resolve(image=f["photo"], scale=7),
        InvalidArgument,
        400,
        "scale: Input should be 2 or 3",
    ),
    "a class the classifier lacks": (
        lambda c, f: c.explain(image=f["photo"], target=10),
        InvalidArgument,
        400,
        "class must be in 0..9, got 10",
    ),
    "an unknown layer": (
        lambda c, f: c.deepdream(image=f["photo"], layers=["nope"]),
        UnprocessableEntity,
        422,
        "no layer 'nope'",
    ),
    "a text file as a task": (
        lambda c, f: c.deepdream_task.submit(image=f["text"]),
        BentoMLException,  # BentoML's submit raises the base class, with the status
        400,
        "the upload is not an image",
    ),
    "too many style steps": (
        lambda c, f: c.style_transfer.submit(image=f["photo"], style=f["style"], steps=501),
        BentoMLException,
        422,
        "steps must be in 1..500, got 501",
    ),
    "the status of an unknown task": (
        lambda c, f: c.deepdream_task.get_status("no-such-task"),
        NotFound,
        404,
        "task_id not found",
    ),
    "the result of an unknown task": (
        lambda c, f: c.style_transfer.get("no-such-task"),
        NotFound,
        404,
        "task_id not found",
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_arrive_as_bentoml_exceptions_with_status_and_message(
    client: bentoml.SyncHTTPClient, files: dict[str, Path], case: str
) -> None:
    call, kind, status, message = ERRORS[case]
    with pytest.raises(BentoMLException) as raised:
        call(client, files)
    assert isinstance(raised.value, kind) and raised.value.error_code == HTTPStatus(status), repr(raised.value)
    assert message in str(raised.value)
    assert client.is_ready()


def test_async_client(base: str, files: dict[str, Path]) -> None:
    """The async client needs no fix: classify, super-resolve, a task to its PNG, an error."""

    async def run() -> None:
        async with bentoml.AsyncHTTPClient(base, timeout=120) as aclient:
            (classified,) = await aclient.classify(image=[files["photo"]])
            assert len(classified["top_k"]) == 5
            assert _png(await aclient.super_resolve(image=files["photo"], scale=2)).size == (112, 80)
            task = await aclient.deepdream_task.submit(image=files["photo"], steps=2, seed=1)
            deadline = time.monotonic() + 240
            while (status := (await task.get_status()).value) not in FINAL:
                assert time.monotonic() < deadline, f"task {task.id} still {status}"
                await asyncio.sleep(0.05)
            assert status == "completed" and _png(await task.get()).size == (56, 40)
            assert (await aclient.deepdream_progress(task_id=task.id))["done"] is True
            with pytest.raises(InvalidArgument) as raised:
                await aclient.super_resolve(image=files["text"])
            assert raised.value.error_code == HTTPStatus.BAD_REQUEST and "not an image" in str(raised.value)

    asyncio.run(run())


def test_bentoml_submit_bug_is_still_there(base: str, files: dict[str, Path]) -> None:
    """Why serving/client.py exists: an unfixed sync client's ``submit`` hides the server's answer
    behind an AttributeError. When this fails, BentoML has fixed it and serving/client.py can go."""
    with bentoml.SyncHTTPClient(base, timeout=120) as plain:
        try:
            plain.deepdream_task.submit(image=files["text"])  # refused at once: nothing is queued
        except AttributeError as error:
            assert "_opened_files" in str(error)
            hidden = error.__context__
            assert isinstance(hidden, BentoMLException) and hidden.error_code == HTTPStatus.BAD_REQUEST
            assert "the upload is not an image" in str(hidden)
        except BentoMLException:
            pytest.fail("BentoML's SyncHTTPClient.submit is fixed: drop serving/client.py and its use")
        else:
            pytest.fail("a text file was accepted as a task")
