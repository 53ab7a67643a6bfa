"""The domain webhooks API, ``/v3/domains/{domain}/webhooks[/{name}]``, plus the account
call a client needs beside it: ``GET /v5/accounts/http_signing_key``.

The list path also takes the v4 calls the current SDK sends there (``event_types`` on
``POST``/``PUT``, ``DELETE`` with ``?url=``); ``webhooks_v4_api`` carries them out.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from tidings.sandbox.auth import ApiKeyCheck
from tidings.sandbox.core import Sandbox
from tidings.sandbox.errors import MailgunError, domain_not_found, forbidden, json_response
from tidings.sandbox.messages_api import Endpoint
from tidings.sandbox.state import JSON, WEBHOOK_KINDS
from tidings.sandbox.webhooks_v4_api import v4_create, v4_delete, v4_update

MAX_URLS = 3
LIST_ROUTE = "{method} /v3/domains/{{domain}}/webhooks"
ONE_ROUTE = "{method} /v3/domains/{{domain}}/webhooks/{{name}}"
KEY_ROUTE = "GET /v5/accounts/http_signing_key"


async def _form(request: Request) -> list[tuple[str, str]]:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form() as form:
            return [(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)]
    body = await request.body()
    fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    # Some clients put the fields in the query string.
    return fields + list(request.query_params.multi_items())


def _urls(fields: list[tuple[str, str]]) -> list[str]:
    urls = [value.strip() for name, value in fields if name == "url" and value.strip()]
    if not urls:
        raise MailgunError(400, "url parameter is missing")
    if len(urls) > MAX_URLS:
        raise MailgunError(400, f"Too many urls, max is {MAX_URLS}")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise MailgunError(400, f"url parameter is not a valid URL: {url}")
    return urls


def webhooks_endpoints(sandbox: Sandbox) -> dict[str, Endpoint]:
    store = sandbox.store
    auth = ApiKeyCheck(sandbox.settings.api_key)

    async def handle(request: Request) -> Response:
        name = request.path_params.get("name")
        template = ONE_ROUTE if name is not None else LIST_ROUTE
        route = template.format(method=request.method)
        if not auth.allows(request.headers.get("authorization")):
            store.count_request(route, 401)
            return forbidden()
        try:
            domain: str = request.path_params["domain"]
            if domain not in store.domains:
                raise domain_not_found(domain)
            body = await _dispatch(request, store.webhooks[domain], name)
        except MailgunError as error:
            store.count_request(route, error.status)
            return error.response()
        store.count_request(route, 200)
        return json_response(body)

    async def _dispatch(request: Request, hooks: dict[str, list[str]], name: str | None) -> JSON:
        method = request.method
        if name is None and method == "GET":
            return {"webhooks": {kind: {"urls": urls} for kind, urls in hooks.items()}}
        if name is None and method == "PUT":
            return v4_update(hooks, await _form(request))
        if name is None and method == "DELETE":
            return v4_delete(hooks, list(request.query_params.multi_items()))
        if name is None:  # POST
            fields = await _form(request)
            if any(key == "event_types" for key, _ in fields) and not any(
                key == "id" for key, _ in fields
            ):
                return v4_create(hooks, fields)
            name = next((value for key, value in fields if key == "id"), None)
            if not name:
                raise MailgunError(400, "id parameter is missing")
            _check_name(name)
            urls = _urls(fields)
            if name in hooks:
                raise MailgunError(400, "Webhook already exists")
            hooks[name] = urls
            return {"message": "Webhook has been created", "webhook": {"urls": urls}}
        _check_name(name)
        if name not in hooks:
            raise MailgunError(404, "Webhook not found")
        if method == "GET":
            return {"webhook": {"urls": hooks[name]}}
        if method == "PUT":
            hooks[name] = _urls(await _form(request))
            return {"message": "Webhook has been updated", "webhook": {"urls": hooks[name]}}
        urls = hooks.pop(name)
        return {"message": "Webhook has been deleted", "webhook": {"urls": urls}}

    async def signing_key(request: Request) -> Response:
        if not auth.allows(request.headers.get("authorization")):
            store.count_request(KEY_ROUTE, 401)
            return forbidden()
        store.count_request(KEY_ROUTE, 200)
        return json_response({"http_signing_key": sandbox.settings.signing_key})

    return {"webhooks": handle, "signing_key": signing_key}


def _check_name(name: str) -> None:
    if name not in WEBHOOK_KINDS:
        raise MailgunError(
            400, f"Invalid webhook name '{name}': expected one of {', '.join(WEBHOOK_KINDS)}"
        )
