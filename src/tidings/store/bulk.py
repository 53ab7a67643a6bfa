"""Bulk jobs and their users: the queries behind Courier's ``bulk`` resource.

A job is created with its message definition, receives users in as many calls as it takes
(each call one transaction, one multi-row insert), and is then run: the process running it
holds a lease on the job and turns its pending users into messages a chunk at a time, each
chunk one transaction that inserts the messages and marks their users. A user's row says
which message it became, so running a job again, or taking over a run whose process died,
never makes a second message for anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.database import Conn
from tidings.store.tables import bulk_jobs, bulk_users, messages

# Job statuses, as Courier names them.
CREATED = "CREATED"
PROCESSING = "PROCESSING"
COMPLETED = "COMPLETED"
ERROR = "ERROR"

# User statuses, as Courier names them.
PENDING = "PENDING"
ENQUEUED = "ENQUEUED"


@dataclass(frozen=True, slots=True)
class NewUser:
    user: dict[str, Any]  # as given
    recipient: dict[str, Any]  # the ``to`` object made of it


@dataclass(frozen=True, slots=True)
class UserOutcome:
    seq: int
    status: str  # ENQUEUED or ERROR
    message_id: str | None = None
    error: str | None = None


async def create_job(
    conn: Conn, job_id: str, request_id: str, definition: dict[str, Any], now: datetime
) -> None:
    await conn.execute(
        bulk_jobs.insert().values(
            id=job_id,
            request_id=request_id,
            definition=definition,
            status=CREATED,
            received=0,
            created=now,
            updated=now,
        )
    )


async def get_job(conn: Conn, job_id: str) -> sa.Row[Any] | None:
    return (await conn.execute(sa.select(bulk_jobs).where(bulk_jobs.c.id == job_id))).first()


async def add_users(conn: Conn, job_id: str, users: list[NewUser], now: datetime) -> bool:
    """Append ``users`` to a job that has not run yet; False if there is no such job or it
    has been run. The update of the job's count takes its row lock, so concurrent calls
    get consecutive, distinct positions."""
    result = await conn.execute(
        bulk_jobs.update()
        .where(bulk_jobs.c.id == job_id, bulk_jobs.c.status == CREATED)
        .values(received=bulk_jobs.c.received + len(users), updated=now)
    )
    if not result.rowcount:
        return False
    received = int(
        await conn.scalar(sa.select(bulk_jobs.c.received).where(bulk_jobs.c.id == job_id))
    )
    first = received - len(users)
    if users:
        await conn.execute(
            bulk_users.insert(),
            [
                {
                    "job_id": job_id,
                    "seq": first + i,
                    "user": u.user,
                    "recipient": u.recipient,
                    "status": PENDING,
                    "message_id": None,
                    "error": None,
                }
                for i, u in enumerate(users)
            ],
        )
    return True


async def first_pending(conn: Conn, job_id: str) -> sa.Row[Any] | None:
    """The job's first user not yet turned into a message."""
    return (
        await conn.execute(
            sa.select(bulk_users.c.seq, bulk_users.c.recipient)
            .where(bulk_users.c.job_id == job_id, bulk_users.c.status == PENDING)
            .order_by(bulk_users.c.seq)
            .limit(1)
        )
    ).first()


async def take(conn: Conn, job_id: str, owner: str, now: datetime, until: datetime) -> bool:
    """Start the job (CREATED), take over a run whose lease has expired (PROCESSING: its
    process died) or resume one that failed (ERROR): ``owner`` holds it until ``until``.
    False if the job is running elsewhere or done."""
    result = await conn.execute(
        bulk_jobs.update()
        .where(
            bulk_jobs.c.id == job_id,
            sa.or_(
                bulk_jobs.c.status.in_((CREATED, ERROR)),
                sa.and_(
                    bulk_jobs.c.status == PROCESSING,
                    sa.or_(bulk_jobs.c.lease_until.is_(None), bulk_jobs.c.lease_until <= now),
                ),
            ),
        )
        .values(
            status=PROCESSING,
            started=sa.func.coalesce(bulk_jobs.c.started, now),
            lease_owner=owner,
            lease_until=until,
            error=None,
            updated=now,
        )
    )
    return bool(result.rowcount)


async def renew(conn: Conn, job_id: str, owner: str, until: datetime) -> bool:
    """Extend ``owner``'s lease; False if the job is no longer its to run. On PostgreSQL
    this locks the job's row for the rest of the transaction, so a takeover waits for it."""
    result = await conn.execute(
        bulk_jobs.update()
        .where(
            bulk_jobs.c.id == job_id,
            bulk_jobs.c.status == PROCESSING,
            bulk_jobs.c.lease_owner == owner,
        )
        .values(lease_until=until)
    )
    return bool(result.rowcount)


