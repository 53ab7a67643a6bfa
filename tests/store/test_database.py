"""The database handle: group commit, isolation of a failing write, concurrent claims."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tidings.store import messages as store
from tidings.store.clock import utcnow
from tidings.store.database import Conn, Database
from tidings.store.tables import webhook_tokens


async def _count(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(webhook_tokens)) or 0)


async def test_grouped_commits_concurrent_writes_and_isolates_a_failure(db_url: str) -> None:
    db = Database(db_url)
    await db.upgrade()
    try:

        def insert(token: str) -> Callable[[Conn], Awaitable[str]]:
            async def work(conn: Conn) -> str:
                await conn.execute(webhook_tokens.insert().values(token=token, seen_at=utcnow()))
                return token

            return work

        await db.grouped(insert("dup"))
        results = await asyncio.gather(
            *(db.grouped(insert(f"t{i}")) for i in range(50)),
            db.grouped(insert("dup")),  # violates the primary key
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, Exception)]
        assert len(failures) == 1 and isinstance(failures[0], sa.exc.IntegrityError)
        assert sorted(r for r in results if isinstance(r, str)) == sorted(
            f"t{i}" for i in range(50)
        )
        assert await _count(db) == 51  # every good write committed, the bad one alone failed
    finally:
        await db.close()


async def test_claims_never_hand_one_message_to_two_workers(db_url: str) -> None:
    db = Database(db_url)
    await db.upgrade()
    now = utcnow()
    try:
        new = [
            store.NewMessage(
                id=f"m{i:03d}",
                request_id=f"m{i:03d}",
                recipient=None,
                recipient_email=None,
                user_id=None,
                payload={},
                tags=[],
                trace_id=None,
                event=None,
                next_attempt_at=now - timedelta(seconds=1),
                expires_at=None,
            )
            for i in range(40)
        ]
        async with db.write() as conn:
            await store.insert(
                conn,
                new,
                [store.HistoryEntry(type="ENQUEUED", ts=now, data={}) for _ in new],
            )

        async def claim(owner: str) -> list[str]:
            async with db.write() as conn:
                return await store.claim_due(conn, owner=owner, limit=7, lease_s=60)

        claimed = await asyncio.gather(*(claim(f"w{i}") for i in range(8)))
        every = [message_id for batch in claimed for message_id in batch]
        assert len(every) == len(set(every)) == 40
        assert await asyncio.gather(claim("late")) == [[]]
    finally:
        await db.close()


async def test_a_cut_listen_connection_is_noticed_and_listening_again_hears_notify(
    postgres_url: str,
) -> None:
    """A restarted server closes LISTEN connections quietly: ``listen`` must raise (for its
    supervisor to listen again) rather than wait forever on a dead connection."""
    db, other = Database(postgres_url), Database(postgres_url)
    await db.upgrade()
    stop = asyncio.Event()
    woken = asyncio.Event()
    alive = asyncio.Event()
    try:
        listening = asyncio.create_task(db.listen(store.QUEUE_CHANNEL, woken.set, stop, alive.set))
        await asyncio.wait_for(alive.wait(), timeout=20)
        assert woken.is_set()  # once on connecting: work committed meanwhile woke no one
        async with other.write() as conn:
            cut = await conn.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert cut and cut >= 1
        with pytest.raises((ConnectionError, sa.exc.DBAPIError)):
            await asyncio.wait_for(listening, timeout=20)

        alive.clear()
        woken.clear()
        listening = asyncio.create_task(db.listen(store.QUEUE_CHANNEL, woken.set, stop, alive.set))
        await asyncio.wait_for(alive.wait(), timeout=20)
        woken.clear()
        async with other.write() as conn:
            await store.notify_queue(conn)
        await asyncio.wait_for(woken.wait(), timeout=20)
        stop.set()
        await asyncio.wait_for(listening, timeout=20)
    finally:
        stop.set()
        await other.close()
        await db.close()
