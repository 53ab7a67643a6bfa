"""``GET /v3/{domain}/events`` and ``GET /v3/{domain}/events/{token}``: Mailgun's event log.

A page answers ``{"items": [...], "paging": {"first", "last", "next", "previous"}}``; the
paging values are absolute URLs, built from the request's own origin and mount prefix,
ending in an opaque page token. Events become visible ``visibility_lag`` seconds after
they happen.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from tidings.sandbox.auth import ApiKeyCheck
from tidings.sandbox.core import Sandbox
from tidings.sandbox.errors import MailgunError, domain_not_found, forbidden, json_response
from tidings.sandbox.eventquery import (
    EventQuery,
    Position,
    decode_token,
    encode_token,
    neighbours,
    parse_query,
    run_query,
)
from tidings.sandbox.messages_api import Endpoint
from tidings.sandbox.urls import api_base

ROUTE = "GET /v3/{domain}/events"
PAGE_ROUTE = "GET /v3/{domain}/events/{token}"


def events_endpoints(sandbox: Sandbox) -> tuple[Endpoint, Endpoint]:
    store = sandbox.store
    auth = ApiKeyCheck(sandbox.settings.api_key)

    def page(request: Request, route: str, query: EventQuery, position: Position) -> Response:
        domain: str = request.path_params["domain"]
        visible_until = time.time() - sandbox.settings.visibility_lag
        records = run_query(store.logs[domain], query, position, visible_until)
        after, before = neighbours(records, position)
        base = f"{api_base(request)}/v3/{domain}/events"

        def link(target: Position) -> str:
            return f"{base}/{encode_token(query, target)}"

        body = {
            "items": [record.item for record in records],
            "paging": {
                "first": link(Position("fwd", None)),
                "last": link(Position("back", None)),
                "next": link(after),
                "previous": link(before),
            },
        }
        store.count_request(route, 200)
        return json_response(body)

    def guard(request: Request, route: str) -> Response | None:
        if not auth.allows(request.headers.get("authorization")):
            store.count_request(route, 401)
            return forbidden()
        domain: str = request.path_params["domain"]
        if domain not in store.domains:
            error = domain_not_found(domain)
            store.count_request(route, error.status)
            return error.response()
        return None

    async def list_events(request: Request) -> Response:
        refused = guard(request, ROUTE)
        if refused is not None:
            return refused
        try:
            query = parse_query(request.query_params)
        except MailgunError as error:
            store.count_request(ROUTE, error.status)
            return error.response()
        return page(request, ROUTE, query, Position("fwd", None))

    async def events_page(request: Request) -> Response:
        refused = guard(request, PAGE_ROUTE)
        if refused is not None:
            return refused
        try:
            query, position = decode_token(request.path_params["token"])
        except MailgunError as error:
            store.count_request(PAGE_ROUTE, error.status)
            return error.response()
        return page(request, PAGE_ROUTE, query, position)

    return list_events, events_page