async def release(conn: Conn, job_id: str, owner: str, now: datetime) -> None:
    """``owner`` stops before the end (shutting down): its lease ends now, so that the
    next run takes the job over at once."""
    await conn.execute(
        bulk_jobs.update()
        .where(bulk_jobs.c.id == job_id, bulk_jobs.c.lease_owner == owner)
        .values(lease_until=now, updated=now)
    )


async def stopped_runs(conn: Conn, now: datetime, limit: int = 100) -> list[sa.Row[Any]]:
    """Jobs being run whose run has stopped (handed back, or its lease expired)."""
    return list(
        await conn.execute(
            sa.select(bulk_jobs)
            .where(
                bulk_jobs.c.status == PROCESSING,
                sa.or_(bulk_jobs.c.lease_until.is_(None), bulk_jobs.c.lease_until <= now),
            )
            .order_by(bulk_jobs.c.created)
            .limit(limit)
        )
    )


async def pending(conn: Conn, job_id: str, limit: int) -> list[sa.Row[Any]]:
    """The next ``limit`` users of the job not yet turned into messages, in order."""
    return list(
        await conn.execute(
            sa.select(bulk_users.c.seq, bulk_users.c.recipient)
            .where(bulk_users.c.job_id == job_id, bulk_users.c.status == PENDING)
            .order_by(bulk_users.c.seq)
            .limit(limit)
        )
    )


async def record(conn: Conn, job_id: str, outcomes: list[UserOutcome]) -> None:
    """Mark users as turned into their messages (or failed), in the transaction that
    inserts those messages."""
    if not outcomes:
        return
    await conn.execute(
        bulk_users.update()
        .where(
            bulk_users.c.job_id == sa.bindparam("b_job"),
            bulk_users.c.seq == sa.bindparam("b_seq"),
        )
        .values(
            status=sa.bindparam("b_status"),
            message_id=sa.bindparam("b_message"),
            error=sa.bindparam("b_error"),
        ),
        [
            {
                "b_job": job_id,
                "b_seq": o.seq,
                "b_status": o.status,
                "b_message": o.message_id,
                "b_error": o.error,
            }
            for o in outcomes
        ],
    )


async def finish(
    conn: Conn, job_id: str, owner: str, now: datetime, *, error: str | None = None
) -> bool:
    """End ``owner``'s run: COMPLETED, or ERROR with ``error``."""
    result = await conn.execute(
        bulk_jobs.update()
        .where(bulk_jobs.c.id == job_id, bulk_jobs.c.lease_owner == owner)
        .values(
            status=ERROR if error else COMPLETED,
            error=error,
            finished=now,
            updated=now,
            lease_owner=None,
            lease_until=None,
        )
    )
    return bool(result.rowcount)


async def user_counts(conn: Conn, job_id: str) -> dict[str, int]:
    """The job's users by status (PENDING, ENQUEUED, ERROR)."""
    rows = await conn.execute(
        sa.select(bulk_users.c.status, sa.func.count())
        .where(bulk_users.c.job_id == job_id)
        .group_by(bulk_users.c.status)
    )
    return {status: int(n) for status, n in rows}


async def message_counts(conn: Conn, request_id: str) -> dict[str, int]:
    """The job's messages by their status now."""
    rows = await conn.execute(
        sa.select(messages.c.status, sa.func.count())
        .where(messages.c.request_id == request_id)
        .group_by(messages.c.status)
    )
    return {status: int(n) for status, n in rows}


async def users(conn: Conn, job_id: str, after: int, limit: int) -> list[sa.Row[Any]]:
    """Users after position ``after`` (-1: from the first), in order."""
    return list(
        await conn.execute(
            sa.select(bulk_users)
            .where(bulk_users.c.job_id == job_id, bulk_users.c.seq > after)
            .order_by(bulk_users.c.seq)
            .limit(limit)
        )
    )


__all__ = [
    "COMPLETED",
    "CREATED",
    "ENQUEUED",
    "ERROR",
    "PENDING",
    "PROCESSING",
    "NewUser",
    "UserOutcome",
    "add_users",
    "create_job",
    "finish",
    "first_pending",
    "get_job",
    "message_counts",
    "pending",
    "record",
    "release",
    "renew",
    "stopped_runs",
    "take",
    "user_counts",
    "users",
]
