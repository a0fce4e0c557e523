"""ASGI middleware of the HTTP service: what BentoML would otherwise answer with a 500, and the
DeepDream task queue bound."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import JSONResponse


class UploadGuard:
    """ASGI middleware for what BentoML would answer with a 500: oversized bodies (→ 413) and
    multipart requests whose file is not in the ``image`` field (→ 400)."""

    def __init__(self, app: Any, max_upload_bytes: int) -> None:
        self.app, self.max_upload_bytes = app, max_upload_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_upload_bytes + 64 * 1024:
            message = f"request body is {int(length)} bytes; the limit is {self.max_upload_bytes}"
            return await JSONResponse({"error": message}, status_code=413)(scope, receive, send)
        if not headers.get(b"content-type", b"").startswith(b"multipart/form-data"):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if len(body) > self.max_upload_bytes + 64 * 1024:
            error = f"request body is {len(body)} bytes; the limit is {self.max_upload_bytes}"
            return await JSONResponse({"error": error}, status_code=413)(scope, receive, send)
        problem = _multipart_problem(headers[b"content-type"], body)
        if problem:
            return await JSONResponse({"error": problem}, status_code=400)(scope, receive, send)

        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


_PART_NAME = re.compile(rb'name="([^"]*)"')


def _multipart_problem(content_type: bytes, body: bytes) -> str | None:
    """Why a multipart body would make BentoML fail (a file outside the ``image`` field), or None.

    Only the part headers are read: parts are delimited by the boundary, which by definition
    does not occur inside any part's content.
    """
    boundary = re.search(rb'boundary="?([^";]+)"?', content_type)
    if not boundary:
        return "multipart/form-data without a boundary"
    for part in body.split(b"--" + boundary.group(1))[1:-1]:
        head = part[: part.find(b"\r\n\r\n")].lower()
        name = _PART_NAME.search(head)
        if b"filename=" in head and (name is None or name.group(1) != b"image"):
            field = name.group(1).decode(errors="replace") if name else "?"
            return f"unexpected file field {field!r}: send the image as the multipart field 'image'"
    return None


class TaskQueueLimit:
    """ASGI middleware: at most ``limit`` DeepDream tasks admitted (running or waiting); more → 429.

    A ``/submit`` call's ASGI cycle lasts until its background task ends, so counting them counts
    the tasks held in memory.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit, self.admitted = app, limit, 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
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
