"""Routes of the sandbox's ASGI app.

Mailgun's paths sit at the app's root (``/v3/...``, ``/v5/...``); the inspection API and the
inbox sit under ``prefix`` ("/sandbox" standalone; "" when a host mounts the whole app at
"/sandbox", so that both end up under the same path). Plain Starlette routes, no
framework on the hot path.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from tidings.sandbox.core import Sandbox
from tidings.sandbox.domains_api import domains_endpoints
from tidings.sandbox.errors import json_response
from tidings.sandbox.events_api import events_endpoints
from tidings.sandbox.inbox import inbox_endpoints
from tidings.sandbox.inspection import inspection_endpoints
from tidings.sandbox.messages_api import Endpoint, mime_send_endpoint, send_endpoint
from tidings.sandbox.settings import SandboxSettings
from tidings.sandbox.storage_api import storage_endpoints
from tidings.sandbox.suppressions_api import LISTS, suppressions_endpoints
from tidings.sandbox.tags_api import tags_endpoints
from tidings.sandbox.templates_api import templates_endpoints
from tidings.sandbox.webhooks_api import webhooks_endpoints
from tidings.sandbox.webhooks_v4_api import webhooks_v4_endpoints


def build_app(sandbox: Sandbox, prefix: str = "/sandbox") -> Starlette:
    prefix = prefix.rstrip("/")
    list_events, events_page = events_endpoints(sandbox)
    hooks = webhooks_endpoints(sandbox)
    templates = templates_endpoints(sandbox)
    storage = storage_endpoints(sandbox)
    local = _loopback_only if sandbox.settings.inspection_loopback_only else _anyone
    inspect = {name: local(fn) for name, fn in inspection_endpoints(sandbox).items()}
    inbox = {name: local(fn) for name, fn in inbox_endpoints(sandbox).items()}
    listed = suppressions_endpoints(sandbox)
    routes: list[BaseRoute] = [
        Route("/v3/{domain}/messages", send_endpoint(sandbox), methods=["POST"]),
        Route("/v3/{domain}/events", list_events, methods=["GET"]),
        Route("/v3/{domain}/events/{token}", events_page, methods=["GET"]),
        Route(
            "/v3/domains/{domain}/webhooks",
            hooks["webhooks"],
            methods=["GET", "POST", "PUT", "DELETE"],
        ),
        Route(
            "/v3/domains/{domain}/webhooks/{name}",
            hooks["webhooks"],
            methods=["GET", "PUT", "DELETE"],
        ),
        Route("/v5/accounts/http_signing_key", hooks["signing_key"], methods=["GET"]),
        *_suppression_routes(listed),
        # Templates, MIME sends and stored messages (issue 12).
        Route("/v3/{domain}/messages.mime", mime_send_endpoint(sandbox), methods=["POST"]),
        Route("/v3/{domain}/templates", templates["collection"], methods=["GET", "POST", "DELETE"]),
        Route("/v3/{domain}/templates/{name}", templates["one"], methods=["GET", "PUT", "DELETE"]),
        Route(
            "/v3/{domain}/templates/{name}/versions", templates["versions"], methods=["GET", "POST"]
        ),
        Route(
            "/v3/{domain}/templates/{name}/versions/{tag}",
            templates["version"],
            methods=["GET", "PUT", "DELETE"],
        ),
        Route(
            "/v3/{domain}/templates/{name}/versions/{tag}/copy/{new_tag}",
            templates["copy"],
            methods=["PUT"],
        ),
        Route("/v3/domains/{domain}/messages/{key}", storage["message"], methods=["GET", "POST"]),
        Route(
            "/v3/domains/{domain}/messages/{key}/{which}/{n:int}",
            storage["part"],
            methods=["GET"],
        ),
        *_domains_tags_webhooks_routes(sandbox),
        Route(f"{prefix}/api/messages", inspect["messages"], methods=["GET", "DELETE"]),
        Route(f"{prefix}/api/messages/{{id}}/events", inspect["events"], methods=["GET"]),
        Route(
            f"{prefix}/api/messages/{{id}}/attachments/{{n:int}}",
            inspect["attachment"],
            methods=["GET"],
        ),
        Route(f"{prefix}/api/messages/{{id}}/inline/{{n:int}}", inspect["inline"], methods=["GET"]),
        Route(f"{prefix}/api/stats", inspect["stats"], methods=["GET"]),
        Route(f"{prefix}/api/faults", inspect["faults"], methods=["GET", "POST"]),
        Route(f"{prefix}/", inbox["inbox"], methods=["GET"]),
        Route(f"{prefix}/messages/{{key:int}}", inbox["message"], methods=["GET"]),
    ]
    if prefix:
        # Standalone: the root and the bare prefix lead to the inbox.
        async def to_inbox(request: Request) -> Response:
            return RedirectResponse(f"{prefix}/")

        routes += [Route("/", to_inbox), Route(prefix, to_inbox)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sandbox.start()
        try:
            yield
        finally:
            await sandbox.stop()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _mailgun_http_error},
    )
    app.state.sandbox = sandbox
    return app


def _suppression_routes(listed: dict[tuple[str, str], Endpoint]) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name in LISTS:
        base = f"/v3/{{domain}}/{name}"
        routes += [
            Route(f"{base}/import", listed[(name, "import")], methods=["POST"]),
            Route(base, listed[(name, "collection")], methods=["GET", "POST", "DELETE"]),
            Route(f"{base}/{{address}}", listed[(name, "one")], methods=["GET", "DELETE"]),
        ]
    return routes


async def _mailgun_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (no route: 404; a route without the method: 405) in
    Mailgun's JSON shape, so that clients that parse every answer as JSON see an error
    they can read rather than a decode failure."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = "Not Found"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}"
    else:
        message = str(exc.detail)
    return json_response({"message": message}, exc.status_code, dict(exc.headers or {}))


def _domains_tags_webhooks_routes(sandbox: Sandbox) -> list[BaseRoute]:
    """Domains (v3 and v4) with tracking and sending queues, tags with stats, v4 domain
    webhooks and account-level webhooks."""
    domains = domains_endpoints(sandbox)
    tags = tags_endpoints(sandbox)
    hooks = webhooks_v4_endpoints(sandbox)
    routes: list[BaseRoute] = []
    for version in ("v3", "v4"):
        routes += [
            Route(f"/{version}/domains", domains[f"{version}_collection"], methods=["GET", "POST"]),
            Route(
                f"/{version}/domains/{{name}}/verify", domains[f"{version}_verify"], methods=["PUT"]
            ),
            Route(
                f"/{version}/domains/{{name}}",
                domains[f"{version}_one"],
                methods=["GET", "PUT", "DELETE"],
            ),
        ]
    routes += [
        Route("/v3/domains/{name}/tracking", domains["tracking"], methods=["GET"]),
        Route(
            "/v3/domains/{name}/tracking/{kind:str}",
            domains["tracking_update"],
            methods=["PUT"],
        ),
        Route("/v3/domains/{name}/sending_queues", domains["sending_queues"], methods=["GET"]),
        Route("/v4/domains/{domain}/webhooks", hooks["domain"], methods=["POST", "PUT", "DELETE"]),
        Route("/v1/webhooks", hooks["account"], methods=["GET", "POST", "DELETE"]),
        Route("/v1/webhooks/{webhook_id}", hooks["account_one"], methods=["GET", "PUT", "DELETE"]),
        Route("/v3/{domain}/tags", tags["list"], methods=["GET"]),
        Route("/v3/{domain}/tags/{tag}", tags["one"], methods=["GET", "PUT", "DELETE"]),
        Route("/v3/{domain}/tags/{tag}/stats", tags["stats"], methods=["GET"]),
        Route(
            "/v3/{domain}/tags/{tag}/stats/aggregates/{by}",
            tags["aggregates"],
            methods=["GET"],
        ),
    ]
    return routes


def is_loopback(host: str | None) -> bool:
    """True for a client on this machine (127.0.0.0/8, ::1, an IPv4-mapped loopback)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _anyone(endpoint: Endpoint) -> Endpoint:
    return endpoint


def _loopback_only(endpoint: Endpoint) -> Endpoint:
    """Refuse clients that are not on this machine. The address is the one the server gives
    (behind a proxy that it trusts, the client the proxy names)."""

    async def guarded(request: Request) -> Response:
        if not is_loopback(request.client.host if request.client else None):
            return json_response(
                {
                    "message": "The sandbox's inbox, inspection and fault APIs answer only "
                    "clients on this machine (loopback)."
                },
                403,
            )
        return await endpoint(request)

    return guarded


def create_app(settings: SandboxSettings | None = None) -> Starlette:
    """A standalone sandbox app: Mailgun at the root, inspection and inbox under /sandbox."""
    return Sandbox(settings).asgi("/sandbox")
