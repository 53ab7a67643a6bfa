"""Messages, their tags and their history: the queue and the record of every step.

A message row is the single source of truth for one (request, recipient). The dispatcher
claims due rows with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one
writer, so a plain conditional update is already exclusive).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tidings.store.appends import append
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import (
    attempts,
    history,
    message_lists,
    message_tags,
    messages,
    providers,
)


@dataclass(slots=True)
class NewMessage:
    id: str
    request_id: str
    recipient: str | None
    recipient_email: str | None
    user_id: str | None
    payload: dict[str, Any]
    tags: list[str]
    trace_id: str | None
    event: str | None
    next_attempt_at: datetime
    expires_at: datetime | None
    facts: dict[str, Any] = field(default_factory=dict)
    template_id: str | None = None
    tenant_id: str | None = None
    # The list the message was sent through (to.list_id, to.list_pattern), if any.
    list_id: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    type: str
    ts: datetime
    data: dict[str, Any]
    event_key: str | None = None


def _insert_ignore(conn: Conn, table: sa.Table) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


async def insert(
    conn: Conn, new: list[NewMessage], first_history: list[HistoryEntry]
) -> list[SimpleNamespace]:
    """Insert messages with their tags, lists and first history entries (one per message).

    One executemany per table, whatever the count, so a list send of many thousands of
    messages is a handful of statements in the caller's one transaction. Tags and history
    are appended (``tidings.store.appends``): the sends of one group commit share those
    statements.

    Returns each message's detail columns as stored (for ``status_feed.publish_new``)."""
    if not new:
        return []
    now = utcnow()
    await conn.execute(
        messages.insert(),
        [
            {
                "id": m.id,
                "request_id": m.request_id,
                "recipient": m.recipient,
                "recipient_email": m.recipient_email,
                "user_id": m.user_id,
                "status": "ENQUEUED",
                "trace_id": m.trace_id,
                "event": m.event,
                "payload": m.payload,
                "facts": m.facts,
                "enqueued": now,
                "queued": True,
                "next_attempt_at": m.next_attempt_at,
                "attempts": 0,
                "in_doubt": False,
                "expires_at": m.expires_at,
                "template_id": m.template_id,
                "tenant_id": m.tenant_id,
            }
            for m in new
        ],
    )
    list_rows = [{"message_id": m.id, "list_id": m.list_id} for m in new if m.list_id]
    if list_rows:
        await conn.execute(message_lists.insert(), list_rows)
    for m in new:
        for t in dict.fromkeys(m.tags):
            await append(conn, message_tags, {"message_id": m.id, "tag": t})
    for m, h in zip(new, first_history, strict=True):
        await append(
            conn,
            history,
            {"message_id": m.id, "ts": h.ts, "type": h.type, "data": h.data, "event_key": None},
        )
    return [
        SimpleNamespace(
            id=m.id,
            status="ENQUEUED",
            enqueued=now,
            sent=None,
            delivered=None,
            opened=None,
            clicked=None,
            recipient=m.recipient,
            recipient_email=m.recipient_email,
            event=m.event,
            error=None,
            reason=None,
            hint=None,
            request_id=m.request_id,
            trace_id=m.trace_id,
        )
        for m in new
    ]


QUEUE_CHANNEL = "tidings_queue"


