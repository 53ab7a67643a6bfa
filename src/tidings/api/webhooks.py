"""Mailgun's signed webhooks, received at each configuration's unguessable URL.

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

from tidings.providers.mailgun.settings import MailgunSettings
from tidings.providers.mailgun.webhooks import WebhookParseError, check_webhook, parse_webhook
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


@router.post("/webhooks/mailgun/{token}", include_in_schema=False)
async def mailgun_webhook(
    token: str, request: Request, rt: Runtime = Depends(runtime)
) -> JSONResponse:
    async with rt.db.read() as conn:
        stored = await providers.by_webhook_token(conn, token)
    if stored is None:
        # Not a URL this server gave out: Mailgun should stop trying it.
        return _refuse(rt, 406, "unknown-url", "no Mailgun configuration has this webhook URL")
    settings = MailgunSettings.model_validate(stored.settings)
    # At most TIDINGS_MAX_WEBHOOK_BODY_BYTES, refused (413) while it streamed in, and JSON
    # checked for depth and text (tidings.api.guard).
    body = await request.body()
    try:
        parsed = parse_webhook(body, request.headers.get("content-type", ""))
    except WebhookParseError as exc:
        return _refuse(rt, 406, "unparseable", f"not a Mailgun webhook: {exc}", provider=stored.id)
    # Legacy (form-encoded) webhooks were signed with the API key, not the signing key.
    key = settings.api_key if parsed.legacy else settings.webhook_signing_key
    refusal = check_webhook(
        parsed,
        signing_key=key,
        expected_domain=settings.domain,
        now=time.time(),
        window_s=rt.settings.webhook_window_s,
    )
    if refusal is not None:
        return _refuse(
            rt,
            refusal.http_status,
            refusal.code,
            refusal.message,
            provider=stored.id,
            event_kind=parsed.event.kind.value,
        )
    async with rt.db.write() as conn:
        if not await event_store.accept_token_once(conn, parsed.token):
            # Roll nothing else forward: this transaction only tried to insert the token.
            return _refuse(
                rt,
                406,
                "replayed",
                "webhook token was already used (a replay)",
                provider=stored.id,
            )
        rt.metrics.events.labels(parsed.event.kind.value, "webhook").inc()
        recorded = await event_store.record_event(
            conn, parsed.event, source="webhook", provider_id=stored.id
        )
        await poll_cursors.note_webhook(
            conn,
            settings.host,
            settings.domain,
            utcnow(),
            quiet_s=rt.settings.poll_auto_quiet_s,
        )
    log.info(
        "webhook accepted",
        provider=stored.id,
        event_kind=parsed.event.kind.value,
        message_id=recorded.message_id,
        duplicate=not recorded.new,
        status=recorded.status,
    )
    return JSONResponse({"message": "ok"})
