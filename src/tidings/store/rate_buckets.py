"""Token buckets shared by every worker on the database, one per provider configuration, and
the pause Mailgun asks for (420/429 "try again after …").

A reservation is one ``UPDATE … RETURNING`` on PostgreSQL: the refill since the last one,
the grant and the pause check are computed from the row itself, on the database's clock, so
concurrent workers serialise on the row lock and never hand out more than the bucket holds
(READ COMMITTED re-evaluates the whole ``SET`` on the newest row version after a lock wait).
SQLite computes the same in Python and writes with a compare-and-set, so that separate
connections to one file stay exact too.

A bucket holds at most ``capacity`` tokens (the limiter uses one second's worth) and gains
``per_second`` tokens a second. ``refilled_at`` never moves back, so a statement that waited
on the lock behind a later one counts no refill twice.

Refused asks are not queued, only told when to ask again: one token apart, after the ones
already told (``backlog_until``), so that a burst of a thousand sends comes back spread over
the time the rate needs, not all at once to be refused again.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tidings.store.clock import utcnow
from tidings.store.database import Conn, Database
from tidings.store.tables import rate_buckets

_CAS_TRIES = 50


def _seconds(amount: Any) -> Any:
    """An interval of ``amount`` (an SQL expression) seconds, on PostgreSQL."""
    return sa.func.make_interval(0, 0, 0, 0, 0, 0, amount, type_=sa.Interval)


@dataclass(frozen=True, slots=True)
class Taken:
    """What one reservation of ``want`` tokens got: ``granted`` (0 while paused), the
    tokens left, the pause in force if any, the database's time of the reservation, and
    when each refused one may ask again (``retry_in``, seconds, in the order they asked)."""

    want: int
    granted: int
    tokens: float
    paused_until: datetime | None
    now: datetime
    backlog_until: datetime | None
    per_second: float

    @property
    def paused(self) -> bool:
        return self.paused_until is not None and self.paused_until > self.now

    def retry_in(self) -> list[float]:
        refused = self.want - self.granted
        if self.paused or refused <= 0 or self.backlog_until is None:
            return []
        first = (self.backlog_until - self.now).total_seconds() - refused / self.per_second
        return [max(first + (n + 1) / self.per_second, 0.001) for n in range(refused)]


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    tokens: float
    refilled_at: datetime
    paused_until: datetime | None


@contextlib.asynccontextmanager
async def single_statements(db: Database) -> AsyncIterator[Conn]:
    """A connection on which each statement commits by itself. On PostgreSQL that makes a
    reservation one round trip (no BEGIN, no COMMIT); on SQLite it is the writer's
    transaction."""
    if db.is_sqlite:
        async with db.write() as conn:
            yield conn
        return
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def _insert_ignore(conn: Conn) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(rate_buckets).on_conflict_do_nothing()
    return sqlite.insert(rate_buckets).on_conflict_do_nothing()


def _db_now(conn: Conn) -> Any:
    """The time a statement runs at: the database's clock on PostgreSQL (one clock for every
    worker, whatever their own say), this process's on SQLite (one process)."""
    if conn.dialect.name == "postgresql":
        return sa.func.statement_timestamp()
    return utcnow()


async def ensure(conn: Conn, key: str, *, tokens: float) -> None:
    """Create ``key``'s bucket holding ``tokens`` if it does not exist (a full bucket for a
    new configuration); an existing one is left as it is."""
    await conn.execute(
        _insert_ignore(conn).values(
            key=key, tokens=tokens, refilled_at=_db_now(conn), paused_until=None, taken=0.0
        )
    )


async def take(conn: Conn, key: str, *, want: int, per_second: float, capacity: float) -> Taken:
    """Take up to ``want`` whole tokens from ``key``'s bucket, atomically; none while a pause
    is in force. The bucket is created full the first time."""
    if want < 1:
        raise ValueError("want must be at least 1")
    if per_second <= 0 or capacity < 1:
        raise ValueError("per_second must be > 0 and capacity >= 1")
    for _ in range(2):
        if conn.dialect.name == "postgresql":
            taken = await _take_postgresql(conn, key, want, per_second, capacity)
        else:
            taken = await _take_sqlite(conn, key, want, per_second, capacity)
        if taken is not None:
            return taken
        await ensure(conn, key, tokens=capacity)
    raise RuntimeError(f"rate bucket {key!r} vanished while it was being taken from")