async def notify_queue(conn: Conn) -> None:
    """Tell every worker (PostgreSQL: any process) that new work is due; sent on commit."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text(f"NOTIFY {QUEUE_CHANNEL}"))


# Built once (every webhook reads a message and adds history): SQLAlchemy reuses their
# cache keys and compiled forms.
_GET = sa.select(messages).where(messages.c.id == sa.bindparam("message_id"))
_HISTORY_ONCE = {
    "postgresql": postgresql.insert(history).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(history).on_conflict_do_nothing(),
}


async def get(conn: Conn, message_id: str) -> sa.Row[Any] | None:
    return (await conn.execute(_GET, {"message_id": message_id})).first()


async def get_many(conn: Conn, ids: list[str]) -> list[sa.Row[Any]]:
    if not ids:
        return []
    return list(await conn.execute(sa.select(messages).where(messages.c.id.in_(ids))))


async def tags_of(conn: Conn, message_id: str) -> list[str]:
    rows = await conn.execute(
        sa.select(message_tags.c.tag).where(message_tags.c.message_id == message_id)
    )
    return list(rows.scalars())


async def tags_of_many(conn: Conn, ids: list[str]) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {message_id: [] for message_id in ids}
    if ids:
        rows = await conn.execute(
            sa.select(message_tags.c.message_id, message_tags.c.tag).where(
                message_tags.c.message_id.in_(ids)
            )
        )
        for message_id, tag in rows:
            tags[message_id].append(tag)
    return tags


async def open_attempts_of(conn: Conn, ids: list[str]) -> dict[str, sa.Row[Any]]:
    """For each message, its newest attempt that never got an answer (if any)."""
    if not ids:
        return {}
    rows = await conn.execute(
        sa.select(attempts)
        .where(attempts.c.message_id.in_(ids), attempts.c.finished_at.is_(None))
        .order_by(attempts.c.id)
    )
    return {row.message_id: row for row in rows}


async def by_request(conn: Conn, request_id: str) -> list[sa.Row[Any]]:
    return list(
        await conn.execute(
            sa.select(messages).where(messages.c.request_id == request_id).order_by(messages.c.id)
        )
    )


async def by_provider_message_id(
    conn: Conn, provider_message_id: str, recipient: str | None
) -> sa.Row[Any] | None:
    """The message Mailgun knows as ``provider_message_id`` sent to ``recipient``. A batch
    send gives one id to many messages: without a recipient (or with one that names two)
    the event cannot be told apart, and nothing is returned rather than a wrong one."""
    query = sa.select(messages).where(messages.c.provider_message_id == provider_message_id)
    if recipient:
        query = query.where(sa.func.lower(messages.c.recipient_email) == recipient.lower())
    found = list(await conn.execute(query.limit(2)))
    return found[0] if len(found) == 1 else None


# UPDATEs built once per set of columns (bound as ``v_<name>``, the row as ``row_id``):
# the dispatcher and the status feed write a few fixed sets, over and over.
_UPDATES: dict[tuple[sa.Table, tuple[str, ...]], sa.Update] = {}
_MAX_UPDATES = 128


def update_of(table: sa.Table, names: tuple[str, ...], values: dict[str, Any]) -> sa.Update | None:
    """The UPDATE of ``table``'s ``names`` columns of the row ``row_id`` (values bound as
    ``v_<name>``: see :func:`bound`), or None when a value is an SQL expression (then the
    statement is built per call instead)."""
    if any(isinstance(value, sa.ClauseElement) for value in values.values()):
        return None
    key = (table, names)
    statement = _UPDATES.get(key)
    if statement is None:
        statement = (
            table.update()
            .where(table.c.id == sa.bindparam("row_id", type_=table.c.id.type))
            .values({name: sa.bindparam(f"v_{name}", type_=table.c[name].type) for name in names})
        )
        if len(_UPDATES) < _MAX_UPDATES:
            _UPDATES[key] = statement
    return statement


def bound(row_id: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The parameters of an :func:`update_of` statement."""
    return {"row_id": row_id, **{f"v_{name}": value for name, value in values.items()}}


async def update(conn: Conn, message_id: str, **values: Any) -> None:
    statement = update_of(messages, tuple(values), values)
    if statement is None:
        await conn.execute(messages.update().where(messages.c.id == message_id).values(**values))
    else:
        await conn.execute(statement, bound(message_id, values))


async def add_history(
    conn: Conn,
    message_id: str,
    type_: str,
    data: dict[str, Any],
    *,
    ts: datetime | None = None,
    event_key: str | None = None,
) -> bool:
    """Append a history entry; with an ``event_key`` a repeat is ignored. True if added.

    Without an ``event_key`` the entry is appended (``tidings.store.appends``): written
    with the transaction's other entries in one statement, before the commit or before
    anything reads or writes history in it, in the order they were added."""
    row = {
        "message_id": message_id,
        "ts": ts or utcnow(),
        "type": type_,
        "data": data,
        "event_key": event_key,
    }
    if event_key is None:
        await append(conn, history, row)
        return True
    result = await conn.execute(_HISTORY_ONCE[conn.dialect.name], row)
    return bool(result.rowcount)


async def history_of(conn: Conn, message_id: str, type_: str | None = None) -> list[sa.Row[Any]]:
    query = sa.select(history).where(history.c.message_id == message_id)
    if type_:
        query = query.where(history.c.type == type_.upper())
    return list(await conn.execute(query.order_by(history.c.ts, history.c.id)))


def _unleased(now: datetime) -> sa.ColumnElement[bool]:
    """No live worker holds the message (an expired lease is a worker that died)."""
    return sa.or_(messages.c.lease_until.is_(None), messages.c.lease_until < now)


