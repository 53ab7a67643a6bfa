"""Outbound status endpoints (Courier's outbound webhooks) and the queue of their deliveries.

Deliveries are queued by ``status_feed.publish`` in the transaction that changes a status;
this module manages the endpoints and lets notifiers claim, finish and reschedule deliveries.

A delivery row is in one of three states:

* pending: ``delivered_at`` is NULL and ``next_attempt_at`` is set (due once it has passed;
  while a notifier works on it, ``next_attempt_at`` is pushed forward as its lease);
* delivered: ``delivered_at`` is set;
* given up: ``delivered_at`` and ``next_attempt_at`` are both NULL (``last_error`` says why).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from tidings.ids import new_id
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import status_deliveries, status_endpoints


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    secret: str | None
    enabled: bool
    created: datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a notifier holds until ``lease_until``, with what it needs to send it."""

    id: int
    endpoint_id: str
    message_id: str
    url: str
    secret: str | None
    body: dict[str, Any]
    attempts: int  # including the attempt about to be made
    created: datetime


def _endpoint(row: sa.Row[Any]) -> Endpoint:
    return Endpoint(row.id, row.url, row.secret, bool(row.enabled), row.created)


# -- endpoints ------------------------------------------------------------------------------

# How long this process trusts the enabled endpoints it read (seconds): another process's
# change (an endpoint created, disabled, deleted) is seen within this long.
ENABLED_TTL_S = 1.0
_ENABLED = sa.select(status_endpoints.c.id).where(status_endpoints.c.enabled.is_(True))
# Per database (its dialect object is its engine's, one per Database): read at, the ids.
# Not store.default_cache's DefaultCache: this is read inside grouped writes, which on
# SQLite run on the writer thread and may await nothing but their connection, so it cannot
# wait for another caller's read as that one does.
_enabled_cache: weakref.WeakKeyDictionary[Dialect, tuple[float, list[str]]] = (
    weakref.WeakKeyDictionary()
)
# Until then nothing is cached: a write here may not be committed yet when it is made.
_uncached_until = 0.0


async def enabled_ids(conn: Conn) -> list[str]:
    """The enabled endpoints' ids, which every status event is queued for.

    Read on every status change (twice per delivered message), and they seldom change: so
    they are kept in this process for ``ENABLED_TTL_S``, per database. A write to the
    endpoints in this process (``create``, ``update``, ``delete``) drops what is kept at
    once and keeps nothing for the next ``ENABLED_TTL_S`` (its transaction may commit a
    little later than the statement runs): reads then see it as soon as it is committed,
    as without the cache. Another process's change is seen within ``ENABLED_TTL_S``,
    like a change committed while a status change was being written always could be
    missed; its deliveries are queued from then on."""
    now = time.monotonic()
    dialect = conn.dialect
    kept = _enabled_cache.get(dialect)
    if kept is not None and now - kept[0] < ENABLED_TTL_S:
        return kept[1]
    ids = list((await conn.execute(_ENABLED)).scalars())
    if now >= _uncached_until:
        _enabled_cache[dialect] = (now, ids)
    return ids


def _changed() -> None:
    """Endpoints are being written in this process: forget the enabled ones."""
    global _uncached_until
    _enabled_cache.clear()
    _uncached_until = time.monotonic() + ENABLED_TTL_S


async def create(conn: Conn, *, url: str, secret: str, enabled: bool) -> Endpoint:
    endpoint = Endpoint(new_id("we_"), url, secret, enabled, utcnow())
    _changed()
    await conn.execute(
        status_endpoints.insert().values(
            id=endpoint.id,
            url=endpoint.url,
            secret=endpoint.secret,
            enabled=endpoint.enabled,
            created=endpoint.created,
        )
    )
    return endpoint


async def get(conn: Conn, endpoint_id: str) -> Endpoint | None:
    row = (
        await conn.execute(sa.select(status_endpoints).where(status_endpoints.c.id == endpoint_id))
    ).first()
    return _endpoint(row) if row else None


async def list_all(conn: Conn) -> list[Endpoint]:
    rows = await conn.execute(
        sa.select(status_endpoints).order_by(status_endpoints.c.created, status_endpoints.c.id)
    )
    return [_endpoint(r) for r in rows]


async def update(conn: Conn, endpoint_id: str, **values: Any) -> Endpoint | None:
    """Set ``values`` (url, secret, enabled) on the endpoint; None if there is no such one."""
    if values:
        _changed()
        await conn.execute(
            status_endpoints.update().where(status_endpoints.c.id == endpoint_id).values(**values)
        )
    return await get(conn, endpoint_id)


async def delete(conn: Conn, endpoint_id: str) -> bool:
    # Deliveries go with the endpoint: explicitly, so it does not depend on the backend
    # enforcing ON DELETE CASCADE.
    _changed()
    await conn.execute(
        status_deliveries.delete().where(status_deliveries.c.endpoint_id == endpoint_id)
    )
    result = await conn.execute(
        status_endpoints.delete().where(status_endpoints.c.id == endpoint_id)
    )
    return bool(result.rowcount)


async def deliveries_of(
    conn: Conn, endpoint_id: str, *, limit: int = 50, message_id: str | None = None
) -> list[sa.Row[Any]]:
    """The endpoint's most recent deliveries, newest first."""
    query = sa.select(status_deliveries).where(status_deliveries.c.endpoint_id == endpoint_id)
    if message_id:
        query = query.where(status_deliveries.c.message_id == message_id)
    return list(await conn.execute(query.order_by(status_deliveries.c.id.desc()).limit(limit)))