async def _take_postgresql(
    conn: Conn, key: str, want: int, per_second: float, capacity: float
) -> Taken | None:
    b = rate_buckets.c
    now = sa.func.statement_timestamp()
    elapsed = sa.func.greatest(sa.cast(sa.extract("epoch", now - b.refilled_at), sa.Float), 0.0)
    available = sa.func.least(
        sa.literal(capacity, sa.Float), b.tokens + elapsed * sa.literal(per_second, sa.Float)
    )
    paused = b.paused_until > now
    granted = sa.case(
        (paused, sa.literal(0.0, sa.Float)),
        else_=sa.func.least(sa.literal(float(want), sa.Float), sa.func.floor(available)),
    )
    left = available - granted
    refused = sa.literal(float(want), sa.Float) - granted
    # The first refused one may ask when the tokens left have grown to one, or after the
    # ones told before it; each next one a token later.
    start = sa.func.greatest(
        sa.func.coalesce(b.backlog_until, now), now - _seconds(left / per_second)
    )
    backlog = sa.case(
        (sa.or_(paused, refused <= 0), b.backlog_until),
        else_=start + _seconds(refused / per_second),
    )
    row = (
        await conn.execute(
            rate_buckets.update()
            .where(b.key == key)
            .values(
                tokens=left,
                taken=granted,
                refilled_at=sa.func.greatest(b.refilled_at, now),
                backlog_until=backlog,
            )
            .returning(b.taken, b.tokens, b.paused_until, b.backlog_until, now.label("now"))
        )
    ).first()
    if row is None:
        return None
    return Taken(
        want=want,
        granted=int(row.taken),
        tokens=float(row.tokens),
        paused_until=row.paused_until,
        now=row.now,
        backlog_until=row.backlog_until,
        per_second=per_second,
    )


async def _take_sqlite(
    conn: Conn, key: str, want: int, per_second: float, capacity: float
) -> Taken | None:
    b = rate_buckets.c
    for _ in range(_CAS_TRIES):
        row = (
            await conn.execute(
                sa.select(b.tokens, b.refilled_at, b.paused_until, b.backlog_until).where(
                    b.key == key
                )
            )
        ).first()
        if row is None:
            return None
        now = utcnow()
        elapsed = max(0.0, (now - row.refilled_at).total_seconds())
        available = min(capacity, row.tokens + elapsed * per_second)
        paused = row.paused_until is not None and row.paused_until > now
        granted = 0 if paused else min(want, math.floor(available))
        left, refused = available - granted, want - granted
        backlog: datetime | None = row.backlog_until
        if not paused and refused > 0:
            start = max(backlog or now, now - timedelta(seconds=left / per_second))
            backlog = start + timedelta(seconds=refused / per_second)
        written = await conn.execute(
            rate_buckets.update()
            .where(b.key == key, b.tokens == row.tokens, b.refilled_at == row.refilled_at)
            .values(
                tokens=left,
                taken=float(granted),
                refilled_at=max(now, row.refilled_at),
                backlog_until=backlog,
            )
        )
        if written.rowcount == 1:
            return Taken(want, granted, left, row.paused_until, now, backlog, per_second)
    raise RuntimeError(f"rate bucket {key!r}: too much contention on SQLite")


async def pause(conn: Conn, key: str, until: datetime) -> datetime:
    """Hold every send of ``key`` until ``until`` (a later pause already in force is kept).
    Returns the pause now in force."""
    await ensure(conn, key, tokens=0.0)
    b = rate_buckets.c
    await conn.execute(
        rate_buckets.update()
        .where(b.key == key, sa.or_(b.paused_until.is_(None), b.paused_until < until))
        .values(paused_until=until)
    )
    current = await conn.scalar(sa.select(b.paused_until).where(b.key == key))
    return current if current is not None else until


async def paused_until(conn: Conn, key: str) -> tuple[datetime | None, datetime]:
    """The pause of ``key`` if one is in force, and the database's time (for a configuration
    without a rate limit, which has no tokens to take but must still honour a pause)."""
    b = rate_buckets.c
    if conn.dialect.name == "postgresql":
        row = (
            await conn.execute(
                sa.select(
                    sa.func.statement_timestamp(),
                    sa.select(b.paused_until).where(b.key == key).scalar_subquery(),
                )
            )
        ).one()
        now, until = row[0], row[1]
    else:
        now = utcnow()
        until = await conn.scalar(sa.select(b.paused_until).where(b.key == key))
    if until is not None and until > now:
        return until, now
    return None, now


async def get(conn: Conn, key: str) -> Bucket | None:
    b = rate_buckets.c
    row = (
        await conn.execute(
            sa.select(b.key, b.tokens, b.refilled_at, b.paused_until).where(b.key == key)
        )
    ).first()
    if row is None:
        return None
    return Bucket(row.key, float(row.tokens), row.refilled_at, row.paused_until)
