"""Every limit of the stack under the service, exceeded a little and a lot over the real servers:
HTTP answers the 4xx of the README's error table with the Error body, gRPC the status; a body or
message that does not parse is the client's mistake (one INFO line, no traceback); the refusals are
counted; and the server still answers afterwards."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from cnnpipe.serve.grpc_server import MALFORMED, MAX_METADATA_BYTES
from cnnpipe.serve.limits import Limits
from cnnpipe.serve.v1 import inference_pb2 as pb
from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc
from serving.launch import bentoml_server, start_grpc_server

from .images import GOOD

pytestmark = pytest.mark.slow
LIMITS = Limits(max_upload_bytes=1 << 20)  # the server's, but a 1 MB upload limit keeps the big bodies small
OK = GOOD["rgb png"]
IMAGE = ("x.png", OK)
BOUNDARY = "cnnpipe-test-boundary"
Send = Callable[[httpx.Client], httpx.Response]


@pytest.fixture(scope="module")
def server(served_models: Path) -> Iterator[tuple[str, Path]]:
    with bentoml_server(
        served_models, CNNPIPE_THREADS="1", CNNPIPE_MAX_UPLOAD_BYTES=str(LIMITS.max_upload_bytes)
    ) as base:
        yield base, served_models.parent / f"bentoml-{base.rsplit(':', 1)[1]}.log"


def _multipart(body: bytes) -> dict:
    return {"content": body, "headers": {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}}


def _part(name: str, data: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


def _files(n: int) -> Send:
    return lambda http: http.post("/classify", files=[("image", ("x.png", b"x"))] * n)  # refused before decoding


def _fields(n: int) -> Send:
    return lambda http: http.post("/deepdream_check", files={"image": IMAGE}, data={f"f{i}": "1" for i in range(n)})


def _field_bytes(n: int) -> Send:
    return lambda http: http.post("/deepdream_check", files={"image": IMAGE}, data={"layers": "x" * n})


def _upload(n: int, chunked: bool = False) -> Send:
    body = _part("image", OK + b"\0" * (n - len(OK)), "x.png") + f"--{BOUNDARY}--\r\n".encode()
    content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    return lambda http: http.post("/noop", **{**_multipart(b""), "content": content})


def _json(n: int, chunked: bool = False) -> Send:
    body = b'{"task_id": "' + b"x" * n + b'"}'
    content = iter([body]) if chunked else body
    return lambda http: http.post("/deepdream_progress", content=content, headers={"content-type": "application/json"})


def _url(n: int) -> Send:
    return lambda http: http.get("/deepdream_task/status", params={"task_id": "x" * n})


def _header_bytes(n: int) -> Send:
    return lambda http: http.get("/metadata", headers={"x-padding": "a" * n})


def _headers(n: int) -> Send:
    return lambda http: http.get("/metadata", headers={f"x-h{i}": "1" for i in range(n)})


def _post(path: str, body: bytes, content_type: str) -> Send:
    return lambda http: http.post(path, content=body, headers={"content-type": content_type})


L = LIMITS
OVER_A_LIMIT = {  # name → (request, status, words of the message)
    "65 files": (_files(L.max_form_files + 1), 400, "files"),
    "1001 files (Starlette's own limit)": (_files(1001), 400, "files"),
    "33 text fields": (_fields(L.max_form_fields + 1), 400, "form fields"),
    "1001 text fields (Starlette's own limit)": (_fields(1001), 400, "form fields"),
    "a text field a byte over": (_field_bytes(L.max_form_field_bytes + 1), 413, "form field"),
    "a 900 KB text field": (_field_bytes(900 << 10), 413, "form field"),
    "an upload a little over": (_upload(L.max_upload_bytes + 64 * 1024 + 1), 413, "limit"),
    "a chunked upload of 20 MB": (_upload(20 << 20, chunked=True), 413, "limit"),
    "a JSON body a byte over": (_json(L.max_json_bytes), 413, "limit"),
    "a chunked JSON body of 8 MB": (_json(8 << 20, chunked=True), 413, "limit"),
    "a URL a little over": (_url(L.max_url_bytes), 414, "URL"),
    "a URL of 60 KB": (_url(60_000), 414, "URL"),
    "headers a little over": (_header_bytes(L.max_header_bytes), 431, "headers"),
    "1 MB of headers": (_header_bytes(1 << 20), 431, "headers"),
    "101 header lines": (_headers(L.max_headers + 1), 431, "header lines"),
    "2000 header lines": (_headers(2000), 431, "header lines"),
}
NOT_WHAT_IT_SAYS = {
    "a boundary not in the body": (_post("/classify", _part("image", OK, "x"), "multipart/form-data; boundary=z"), 400),
    "a body cut off in a part": (
        _post("/classify", _part("image", OK, "x")[:-2], f"multipart/form-data; boundary={BOUNDARY}"),
        400,
    ),
    "garbage under a boundary": (_post("/classify", b"garbage" * 10, f"multipart/form-data; boundary={BOUNDARY}"), 400),
    "a part without a name": (
        _post(
            "/explain",
            f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            f"multipart/form-data; boundary={BOUNDARY}",
        ),
        400,
    ),
    "multipart without a boundary": (_post("/classify", b"x", "multipart/form-data"), 400),
    "JSON that does not parse": (_post("/deepdream_progress", b'{"task_id": ', "application/json"), 400),
    "JSON that is not UTF-8": (_post("/deepdream_cancel", b'{"task_id": "\xff\xfe"}', "application/json"), 400),
    "JSON nested 20000 deep": (_post("/style_transfer_progress", b"[" * 20000 + b"]" * 20000, "application/json"), 400),
    "a JSON endpoint sent text": (_post("/deepdream_progress", b'{"task_id": "x"}', "text/plain"), 415),
    "a JSON endpoint sent a form": (_post("/deepdream_cancel", b"task_id=x", "application/x-www-form-urlencoded"), 415),
    "a JSON endpoint sent 2000 form fields": (
        _post("/metadata", b"&".join(b"a%d=1" % i for i in range(2000)), "application/x-www-form-urlencoded"),
        415,
    ),
    "a JSON endpoint sent multipart": (
        _post("/deepdream_progress", _part("task_id", b"x"), f"multipart/form-data; boundary={BOUNDARY}"),
        415,
    ),
}


def _refused(response: httpx.Response, status: int, words: str = "") -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and words in body["error"], body


def test_every_http_limit_is_its_4xx_with_the_error_body(server: tuple[str, Path]) -> None:
    base, log = server
    with httpx.Client(base_url=base, timeout=120) as http:
        # at the limits, everything is served
        assert http.post("/classify", files=[("image", IMAGE)] * L.max_form_files).status_code == 200
        assert _fields(L.max_form_fields - 1)(http).status_code == 200  # with "image", at the limit
        assert _field_bytes(L.max_form_field_bytes)(http).status_code == 422  # parsed; an unknown layer
        assert _upload(L.max_upload_bytes)(http).status_code == 200
        assert _json(L.max_json_bytes - len('{"task_id": ""}'))(http).status_code == 200
        assert _url(L.max_url_bytes - 200)(http).status_code == 404  # served: no such task
        assert _header_bytes(L.max_header_bytes - 1000)(http).status_code == 200
        assert _headers(L.max_headers - 20)(http).status_code == 200
        for name, (send, status, words) in OVER_A_LIMIT.items():
            with httpx.Client(base_url=base, timeout=120) as fresh:  # some close the connection
                _refused(send(fresh), status, words)
            assert http.get("/readyz").status_code == 200, name
        assert http.post("/classify", files={"image": IMAGE}).status_code == 200  # still serving
        metrics = http.get("/metrics").text
    text = log.read_text()
    assert "Traceback" not in text and "[ERROR]" not in text
    refusals = [line for line in text.splitlines() if "Refused" in line and "[INFO]" in line]
    assert len(refusals) >= len(OVER_A_LIMIT)
    for status in (413, 414, 431):
        assert re.search(rf'bentoml_service_request_total{{[^}}]*http_response_code="{status}"[^}}]*}} [1-9]', metrics)


def test_a_body_that_is_not_what_its_content_type_says_is_a_4xx(server: tuple[str, Path]) -> None:
    base, log = server
    before = log.read_text().count("Refused")
    with httpx.Client(base_url=base, timeout=60) as http:
        for name, (send, status) in NOT_WHAT_IT_SAYS.items():
            response = send(http)
            assert response.status_code == status, (name, response.text[:300])
            _refused(response, status)
        assert http.post("/deepdream_progress", json={"task_id": "x"}).status_code == 200  # JSON as it should be
        assert http.post("/deepdream_progress", content=b'{"task_id": "x"}').status_code == 200  # no type: JSON
        assert http.post("/classify", files={"image": IMAGE}).status_code == 200
        metrics = http.get("/metrics").text
    text = log.read_text()
    assert "Traceback" not in text and "[ERROR]" not in text
    assert text.count("Refused") - before >= len(NOT_WHAT_IT_SAYS)  # one INFO line each
    assert re.search(r'endpoint="/deepdream_progress",http_response_code="415"[^}]*} [1-9]', metrics)


def test_what_the_http_parser_refuses_itself_leaves_the_server_serving(server: tuple[str, Path]) -> None:
    """httptools refuses a URL over 64 KiB and bytes that are not HTTP/1.1 (an HTTP/2 preface:
    the server speaks HTTP/1.1 only) before the application sees them: a plain-text 400 and a
    closed connection, one WARNING line and no traceback."""
    base, log = server
    port = int(base.rsplit(":", 1)[1])
    for data in (
        b"GET /metadata?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64,  # TLS to a plaintext port
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(data)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert httpx.get(f"{base}/metadata", timeout=60).status_code == 200
    assert "Traceback" not in log.read_text()


def test_grpc_bytes_that_are_no_message_are_refused_quietly_for_every_method(served_models: Path) -> None:
    """Every method of every service the server has (reflection lists them), health and reflection
    included: the status of gRPC's spec for a request proto that does not parse, a message saying
    so, the request id, one INFO line each and no traceback."""
    server = start_grpc_server(served_models, "--threads", "1")
    try:
        channel = grpc.insecure_channel(server.address)
        listing = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30
        )
        services = [s.name for s in next(listing).list_services_response.service]
        assert {"cnnpipe.v1.Inference", "grpc.health.v1.Health"} <= set(services)
        pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        calls = 0
        for service in services:
            for method in pool.FindServiceByName(service).methods:
                path = f"/{service}/{method.name}"
                kind = ("stream_" if method.client_streaming else "unary_") + (
                    "stream" if method.server_streaming else "unary"
                )
                call = getattr(channel, kind)(path, request_serializer=None, response_deserializer=None)
                for garbage in (b"\xff\xff\xff", b"\x0a\x10short"):  # a bad tag; a field longer than the bytes
                    calls += 1
                    rid = f"rid-{calls}"
                    request = iter([garbage]) if method.client_streaming else garbage
                    with pytest.raises(grpc.RpcError) as error:
                        result = call(request, timeout=30, metadata=(("x-request-id", rid),))
                        list(result) if method.server_streaming else result
                    assert error.value.code() == MALFORMED, (path, error.value.details())
                    assert (
                        "not a valid" in error.value.details() and method.input_type.full_name in error.value.details()
                    )
                    assert dict(error.value.trailing_metadata() or ())["x-request-id"] == rid
        stub = pb_grpc.InferenceStub(channel)
        assert stub.Classify(pb.ClassifyRequest(image=OK), timeout=60).label  # still serving
    finally:
        server.stop()
    log = server.output()
    assert "Traceback" not in log and "ERROR" not in log and "deserializ" not in log
    refused = [line for line in log.splitlines() if " refused (" in line]
    assert len(refused) == calls and all(" INFO " in line and re.search(r"rid-\d+ ", line) for line in refused)


def test_grpc_message_and_metadata_limits_are_resource_exhausted(served_models: Path) -> None:
    server = start_grpc_server(served_models, "--threads", "1", "--max-message-mb", "1")
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_metadata_size", 4 << 20)]
    try:
        stub = pb_grpc.InferenceStub(grpc.insecure_channel(server.address, options=options))
        for size in ((1 << 20) + 1, 20 << 20):
            with pytest.raises(grpc.RpcError) as error:
                stub.Classify(pb.ClassifyRequest(image=b"\0" * size), timeout=60)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.value.details()
        for size in (MAX_METADATA_BYTES + 1, 1 << 20):
            with pytest.raises(grpc.RpcError) as error:
                stub.Classify(pb.ClassifyRequest(image=OK), metadata=(("x-padding", "a" * size),), timeout=60)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.value.details()
            assert "metadata" in error.value.details()
        padding = (("x-padding", "a" * (MAX_METADATA_BYTES // 2)),)
        assert stub.Classify(pb.ClassifyRequest(image=OK), metadata=padding, timeout=60).label  # under it: served
    finally:
        server.stop()
    assert "Traceback" not in server.output()
