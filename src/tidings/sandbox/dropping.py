"""Closing a client's connection without an answer: the "accepted, then dropped" fault.

ASGI has no way to abort a connection, so we look for the server's transport behind the
``send`` callable (uvicorn's is a bound method of an object with a ``transport``; Starlette
wraps it in closures). If it cannot be found, we start a response and break it off, which
the server answers by closing the connection mid-response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

_MAX_DEPTH = 12


def find_transport(send: Callable[..., Any]) -> Any:
    """The transport behind ``send``, or None. Duck-typed: uvloop's is no BaseTransport."""
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(send, 0)]
    while stack:
        fn, depth = stack.pop()
        if id(fn) in seen or depth > _MAX_DEPTH:
            continue
        seen.add(id(fn))
        transport = getattr(getattr(fn, "__self__", None), "transport", None)
        if callable(getattr(transport, "close", None)) and hasattr(transport, "get_extra_info"):
            return transport
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(value):
                stack.append((value, depth + 1))
        inner = getattr(fn, "__wrapped__", None)
        if inner is not None:
            stack.append((inner, depth + 1))
    return None


class DropConnection(Response):
    """A response that closes the connection instead of answering."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = find_transport(send)
        if transport is not None:
            transport.close()
            # Let the server see the connection is lost before the app returns, so that it
            # does not try to answer a 500 on our behalf.
            await asyncio.sleep(0.01)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        raise ConnectionAbortedError("sandbox fault: connection dropped after accepting")
