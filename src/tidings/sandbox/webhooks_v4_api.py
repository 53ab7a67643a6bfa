"""Webhooks by URL: the domain API v4 (``/v4/domains/{domain}/webhooks``: one URL for
several ``event_types``) and the account-level API (``/v1/webhooks``, every domain).

v4 works on the same per-domain table as the v3 API (``store.webhooks``): a URL added here
is listed, and posted to, exactly like one added through v3. Account webhooks live in
``store.account_webhooks``; an event is posted to the domain's URLs and the account's, each
URL once.

The current official SDK (``mailgun`` 1.10) sends its v4 calls to the v3 path
(``/v3/domains/{domain}/webhooks`` with ``event_types``, ``DELETE`` with ``?url=``): its
v4 switch looks at the payload, which it never receives. ``webhooks_api`` hands such calls
here, so SDK users get the v4 behaviour.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from tidings.sandbox.apiroute import (
    Fields,
    mailgun_endpoint,
    one,
    query_fields,
    read_fields,
    refuse_unknown,
)
from tidings.sandbox.core import Sandbox
from tidings.sandbox.errors import MailgunError, domain_not_found, json_response
from tidings.sandbox.messages_api import Endpoint
from tidings.sandbox.state import JSON, WEBHOOK_KINDS, AccountWebhook

MAX_URLS = 3
Hooks = dict[str, list[str]]


class DescriptionError(MailgunError):
    """The account webhooks API answers some errors as ``{"Description": ...}``."""

    def response(self) -> Response:
        return json_response({"Description": self.message}, self.status, self.headers)


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise MailgunError(400, f"url parameter is not a valid URL: {url}")
    return url


def _url(fields: Fields) -> str:
    url = one(fields, "url")
    if not url or not url.strip():
        raise MailgunError(400, "url parameter is missing")
    return check_url(url)


def event_types(fields: Fields) -> list[str]:
    kinds: list[str] = []
    for key, value in fields:
        if key != "event_types":
            continue
        for kind in value.split(","):  # a comma-separated value is accepted too
            kind = kind.strip()
            if kind not in WEBHOOK_KINDS:
                raise MailgunError(
                    400,
                    f"Invalid event_types '{kind}': expected one of {', '.join(WEBHOOK_KINDS)}",
                )
            if kind not in kinds:
                kinds.append(kind)
    if not kinds:
        raise MailgunError(400, "event_types parameter is missing")
    return kinds


def listing(hooks: Hooks) -> JSON:
    return {"webhooks": {kind: {"urls": list(urls)} for kind, urls in hooks.items()}}


def v4_create(hooks: Hooks, fields: Fields) -> JSON:
    """Add ``url`` to each of ``event_types`` (a kind already holding it is left as is)."""
    refuse_unknown(fields, ("url", "event_types"))
    url = _url(fields)
    kinds = event_types(fields)
    for kind in kinds:
        urls = hooks.get(kind, [])
        if url not in urls and len(urls) >= MAX_URLS:
            raise MailgunError(400, f"Too many urls for {kind}, max is {MAX_URLS}")
    for kind in kinds:
        urls = hooks.setdefault(kind, [])
        if url not in urls:
            urls.append(url)
    return listing(hooks)


def v4_update(hooks: Hooks, fields: Fields) -> JSON:
    """``url`` is posted exactly the given ``event_types`` from now on."""
    refuse_unknown(fields, ("url", "event_types"))
    url = _url(fields)
    kinds = event_types(fields)
    if not any(url in urls for urls in hooks.values()):
        raise MailgunError(404, f"Webhook not found: {url}")
    for kind in kinds:
        urls = hooks.get(kind, [])
        if url not in urls and len(urls) >= MAX_URLS:
            raise MailgunError(400, f"Too many urls for {kind}, max is {MAX_URLS}")
    for kind in list(hooks):
        if kind not in kinds and url in hooks[kind]:
            hooks[kind].remove(url)
            if not hooks[kind]:
                del hooks[kind]
    for kind in kinds:
        urls = hooks.setdefault(kind, [])
        if url not in urls:
            urls.append(url)
    return listing(hooks)


def v4_delete(hooks: Hooks, fields: Fields) -> JSON:
    """Remove each ``url`` from every kind it is registered for."""
    refuse_unknown(fields, ("url",))
    urls = [check_url(value) for key, value in fields if key == "url" and value.strip()]
    if not urls:
        raise MailgunError(400, "url parameter is missing")
    found = False
    for kind in list(hooks):
        kept = [u for u in hooks[kind] if u not in urls]
        if len(kept) != len(hooks[kind]):
            found = True
            if kept:
                hooks[kind] = kept
            else:
                del hooks[kind]
    if not found:
        raise MailgunError(404, "Webhook not found")
    return listing(hooks)


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def webhooks_v4_endpoints(sandbox: Sandbox) -> dict[str, Endpoint]:
    store = sandbox.store
    ids = random.Random(sandbox.settings.seed)

    def hooks_of(request: Request) -> Hooks:
        domain: str = request.path_params["domain"]
        if domain not in store.domains:
            raise domain_not_found(domain)
        return store.webhooks[domain]

    async def domain_hooks(request: Request) -> tuple[object, int]:
        hooks = hooks_of(request)
        if request.method == "POST":
            return v4_create(hooks, await read_fields(request)), 200
        if request.method == "PUT":
            return v4_update(hooks, await read_fields(request)), 200
        return v4_delete(hooks, query_fields(request)), 200

    def describe(hook: AccountWebhook) -> JSON:
        return {
            "webhook_id": hook.webhook_id,
            "description": hook.description,
            "url": hook.url,
            "event_types": list(hook.event_types),
            "created_at": _rfc3339(hook.created_at),
        }

    def account_fields(fields: Fields, replacing: str | None) -> tuple[str, list[str], str]:
        refuse_unknown(fields, ("url", "event_types", "description"))
        url = _url(fields)
        kinds = event_types(fields)
        for hook in store.account_webhooks.values():
            if hook.url == url and hook.webhook_id != replacing:
                raise DescriptionError(409, f"a webhook for {url} already exists")
        for kind in kinds:
            others = {
                hook.url
                for hook in store.account_webhooks.values()
                if kind in hook.event_types and hook.webhook_id != replacing
            }
            if len(others | {url}) > MAX_URLS:
                raise MailgunError(400, f"Too many urls for {kind}, max is {MAX_URLS}")
        return url, kinds, one(fields, "description") or ""

    def hook_of(request: Request) -> AccountWebhook:
        webhook_id: str = request.path_params["webhook_id"]
        hook = store.account_webhooks.get(webhook_id)
        if hook is None:
            raise DescriptionError(404, f"webhook {webhook_id} not found")
        return hook

    async def account_collection(request: Request) -> tuple[object, int]:
        if request.method == "GET":
            fields = query_fields(request)
            refuse_unknown(fields, ("webhook_ids",))
            wanted = _ids(one(fields, "webhook_ids"))
            hooks = [
                describe(hook)
                for hook in store.account_webhooks.values()
                if wanted is None or hook.webhook_id in wanted
            ]
            return {"webhooks": hooks}, 200
        if request.method == "POST":
            url, kinds, description = account_fields(await read_fields(request), None)
            webhook_id = str(uuid.UUID(int=ids.getrandbits(128), version=4))
            store.account_webhooks[webhook_id] = AccountWebhook(
                webhook_id, url, kinds, description, time.time()
            )
            return {"webhook_id": webhook_id}, 200
        fields = query_fields(request)
        refuse_unknown(fields, ("webhook_ids", "all"))
        chosen = _ids(one(fields, "webhook_ids"))
        every = (one(fields, "all") or "").lower() == "true"
        if chosen is not None:  # "if both are provided, the specific webhook_ids"
            for webhook_id in chosen:
                store.account_webhooks.pop(webhook_id, None)
        elif every:
            store.account_webhooks.clear()
        else:
            raise MailgunError(400, "Give webhook_ids, or all=true to delete every webhook")
        return None, 204

    async def account_one(request: Request) -> tuple[object, int]:
        hook = hook_of(request)
        if request.method == "GET":
            return describe(hook), 200
        if request.method == "PUT":
            url, kinds, description = account_fields(await read_fields(request), hook.webhook_id)
            hook.url, hook.event_types, hook.description = url, kinds, description
            return None, 204
        del store.account_webhooks[hook.webhook_id]
        return None, 204

    return {
        "domain": mailgun_endpoint(sandbox, "{method} /v4/domains/{domain}/webhooks", domain_hooks),
        "account": mailgun_endpoint(sandbox, "{method} /v1/webhooks", account_collection),
        "account_one": mailgun_endpoint(sandbox, "{method} /v1/webhooks/{webhook_id}", account_one),
    }


def _ids(raw: str | None) -> set[str] | None:
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}
