"""Status changes: the one way a message's facts are written, and the feed of changes.

Writing facts here (never the status columns directly) guarantees that every change of
status is recorded in ``status_events`` in the same transaction, and queued for every
enabled outbound status endpoint: nothing a subscriber should hear about can be lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from tidings.domain.status import StatusFacts, merge
from tidings.store import facts as facts_codec
from tidings.store import status_endpoints
from tidings.store.appends import append
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.details import message_details
from tidings.store.messages import bound, update_of
from tidings.store.tables import messages, status_deliveries, status_events

# What a status event carries (``message_details``): never the payload, which can be large.
_DETAIL_COLUMNS = [
    messages.c[name]
    for name in (
        "id",
        "status",
        "enqueued",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "recipient",
        "recipient_email",
        "event",
        "error",
        "reason",
        "hint",
        "request_id",
        "trace_id",
    )
]


# Statements built once: SQLAlchemy then reuses each one's cache key and compiled form
# instead of building, keying and looking up a new statement per write.
_CURRENT = sa.select(messages.c.facts, *_DETAIL_COLUMNS).where(
    messages.c.id == sa.bindparam("message_id", type_=messages.c.id.type)
)
_CURRENT_LOCKED = _CURRENT.with_for_update()
_DETAILS = sa.select(*_DETAIL_COLUMNS).where(
    messages.c.id == sa.bindparam("message_id", type_=messages.c.id.type)
)


async def set_facts(conn: Conn, row: sa.Row[Any], facts: StatusFacts, **extra: Any) -> str | None:
    """Store ``facts`` (and ``extra`` columns) for the message ``row``; returns the new status
    if it changed, else None.

    ``facts`` are merged with what is stored *now*, not with ``row``: a caller's row may be
    stale (the dispatcher holds it across the call to Mailgun, while a webhook or the poller
    records ``delivered``), and facts only ever grow, so the merge loses nothing. The row
    is locked first where the database can (PostgreSQL), so two writers cannot interleave.
    """
    return await _set_facts(conn, row, facts, extra, fresh=False)


async def set_fresh_facts(
    conn: Conn, row: sa.Row[Any], facts: StatusFacts, **extra: Any
) -> str | None:
    """:func:`set_facts` for a ``row`` (all of the message's columns) read in this same
    write transaction: on SQLite, where the one writer holds the database, it is what is
    stored now, and is not read again (elsewhere it is, locked, as by ``set_facts``)."""
    return await _set_facts(conn, row, facts, extra, fresh=True)


async def _set_facts(
    conn: Conn, row: sa.Row[Any], facts: StatusFacts, extra: dict[str, Any], *, fresh: bool
) -> str | None:
    stored: Any
    if fresh and conn.dialect.name == "sqlite":
        stored = row
    else:
        stored = (await conn.execute(_CURRENT_LOCKED, {"message_id": row.id})).one()
    columns = facts_codec.columns(merge(facts_codec.load(stored.facts), facts))
    values = {**columns, **extra}
    update = update_of(messages, tuple(values), values)
    if update is None:
        await conn.execute(messages.update().where(messages.c.id == row.id).values(**values))
    else:
        await conn.execute(update, bound(row.id, values))
    if columns["status"] == stored.status:
        return None
    changed = {**columns, **extra}
    if any(isinstance(value, sa.ClauseElement) for value in changed.values()):
        await publish(conn, row.id)  # a value computed by the database: read it back
    else:
        # The locked row with what was just written is the row as stored now.
        current = {c.name: stored._mapping[c.name] for c in _DETAIL_COLUMNS} | changed
        await _publish(conn, row.id, SimpleNamespace(**current))
    return str(columns["status"])


async def publish(conn: Conn, message_id: str) -> None:
    """Record the message's current state as a status event and queue it for endpoints."""
    current = (await conn.execute(_DETAILS, {"message_id": message_id})).one()
    await _publish(conn, message_id, current)


async def publish_new(conn: Conn, ids: list[str], rows: Sequence[Any] | None = None) -> None:
    """The first status event (ENQUEUED) of messages just inserted, in one go.

    ``rows``: what ``messages.insert`` returned for them (their detail columns), which is
    what is stored; without it they are read back."""
    if rows is None:
        rows = list(await conn.execute(sa.select(*_DETAIL_COLUMNS).where(messages.c.id.in_(ids))))
    await _publish_many(conn, rows)


async def _publish(conn: Conn, message_id: str, current: Any) -> None:
    """``current``: the message's detail columns, as a row or as attributes."""
    await _publish_many(conn, [current])


async def _publish_many(conn: Conn, rows: Sequence[Any]) -> None:
    """The events and deliveries are appended (``tidings.store.appends``): written with the
    transaction's others in one statement per table, in order, before the commit."""
    if not rows:
        return
    now = utcnow()
    details = [message_details(row) for row in rows]
    for d in details:
        await append(
            conn,
            status_events,
            {"message_id": d["id"], "status": d["status"], "ts": now, "details": d},
        )
    endpoint_ids = await status_endpoints.enabled_ids(conn)
    for d in details:
        body = {"type": "message:updated", "data": {**d, "recipientId": d["recipient"]}}
        for endpoint_id in endpoint_ids:
            await append(
                conn,
                status_deliveries,
                {
                    "endpoint_id": endpoint_id,
                    "message_id": d["id"],
                    "body": body,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created": now,
                },
            )


async def events_after(
    conn: Conn, after_id: int, *, message_id: str | None = None, limit: int = 500
) -> list[sa.Row[Any]]:
    query = sa.select(status_events).where(status_events.c.id > after_id)
    if message_id:
        query = query.where(status_events.c.message_id == message_id)
    return list(await conn.execute(query.order_by(status_events.c.id).limit(limit)))


async def last_event_id(conn: Conn) -> int:
    return int(await conn.scalar(sa.select(sa.func.max(status_events.c.id))) or 0)
