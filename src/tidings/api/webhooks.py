"""Providers' signed webhooks (Mailgun's), received at each configuration's unguessable
URL, ``/webhooks/<provider key>/<token>``; the provider's webhook reader verifies and parses.

Every check happens before anything is written: the signature (with the configuration's
signing key; none configured → refused, never fail open), the timestamp window, the domain,
and replay (a token is accepted once). A refusal answers 406 (Mailgun stops retrying) or 401
(a key problem Mailgun should keep retrying through while someone fixes it) and changes
nothing.
"""

from __future__ import annotations

import time

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from tidings.providers.base import Refusal
from tidings.providers.registry import Providers, UnknownProvider
from tidings.runtime import Runtime, runtime
from tidings.store import events as event_store
from tidings.store import poll_cursors, providers
from tidings.store.clock import utcnow

router = APIRouter(tags=["webhooks"])
log = structlog.get_logger("tidings.webhooks")


def _refuse(rt: Runtime, status: int, code: str, message: str, **context: object) -> JSONResponse:
    rt.metrics.webhooks_refused.labels(code).inc()
    log.warning("webhook refused", code=code, reason=message, **context)
    return JSONResponse({"message": message, "type": "invalid_request_error"}, status_code=status)


@router.post("/webhooks/{provider_key}/{token}", include_in_schema=False)
async def provider_webhook(
    provider_key: str, token: str, request: Request, rt: Runtime = Depends(runtime)
) -> JSONResponse:
    async with rt.db.read() as conn:
        stored = await providers.by_webhook_token(conn, token)
    if stored is None or stored.provider != provider_key:
        # Not a URL this server gave out: the provider should stop trying it.
        return _refuse(rt, 406, "unknown-url", "no provider configuration has this webhook URL")
    live: Providers = request.app.state.providers
    try:
        impl = live.get(stored.provider)
        settings = impl.parse_settings(stored.settings)
    except (UnknownProvider, ValidationError) as exc:
        return _refuse(rt, 406, "bad-configuration", str(exc), provider=stored.id)
    if impl.webhooks is None:
        return _refuse(rt, 406, "unknown-url", f"{impl.name} posts no webhooks", provider=stored.id)
    # At most TIDINGS_MAX_WEBHOOK_BODY_BYTES, refused (413) while it streamed in, and JSON
    # checked for depth and text (tidings.api.guard).
    body = await request.body()
    read = impl.webhooks.read(
        settings,
        body,
        request.headers.get("content-type", ""),
        now=time.time(),
        window_s=rt.settings.webhook_window_s,
    )
    if isinstance(read, Refusal):
        return _refuse(rt, read.http_status, read.code, read.message, provider=stored.id)
    config = settings.to_config()
    async with rt.db.write() as conn:
        if not await event_store.accept_token_once(conn, read.token):
            # Roll nothing else forward: this transaction only tried to insert the token.
            return _refuse(
                rt,
                406,
                "replayed",
                "webhook token was already used (a replay)",
                provider=stored.id,
            )
        rt.metrics.events.labels(read.event.kind.value, "webhook").inc()
        recorded = await event_store.record_event(
            conn,
            read.event,
            source="webhook",
            provider_id=stored.id,
            provider_key=stored.provider,
        )
        await poll_cursors.note_webhook(
            conn,
            config.target,
            config.domain or "",
            utcnow(),
            quiet_s=rt.settings.poll_auto_quiet_s,
        )
    log.info(
        "webhook accepted",
        provider=stored.id,
        event_kind=read.event.kind.value,
        message_id=recorded.message_id,
        duplicate=not recorded.new,
        status=recorded.status,
    )
    return JSONResponse({"message": "ok"})
