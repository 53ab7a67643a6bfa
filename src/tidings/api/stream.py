"""Server-Sent Events: message status changes as they happen.

``GET /messages/stream`` streams every status change; ``GET /messages/{id}/stream`` one
message's, starting with its current state. Each event is::

    id: <status_events.id>
    event: message:updated
    data: <Courier MessageDetails JSON>

A client that reconnects with ``Last-Event-ID`` (browsers' EventSource does it by itself) or
``?after=ID`` gets every change after that id, none twice. The stream tails the
``status_events`` table by id at a short interval, so it sees changes committed by any
process (API or worker, on any machine); comment lines keep idle connections open through
proxies, and the stream ends when the client goes away.

Event ids follow commit order on SQLite, where writers are serialised. On PostgreSQL two
concurrent transactions may commit their ids out of order; a live tail may then miss the
lower one (a reconnect from an older id, or the message's own stream, shows the state).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, format_sse_event

from tidings.api.schemas import MAX_ID
from tidings.errors import BadRequest, NotFound
from tidings.runtime import Runtime, runtime
from tidings.store import messages as messages_store
from tidings.store.details import message_details
from tidings.store.status_feed import events_after, last_event_id

router = APIRouter(prefix="/messages", tags=["messages"])

EVENT_TYPE = "message:updated"
# How often the table is read for new events; module attributes so tests may change them.
POLL_S = 0.2
HEARTBEAT_S = 15.0
BATCH = 500
# What a client's EventSource waits before reconnecting, in ms.
RETRY_MS = 2000

_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# The routes return the streaming response themselves (so that a 404 or 400 can still be
# answered before streaming starts); this only documents it.
_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "A stream of status events."}
}


def encode_event(event_id: int, details: dict[str, Any]) -> bytes:
    return format_sse_event(
        id=str(event_id),
        event=EVENT_TYPE,
        data_str=json.dumps(details, separators=(",", ":"), ensure_ascii=False),
    )


def resume_point(last_event_id_header: str | None, after: int | None) -> int | None:
    """The id to resume after: Last-Event-ID (what a reconnecting EventSource sends, so it
    wins over the ``after`` left in its URL), else ``?after=``, else None (start now)."""
    if last_event_id_header is not None and last_event_id_header.strip():
        value = last_event_id_header.strip()
        if not value.isdigit() or int(value) > MAX_ID:
            raise BadRequest("Last-Event-ID must be an event id (a non-negative integer)")
        return int(value)
    return after


async def _tail(
    request: Request,
    rt: Runtime,
    cursor: int,
    message_id: str | None,
    first: bytes | None,
) -> AsyncIterator[bytes]:
    # Something at once, so that the client sees the response start before any change.
    yield format_sse_event(retry=RETRY_MS, comment="tidings status stream")
    if first is not None:
        yield first
    quiet_since = time.monotonic()
    while True:
        # A closing server ends its streams (clients reconnect with Last-Event-ID) rather
        # than holding its shutdown for them.
        if rt.closing.is_set() or await request.is_disconnected():
            return
        async with rt.db.read() as conn:
            rows: list[sa.Row[Any]] = await events_after(
                conn, cursor, message_id=message_id, limit=BATCH
            )
        for row in rows:
            cursor = row.id
            yield encode_event(row.id, row.details)
        if rows:
            quiet_since = time.monotonic()
            if len(rows) == BATCH:
                continue  # more are waiting: no pause
        elif time.monotonic() - quiet_since >= HEARTBEAT_S:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_S)


@router.get("/stream", responses=_DOC)
async def stream_all(
    request: Request,
    rt: Runtime = Depends(runtime),
    after: int | None = Query(
        default=None, ge=0, le=MAX_ID, description="Resume after this event id."
    ),
    last_event_id_header: str | None = Header(default=None, alias="Last-Event-ID"),
) -> EventSourceResponse:
    """Every status change of every message, from now (or after the given event id)."""
    cursor = resume_point(last_event_id_header, after)
    if cursor is None:
        async with rt.db.read() as conn:
            cursor = await last_event_id(conn)
    return EventSourceResponse(_tail(request, rt, cursor, None, None), headers=_HEADERS)


@router.get("/{message_id}/stream", responses=_DOC)
async def stream_message(
    message_id: str,
    request: Request,
    rt: Runtime = Depends(runtime),
    after: int | None = Query(
        default=None, ge=0, le=MAX_ID, description="Resume after this event id."
    ),
    last_event_id_header: str | None = Header(default=None, alias="Last-Event-ID"),
) -> EventSourceResponse:
    """One message: its current state first (unless resuming), then each change."""
    cursor = resume_point(last_event_id_header, after)
    first: bytes | None = None
    async with rt.db.read() as conn:
        # The feed position is read before the row: a change committed in between is then
        # sent again rather than lost.
        position = await last_event_id(conn)
        row = await messages_store.get(conn, message_id)
    if row is None:
        raise NotFound(f"no message '{message_id}'")
    if cursor is None:
        cursor = position
        first = encode_event(position, message_details(row))
    return EventSourceResponse(_tail(request, rt, cursor, message_id, first), headers=_HEADERS)
