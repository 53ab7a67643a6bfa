"""Send requests: what a multi-recipient ``/send``'s ``req_…`` id stands for.

A send with one recipient answers that message's id; any other (several recipients, or a
list, which may have no subscribers at all) answers a request id, recorded here with how
many messages it made, so that ``GET /requests/{id}`` answers even for none. Its messages
carry the id (``messages.request_id``); archiving a request archives them, and
``messages.list`` leaves archived messages out unless asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import messages, send_requests


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    total: int
    created: datetime
    archived_at: datetime | None


async def record(conn: Conn, request_id: str, *, total: int) -> None:
    await record_many(conn, [(request_id, total)])


async def record_many(conn: Conn, made: list[tuple[str, int]]) -> None:
    """Record requests, each ``(request id, how many messages it made)``, in one statement."""
    if not made:
        return
    now = utcnow()
    await conn.execute(
        send_requests.insert(),
        [{"id": request_id, "total": total, "created": now} for request_id, total in made],
    )


async def get(conn: Conn, request_id: str) -> Request | None:
    """The request, or None. A one-recipient send's id (its message's) is found through
    the message."""
    row = (
        await conn.execute(sa.select(send_requests).where(send_requests.c.id == request_id))
    ).first()
    if row is not None:
        return Request(row.id, row.total, row.created, row.archived_at)
    found = (
        await conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.min(messages.c.enqueued),
                sa.func.max(messages.c.archived_at),
            ).where(messages.c.request_id == request_id)
        )
    ).one()
    count, created, archived_at = found
    if not count:
        return None
    return Request(request_id, int(count), created, archived_at)


async def counts(conn: Conn, request_id: str) -> dict[str, int]:
    """How many of the request's messages are in each status."""
    rows = await conn.execute(
        sa.select(messages.c.status, sa.func.count())
        .where(messages.c.request_id == request_id)
        .group_by(messages.c.status)
    )
    return {str(status): int(n) for status, n in rows}


async def archive(conn: Conn, request_id: str) -> bool:
    """Archive the request and its messages; False if there is no such request."""
    if await get(conn, request_id) is None:
        return False
    now = utcnow()
    await conn.execute(
        send_requests.update()
        .where(send_requests.c.id == request_id, send_requests.c.archived_at.is_(None))
        .values(archived_at=now)
    )
    await conn.execute(
        messages.update()
        .where(messages.c.request_id == request_id, messages.c.archived_at.is_(None))
        .values(archived_at=now)
    )
    return True
