"""Building absolute URLs from the request as the client sent it, mount prefix included."""

from __future__ import annotations

from starlette.requests import Request


def origin(request: Request) -> str:
    """``scheme://host[:port]`` as the client addressed us (the Host header, else the socket).

    Read from the scope directly: building ``request.url`` costs more than the rest of this.
    """
    scope = request.scope
    for name, value in scope["headers"]:
        if name == b"host":
            return f"{scope['scheme']}://{value.decode('latin-1')}"
    url = request.url
    return f"{url.scheme}://{url.netloc}"


def api_base(request: Request) -> str:
    """The Mailgun base URL this request came through: origin plus any mount prefix.

    ``scope["path"]`` holds the full path (Starlette keeps mount prefixes in it), so the
    prefix is whatever precedes the ``/v3/`` or ``/v5/`` of a Mailgun route.
    """
    path: str = request.scope["path"]
    for marker in ("/v3/", "/v4/", "/v5/"):
        cut = path.find(marker)
        if cut >= 0:
            return origin(request) + path[:cut]
    root: str = request.scope.get("root_path", "")
    return origin(request) + root
