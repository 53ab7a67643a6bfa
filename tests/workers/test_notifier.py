"""The status delivery queue and the notifier, on a real SQLite database: claims in order per
(endpoint, message), never twice, disabled endpoints held, backoff bounds, giving up."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
from datetime import timedelta

import sqlalchemy as sa

from tests.support.servers import free_port
from tidings.config import Settings
from tidings.runtime import Runtime
from tidings.store import status_endpoints as store
from tidings.store.clock import utcnow
from tidings.store.database import Database
from tidings.store.keyring import KeyRing
from tidings.store.tables import status_deliveries
from tidings.workers.notifier import Notifier, backoff_s, signature_header


async def queue(db: Database, endpoint_id: str, message_id: str, status: str) -> int:
    async with db.write() as conn:
        result = await conn.execute(
            status_deliveries.insert().values(
                endpoint_id=endpoint_id,
                message_id=message_id,
                body={"type": "message:updated", "data": {"id": message_id, "status": status}},
                attempts=0,
                next_attempt_at=utcnow(),
                created=utcnow(),
            )
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])


async def claim(db: Database, limit: int = 10) -> list[store.Claimed]:
    async with db.write() as conn:
        return await store.claim_due(conn, limit=limit, lease_s=60)


async def test_claims_follow_order_per_endpoint_and_message(db: Database) -> None:
    async with db.write() as conn:
        endpoint = await store.create(conn, url="http://127.0.0.1:9/", secret="s", enabled=True)
    sent = await queue(db, endpoint.id, "m1", "SENT")
    delivered = await queue(db, endpoint.id, "m1", "DELIVERED")
    other = await queue(db, endpoint.id, "m2", "SENT")

    first = await claim(db)
    assert [c.id for c in first] == [sent, other]
    assert all(c.attempts == 1 and c.secret == "s" for c in first)
    assert await claim(db) == []  # leased: nobody else takes them, DELIVERED still waits

    async with db.write() as conn:
        await store.mark_delivered(conn, sent, status=200)
    assert [c.id for c in await claim(db)] == [delivered]


async def test_a_given_up_delivery_no_longer_holds_back_newer_ones(db: Database) -> None:
    async with db.write() as conn:
        endpoint = await store.create(conn, url="http://127.0.0.1:9/", secret="s", enabled=True)
    older = await queue(db, endpoint.id, "m1", "SENT")
    newer = await queue(db, endpoint.id, "m1", "DELIVERED")
    assert [c.id for c in await claim(db)] == [older]
    async with db.write() as conn:
        await store.mark_failed(conn, older, status=500, error="HTTP 500", retry_at=None)
    assert [c.id for c in await claim(db)] == [newer]


async def test_disabled_endpoints_are_held(db: Database) -> None:
    async with db.write() as conn:
        endpoint = await store.create(conn, url="http://127.0.0.1:9/", secret="s", enabled=False)
    delivery = await queue(db, endpoint.id, "m1", "SENT")
    assert await claim(db) == []
    async with db.write() as conn:
        await store.update(conn, endpoint.id, enabled=True)
    assert [c.id for c in await claim(db)] == [delivery]


async def test_concurrent_claimers_never_share_a_delivery(db: Database) -> None:
    async with db.write() as conn:
        endpoint = await store.create(conn, url="http://127.0.0.1:9/", secret="s", enabled=True)
    ids = {await queue(db, endpoint.id, f"m{i}", "SENT") for i in range(40)}
    # Separate engines: what separate processes would do (no shared in-process write lock).
    others = [Database(db.url) for _ in range(3)]
    try:
        batches = await asyncio.gather(*(claim(d, limit=7) for d in [db, *others] * 3))
    finally:
        for other in others:
            await other.close()
    claimed = [c.id for batch in batches for c in batch]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) <= ids


async def test_notifier_gives_up_after_the_horizon(db: Database) -> None:
    async with db.write() as conn:
        # Nothing listens on this port: the connection is refused.
        endpoint = await store.create(
            conn, url=f"http://127.0.0.1:{free_port()}/hook", secret="s", enabled=True
        )
    delivery = await queue(db, endpoint.id, "m1", "SENT")
    settings = Settings(notify_retry_base_s=0.01, notify_timeout_s=2)
    rt = Runtime(settings=settings, db=db, keyring=KeyRing(None, []))
    notifier = Notifier(rt, give_up_after=timedelta(0))
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))

    async def settled() -> sa.Row[object]:
        while True:
            async with db.read() as conn:
                row = (
                    await conn.execute(
                        sa.select(status_deliveries).where(status_deliveries.c.id == delivery)
                    )
                ).one()
            if row.next_attempt_at is None:
                return row
            await asyncio.sleep(0.02)

    try:
        row = await asyncio.wait_for(settled(), 20)
    finally:
        stop.set()
        await task
    assert row.delivered_at is None
    assert row.attempts == 1
    assert row.last_error.startswith("gave up after 1 attempt(s)")


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    rng = random.Random(7)
    for attempts, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0), (500, 60.0)]:
        for _ in range(50):
            delay = backoff_s(attempts, 1.0, 60.0, rng)
            assert ceiling / 2 <= delay <= ceiling


def test_signature_is_courier_scheme() -> None:
    header = signature_header("sekret", 1700000000123, b'{"a":1}')
    expected = hmac.new(b"sekret", b'1700000000123.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000123,signature={expected}"
