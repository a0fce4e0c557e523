"""The gRPC server under faults and hostile clients: awkward images, bugs inside a call, leaked
capacity, SIGTERM mid-stream, every RPC driven through reflection only, bearer tokens and TLS."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import time
from pathlib import Path
from typing import ClassVar

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from PIL import Image

from cnnpipe.serve.auth import REFUSAL
from cnnpipe.serve.grpc_server import INTERNAL, GrpcSettings, Server
from cnnpipe.serve.v1 import inference_pb2 as pb
from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc
from serving.launch import grpc_server, start_grpc_server

from .images import AWKWARD, GOOD, encode, photo

pytestmark = pytest.mark.slow
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _health(channel: grpc.Channel) -> int:
    return (
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="cnnpipe.v1.Inference")).status
    )


def test_awkward_images_get_answers_and_never_strand_a_dream_slot(served_models: Path) -> None:
    with grpc_server(served_models, "--threads", "1") as address:
        stub = pb_grpc.InferenceStub(grpc.insecure_channel(address))
        for name, image in AWKWARD.items():
            assert stub.Classify(pb.ClassifyRequest(image=image), timeout=60).label, name
            assert stub.SuperResolve(pb.SuperResolveRequest(image=image, scale=2), timeout=60).png, name
            request = pb.DeepDreamRequest(image=image, layers=["features.3"], octaves=2, steps=1)
            try:
                updates = list(stub.DeepDream(request, timeout=60))
                assert updates[-1].WhichOneof("update") == "png", name
            except grpc.RpcError as error:  # too small for the layer: refused up front, with the reason
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, error.details())
                assert "needs at least" in error.details(), name
        # Every slot came back: a normal dream still runs, and health never wavered.
        good = pb.DeepDreamRequest(image=GOOD["rgb png"], layers=["features.3"], octaves=1, steps=1)
        assert list(stub.DeepDream(good, timeout=60))[-1].png
        assert _health(grpc.insecure_channel(address)) == SERVING


class BrokenCore:
    """A core whose every call hits a bug: the server must answer INTERNAL, not hang or leak."""

    models: ClassVar[list] = []

    def classify(self, *args: object, **kwargs: object) -> object:
        raise RuntimeError("boom in classify")

    def super_resolve(self, *args: object, **kwargs: object) -> object:
        raise ZeroDivisionError("boom in super_resolve")

    def deepdream(self, *args: object, **kwargs: object) -> object:
        raise RuntimeError("Kernel size can't be greater than actual input size")

    def metadata(self) -> dict:
        raise KeyError("boom in metadata")

    def explain(self, *args: object, **kwargs: object) -> object:
        raise IndexError("boom in explain")

    def style_transfer(self, *args: object, **kwargs: object) -> object:
        raise RuntimeError("boom in style_transfer")


@pytest.fixture
def broken_server():
    server = Server(BrokenCore(), GrpcSettings(port=0, dream_slots=1, grace_seconds=1))  # type: ignore[arg-type]
    server.start()
    try:
        yield server, grpc.insecure_channel(f"127.0.0.1:{server.port}")
    finally:
        server.stop()


def test_a_bug_inside_any_call_is_internal_and_releases_the_slot(broken_server, caplog) -> None:
    server, channel = broken_server
    stub = pb_grpc.InferenceStub(channel)
    calls = [
        lambda: stub.Classify(pb.ClassifyRequest(image=GOOD["rgb png"]), timeout=10),
        lambda: stub.SuperResolve(pb.SuperResolveRequest(image=GOOD["rgb png"], scale=2), timeout=10),
        lambda: stub.GetMetadata(pb.GetMetadataRequest(), timeout=10),
        lambda: stub.Explain(pb.ExplainRequest(image=GOOD["rgb png"]), timeout=10),
        *[lambda: list(stub.DeepDream(pb.DeepDreamRequest(image=GOOD["rgb png"]), timeout=10))] * 3,
        *[lambda: list(stub.StyleTransfer(pb.StyleTransferRequest(image=GOOD["rgb png"]), timeout=10))] * 2,
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.INTERNAL and error.value.details() == INTERNAL
        assert time.monotonic() - started < 5  # answered, not left to the deadline
    assert server.servicer.dream_slots.oldest_seconds() == 0.0  # the only slot is free again
    failures = [r for r in caplog.records if r.name == "cnnpipe.grpc" and r.levelname == "ERROR"]
    assert len(failures) == len(calls) and all(r.exc_info for r in failures)  # tracebacks in the log


def test_a_leaked_slot_turns_health_not_serving() -> None:
    server = Server(BrokenCore(), GrpcSettings(port=0, dream_leak_seconds=0.5))  # type: ignore[arg-type]
    server.start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        assert _health(channel) == SERVING
        server.servicer.dream_slots.take()  # as a bug that never gives it back would
        deadline = time.monotonic() + 30
        while _health(channel) == SERVING and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _health(channel) == NOT_SERVING
    finally:
        server.stop()


def test_sigterm_drains_and_exits_within_the_grace_period_with_a_dream_in_flight(served_models: Path) -> None:
    server = start_grpc_server(served_models, "--threads", "1", "--grace", "2")
    try:
        stub = pb_grpc.InferenceStub(grpc.insecure_channel(server.address))
        big = encode(Image.fromarray(photo(256, 256)))
        stream = stub.DeepDream(pb.DeepDreamRequest(image=big, octaves=4, steps=100), timeout=120)
        assert next(stream).WhichOneof("update") == "progress"  # the dream is running
        server.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert server.proc.wait(timeout=20) == 0
        assert time.monotonic() - started < 2 + 5  # grace + teardown, not the dream's length
        with pytest.raises(grpc.RpcError) as error:
            list(stream)
        assert error.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    finally:
        server.stop()


def _reflected_calls(channel: grpc.Channel) -> dict[str, tuple]:
    """Every Inference RPC, built from server reflection alone: name → (callable, request class)."""
    pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName("cnnpipe.v1.Inference")
    calls = {}
    for method in service.methods:
        request, response = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
        path = f"/{service.full_name}/{method.name}"
        make = channel.unary_stream if method.server_streaming else channel.unary_unary
        call = make(path, request_serializer=request.SerializeToString, response_deserializer=response.FromString)
        calls[method.name] = (call, request)
    return calls


def test_every_rpc_through_reflection_follows_the_status_table(served_models: Path) -> None:
    """README, "gRPC status codes": what each kind of request gets, for every RPC."""
    ok, invalid, too_large = GOOD["rgb png"], b"not an image", encode(Image.new("L", (5000, 5000)))
    over_ensemble = encode(Image.new("L", (730, 720)))  # ×2: over the self-ensemble's 2048 × 1024 output pixels
    cases = {
        "Classify": [
            ({"image": ok}, None),
            ({"image": invalid}, "INVALID_ARGUMENT"),
            ({"image": too_large}, "RESOURCE_EXHAUSTED"),
        ],
        "SuperResolve": [
            ({"image": ok, "scale": 2}, None),
            ({"image": ok, "scale": 7}, "INVALID_ARGUMENT"),
            ({"image": invalid, "scale": 2}, "INVALID_ARGUMENT"),
            ({"image": too_large, "scale": 2}, "RESOURCE_EXHAUSTED"),
            ({"image": ok, "scale": 2, "self_ensemble": True}, None),
            ({"image": over_ensemble, "scale": 2}, None),
            ({"image": over_ensemble, "scale": 2, "self_ensemble": True}, "RESOURCE_EXHAUSTED"),
        ],
        "DeepDream": [
            ({"image": ok, "octaves": 1, "steps": 1}, None),
            ({"image": ok, "steps": 0}, "INVALID_ARGUMENT"),
            ({"image": AWKWARD["1x1"]}, "INVALID_ARGUMENT"),
            ({"image": too_large}, "RESOURCE_EXHAUSTED"),
        ],
        "Explain": [
            ({"image": ok}, None),
            ({"image": ok, "target": 3}, None),
            ({"image": ok, "target": 10}, "INVALID_ARGUMENT"),
            ({"image": invalid}, "INVALID_ARGUMENT"),
            ({"image": too_large}, "RESOURCE_EXHAUSTED"),
        ],
        "StyleTransfer": [
            ({"image": ok, "style": ok, "steps": 1}, None),
            ({"image": ok, "style": ok, "steps": 0}, "INVALID_ARGUMENT"),
            ({"image": ok, "style": invalid}, "INVALID_ARGUMENT"),
            ({"image": AWKWARD["1x1"], "style": ok}, "INVALID_ARGUMENT"),
            ({"image": too_large, "style": ok}, "RESOURCE_EXHAUSTED"),
        ],
        "GetMetadata": [({}, None)],
    }
    with grpc_server(served_models, "--threads", "1") as address:
        calls = _reflected_calls(grpc.insecure_channel(address))
        assert set(calls) == set(cases)  # a new RPC needs its rows here and in the README
        for name, rows in cases.items():
            call, request = calls[name]
            for fields, expected in rows:
                try:
                    result = call(request(**fields), timeout=60)
                    list(result) if name in ("DeepDream", "StyleTransfer") else result
                    code = None
                except grpc.RpcError as error:
                    code = error.code().name
                assert code == expected, (name, fields.keys(), code)


def test_a_token_guards_inference_but_not_health(served_models: Path, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token\n")
    with grpc_server(served_models, "--threads", "1", CNNPIPE_API_TOKEN_FILE=str(tmp_path / "token")) as address:
        channel = grpc.insecure_channel(address)
        stub = pb_grpc.InferenceStub(channel)
        request = pb.ClassifyRequest(image=GOOD["rgb png"])
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", "s3cret-token"),)):
            with pytest.raises(grpc.RpcError) as error:
                stub.Classify(request, metadata=metadata, timeout=30)
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED and error.value.details() == REFUSAL
        with pytest.raises(grpc.RpcError) as error:
            list(stub.DeepDream(pb.DeepDreamRequest(image=GOOD["rgb png"]), timeout=30))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        right = (("authorization", "Bearer s3cret-token"),)
        assert stub.Classify(request, metadata=right, timeout=30).label
        assert _health(channel) == SERVING  # health stays open


def _certificates(folder: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def issue(subject: str, key, issuer_key, issuer: str, ca: bool, sans=()) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    files = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    keys = {
        "ca": ca_key,
        "server": ec.generate_private_key(ec.SECP256R1()),
        "client": ec.generate_private_key(ec.SECP256R1()),
    }
    certs = {
        "ca": issue("cnnpipe test CA", ca_key, ca_key, "cnnpipe test CA", ca=True),
        "server": issue(
            "127.0.0.1",
            keys["server"],
            ca_key,
            "cnnpipe test CA",
            ca=False,
            sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
        ),
        "client": issue("a client", keys["client"], ca_key, "cnnpipe test CA", ca=False),
    }
    for role in certs:
        files[f"{role}.crt"] = folder / f"{role}.crt"
        files[f"{role}.crt"].write_bytes(certs[role].public_bytes(serialization.Encoding.PEM))
        files[f"{role}.key"] = folder / f"{role}.key"
        files[f"{role}.key"].write_bytes(
            keys[role].private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return files


def test_tls_round_trip_with_client_certificates(served_models: Path, tmp_path: Path) -> None:
    pem = _certificates(tmp_path)
    flags = ["--tls-cert", str(pem["server.crt"]), "--tls-key", str(pem["server.key"])]
    flags += ["--tls-client-ca", str(pem["ca.crt"])]
    with grpc_server(served_models, "--threads", "1", *flags) as address:
        ca = pem["ca.crt"].read_bytes()
        mutual = grpc.ssl_channel_credentials(ca, pem["client.key"].read_bytes(), pem["client.crt"].read_bytes())
        stub = pb_grpc.InferenceStub(grpc.secure_channel(address, mutual))
        assert stub.Classify(pb.ClassifyRequest(image=GOOD["rgb png"]), timeout=30).label
        for credentials in (grpc.ssl_channel_credentials(ca), None):  # no client certificate; plaintext
            channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
            with pytest.raises(grpc.RpcError) as error:
                pb_grpc.InferenceStub(channel).Classify(pb.ClassifyRequest(image=GOOD["rgb png"]), timeout=10)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_malloc_arenas_are_capped_where_glibc_allows() -> None:
    """The servers' memory stays flat under load only with few arenas (cnnpipe.serve.memory)."""
    import os
    import platform

    from cnnpipe.serve.memory import limit_malloc_arenas

    assert limit_malloc_arenas() or platform.libc_ver()[0] != "glibc" or "MALLOC_ARENA_MAX" in os.environ
