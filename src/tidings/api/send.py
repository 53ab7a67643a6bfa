"""``POST /send``: validate, commit one message per recipient, answer 202 after the commit.

Idempotency follows Courier: the first answer to a key is stored with the messages, in the
same transaction, and replayed for every later request with that key until it expires.
Nothing is stored for a request that fails validation.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.exc import IntegrityError

from tidings.api.errors import describe_validation, error_response
from tidings.api.schemas import (
    EmailOverride,
    MailgunOverride,
    MessageIn,
    SendRequest,
    SendResponse,
    duration_ms,
    parse_epoch_ms,
    parse_when,
)
from tidings.domain.content import parse_content
from tidings.domain.errors import ValidationError
from tidings.domain.recipients import Recipient, parse_recipients
from tidings.domain.status import HistoryType, with_enqueued
from tidings.errors import BadRequest
from tidings.ids import new_id
from tidings.providers.mailgun.settings import MailgunSettings
from tidings.providers.settings import merge_override
from tidings.render.email import check_content
from tidings.runtime import Runtime, runtime
from tidings.store import facts as facts_codec
from tidings.store import idempotency
from tidings.store import messages as store
from tidings.store import providers as providers_store
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.status_feed import publish_new

router = APIRouter(tags=["send"])

IDEMPOTENCY_MIN = timedelta(hours=24)
MAX_IDEMPOTENCY_KEY = 255  # the column's width


def _when(value: str, path: str) -> datetime:
    try:
        return parse_when(value, path)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _idempotency_expiry(header: str | None, now: datetime) -> datetime:
    if not header:
        return now + IDEMPOTENCY_MIN
    value = header.strip()
    try:
        at = (
            parse_epoch_ms(value, "x-idempotency-expiration")
            if value.isdigit()
            else parse_when(value, "x-idempotency-expiration")
        )
    except ValueError as exc:
        raise BadRequest(f"{exc} (epoch milliseconds or an ISO 8601 date are accepted)") from None
    return max(at, now + IDEMPOTENCY_MIN)


def _not_before(msg: MessageIn, now: datetime) -> datetime:
    at = now
    if msg.delay and msg.delay.duration:
        at = now + timedelta(milliseconds=msg.delay.duration)
    if msg.delay and msg.delay.until:
        at = max(at, _when(msg.delay.until, "message.delay.until"))
    return at


def _expires_at(msg: MessageIn, now: datetime, default_timeout_ms: int) -> datetime:
    """The moment after which Tidings stops trying: the earliest of ``expiry`` and
    ``timeout.message`` (Courier's default 72 hours). Durations are bounded by the schema,
    so the sums stay on the calendar."""
    timeout_ms = msg.timeout.message if msg.timeout and msg.timeout.message else default_timeout_ms
    limits = [now + timedelta(milliseconds=timeout_ms)]
    if msg.expiry and msg.expiry.expires_at:
        limits.append(_when(msg.expiry.expires_at, "message.expiry.expires_at"))
    if msg.expiry and msg.expiry.expires_in is not None:
        # Checked by the schema: at most ten years.
        limits.append(now + timedelta(milliseconds=duration_ms(msg.expiry.expires_in)))
    return min(limits)


def _check_attachments(msg: MessageIn) -> None:
    """Validate every attachment now: a bad one is the sender's error, not a failed send."""
    providers = msg.providers or {}
    spec = providers.get("mailgun")
    if spec and spec.override:
        try:
            MailgunOverride.model_validate(spec.override)
        except PydanticValidationError as exc:
            raise BadRequest(
                _prefixed(exc, ("message", "providers", "mailgun", "override"))
            ) from None
    channels = msg.channels or {}
    email = channels.get("email")
    if email and email.override:
        try:
            EmailOverride.model_validate(email.override)
        except PydanticValidationError as exc:
            raise BadRequest(_prefixed(exc, ("message", "channels", "email", "override"))) from None


async def _check_override_config(msg: MessageIn, rt: Runtime) -> None:
    """Keys stay with their hosts: an override that would send the stored key elsewhere is
    refused now, against the configuration that would send it (the default). The
    dispatcher checks again against the configuration it uses, should that change."""
    spec = (msg.providers or {}).get("mailgun")
    config = (spec.override or {}).get("config") if spec and spec.override else None
    if not isinstance(config, dict) or not config:
        return
    async with rt.db.read() as conn:
        stored = await providers_store.default(conn)
    try:
        merge_override(
            MailgunSettings,
            stored.settings if stored is not None else None,
            config,
            trusted=rt.network_policy().trusted,
            path="message.providers.mailgun.override.config",
        )
    except ValidationError as exc:
        raise BadRequest(str(exc)) from None
    except PydanticValidationError:
        return  # the stored configuration itself is broken: the dispatcher says so


def _prefixed(exc: PydanticValidationError, prefix: tuple[str, ...]) -> str:
    return describe_validation([{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors()])


def _payload(msg: MessageIn, recipient: Recipient, raw_to: dict[str, Any]) -> dict[str, Any]:
    data = dict(msg.data or {})
    data.update(recipient.data or {})
    providers = msg.providers or {}
    channels = msg.channels or {}
    mailgun = providers.get("mailgun")
    email = channels.get("email")
    return {
        "to": raw_to,
        "content": msg.content,
        "data": data,
        "mailgun_override": (mailgun.override if mailgun else None) or {},
        "email_override": (email.override if email else None) or {},
        "metadata": msg.metadata.model_dump(exclude_none=True) if msg.metadata else {},
        "brand_id": msg.brand_id,
    }


def validate_message(msg: MessageIn) -> list[Recipient]:
    if msg.template is not None:
        raise BadRequest(
            "message.template: stored templates are not supported yet; send message.content"
        )
    if msg.content is None:
        raise BadRequest("message.content is required")
    if msg.to is None:
        raise BadRequest("message.to is required")
    try:
        check_content(parse_content(msg.content, "message.content"))
        recipients = parse_recipients(msg.to, "message.to")
    except ValidationError as exc:
        raise BadRequest(str(exc)) from None
    _check_attachments(msg)
    return recipients


@router.post(
    "/send",
    status_code=202,
    response_model=SendResponse,
    # The body is read and validated here (its raw bytes are the idempotency hash), so
    # FastAPI is only told what it looks like.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SendRequest"}}
            },
        }
    },
)
async def send(
    request: Request,
    rt: Runtime = Depends(runtime),
    idempotency_key: str | None = Header(default=None),
    x_idempotency_expiration: str | None = Header(default=None),
) -> JSONResponse:
    # Its size (TIDINGS_MAX_SEND_BODY_BYTES), depth and text were checked on the way in
    # (tidings.api.guard), before it was read.
    raw = await request.body()
    try:
        body = SendRequest.model_validate_json(raw or b"null")
    except PydanticValidationError as exc:
        raise BadRequest(describe_validation(exc.errors())) from None
    msg = body.message
    now = utcnow()
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    request_hash = hashlib.sha256(raw).hexdigest()
    if idempotency_key:
        async with rt.db.read() as conn:
            stored = await idempotency.find(conn, idempotency_key)
        if stored is not None:
            return _replay(stored, request_hash)
    recipients = validate_message(msg)
    await _check_override_config(msg, rt)
    not_before = _not_before(msg, now)
    expires_at = _expires_at(msg, now, rt.settings.message_timeout_ms)
    key_expiry = _idempotency_expiry(x_idempotency_expiration, now) if idempotency_key else None

    ids = [new_id() for _ in recipients]
    raw_list = msg.to if isinstance(msg.to, list) else [msg.to or {}]
    request_id = ids[0] if len(ids) == 1 else new_id("req_")
    metadata = msg.metadata
    facts = facts_codec.dump(with_enqueued(facts_codec.load(None), now))
    new = [
        store.NewMessage(
            id=message_id,
            request_id=request_id,
            recipient=r.user_id or r.email,
            recipient_email=r.email,
            user_id=r.user_id,
            payload=_payload(msg, r, raw_to),
            tags=list(metadata.tags or []) if metadata else [],
            trace_id=metadata.trace_id if metadata else None,
            event=metadata.event if metadata else None,
            next_attempt_at=not_before,
            expires_at=expires_at,
            facts=facts,
        )
        for message_id, r, raw_to in zip(ids, recipients, raw_list, strict=True)
    ]
    first = [
        store.HistoryEntry(
            type=HistoryType.ENQUEUED.value,
            ts=now,
            data={
                "request_id": request_id,
                "recipient": m.recipient,
                "not_before": not_before.isoformat() if not_before > now else None,
                "expires_at": expires_at.isoformat(),
            },
        )
        for m in new
    ]
    answer = {"requestId": request_id}

    async def commit(conn: Conn) -> idempotency.StoredAnswer | None:
        if idempotency_key:
            stored = await idempotency.find(conn, idempotency_key)
            if stored is not None:
                return stored
            assert key_expiry is not None
            await idempotency.save(
                conn,
                idempotency_key,
                request_hash=request_hash,
                status_code=202,
                body=answer,
                expires_at=key_expiry,
            )
        await store.insert(conn, new, first)
        await publish_new(conn, ids)
        await store.notify_queue(conn)
        return None

    try:
        replayed = await rt.db.grouped(commit)
    except IntegrityError:
        # Another request with the same key committed first (PostgreSQL): replay its answer.
        if not idempotency_key:
            raise
        async with rt.db.read() as conn:
            replayed = await idempotency.find(conn, idempotency_key)
        if replayed is None:
            raise
    if replayed is not None:
        return _replay(replayed, request_hash)
    rt.metrics.accepted.inc(len(new))
    rt.wake()
    return JSONResponse(answer, status_code=202)


def _replay(stored: idempotency.StoredAnswer, request_hash: str) -> JSONResponse:
    if stored.request_hash != request_hash:
        return error_response(
            409,
            "Idempotency-Key was already used with a different request body",
            headers={"x-should-retry": "false"},
        )
    return JSONResponse(stored.body, status_code=stored.status_code)
