"""A cap on the requests one keep-alive connection carries, as Apache's ``MaxKeepAliveRequests``
and nginx's ``keepalive_requests`` put one.

With more than one worker, BentoML's workers accept from one shared listening socket, and
whichever worker wakes first takes every connection waiting: eight connections a client opens at
once can all land on one worker and stay there for as long as they live, leaving the others idle
(measured: benchmarks/README.md). Closing each connection after ``requests`` answers (the answer
says ``Connection: close``, which every HTTP/1.1 client follows by opening a new one) gives the
workers a new draw every few seconds under load, and the least busy worker, the first to wake,
tends to win it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TRACKED = 4096  # connections remembered; past that the oldest start counting again (a bound, not a limit)


class KeepAliveLimit:
    """ASGI middleware: the ``requests``-th answer on a connection carries ``Connection: close``.

    A connection is its client address and port (uvicorn's ``scope["client"]``), which is unique
    among the connections open to one worker. A request a local proxy forwarded with
    ``X-Forwarded-For`` has port 0 there (uvicorn puts the forwarded address in its place) and is
    not counted: its connection cannot be told apart. ``requests`` 0 turns the cap off.
    """

    def __init__(self, app: ASGIApp, requests: int) -> None:
        self.app, self.requests = app, requests
        self.served: OrderedDict[tuple[str, int], int] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if self.requests <= 0 or scope["type"] != "http" or not client or not client[1]:
            await self.app(scope, receive, send)
            return
        key = (str(client[0]), int(client[1]))
        count = self.served.pop(key, 0) + 1
        if count < self.requests:
            self.served[key] = count
            while len(self.served) > TRACKED:
                self.served.popitem(last=False)
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