# -- the delivery queue ---------------------------------------------------------------------


def _pending(table: Any) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.delivered_at.is_(None), table.c.next_attempt_at.is_not(None))


def _due_ids(now: datetime, limit: int, *, skip_locked: bool) -> sa.Select[Any]:
    """Due deliveries that are the oldest pending one of their (endpoint, message): a newer
    status is never sent while an older one for the same endpoint and message waits (its
    lease counts as waiting), so a subscriber sees each message's statuses in order.
    Deliveries of a disabled endpoint are held until it is enabled again."""
    # Aliases, so that inside the claiming UPDATE these subqueries are not correlated to
    # the table being updated.
    cand = status_deliveries.alias("cand")
    older = status_deliveries.alias("older")
    blocked = (
        sa.select(older.c.id)
        .where(
            older.c.endpoint_id == cand.c.endpoint_id,
            older.c.message_id == cand.c.message_id,
            older.c.id < cand.c.id,
            _pending(older),
        )
        .exists()
    )
    enabled = (
        sa.select(status_endpoints.c.id)
        .where(status_endpoints.c.id == cand.c.endpoint_id, status_endpoints.c.enabled.is_(True))
        .exists()
    )
    query = (
        sa.select(cand.c.id)
        .where(cand.c.delivered_at.is_(None), cand.c.next_attempt_at <= now, enabled, ~blocked)
        .order_by(cand.c.next_attempt_at, cand.c.id)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True, of=cand)
    return query


async def claim_due(conn: Conn, *, limit: int, lease_s: float) -> list[Claimed]:
    """Take up to ``limit`` due deliveries, leasing them for ``lease_s`` seconds.

    The claim is a single ``UPDATE … SET next_attempt_at = lease end WHERE id IN (due)``:
    one statement, so on SQLite it takes the write lock before it reads and two processes
    cannot claim the same row; on PostgreSQL the due rows are locked with SKIP LOCKED so
    concurrent claims pass each other instead of waiting or colliding. A notifier that dies
    simply lets its lease run out, and the delivery becomes due again.
    """
    now = utcnow()
    due = _due_ids(now, limit, skip_locked=conn.dialect.name == "postgresql")
    lease_until = now + timedelta(seconds=lease_s)
    result = await conn.execute(
        status_deliveries.update()
        .where(
            status_deliveries.c.id.in_(due),
            # Re-checked on the row itself, for a claim that raced this one.
            status_deliveries.c.delivered_at.is_(None),
            status_deliveries.c.next_attempt_at <= now,
        )
        .values(next_attempt_at=lease_until, attempts=status_deliveries.c.attempts + 1)
        .returning(status_deliveries.c.id)
    )
    claimed_ids = [r.id for r in result]
    if not claimed_ids:
        return []
    rows = await conn.execute(
        sa.select(
            status_deliveries.c.id,
            status_deliveries.c.endpoint_id,
            status_deliveries.c.message_id,
            status_deliveries.c.body,
            status_deliveries.c.attempts,
            status_deliveries.c.created,
            status_endpoints.c.url,
            status_endpoints.c.secret,
        )
        .join(status_endpoints, status_endpoints.c.id == status_deliveries.c.endpoint_id)
        .where(status_deliveries.c.id.in_(claimed_ids))
        .order_by(status_deliveries.c.id)
    )
    return [
        Claimed(
            id=r.id,
            endpoint_id=r.endpoint_id,
            message_id=r.message_id,
            url=r.url,
            secret=r.secret,
            body=r.body,
            attempts=r.attempts,
            created=r.created,
        )
        for r in rows
    ]


async def next_due_at(conn: Conn) -> datetime | None:
    """When the earliest pending delivery is due (leased ones included), or None."""
    value = await conn.scalar(
        sa.select(sa.func.min(status_deliveries.c.next_attempt_at)).where(
            status_deliveries.c.delivered_at.is_(None)
        )
    )
    return value if isinstance(value, datetime) else None


async def mark_delivered(conn: Conn, delivery_id: int, *, status: int) -> None:
    await conn.execute(
        status_deliveries.update()
        .where(status_deliveries.c.id == delivery_id)
        .values(delivered_at=utcnow(), next_attempt_at=None, last_status=status, last_error=None)
    )


async def mark_failed(
    conn: Conn,
    delivery_id: int,
    *,
    status: int | None,
    error: str,
    retry_at: datetime | None,
) -> None:
    """Record a failed attempt; retry at ``retry_at``, or give up when it is None."""
    await conn.execute(
        status_deliveries.update()
        .where(status_deliveries.c.id == delivery_id)
        .values(next_attempt_at=retry_at, last_status=status, last_error=error[:2000])
    )


async def release(conn: Conn, delivery_ids: list[int]) -> None:
    """Give back leases of deliveries that were not attempted after all (shutdown)."""
    if not delivery_ids:
        return
    await conn.execute(
        status_deliveries.update()
        .where(
            status_deliveries.c.id.in_(delivery_ids),
            status_deliveries.c.delivered_at.is_(None),
            status_deliveries.c.next_attempt_at.is_not(None),
        )
        .values(next_attempt_at=utcnow(), attempts=status_deliveries.c.attempts - 1)
    )
