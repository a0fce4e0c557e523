"""ASGI middleware of the HTTP service (outermost first, as ``service.py`` adds them):

- :class:`ErrorBodies`: every error answers ``{"error": "<one line>"}``, the one shape the OpenAPI
  document declares, whoever produced it (BentoML's validation, our checks, the framework);
  the document itself is rewritten to say so;
- :class:`BearerAuth`: the optional token (:mod:`cnnpipe.serve.auth`);
- :class:`UploadGuard`: what BentoML would answer with a 500 (oversized bodies, a file outside
  ``image``), and ``image`` sent as anything but a multipart file, which BentoML would read as a
  path on the server; ``GET /metadata`` as an alias of the POST;
- :class:`TaskQueueLimit`: the DeepDream task queue bound (429 with ``Retry-After``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.responses import JSONResponse

from cnnpipe.serve.auth import REFUSAL, authorized

Scope = dict[str, Any]
IMAGE_ENDPOINTS = ("/classify", "/super_resolve", "/deepdream", "/deepdream_task/submit", "/noop")
OPEN_PATHS = ("/livez", "/readyz", "/metrics", "/docs.json", "/")  # health, metrics and the API docs
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what was wrong, in one line"}},
    "additionalProperties": False,
}
ERROR_STATUSES = {
    "400": "Bad request: not an image, a missing or malformed field",
    "401": "Missing or invalid bearer token (when the service has one)",
    "413": "Body or image over a limit",
    "422": "A value out of range, an unknown scale or layer, an image too small for the job",
    "429": "DeepDream task queue full; retry after the Retry-After seconds",
    "500": "A bug; the server log has the details",
}


def _one_line(body: Any) -> str:
    """The message of any error body BentoML or we produce: ``{"error"}``, ``[{"error"}]`` or a
    pydantic report ``{"error", "detail": [{"loc", "msg"}]}``."""
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return str(body)
    detail = body.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        where = ".".join(str(part) for part in detail[0].get("loc", ()))
        return f"{where}: {detail[0].get('msg', '')}" if where else str(detail[0].get("msg", ""))
    return str(body.get("error") or body.get("detail") or body)


def openapi_with_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the error responses the service really gives."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for code in [c for c in responses if c.startswith(("4", "5"))]:
                del responses[code]
            for code, description in ERROR_STATUSES.items():
                if code == "429" and not path.endswith("/submit"):
                    continue
                responses[code] = {"description": description, "content": ref}
    return spec


class ErrorBodies:
    """Rewrites JSON error responses to ``{"error": "..."}`` and the OpenAPI document to match."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        docs = scope["path"] == "/docs.json"
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                is_json = headers.get(b"content-type", b"").startswith(b"application/json")
                if (status >= 400 or docs) and is_json:
                    start.update(message)
                    return
                return await send(message)
            if not start:
                return await send(message)
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = json.loads(b"".join(chunks) or b"null")
            body = openapi_with_errors(body) if docs else {"error": _one_line(body)}
            data = json.dumps(body).encode()
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(data)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": data, "more_body": False})

        await self.app(scope, receive, capture)


class BearerAuth:
    """401 for requests without the token, except health, metrics and the API docs."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.token is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if not authorized(dict(scope.get("headers", [])).get(b"authorization"), self.token):
            response = JSONResponse({"error": REFUSAL}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


class UploadGuard:
    """What BentoML would answer with a 500, answered with a 4xx: oversized bodies (413, counted
    as they arrive, so a chunked body cannot grow memory past the limit), a file outside the
    ``image`` field or ``image`` sent as text (400). ``GET /metadata`` becomes the POST."""

    def __init__(self, app: Any, max_upload_bytes: int) -> None:
        self.app, self.max_upload_bytes = app, max_upload_bytes
        self.max_body = max_upload_bytes + 64 * 1024  # room for the multipart framing

    def _too_large(self, size: int) -> JSONResponse:
        return JSONResponse({"error": f"request body is {size} bytes; the limit is {self.max_upload_bytes}"}, 413)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/metadata":
            return await self.app({**scope, "method": "POST"}, _body(b"{}"), send)
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body:
            return await self._too_large(int(length))(scope, receive, send)
        if not headers.get(b"content-type", b"").startswith(b"multipart/form-data"):
            if scope["path"] in IMAGE_ENDPOINTS:  # a JSON or form "image" would be read as a server path
                message = "send the image as a file: multipart/form-data with the file in the field 'image'"
                return await JSONResponse({"error": message}, status_code=400)(scope, receive, send)
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return await self._too_large(size)(scope, receive, send)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = _multipart_problem(headers[b"content-type"], body)
        if problem:
            return await JSONResponse({"error": problem}, status_code=400)(scope, receive, send)
        return await self.app(scope, _body(body), send)


def _body(data: bytes) -> Any:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": data, "more_body": False}

    return receive


_PART_NAME = re.compile(rb'name="([^"]*)"')


def _multipart_problem(content_type: bytes, body: bytes) -> str | None:
    """Why a multipart body would make BentoML fail (a file outside the ``image`` field, or
    ``image`` as a plain text field), or None.

    Only the part headers are read: parts are delimited by the boundary, which by definition
    does not occur inside any part's content.
    """
    boundary = re.search(rb'boundary="?([^";]+)"?', content_type)
    if not boundary:
        return "multipart/form-data without a boundary"
    for part in body.split(b"--" + boundary.group(1))[1:-1]:
        head = part[: part.find(b"\r\n\r\n")].lower()
        name = _PART_NAME.search(head)
        is_file = b"filename=" in head
        if is_file and (name is None or name.group(1) != b"image"):
            field = name.group(1).decode(errors="replace") if name else "?"
            return f"unexpected file field {field!r}: send the image as the multipart field 'image'"
        if not is_file and name is not None and name.group(1) == b"image":
            return "the field 'image' must be a file upload (multipart with a filename), not text"
    return None


class TaskQueueLimit:
    """At most ``limit`` DeepDream tasks admitted (running or waiting); more → 429.

    A ``/submit`` call's ASGI cycle lasts until its background task ends, so counting them counts
    the tasks held in memory.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit, self.admitted = app, limit, 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/submit"):
            return await self.app(scope, receive, send)
        if self.admitted >= self.limit:
            message = f"DeepDream queue is full ({self.limit} tasks); retry later"
            response = JSONResponse({"error": message}, status_code=429, headers={"Retry-After": "10"})
            return await response(scope, receive, send)
        self.admitted += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.admitted -= 1
