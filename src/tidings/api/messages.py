"""Courier's Messages API: list, details, history, output, cancel, resend."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from tidings.api.schemas import parse_epoch_ms, parse_when
from tidings.domain.status import HistoryType, with_canceled, with_enqueued
from tidings.errors import BadRequest, NotFound
from tidings.ids import new_id
from tidings.runtime import Runtime, runtime
from tidings.store import facts as facts_codec
from tidings.store import messages as store
from tidings.store import providers as providers_store
from tidings.store.clock import to_ms, utcnow
from tidings.store.details import message_details
from tidings.store.status_feed import publish_new, set_facts

router = APIRouter(prefix="/messages", tags=["messages"])


details = message_details


def provider_entries(row: sa.Row[Any], provider_key: str | None) -> list[dict[str, Any]]:
    """Courier's ``providers`` of a message: the configuration it went through, whose
    provider is ``provider_key``."""
    if row.provider_id is None and row.provider_message_id is None:
        return []
    return [
        {
            "channel": {"key": "email", "name": "Email", "template": None},
            "provider": provider_key,
            "integration": {"id": row.provider_id, "provider": provider_key},
            "reference": row.provider_message_id,
            "domain": row.provider_domain,
            "status": row.status,
            "sent": to_ms(row.sent),
            "delivered": to_ms(row.delivered),
            "error": row.error,
        }
    ]


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [v.strip() for value in values for v in value.split(",") if v.strip()]
    return out or None


async def _row(rt: Runtime, message_id: str) -> sa.Row[Any]:
    async with rt.db.read() as conn:
        row = await store.get(conn, message_id)
    if row is None:
        if message_id.startswith("req_"):
            raise NotFound(
                f"'{message_id}' is a request id, not a message id: its messages are at "
                f"GET /messages?messageId={message_id}, its counts at GET /requests/{message_id}"
            )
        raise NotFound()
    return row


# Courier's message_list_params, by their names on the wire, and Tidings' ``limit``: any
# other query parameter is refused rather than ignored (a typo would list everything).
_LIST_PARAMS = frozenset(
    {
        "archived",
        "cursor",
        "enqueued_after",
        "event",
        "list",
        "messageId",
        "notification",
        "provider",
        "recipient",
        "status",
        "tag",
        "tags",
        "tenant_id",
        "traceId",
        "limit",
    }
)


@router.get("")
async def list_messages(
    request: Request,
    rt: Runtime = Depends(runtime),
    cursor: str | None = None,
    message_id: list[str] | None = Query(default=None, alias="messageId"),
    recipient: str | None = None,
    status: list[str] | None = Query(default=None),
    tag: list[str] | None = Query(default=None),
    tags: list[str] | None = Query(default=None),
    provider: list[str] | None = Query(default=None),
    trace_id: str | None = Query(default=None, alias="traceId"),
    enqueued_after: str | None = None,
    event: str | None = None,
    list_id: str | None = Query(default=None, alias="list", max_length=255),
    notification: str | None = Query(default=None, max_length=64),
    tenant_id: str | None = Query(default=None, max_length=256),
    archived: bool = False,
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    """Newest first. ``messageId`` takes message ids and request ids (a multi-recipient
    send's ``req_…``: all its messages); ``list`` the list a message was sent through,
    ``notification`` the template, ``tenant_id`` the recipient's tenant; archived messages
    (an archived request's) only with ``archived=true``."""
    unknown = sorted(set(request.query_params) - _LIST_PARAMS)
    if unknown:
        raise BadRequest(
            f"{unknown[0]}: not a filter of GET /messages "
            f"(filters: {', '.join(sorted(_LIST_PARAMS))})"
        )
    after: datetime | None = None
    if enqueued_after:
        try:
            after = (
                parse_epoch_ms(enqueued_after, "enqueued_after")
                if enqueued_after.isdigit()
                else parse_when(enqueued_after.replace(" ", "+"), "enqueued_after")
            )
        except ValueError:
            raise BadRequest("enqueued_after must be epoch milliseconds or ISO 8601") from None
    flt = store.MessageFilter(
        message_ids=_split(message_id),
        recipient=recipient,
        statuses=_split(status),
        tags=_split([*(tag or []), *(tags or [])]),
        trace_id=trace_id,
        providers=_split(provider),
        event=event,
        enqueued_after=after,
        list_id=list_id or None,
        template_id=notification or None,
        tenant_id=tenant_id or None,
        include_archived=archived,
    )
    try:
        async with rt.db.read() as conn:
            rows, next_cursor = await store.search(conn, flt, cursor=cursor, limit=limit)
    except (ValueError, TypeError):
        raise BadRequest("cursor is not valid") from None
    return {
        "paging": {"cursor": next_cursor, "more": next_cursor is not None},
        "results": [details(r) for r in rows],
    }


@router.get("/{message_id}")
async def get_message(message_id: str, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    row = await _row(rt, message_id)
    key = None
    if row.provider_id is not None:
        async with rt.db.read() as conn:
            configuration = await providers_store.get(conn, row.provider_id)
        key = configuration.provider if configuration is not None else None
    return {**details(row), "providers": provider_entries(row, key)}


def history_item(entry: sa.Row[Any]) -> dict[str, Any]:
    return {**entry.data, "type": entry.type, "ts": to_ms(entry.ts)}


@router.get("/{message_id}/history")
async def get_history(
    message_id: str, rt: Runtime = Depends(runtime), type: str | None = None
) -> dict[str, Any]:
    async with rt.db.read() as conn:
        if await store.get(conn, message_id) is None:
            raise NotFound()
        entries = await store.history_of(conn, message_id, type)
    return {"results": [history_item(e) for e in entries]}


@router.get("/{message_id}/output")
async def get_output(message_id: str, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    row = await _row(rt, message_id)
    if not row.rendered:
        return {"results": []}
    rendered = row.rendered
    return {
        "results": [
            {
                "channel": "email",
                "channel_id": row.provider_id or "email",
                "content": {
                    "subject": rendered.get("subject"),
                    "title": rendered.get("subject"),
                    "body": rendered.get("text"),
                    "html": rendered.get("html"),
                    "text": rendered.get("text"),
                    "blocks": rendered.get("blocks", []),
                },
            }
        ]
    }


@router.post("/{message_id}/cancel")
async def cancel_message(message_id: str, rt: Runtime = Depends(runtime)) -> JSONResponse:
    """Cancel a message that no worker is sending yet (200); 409 once it is too late."""
    now = utcnow()
    async with rt.db.write() as conn:
        row = await store.get(conn, message_id)
        if row is None:
            raise NotFound()
        canceled = await store.take_back_unsent(conn, message_id, now=now)
        if canceled:
            await set_facts(conn, row, with_canceled(facts_codec.load(row.facts), now))
            await store.add_history(conn, message_id, HistoryType.CANCELED.value, {}, ts=now)
        row = await store.get(conn, message_id)
    assert row is not None
    return JSONResponse(details(row), status_code=200 if canceled else 409)


@router.post("/{message_id}/resend")
async def resend_message(message_id: str, rt: Runtime = Depends(runtime)) -> dict[str, str]:
    """Send the same message again to the same recipient, as a new message."""
    row = await _row(rt, message_id)
    now = utcnow()
    new_message_id = new_id()
    async with rt.db.write() as conn:
        tags = await store.tags_of(conn, message_id)
        expires_at = now + (row.expires_at - row.enqueued) if row.expires_at else None
        await store.insert(
            conn,
            [
                store.NewMessage(
                    id=new_message_id,
                    request_id=new_message_id,
                    recipient=row.recipient,
                    recipient_email=row.recipient_email,
                    user_id=row.user_id,
                    payload=row.payload,
                    tags=tags,
                    trace_id=row.trace_id,
                    event=row.event,
                    tenant_id=row.tenant_id,
                    next_attempt_at=now,
                    expires_at=expires_at,
                    facts=facts_codec.dump(with_enqueued(facts_codec.load(None), now)),
                )
            ],
            [
                store.HistoryEntry(
                    type=HistoryType.ENQUEUED.value,
                    ts=now,
                    data={"request_id": new_message_id, "resend_of": message_id},
                )
            ],
        )
        await publish_new(conn, [new_message_id])
        await store.notify_queue(conn)
    rt.wake()
    return {"messageId": new_message_id}
