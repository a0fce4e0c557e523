"""Task ids that name their replica, so a load balancer can send a task's calls back to it.

DeepDream and style-transfer tasks live in the replica that accepted them (BentoML's result
store and ``serving.progress_store`` are files under the replica's ``BENTOML_HOME``, shared by its
workers only). With ``CNNPIPE_REPLICA_ID=http1`` every
task id this replica hands out reads ``http1.<BentoML's id>``, in the submit answer and every
answer that carries a ``task_id``; incoming ids lose the prefix before BentoML and the service
see them. ``deploy/haproxy/haproxy.cfg`` routes on it: the ``task_id`` query parameter (status,
get, cancel) or the JSON body's (progress, cancel). Without the variable nothing changes.

An id with another replica's prefix is passed on as it is and so is unknown here (404): that
replica's tasks died with it. Only the task routes are touched, and only their small JSON bodies
are buffered.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SEPARATOR = "."
TASK_PREFIXES = ("/deepdream_task", "/style_transfer")
JSON_TASK_ROUTES = ("/deepdream_progress", "/deepdream_cancel", "/style_transfer_progress", "/style_transfer_cancel")


def is_task_route(path: str) -> bool:
    return path in JSON_TASK_ROUTES or any(path == p or path.startswith(f"{p}/") for p in TASK_PREFIXES)


def valid_replica_id(replica: str) -> bool:
    """Letters, digits, ``-`` and ``_``: no separator, nothing a URL or HAProxy's ``word`` would split."""
    return bool(replica) and all(c.isascii() and (c.isalnum() or c in "-_") for c in replica)


class ReplicaTaskIds:
    """ASGI middleware: ``http1.`` + id out, the bare id in."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.prefix = f"{replica}{SEPARATOR}"

    def _outward(self, task_id: Any) -> Any:
        return f"{self.prefix}{task_id}" if isinstance(task_id, str) and task_id else task_id

    def _inward(self, task_id: str) -> str:
        return task_id.removeprefix(self.prefix)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_task_route(scope["path"]):
            await self.app(scope, receive, send)
            return
        scope = dict(scope)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if any(key == "task_id" for key, _ in query):
            fixed = [(key, self._inward(value) if key == "task_id" else value) for key, value in query]
            scope["query_string"] = urlencode(fixed).encode("latin-1")
        if scope["path"] in JSON_TASK_ROUTES:
            receive = await self._inward_body(receive)
        await self.app(scope, receive, self._outward_send(send))

    async def _inward_body(self, receive: Receive) -> Receive:
        """The JSON body with its ``task_id`` stripped of the prefix (anything else as it came)."""
        chunks, more = [], True
        first: Message = {}
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive)
            first = first or message
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("task_id"), str):
            data["task_id"] = self._inward(data["task_id"])
            body = json.dumps(data).encode()
        return _replay([{"type": "http.request", "body": body, "more_body": False}], receive)

    def _outward_send(self, send: Send) -> Send:
        """Buffers a JSON answer to prefix its ``task_id``; anything else (a PNG) goes straight on."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if headers.get(b"content-type", b"").startswith(b"application/json"):
                    start = message  # held until the whole body is here
                else:
                    await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = self._rewrite(b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        return wrapped

    def _rewrite(self, body: bytes) -> bytes:
        try:
            data = json.loads(body)
        except ValueError:
            return body
        if isinstance(data, dict) and "task_id" in data:
            data["task_id"] = self._outward(data["task_id"])
            return json.dumps(data).encode()
        return body


def _replay(messages: list[Message], then: Receive) -> Receive:
    """``messages`` first, then the connection's own ``receive`` (which waits for a disconnect)."""
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0) if queue else await then()

    return receive
