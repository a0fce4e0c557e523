"""ASGI middleware of the HTTP service (outermost first, as ``service.py`` adds them, all inside
:class:`serving.keepalive.KeepAliveLimit`):

- :class:`ErrorBodies`: every error answers ``{"error": "<one line>"}``, the one shape the OpenAPI
  document declares, whoever produced it (BentoML's validation, our checks, the framework);
  the document itself is rewritten to say so;
- :class:`RequestLimits`: the URL (414) and headers (431) over their limits, before anything
  reads them;
- :class:`BearerAuth`: the optional token (:mod:`cnnpipe.serve.auth`);
- :class:`TaskQueueLimit`: the DeepDream task queue bound (429 with ``Retry-After``), before any
  body is read, so a flood of submissions costs no memory; one bound for all the workers;
- :class:`UploadGuard`: what BentoML would answer with a 500 (oversized bodies, a multipart body
  that does not parse or is over the form limits, a file outside ``image``), a JSON endpoint sent
  anything but JSON (415), and ``image`` sent as anything but a multipart file, which BentoML
  would read as a path on the server; ``GET /metadata`` as an alias of the POST;
- :class:`Precheck`: a task's request checked by a twin endpoint before it is queued.

Every refusal here is one ``INFO`` line (:func:`refusal`) and, BentoML's metrics middleware being
outside these, counted in ``bentoml_service_request_total`` by its status.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, cast

from _bentoml_impl.tasks.result import ResultStatus
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.responses import JSONResponse

from cnnpipe.serve.auth import REFUSAL, authorized
from cnnpipe.serve.limits import Limits
from serving.task_slots import TaskSlots

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

Scope = dict[str, Any]
TASK_STATES = list(ResultStatus)
# BentoML task endpoints (each also /submit, /status, /get, …) → the endpoint that checks a request
# before it is queued (:class:`Precheck`).
TASK_CHECKS = {"/deepdream_task": "/deepdream_check", "/style_transfer": "/style_transfer_check"}
TASK_ROUTES = {route: check for task, check in TASK_CHECKS.items() for route in (task, f"{task}/submit")}
"""Where a task enters (its /submit, and the task served synchronously: BentoML does) → its check."""
IMAGE_ENDPOINTS = ("/classify", "/super_resolve", "/deepdream", "/explain", "/noop")
IMAGE_ENDPOINTS += (*TASK_ROUTES, *TASK_CHECKS.values())
# The file fields each endpoint takes (the others: just "image").
FILE_FIELDS = dict.fromkeys(("/style_transfer_check", "/style_transfer/submit", "/style_transfer"), ("image", "style"))
OPEN_PATHS = ("/livez", "/readyz", "/metrics", "/docs.json", "/")  # health, metrics and the API docs
UI_PATH = "/ui"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what was wrong, in one line"}},
    "additionalProperties": False,
}
ERROR_STATUSES = {
    "400": "Bad request: not an image, a missing or malformed field, a body that does not parse",
    "401": "Missing or invalid bearer token (when the service has one)",
    "413": "Body, form or image over a limit",
    "414": "URL over its limit",
    "415": "A JSON endpoint sent a body that is not application/json",
    "422": "A value out of range, an unknown scale or layer, an image too small for the job",
    "429": "Task queue (DeepDream, style transfer) full; retry after the Retry-After seconds",
    "431": "Request headers over their limit",
    "500": "A bug; the server log has the details",
}
log = logging.getLogger("bentoml.cnnpipe")  # BentoML's handlers: the line carries the trace and span ids


def refusal(scope: Scope, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A client's mistake answered here: the Error body, and one INFO line as BentoML's own refusals
    get (serving/logs.py)."""
    log.info("Refused %s [%s] (%d): %s", scope.get("path", "?"), scope.get("method", "?"), status, message)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


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
    _openapi30_bounds(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    if "TaskStatusResponse" in schemas:  # BentoML's says more than its answers hold
        schemas["TaskStatusResponse"]["required"] = ["task_id", "status"]
        schemas["TaskStatusResponse"]["properties"]["status"]["enum"] = [s.value for s in TASK_STATES]
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    metadata = spec.get("paths", {}).get("/metadata", {})
    if "post" in metadata:  # GET /metadata is the same as the POST (UploadGuard)
        get = {k: v for k, v in metadata["post"].items() if k != "requestBody"}
        metadata["get"] = {**get, "operationId": f"{get.get('operationId', 'metadata')}_get"}
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _body_as_sent(operation.get("requestBody"), schemas)
            responses = operation["responses"]
            for code in [c for c in responses if c.startswith(("4", "5"))]:
                del responses[code]
            task = next((t for t in TASK_CHECKS if path == t or path.startswith(f"{t}/")), None)
            for code, description in ERROR_STATUSES.items():
                if code == "429" and path not in TASK_ROUTES:
                    continue
                responses[code] = {"description": description, "content": ref}
            if task is not None and path.startswith(f"{task}/") and not path.endswith("/submit"):
                responses["404"] = {"description": "No task with this task_id", "content": ref}
    return spec


def _openapi30_bounds(node: Any) -> None:
    """Pydantic writes JSON Schema 2020 bounds (``exclusiveMinimum: 0``); BentoML's document is
    OpenAPI 3.0, where that is ``minimum: 0, exclusiveMinimum: true``. BentoML also drops the
    ``null`` of an optional field (``int | None = None`` becomes ``integer``, default null) although
    the service takes null as "not given": OpenAPI 3.0 says so with ``nullable: true``."""
    if isinstance(node, dict):
        for bound, edge in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            value = node.get(bound)
            if isinstance(value, int | float) and not isinstance(value, bool):
                node[edge], node[bound] = value, True
        if "default" in node and node["default"] is None and "type" in node:
            node["nullable"] = True
        for child in node.values():
            _openapi30_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _openapi30_bounds(child)


def _body_as_sent(body: dict[str, Any] | None, schemas: dict[str, Any]) -> None:
    """A body whose schema has required fields is itself required, and multipart array fields
    travel as JSON text (``-F 'layers=["features.3"]'``), which is how the service reads them."""
    if not body:
        return
    for media, content in body.get("content", {}).items():
        schema = content.get("schema", {})
        if "$ref" in schema:
            schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
        if schema.get("required"):
            body["required"] = True
        if media != "multipart/form-data":
            continue
        for field, spec in schema.get("properties", {}).items():
            text = json.dumps(spec)
            if "binary" in text and spec.get("type") == "array":  # several files in one field: at least one
                spec["minItems"] = 1
            elif "array" in text:
                content.setdefault("encoding", {})[field] = {"contentType": "application/json"}


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


def _is_open(path: str) -> bool:
    """Health, metrics, the API docs and the page's static files (it asks for the token itself)."""
    return path in OPEN_PATHS or path == UI_PATH or path.startswith(UI_PATH + "/")


class RequestLimits:
    """414 for a URL, 431 for headers over their limit (:class:`~cnnpipe.serve.limits.Limits`),
    where the HTTP server has none of its own (httptools takes any header size; it refuses only a
    URL over 64 KiB, with a plain-text 400 no middleware can reach)."""

    def __init__(self, app: Any, limits: Limits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        url = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        headers = scope.get("headers", [])
        size = sum(len(name) + len(value) + 4 for name, value in headers)  # "name: value\r\n"
        problem = None
        if url > self.limits.max_url_bytes:
            problem = 414, f"the URL is {url} bytes; the limit is {self.limits.max_url_bytes}"
        elif len(headers) > self.limits.max_headers:
            problem = 431, f"the request has {len(headers)} header lines; the limit is {self.limits.max_headers}"
        elif size > self.limits.max_header_bytes:
            problem = 431, f"the request headers are {size} bytes; the limit is {self.limits.max_header_bytes}"
        if problem is None:
            return await self.app(scope, receive, send)
        response = refusal(scope, *problem)
        response.headers["Connection"] = "close"  # what else the client sends on it is not wanted
        return await response(scope, receive, send)


class BearerAuth:
    """401 for requests without the token, except health, metrics and the API docs."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.token is None or scope["type"] != "http" or _is_open(scope["path"]):
            return await self.app(scope, receive, send)
        if not authorized(dict(scope.get("headers", [])).get(b"authorization"), self.token):
            response = refusal(scope, 401, REFUSAL, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


class UploadGuard:
    """What BentoML would answer with a 500, answered with a 4xx: bodies over a limit (413, counted
    as they arrive, so a chunked body cannot grow memory past the limit), a multipart body that does
    not parse or is over the form limits (:func:`multipart_problem`), a file outside the ``image``
    field or ``image`` sent as text (400), and a JSON endpoint sent another media type (415: BentoML
    would read a form as the JSON's fields). ``GET /metadata`` becomes the POST."""

    def __init__(self, app: Any, limits: Limits) -> None:
        self.app, self.limits = app, limits
        self.max_body = limits.max_upload_bytes + 64 * 1024  # room for the multipart framing

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/metadata" and scope["method"] != "POST":
            if scope["method"] != "GET":
                return await refusal(scope, 405, "use GET or POST", {"Allow": "GET, POST"})(scope, receive, send)
            json_body = [(b"content-type", b"application/json"), (b"content-length", b"2")]
            return await self.app({**scope, "method": "POST", "headers": json_body}, _body(b"{}"), send)
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        uploads = scope["path"] in IMAGE_ENDPOINTS
        limit = self.max_body if uploads else self.limits.max_json_bytes
        shown = self.limits.max_upload_bytes if uploads else limit  # the limit as documented
        problem: tuple[int, str] | None = None
        if uploads and media != b"multipart/form-data":  # a JSON or form "image" would be read as a server path
            problem = 400, "send the image as a file: multipart/form-data with the file in the field 'image'"
        elif not uploads and media not in (b"", b"application/json"):
            problem = 415, f"this endpoint takes application/json, not {media.decode(errors='replace')}"
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            problem = 413, f"request body is {int(length)} bytes; the limit is {shown}"
        if problem:
            return await refusal(scope, *problem)(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await refusal(scope, 413, f"request body is {size} bytes; the limit is {shown}")(
                    scope, receive, send
                )
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if uploads:
            fields = FILE_FIELDS.get(scope["path"], ("image",))
            problem = multipart_problem(headers[b"content-type"], body, fields, self.limits)
            if problem:
                return await refusal(scope, *problem)(scope, receive, send)
        return await self.app(scope, _body(body), send)


def _body(data: bytes) -> Any:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": data, "more_body": False}

    return receive


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _PartCheck:
    """python-multipart callbacks (the parser under Starlette's ``request.form()``, which BentoML
    calls) that keep no data: only each part's name, kind and text size, checked against the
    limits, which are below Starlette's, so what passes here parses there."""

    def __init__(self, file_fields: tuple[str, ...], limits: Limits) -> None:
        self.file_fields, self.limits = file_fields, limits
        self.files = self.fields = self.text_bytes = 0
        self.header, self.value, self.disposition = b"", b"", b""
        self.name, self.is_file = "", False

    def callbacks(self) -> MultipartCallbacks:
        names = ("on_part_begin", "on_part_data", "on_header_field", "on_header_value", "on_header_end")
        return cast("MultipartCallbacks", {name: getattr(self, name) for name in (*names, "on_headers_finished")})

    def on_part_begin(self) -> None:
        self.disposition, self.text_bytes = b"", 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        if self.header.lower() == b"content-disposition":
            self.disposition = self.value
        self.header, self.value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        if b"name" not in options:
            raise _Refused(400, "a multipart part without a name (Content-Disposition: form-data; name=...)")
        self.name, self.is_file = options[b"name"].decode(errors="replace"), b"filename" in options
        limits, fields = self.limits, self.file_fields
        if self.is_file:
            self.files += 1
            if self.files > limits.max_form_files:
                raise _Refused(400, f"more than {limits.max_form_files} files in one request (the limit)")
            if self.name not in fields:
                if len(fields) == 1:
                    raise _Refused(
                        400, f"unexpected file field {self.name!r}: send the image as the multipart field '{fields[0]}'"
                    )
                expected = " and ".join(f"'{f}'" for f in fields)
                raise _Refused(
                    400, f"unexpected file field {self.name!r}: send the images as the multipart fields {expected}"
                )
        else:
            self.fields += 1
            if self.fields > limits.max_form_fields:
                raise _Refused(400, f"more than {limits.max_form_fields} form fields in one request (the limit)")
            if self.name in fields:
                raise _Refused(
                    400, f"the field {self.name!r} must be a file upload (multipart with a filename), not text"
                )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self.is_file:
            self.text_bytes += end - start
            if self.text_bytes > self.limits.max_form_field_bytes:
                limit = self.limits.max_form_field_bytes
                raise _Refused(413, f"the form field {self.name!r} is over {limit} bytes (the limit)")


def multipart_problem(
    content_type: bytes, body: bytes, file_fields: tuple[str, ...], limits: Limits
) -> tuple[int, str] | None:
    """(status, message) for a multipart body BentoML's form parsing would fail on (a 500 there),
    or None: one that does not parse, has more files or fields than the limits (400, as Starlette
    answers its own), a text field over its size (413), a file outside ``file_fields`` or one of
    them as a text field (400)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        return 400, "multipart/form-data without a boundary"
    check = _PartCheck(file_fields, limits)
    try:
        parser = MultipartParser(boundary, check.callbacks())
        parser.write(body)
        parser.finalize()
    except _Refused as refused:
        return refused.status, str(refused)
    except (FormParserError, ValueError) as error:
        return 400, f"the body is not valid multipart/form-data ({str(error).splitlines()[0]})"
    return None


class Precheck:
    """Runs a request through a checking endpoint first (``routes``: path → checking path) and
    passes it on only if the check says 2xx: a task is refused at submission, with the same 4xx
    its run would end in, instead of being queued to fail."""

    def __init__(self, app: Any, routes: dict[str, str]) -> None:
        self.app, self.routes = app, routes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        check = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if check is None:
            return await self.app(scope, receive, send)
        body = await _read_all(receive)
        answer: list[dict[str, Any]] = []

        async def keep(message: dict[str, Any]) -> None:
            answer.append(message)

        # A request of its own: the framework keeps per-request state (its upload temp folder among
        # it) in scope["state"], and the check's clean-up must not delete the real request's upload.
        check_scope = {**scope, "path": check, "raw_path": check.encode(), "state": dict(scope.get("state", {}))}
        await self.app(check_scope, _body(body), keep)
        if answer and answer[0]["type"] == "http.response.start" and answer[0]["status"] >= 300:
            for message in answer:
                await send(message)
            return None
        return await self.app(scope, _body(body), send)


async def _read_all(receive: Any) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


class TaskQueueLimit:
    """At most ``slots.limit`` DeepDream and style-transfer tasks admitted (running or waiting)
    across ``paths`` and every worker of the server (:class:`~serving.task_slots.TaskSlots`);
    more → 429.

    A ``/submit`` call's ASGI cycle lasts until its background task ends (and a synchronous call's
    until it answers), so holding a slot for the cycle holds it for the task in memory.
    """

    def __init__(self, app: Any, slots: TaskSlots, paths: tuple[str, ...]) -> None:
        self.app, self.slots, self.paths = app, slots, paths

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        with self.slots.take() as admitted:
            if admitted:
                return await self.app(scope, receive, send)
        message = f"task queue is full ({self.slots.limit} DeepDream and style-transfer tasks); retry later"
        response = refusal(scope, 429, message, headers={"Retry-After": "10"})
        return await response(scope, receive, send)
