"""Request size limits of the dashboard and the public unsubscribe service.

:class:`BodyLimit` is a pure ASGI middleware: a request whose body is larger than ``max_bytes`` is
answered **413** (``{"detail": "request body too large ..."}``) before the app sees it.

* With a ``Content-Length`` over the limit the body is not read at all.
* Without one (``Transfer-Encoding: chunked``) the body is read chunk by chunk and refused as soon as
  the running total passes the limit — at most ``max_bytes`` plus one chunk is ever held in memory.
* A body within the limit is buffered (it is small by definition) and handed to the app unchanged.

The only endpoint that takes a body is ``POST /unsubscribe`` (an HTML form or RFC 8058 one-click
``List-Unsubscribe=One-Click``: a few hundred bytes), so the default limit is 16 KiB.

Query strings and path parameters that reach the lake or the token check are bounded where they are
declared (offer codes 64 characters, unsubscribe tokens :data:`MAX_TOKEN_LENGTH`, product searches 100);
uvicorn itself refuses request lines and headers beyond its h11 limits.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 16 * 1024
MAX_TOKEN_LENGTH = 2048
"""Longest unsubscribe token accepted; a longer one is refused without calling the token check. A genuine
one is a signed, base64 ``{user id, email, issue time}``: ~370 characters for a 254-character ASCII
address, ~900 for 254 random CJK characters (measured with ``lib.retarget.message.unsubscribe_token``)."""


def too_large_body(max_bytes: int) -> bytes:
    return json.dumps({"detail": f"request body too large (limit {max_bytes} bytes)"}).encode()


class BodyLimit:
    """ASGI middleware: 413 for HTTP request bodies over ``max_bytes`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away before sending its body
                await self.app(scope, _replay([], message, receive), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            if body:
                chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)

    async def _refuse(self, send: Send) -> None:
        body = too_large_body(self.max_bytes)
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            # the rest of the body is not read: the connection cannot be reused
            (b"connection", b"close"), (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server (h11) refuses a malformed length before we get here
    return None


def _replay(chunks: list[bytes], pending: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered body as one message, then defers to the server's."""
    state = {"sent": False}

    async def replay() -> Message:
        if not state["sent"]:
            state["sent"] = True
            if pending is not None:
                return pending
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await receive()

    return replay
