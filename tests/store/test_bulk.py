"""Bulk jobs in the store, on SQLite and PostgreSQL: users get distinct positions however
many calls add them at once, only a job that has not run takes users, and a run is held by
one owner at a time (started, renewed, taken over once its lease expires, finished)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tidings.store import bulk
from tidings.store.clock import utcnow
from tidings.store.database import Database


def _users(prefix: str, n: int) -> list[bulk.NewUser]:
    return [
        bulk.NewUser(
            user={"profile": {"email": f"{prefix}{i}@x.test"}},
            recipient={"email": f"{prefix}{i}@x.test"},
        )
        for i in range(n)
    ]


async def test_concurrent_adds_get_distinct_positions_in_order(db_url: str) -> None:
    db = Database(db_url)
    await db.upgrade()
    try:
        now = utcnow()
        async with db.write() as conn:
            await bulk.create_job(conn, "bulk_1", "req_1", {"event": "e"}, now)

        async def add(prefix: str) -> bool:
            async with db.write() as conn:
                return await bulk.add_users(conn, "bulk_1", _users(prefix, 50), utcnow())

        assert all(await asyncio.gather(*(add(p) for p in "abcdefgh")))
        async with db.read() as conn:
            job = await bulk.get_job(conn, "bulk_1")
            rows = await bulk.users(conn, "bulk_1", -1, 1000)
            counts = await bulk.user_counts(conn, "bulk_1")
        assert job is not None and job.received == 400
        assert [r.seq for r in rows] == list(range(400))
        # Each call's users stay together and in their order.
        for start in range(0, 400, 50):
            emails = [r.recipient["email"] for r in rows[start : start + 50]]
            prefix = emails[0][0]
            assert emails == [f"{prefix}{i}@x.test" for i in range(50)]
        assert counts == {bulk.PENDING: 400}
        async with db.read() as conn:
            assert [r.seq for r in await bulk.users(conn, "bulk_1", 397, 10)] == [398, 399]
            assert await bulk.get_job(conn, "bulk_nope") is None
        async with db.write() as conn:
            assert not await bulk.add_users(conn, "bulk_nope", _users("z", 1), utcnow())
    finally:
        await db.close()


async def test_one_owner_at_a_time_and_no_users_after_the_run_starts(db_url: str) -> None:
    db = Database(db_url)
    await db.upgrade()
    try:
        now = utcnow()
        lease = now + timedelta(minutes=1)
        async with db.write() as conn:
            await bulk.create_job(conn, "bulk_2", "req_2", {"event": "e"}, now)
            assert await bulk.add_users(conn, "bulk_2", _users("u", 3), now)
            assert await bulk.take(conn, "bulk_2", "run_a", now, lease)
            # Running (a live lease): nobody else takes it, and it takes no more users.
            assert not await bulk.take(conn, "bulk_2", "run_b", now, lease)
            assert not await bulk.add_users(conn, "bulk_2", _users("late", 1), now)
            assert await bulk.renew(conn, "bulk_2", "run_a", lease)
            assert not await bulk.renew(conn, "bulk_2", "run_b", lease)
            pending = await bulk.pending(conn, "bulk_2", 2)
            assert [p.seq for p in pending] == [0, 1]
            await bulk.record(
                conn,
                "bulk_2",
                [
                    bulk.UserOutcome(0, bulk.ENQUEUED, "m0"),
                    bulk.UserOutcome(1, bulk.ERROR, error="x"),
                ],
            )
        later = lease + timedelta(seconds=1)
        async with db.write() as conn:
            # Its lease ran out: the next run takes over, and the old owner is out.
            assert await bulk.take(conn, "bulk_2", "run_b", later, later + timedelta(minutes=1))
            assert not await bulk.renew(conn, "bulk_2", "run_a", later)
            assert [p.seq for p in await bulk.pending(conn, "bulk_2", 10)] == [2]
            await bulk.record(conn, "bulk_2", [bulk.UserOutcome(2, bulk.ENQUEUED, "m2")])
            assert not await bulk.finish(conn, "bulk_2", "run_a", later)
            assert await bulk.finish(conn, "bulk_2", "run_b", later)
            assert not await bulk.take(conn, "bulk_2", "run_c", later, later)
        async with db.read() as conn:
            job = await bulk.get_job(conn, "bulk_2")
            counts = await bulk.user_counts(conn, "bulk_2")
            rows = await bulk.users(conn, "bulk_2", -1, 10)
        assert job is not None and job.status == bulk.COMPLETED and job.lease_owner is None
        assert job.started == now and job.finished == later
        assert counts == {bulk.ENQUEUED: 2, bulk.ERROR: 1}
        assert [(r.status, r.message_id, r.error) for r in rows] == [
            (bulk.ENQUEUED, "m0", None),
            (bulk.ERROR, None, "x"),
            (bulk.ENQUEUED, "m2", None),
        ]
    finally:
        await db.close()


async def test_a_failed_run_is_resumed(db_url: str) -> None:
    db = Database(db_url)
    await db.upgrade()
    try:
        now = utcnow()
        async with db.write() as conn:
            await bulk.create_job(conn, "bulk_3", "req_3", {"event": "e"}, now)
            assert await bulk.add_users(conn, "bulk_3", _users("u", 1), now)
            assert await bulk.take(conn, "bulk_3", "run_a", now, now + timedelta(minutes=1))
            assert await bulk.finish(conn, "bulk_3", "run_a", now, error="OperationalError")
            job = await bulk.get_job(conn, "bulk_3")
            assert job is not None and (job.status, job.error) == (bulk.ERROR, "OperationalError")
            assert await bulk.take(conn, "bulk_3", "run_b", now, now + timedelta(minutes=1))
            job = await bulk.get_job(conn, "bulk_3")
            assert job is not None and (job.status, job.error) == (bulk.PROCESSING, None)
    finally:
        await db.close()
