"""A real HTTP forward proxy on loopback for tests, recording what it forwarded.

It speaks the proxy side of HTTP/1.1: a client configured with ``proxy=`` sends it requests
in absolute form (``POST http://127.0.0.1:PORT/v3/... HTTP/1.1``) and it makes the request
to that origin itself (aiohttp's client), then relays the answer. A request in origin form
(someone talking to it as if it were the server) is refused with 400, and with credentials
configured a request without the right ``Proxy-Authorization`` gets 407: so a test that sees
its calls recorded here knows they really went through a proxy, authenticated. ``CONNECT``
(tunnelling to https) is not needed on loopback and answers 405.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

# Hop-by-hop headers (RFC 9110 §7.6.1) are for this hop only and are not forwarded.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass(frozen=True)
class Forwarded:
    method: str
    url: str
    status: int


@dataclass
class RunningProxy:
    host_port: str  # "127.0.0.1:PORT"
    username: str | None = None
    password: str | None = None
    forwarded: list[Forwarded] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The proxy URL with its credentials, as a configuration's ``proxy_url``."""
        if self.username is None:
            return f"http://{self.host_port}"
        return f"http://{self.username}:{self.password}@{self.host_port}"

    def calls(self) -> list[str]:
        """``"METHOD /path"`` of every forwarded request, query left out."""
        return [f"{f.method} {URL(f.url).path}" for f in self.forwarded]


def _authorized(request: web.Request, proxy: RunningProxy) -> bool:
    if proxy.username is None:
        return True
    token = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
    return request.headers.get("Proxy-Authorization") == f"Basic {token}"


def _app(proxy: RunningProxy) -> web.Application:
    session: dict[str, aiohttp.ClientSession] = {}

    async def forward(request: web.Request) -> web.StreamResponse:
        target = request.url
        if request.method == "CONNECT":
            proxy.refused.append((request.method, 405))
            return web.Response(status=405, text="CONNECT is not supported by this test proxy")
        if not request.raw_path.startswith(("http://", "https://")):
            proxy.refused.append((request.raw_path, 400))
            return web.Response(status=400, text="this is a proxy: send absolute-form requests")
        if not _authorized(request, proxy):
            proxy.refused.append((str(target), 407))
            return web.Response(
                status=407, headers={"Proxy-Authenticate": 'Basic realm="test"'}, text="auth"
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        client = session.get("client")
        if client is None or client.closed:
            client = session["client"] = aiohttp.ClientSession(auto_decompress=False)
        try:
            async with client.request(
                request.method, request.raw_path, headers=headers, data=body, allow_redirects=False
            ) as answer:
                payload = await answer.read()
        except aiohttp.ClientError as exc:
            # What a real proxy answers when the origin cannot be reached.
            proxy.refused.append((str(target), 502))
            return web.Response(status=502, text=f"bad gateway: {exc}")
        proxy.forwarded.append(Forwarded(request.method, request.raw_path, answer.status))
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        return web.Response(status=answer.status, headers=out_headers, body=payload)

    async def close(_app: web.Application) -> None:
        client = session.get("client")
        if client is not None:
            await client.close()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_cleanup.append(close)
    return app


@contextlib.contextmanager
def serve_proxy(
    *, username: str | None = None, password: str | None = None
) -> Iterator[RunningProxy]:
    """Run a forward proxy on 127.0.0.1 (a free port) in a thread until the block ends."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}
    proxy = RunningProxy("", username, password)

    async def start() -> web.AppRunner:
        runner = web.AppRunner(_app(proxy), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        proxy.host_port = f"127.0.0.1:{port}"
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["runner"] = loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True, name="loopback-proxy")
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the test proxy did not start")
    try:
        yield proxy
    finally:
        runner = holder["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
