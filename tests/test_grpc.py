"""The gRPC server as a real process on 127.0.0.1, called through the generated stubs."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from PIL import Image

from cnnpipe.dream.presets import DreamRequest
from cnnpipe.explain.style import StyleRequest
from cnnpipe.serve.core import InferenceCore
from cnnpipe.serve.v1 import inference_pb2 as pb
from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc
from serving.launch import grpc_server

from .images import BAD, GOOD, decoded, encode, photo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def address(served_models):
    with grpc_server(served_models, "--max-message-mb", "2", "--threads", "1") as addr:
        yield addr


@pytest.fixture(scope="module")
def stub(address: str) -> pb_grpc.InferenceStub:
    return pb_grpc.InferenceStub(grpc.insecure_channel(address))


@pytest.fixture(scope="module")
def core(served_models) -> InferenceCore:
    return InferenceCore(served_models, threads=1)


def test_health_and_reflection(address: str) -> None:
    channel = grpc.insecure_channel(address)
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "cnnpipe.v1.Inference"):
        assert (
            health.Check(health_pb2.HealthCheckRequest(service=service)).status
            == health_pb2.HealthCheckResponse.SERVING
        )
    services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "cnnpipe.v1.Inference" in services and "grpc.health.v1.Health" in services


def test_metadata(stub: pb_grpc.InferenceStub, core: InferenceCore) -> None:
    meta = stub.GetMetadata(pb.GetMetadataRequest())
    assert list(meta.classes) == core.classes and list(meta.scales) == [2, 3]
    assert dict(meta.limits) == core.metadata()["limits"]  # what HTTP /metadata says, every limit
    assert meta.limits["sr_self_ensemble_max_output_pixels"] == 2048 * 1024
    assert {m.name for m in meta.models} == {"classifier", "sr_x2", "sr_x3"}
    assert all(len(m.sha256) == 64 for m in meta.models)
    http = core.metadata()  # the same answers as HTTP's /metadata
    assert list(meta.dream_layers) == http["dream_layers"] and len(meta.dream_layers) > 1
    assert meta.dream_default_layer == http["dream_default_layer"] == "features.3"


def test_metadata_provenance_matches_http(stub: pb_grpc.InferenceStub, core: InferenceCore) -> None:
    meta = stub.GetMetadata(pb.GetMetadataRequest())
    expected = {m["name"]: m["provenance"] for m in core.metadata()["models"]}
    got = {m.name: json_format.MessageToDict(m.provenance, preserving_proto_field_name=True) for m in meta.models}
    for name, prov in expected.items():
        assert prov["commit"] and got[name]["commit"] == prov["commit"]
        assert got[name].get("dirty", False) == prov["dirty"]
        assert got[name]["params"] == prov["params"]
        assert _same(got[name]["metrics"], prov["metrics"])


def _same(struct: object, plain: object) -> bool:
    """Struct numbers are doubles: 200 comes back as 200.0; compare values, not types."""
    if isinstance(plain, dict):
        assert isinstance(struct, dict) and set(struct) == set(plain)
        return all(_same(struct[k], v) for k, v in plain.items())
    assert struct == plain, (struct, plain)
    return True


def test_explain_equals_in_process_and_refuses_a_bad_class(stub: pb_grpc.InferenceStub, core: InferenceCore) -> None:
    image = encode(Image.fromarray(photo(48, 64)))
    remote = stub.Explain(pb.ExplainRequest(image=image, target=2))
    local = core.explain(image, 2)
    assert (remote.target, remote.target_label, remote.layer) == (2, local["target_label"], local["layer"])
    assert (remote.map_height, remote.map_width) == (32, 32)
    assert list(remote.map) == pytest.approx([v for row in local["map"] for v in row], abs=1e-6)
    assert remote.overlay_png == local["overlay_png"] and remote.index == local["index"]
    default = stub.Explain(pb.ExplainRequest(image=image))
    assert default.target == default.index
    with pytest.raises(grpc.RpcError) as refused:
        stub.Explain(pb.ExplainRequest(image=image, target=10))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "class must be in 0..9, got 10"


def test_classify_equals_in_process(stub: pb_grpc.InferenceStub, core: InferenceCore) -> None:
    image = GOOD["jpeg"]
    remote = stub.Classify(pb.ClassifyRequest(image=image, top_k=3))
    local = core.classify([image], top_k=3)[0]
    assert (remote.label, remote.index, remote.model_version) == (
        local["label"],
        local["index"],
        local["model_version"],
    )
    assert [p.probability for p in remote.top_k] == pytest.approx([p["probability"] for p in local["top_k"]], abs=1e-6)


@pytest.mark.parametrize("scale", [2, 3])
def test_super_resolve_equals_in_process(stub: pb_grpc.InferenceStub, core: InferenceCore, scale: int) -> None:
    image = GOOD["rgb png"]
    remote = stub.SuperResolve(pb.SuperResolveRequest(image=image, scale=scale))
    local_png, width, height = core.super_resolve(image, scale)
    assert (remote.width, remote.height) == (width, height) == (56 * scale, 40 * scale)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(remote.png))), np.asarray(Image.open(io.BytesIO(local_png))))


def test_super_resolve_self_ensemble_equals_in_process_and_has_its_own_limit(
    stub: pb_grpc.InferenceStub, core: InferenceCore
) -> None:
    image = GOOD["rgb png"]
    remote = stub.SuperResolve(pb.SuperResolveRequest(image=image, scale=2, self_ensemble=True))
    local_png, _, _ = core.super_resolve(image, 2, self_ensemble=True)
    single_png, _, _ = core.super_resolve(image, 2)
    assert np.array_equal(decoded(remote.png), decoded(local_png))
    assert not np.array_equal(decoded(remote.png), decoded(single_png))
    big = encode(Image.fromarray(np.full((720, 730, 3), 90, np.uint8)))  # ×2: just over 2048 × 1024 pixels
    with pytest.raises(grpc.RpcError) as err:
        stub.SuperResolve(pb.SuperResolveRequest(image=big, scale=2, self_ensemble=True))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "leave self_ensemble off" in err.value.details()


@pytest.mark.parametrize("name", sorted(GOOD))
def test_awkward_but_valid_images_are_served(stub: pb_grpc.InferenceStub, name: str) -> None:
    assert stub.Classify(pb.ClassifyRequest(image=GOOD[name])).label
    result = stub.SuperResolve(pb.SuperResolveRequest(image=GOOD[name], scale=3))
    out = Image.open(io.BytesIO(result.png))
    source = Image.open(io.BytesIO(GOOD[name]))
    assert out.size == (source.size[0] * 3, source.size[1] * 3)
    if name == "rgba png":
        assert out.mode == "RGBA"
    if name in ("greyscale png", "16-bit png"):
        assert out.mode == "L"


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_uploads_get_a_status_and_a_message(stub: pb_grpc.InferenceStub, name: str) -> None:
    data, kind, message = BAD[name]
    expected = {"invalid": grpc.StatusCode.INVALID_ARGUMENT, "too_large": grpc.StatusCode.RESOURCE_EXHAUSTED}[kind]
    for call in (
        lambda: stub.Classify(pb.ClassifyRequest(image=data)),
        lambda: stub.SuperResolve(pb.SuperResolveRequest(image=data, scale=3)),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == expected and message in err.value.details()


def test_unknown_scale_and_bad_dream_params(stub: pb_grpc.InferenceStub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.SuperResolve(pb.SuperResolveRequest(image=GOOD["rgb png"], scale=7))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "choose one of [2, 3]" in err.value.details()
    for request, text in (
        (pb.DeepDreamRequest(image=GOOD["rgb png"], octaves=50, steps=50), "more than the limit"),
        (pb.DeepDreamRequest(image=GOOD["rgb png"], layers=["nope"]), "no layer 'nope'"),
        (pb.DeepDreamRequest(image=GOOD["rgb png"], lr=5.0), "lr must be"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            list(stub.DeepDream(request))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and text in err.value.details()


def test_oversized_message_is_refused(stub: pb_grpc.InferenceStub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Classify(pb.ClassifyRequest(image=b"\0" * (3 * 1024 * 1024)))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_deepdream_streams_progress_then_the_image(stub: pb_grpc.InferenceStub, core: InferenceCore) -> None:
    request = pb.DeepDreamRequest(image=GOOD["rgb png"], layers=["features.3"], octaves=2, steps=3, seed=1)
    updates = list(stub.DeepDream(request))
    fractions = [u.progress.fraction for u in updates[:-1]]
    assert all(u.WhichOneof("update") == "progress" for u in updates[:-1]) and len(fractions) == 6
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert updates[-1].WhichOneof("update") == "png"
    remote = np.asarray(Image.open(io.BytesIO(updates[-1].png)))
    local = np.asarray(
        Image.open(
            io.BytesIO(
                core.deepdream(
                    GOOD["rgb png"], DreamRequest(layers=["features.3"], octaves=2, steps=3, seed=1), task=True
                )
            )
        )
    )
    assert remote.shape == (40, 56, 3)
    assert np.abs(remote.astype(int) - local.astype(int)).mean() < 1.0


def test_a_second_concurrent_dream_is_turned_away(stub: pb_grpc.InferenceStub) -> None:
    long = pb.DeepDreamRequest(image=encode(Image.fromarray(photo(96, 96))), octaves=4, steps=100)
    first = stub.DeepDream(long)
    next(first)  # the first dream is running
    with pytest.raises(grpc.RpcError) as err:
        list(stub.DeepDream(pb.DeepDreamRequest(image=GOOD["rgb png"], octaves=1, steps=1)))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    first.cancel()
    _until_the_slot_is_free(stub)


def test_style_transfer_streams_progress_then_the_image(stub: pb_grpc.InferenceStub, core: InferenceCore) -> None:
    content, style = encode(Image.fromarray(photo(36, 44, seed=1))), encode(Image.fromarray(photo(40, 40, seed=2)))
    request = pb.StyleTransferRequest(image=content, style=style, steps=4, style_weight=1e5, seed=1)
    updates = list(stub.StyleTransfer(request))
    steps = [u.progress.step for u in updates[:-1]]
    assert all(u.WhichOneof("update") == "progress" for u in updates[:-1]) and steps == [1, 2, 3, 4]
    assert updates[-1].WhichOneof("update") == "png"
    remote = np.asarray(Image.open(io.BytesIO(updates[-1].png)))
    local = core.style_transfer(content, style, StyleRequest(steps=4, style_weight=1e5, seed=1))
    assert remote.shape == (36, 44, 3)
    assert np.abs(remote.astype(int) - np.asarray(Image.open(io.BytesIO(local))).astype(int)).mean() < 1.0


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"steps": 0}, grpc.StatusCode.INVALID_ARGUMENT, "steps must be in 1..500, got 0"),
        ({"steps": 501}, grpc.StatusCode.INVALID_ARGUMENT, "steps must be in 1..500, got 501"),
        ({"init": "black"}, grpc.StatusCode.INVALID_ARGUMENT, "init must be content or noise"),
        ({"style_weight": -1.0}, grpc.StatusCode.INVALID_ARGUMENT, "must be >= 0"),
        ({"style": b"not an image"}, grpc.StatusCode.INVALID_ARGUMENT, "not an image"),
        ({"style": b""}, grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        ({"image": encode(Image.fromarray(photo(4, 4)))}, grpc.StatusCode.INVALID_ARGUMENT, "needs at least"),
        ({"image": encode(Image.fromarray(photo(600, 500)))}, grpc.StatusCode.RESOURCE_EXHAUSTED, "limit"),
    ],
)
def test_style_transfer_bad_input_gets_a_status(
    stub: pb_grpc.InferenceStub, fields: dict, code: grpc.StatusCode, message: str
) -> None:
    request = pb.StyleTransferRequest(**{"image": GOOD["rgb png"], "style": GOOD["rgb png"], "steps": 1, **fields})
    with pytest.raises(grpc.RpcError) as err:
        list(stub.StyleTransfer(request))
    assert err.value.code() == code and message in err.value.details(), err.value.details()


def test_style_transfer_and_deepdream_share_the_slots(stub: pb_grpc.InferenceStub) -> None:
    big = encode(Image.fromarray(photo(256, 256)))
    first = stub.StyleTransfer(pb.StyleTransferRequest(image=big, style=big, steps=500))
    next(first)  # running
    with pytest.raises(grpc.RpcError) as err:
        list(stub.DeepDream(pb.DeepDreamRequest(image=GOOD["rgb png"], octaves=1, steps=1)))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    first.cancel()
    _until_the_slot_is_free(stub)


def _until_the_slot_is_free(stub: pb_grpc.InferenceStub) -> None:
    """A cancelled stream frees its slot at its next step: wait for a tiny dream to be admitted."""
    deadline = time.monotonic() + 120
    while True:
        try:
            list(stub.DeepDream(pb.DeepDreamRequest(image=GOOD["rgb png"], octaves=1, steps=1)))
            return
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
            time.sleep(0.2)


def test_concurrent_classify_calls_agree(stub: pb_grpc.InferenceStub, core: InferenceCore) -> None:
    images = [encode(Image.fromarray(photo(32, 32, seed=i))) for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        remote = list(pool.map(lambda b: stub.Classify(pb.ClassifyRequest(image=b)).index, images))
    assert remote == [r["index"] for r in core.classify(images)]


def test_server_is_still_healthy_after_all_that(address: str) -> None:
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(address))
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
