"""Polling cursors, one per (Mailgun base URL, domain), and the queries the poller asks.

A cursor's ``settled_until`` says: every event that matters before this time has been read
from Mailgun's Events API *and* was old enough to be trustworthy when it was read (Mailgun
shows events with a delay, so a fresh page may still gain events). It only moves forward.
``last_webhook_at``/``webhooks_since`` record the current run of signed webhooks for the
domain, which the ``auto`` polling mode uses to decide whether polling is still needed.

A cursor row may exist before the poller ever ran (the webhook route creates it): its
``settled_until`` is then :data:`NEVER`, read by the poller as "start from the messages".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import messages, poll_cursors

# "Never polled": older than any event, so max(NEVER, x) is x.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)

# Statuses that a later provider event can still change (UNDELIVERABLE and CLICKED rank
# highest; nothing moves them).
OPEN_STATUSES = ("SENT", "DELIVERED", "OPENED")


def cursor_key(base_url: str, domain: str) -> str:
    """``"https://api.eu.mailgun.net mg.example.com"``: one cursor per (host, domain)."""
    return f"{base_url.rstrip('/')} {domain.strip().lower()}"


@dataclass(frozen=True, slots=True)
class Cursor:
    key: str
    settled_until: datetime  # NEVER when the poller has not run yet
    last_webhook_at: datetime | None
    webhooks_since: datetime | None
    updated: datetime

    def webhooks_flowing(self, now: datetime, *, after_s: float, quiet_s: float) -> bool:
        """Signed webhooks have arrived without a gap longer than ``quiet_s`` for at least
        ``after_s``, the last one less than ``quiet_s`` ago (the ``auto`` mode's test)."""
        if self.last_webhook_at is None or self.webhooks_since is None:
            return False
        return (now - self.webhooks_since).total_seconds() >= after_s and (
            now - self.last_webhook_at
        ).total_seconds() < quiet_s


def _insert_ignore(conn: Conn) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(poll_cursors).on_conflict_do_nothing()
    return sqlite.insert(poll_cursors).on_conflict_do_nothing()


async def _ensure(conn: Conn, key: str) -> None:
    # Insert-or-nothing, so that a webhook and the poller creating the row at once both win.
    await conn.execute(_insert_ignore(conn).values(key=key, settled_until=NEVER, updated=utcnow()))


async def get(conn: Conn, base_url: str, domain: str) -> Cursor | None:
    row = (
        await conn.execute(
            sa.select(poll_cursors).where(poll_cursors.c.key == cursor_key(base_url, domain))
        )
    ).first()
    if row is None:
        return None
    return Cursor(
        key=row.key,
        settled_until=row.settled_until,
        last_webhook_at=row.last_webhook_at,
        webhooks_since=row.webhooks_since,
        updated=row.updated,
    )


async def advance(conn: Conn, base_url: str, domain: str, settled_until: datetime) -> bool:
    """Move ``settled_until`` forward to the given time; never back (another process may
    have moved it further). True if it moved."""
    key = cursor_key(base_url, domain)
    await _ensure(conn, key)
    result = await conn.execute(
        poll_cursors.update()
        .where(poll_cursors.c.key == key, poll_cursors.c.settled_until < settled_until)
        .values(settled_until=settled_until, updated=utcnow())
    )
    return bool(result.rowcount)


async def take_lease(conn: Conn, base_url: str, domain: str, *, owner: str, ttl_s: float) -> bool:
    """Hold the right to poll (base_url, domain) for ``ttl_s``; False while another live worker
    holds it. Renewing one's own lease always succeeds."""
    key = cursor_key(base_url, domain)
    await _ensure(conn, key)
    now = utcnow()
    result = await conn.execute(
        poll_cursors.update()
        .where(
            poll_cursors.c.key == key,
            sa.or_(
                poll_cursors.c.lease_owner.is_(None),
                poll_cursors.c.lease_owner == owner,
                poll_cursors.c.lease_until < now,
            ),
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=ttl_s))
    )
    return bool(result.rowcount)


async def release_leases(conn: Conn, owner: str) -> None:
    await conn.execute(
        poll_cursors.update()
        .where(poll_cursors.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


async def note_webhook(
    conn: Conn, base_url: str, domain: str, at: datetime, *, quiet_s: float
) -> None:
    """Record an accepted signed webhook for (base_url, domain) at time ``at``.

    A webhook that comes more than ``quiet_s`` after the previous one starts a new run
    (``webhooks_since = at``); otherwise the run goes on. Times only move forward, so a
    late retry of an old webhook neither ends nor restarts a run.
    """
    key = cursor_key(base_url, domain)
    await _ensure(conn, key)
    row = (
        await conn.execute(
            sa.select(poll_cursors.c.last_webhook_at, poll_cursors.c.webhooks_since).where(
                poll_cursors.c.key == key
            )
        )
    ).one()
    last: datetime | None = row.last_webhook_at
    if last is not None and at <= last:
        return
    broken = last is None or row.webhooks_since is None or at - last > timedelta(seconds=quiet_s)
    values: dict[str, Any] = {"last_webhook_at": at, "updated": utcnow()}
    if broken:
        values["webhooks_since"] = at
    await conn.execute(poll_cursors.update().where(poll_cursors.c.key == key).values(**values))


@dataclass(frozen=True, slots=True)
class Outstanding:
    count: int
    earliest_sent: datetime | None


async def outstanding(conn: Conn, domain: str, *, since: datetime) -> Outstanding:
    """Messages sent through ``domain`` at or after ``since`` whose status a provider event
    can still change (SENT, DELIVERED, OPENED): what polling is for."""
    row = (
        await conn.execute(
            sa.select(sa.func.count(), sa.func.min(messages.c.sent)).where(
                messages.c.provider_domain == domain.strip().lower(),
                messages.c.status.in_(OPEN_STATUSES),
                messages.c.sent >= since,
            )
        )
    ).one()
    count = int(row[0] or 0)
    # min() keeps the column's type, so this is an aware UTC datetime like the column.
    earliest: datetime | None = row[1]
    return Outstanding(count, earliest if count else None)
