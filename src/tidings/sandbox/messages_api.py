"""``POST /v3/{domain}/messages`` (the hot path) and ``POST /v3/{domain}/messages.mime``.

Auth, domain, faults, form, rules, store: each step cheap, the accepted event recorded
before the answer, everything after it scheduled.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from tidings.sandbox.auth import ApiKeyCheck
from tidings.sandbox.core import Sandbox
from tidings.sandbox.dropping import DropConnection
from tidings.sandbox.errors import MailgunError, domain_not_found, forbidden
from tidings.sandbox.faults import DROP
from tidings.sandbox.forms import SendRequest, read_form, validate
from tidings.sandbox.mime import parse_mime_send
from tidings.sandbox.state import Part
from tidings.sandbox.urls import api_base

ROUTE = "POST /v3/{domain}/messages"
MIME_ROUTE = "POST /v3/{domain}/messages.mime"

Endpoint = Callable[[Request], Awaitable[Response]]


def send_endpoint(sandbox: Sandbox) -> Endpoint:
    return _sending(sandbox, ROUTE, validate)


def mime_send_endpoint(sandbox: Sandbox) -> Endpoint:
    """``POST /v3/{domain}/messages.mime``: ``to`` and the ``message`` file."""
    return _sending(sandbox, MIME_ROUTE, parse_mime_send)


def _sending(
    sandbox: Sandbox,
    route: str,
    parse: Callable[[list[tuple[str, str]], list[tuple[str, Part]], str], SendRequest],
) -> Endpoint:
    store = sandbox.store
    auth = ApiKeyCheck(sandbox.settings.api_key)
    faults = sandbox.faults
    max_bytes = sandbox.settings.max_message_bytes

    async def send_message(request: Request) -> Response:
        if not auth.allows(request.headers.get("authorization")):
            store.count_request(route, 401)
            return forbidden()
        domain: str = request.path_params["domain"]
        try:
            if domain not in store.domains:
                raise domain_not_found(domain)
            fault = await faults.before_send(domain)
            fields, files = await read_form(request, max_bytes)
            message = parse(fields, files, domain)
            message_id = sandbox.accept(message, domain, api_base(request))
        except MailgunError as error:
            store.count_request(route, error.status)
            return error.response()
        if fault == DROP:
            store.count_request(route, "dropped")
            return DropConnection()
        store.count_request(route, 200)
        body = json.dumps({"id": f"<{message_id}>", "message": "Queued. Thank you."})
        return Response(body.encode(), media_type="application/json")

    return send_message
