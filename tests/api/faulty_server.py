"""A real Tidings server with three routes that fail in ways no real route should, for the
test of the last-resort error handling (run as ``python -m tests.api.faulty_server PORT DB``):

* ``/test/boom``: the endpoint raises, with a registered secret in the exception text;
* ``/test/middleware``: a middleware inside the app's stack raises before any answer;
* ``/test/outer``: the same from a middleware outside Tidings' own guard;
* ``/test/stream``: a streaming answer fails after its first chunk.

Logging is configured as ``tidings serve`` configures it, so the log is the real one.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.middleware import Middleware
from starlette.responses import StreamingResponse

from tidings.app import build_app
from tidings.config import Settings
from tidings.logging import configure_logging, register_secret

API_KEY = "tk_test_0123456789abcdef"
SECRET = "override-key-0123456789-LAST"


class FailingMiddleware:
    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            raise RuntimeError("a middleware failed")
        await self.app(scope, receive, send)


def main() -> None:
    port, database_url = int(sys.argv[1]), sys.argv[2]
    configure_logging("info")
    register_secret(SECRET)
    settings = Settings(
        database_url=database_url,
        api_key=API_KEY,
        host="127.0.0.1",
        port=port,
        sandbox=False,
    )
    app = asyncio.run(build_app(settings, run_workers=False))

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError(f"unforeseen, while holding {SECRET}")

    @app.get("/test/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first chunk\n"
            raise RuntimeError("the stream broke")

        return StreamingResponse(chunks(), media_type="text/plain")

    # Innermost (inside the app's own guards), as a route-specific middleware would be...
    app.user_middleware.append(Middleware(FailingMiddleware, path="/test/middleware"))
    # ... and outermost, as one added after Tidings' own would be.
    app.add_middleware(FailingMiddleware, path="/test/outer")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