async def claim_due(
    conn: Conn, *, owner: str, limit: int, lease_s: float, fill_requests: int = 1
) -> list[str]:
    """Take up to ``limit`` due messages for ``owner`` until the lease runs out; with
    ``fill_requests`` above 1, also more due messages of each multi-recipient request among
    them, up to ``fill_requests`` of a request in all (so that a batch send can be full).

    Due: queued, its time has come, and not leased by a live worker (an expired lease is
    a worker that died: its message is taken over, flagged in doubt by the dispatcher if an
    attempt had started)."""
    now = utcnow()
    lease = {"lease_owner": owner, "lease_until": now + timedelta(seconds=lease_s)}
    due = (
        sa.select(messages.c.id)
        .where(
            messages.c.queued.is_(True),
            messages.c.next_attempt_at <= now,
            _unleased(now),
        )
        .order_by(messages.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        # One statement: the rows another worker is claiming are skipped, not waited for,
        # and those found are leased in the same round trip.
        taken = (
            messages.update()
            .where(messages.c.id.in_(due.with_for_update(skip_locked=True).scalar_subquery()))
            .values(**lease)
            .returning(messages.c.id, messages.c.request_id, messages.c.next_attempt_at)
        )
        found = sorted(await conn.execute(taken), key=lambda r: (r.next_attempt_at, r.id))
        leased = True
    else:
        found = list(
            await conn.execute(due.with_only_columns(messages.c.id, messages.c.request_id))
        )
        leased = False
    if not found:
        return []
    ids = [row.id for row in found]
    more_ids: list[str] = []
    if fill_requests > 1:
        # A single send's request id is its message id: only requests of many messages.
        counts: dict[str, int] = {}
        for row in found:
            if row.request_id != row.id:
                counts[row.request_id] = counts.get(row.request_id, 0) + 1
        for request_id, count in counts.items():
            if count >= fill_requests:
                continue
            more = (
                sa.select(messages.c.id)
                .where(
                    messages.c.request_id == request_id,
                    messages.c.queued.is_(True),
                    messages.c.next_attempt_at <= now,
                    _unleased(now),
                    messages.c.id.not_in(ids),
                )
                .order_by(messages.c.next_attempt_at)
                .limit(fill_requests - count)
            )
            if conn.dialect.name == "postgresql":
                more = more.with_for_update(skip_locked=True)
            more_ids.extend((await conn.execute(more)).scalars())
    ids.extend(more_ids)
    to_lease = more_ids if leased else ids
    if to_lease:
        await conn.execute(messages.update().where(messages.c.id.in_(to_lease)).values(**lease))
    return ids


async def take_back_unsent(conn: Conn, message_id: str, *, now: datetime) -> bool:
    """Take a message out of the queue if no attempt was made and no worker holds it (the
    cancel of the API); False when it is too late."""
    result = await conn.execute(
        messages.update()
        .where(
            messages.c.id == message_id,
            messages.c.queued.is_(True),
            messages.c.attempts == 0,
            _unleased(now),
        )
        .values(queued=False)
    )
    return bool(result.rowcount)


async def count_by_status(conn: Conn) -> dict[str, int]:
    rows = await conn.execute(
        sa.select(messages.c.status, sa.func.count()).group_by(messages.c.status)
    )
    return {str(status): int(count) for status, count in rows}


async def count_due(conn: Conn, *, now: datetime) -> int:
    """Messages waiting to be sent whose time has come."""
    due = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(messages)
        .where(messages.c.queued.is_(True), messages.c.next_attempt_at <= now)
    )
    return int(due or 0)


async def next_due_at(conn: Conn, *, now: datetime | None = None) -> datetime | None:
    """When the next message a worker could claim is due. Messages a live worker holds are
    not counted: with several workers, a queue whose due messages are all leased would
    otherwise read as "due now" and keep the others claiming in a loop (an expired lease
    is noticed at the dispatcher's next idle check)."""
    value = await conn.scalar(
        sa.select(messages.c.next_attempt_at)
        .where(messages.c.queued.is_(True), _unleased(now or utcnow()))
        .order_by(messages.c.next_attempt_at)
        .limit(1)
    )
    return value if isinstance(value, datetime) else None


async def release(
    conn: Conn,
    owner: str,
    *,
    ids: list[str] | None = None,
    retry_at: datetime | None = None,
) -> None:
    """Give back every lease ``owner`` holds (graceful shutdown), or those of ``ids`` only
    (due again at ``retry_at`` when given). A lease another worker took over is left alone."""
    query = messages.update().where(messages.c.lease_owner == owner)
    if ids is not None:
        query = query.where(messages.c.id.in_(ids))
    values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    await conn.execute(query.values(**values))


_START_ATTEMPT = attempts.insert()


async def start_attempt(
    conn: Conn, message_id: str, number: int, base_url: str, request: dict[str, Any]
) -> int:
    result = await conn.execute(
        _START_ATTEMPT,
        {
            "message_id": message_id,
            "number": number,
            "base_url": base_url,
            "started_at": utcnow(),
            "request": request,
        },
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


async def finish_attempt(conn: Conn, attempt_id: int, **values: Any) -> None:
    values = {"finished_at": utcnow(), **values}
    statement = update_of(attempts, tuple(values), values)
    if statement is None:
        await conn.execute(attempts.update().where(attempts.c.id == attempt_id).values(**values))
    else:
        await conn.execute(statement, bound(attempt_id, values))


async def attempts_of(conn: Conn, message_id: str) -> list[sa.Row[Any]]:
    return list(
        await conn.execute(
            sa.select(attempts).where(attempts.c.message_id == message_id).order_by(attempts.c.id)
        )
    )


async def open_attempt(conn: Conn, message_id: str) -> sa.Row[Any] | None:
    """The newest attempt that started and never got an answer, if any."""
    return (
        await conn.execute(
            sa.select(attempts)
            .where(attempts.c.message_id == message_id, attempts.c.finished_at.is_(None))
            .order_by(attempts.c.id.desc())
            .limit(1)
        )
    ).first()


# -- listing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageFilter:
    # Message ids or request ids (Courier's messageId filter takes either).
    message_ids: list[str] | None = None
    recipient: str | None = None
    statuses: list[str] | None = None
    tags: list[str] | None = None
    trace_id: str | None = None
    # Configuration ids or provider keys; a message matching any of them.
    providers: list[str] | None = None
    event: str | None = None
    enqueued_after: datetime | None = None
    list_id: str | None = None
    template_id: str | None = None  # Courier's "notification"
    tenant_id: str | None = None
    include_archived: bool = False


def encode_cursor(enqueued: datetime, message_id: str) -> str:
    raw = json.dumps([enqueued.isoformat(), message_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    enqueued, message_id = json.loads(raw)
    return datetime.fromisoformat(enqueued), str(message_id)


async def search(
    conn: Conn, flt: MessageFilter, *, cursor: str | None, limit: int
) -> tuple[list[sa.Row[Any]], str | None]:
    """Newest first; returns a page and the cursor of the next one (None at the end)."""
    query = sa.select(messages)
    if not flt.include_archived:
        query = query.where(messages.c.archived_at.is_(None))
    if flt.message_ids:
        query = query.where(
            sa.or_(messages.c.id.in_(flt.message_ids), messages.c.request_id.in_(flt.message_ids))
        )
    if flt.recipient:
        query = query.where(
            sa.or_(
                messages.c.recipient == flt.recipient,
                sa.func.lower(messages.c.recipient_email) == flt.recipient.lower(),
            )
        )
    if flt.statuses:
        query = query.where(messages.c.status.in_([s.upper() for s in flt.statuses]))
    if flt.tags:
        tagged = sa.select(message_tags.c.message_id).where(message_tags.c.tag.in_(flt.tags))
        query = query.where(messages.c.id.in_(tagged))
    if flt.trace_id:
        query = query.where(messages.c.trace_id == flt.trace_id)
    if flt.providers:
        # Configuration ids, or provider keys (every configuration of that provider).
        of_provider = sa.select(providers.c.id).where(providers.c.provider.in_(flt.providers))
        query = query.where(
            sa.or_(
                messages.c.provider_id.in_(flt.providers), messages.c.provider_id.in_(of_provider)
            )
        )
    if flt.list_id:
        listed = sa.select(message_lists.c.message_id).where(message_lists.c.list_id == flt.list_id)
        query = query.where(messages.c.id.in_(listed))
    if flt.template_id:
        query = query.where(messages.c.template_id == flt.template_id)
    if flt.tenant_id:
        query = query.where(messages.c.tenant_id == flt.tenant_id)
    if flt.event:
        query = query.where(messages.c.event == flt.event)
    if flt.enqueued_after:
        query = query.where(messages.c.enqueued > flt.enqueued_after)
    if cursor:
        at, last_id = decode_cursor(cursor)
        query = query.where(
            sa.or_(
                messages.c.enqueued < at,
                sa.and_(messages.c.enqueued == at, messages.c.id < last_id),
            )
        )
    query = query.order_by(messages.c.enqueued.desc(), messages.c.id.desc()).limit(limit + 1)
    rows = list(await conn.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].enqueued, rows[-1].id) if more and rows else None
    return rows, next_cursor


async def set_route(conn: Conn, message_id: str, route: dict[str, Any] | None, step: int) -> None:
    """Store a message's resolved provider order (``Route.as_json()``) and the index of the
    provider now being tried; the dispatcher freezes the route at the first dispatch."""
    await conn.execute(
        messages.update().where(messages.c.id == message_id).values(route=route, route_step=step)
    )
