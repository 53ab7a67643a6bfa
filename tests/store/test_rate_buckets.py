"""Shared rate buckets: reservations from several connections at once never hand out more
tokens than the bucket allows, and a pause set through one connection holds for the others."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import timedelta

import pytest

from tidings.store import rate_buckets
from tidings.store.clock import utcnow
from tidings.store.database import Database

RATE = 40.0  # tokens a second
CAPACITY = 40.0  # one second's worth
CONNECTIONS = 4


async def _open(url: str, count: int) -> list[Database]:
    """``count`` handles on one database, each with its own connections, as separate worker
    processes would have."""
    first = Database(url)
    await first.upgrade()
    return [first, *[Database(url) for _ in range(count - 1)]]


async def test_concurrent_reservations_never_exceed_the_bucket(db_url: str) -> None:
    dbs = await _open(db_url, CONNECTIONS)
    grants: list[rate_buckets.Taken] = []
    rng = random.Random(5)
    try:

        async def worker(db: Database) -> None:
            # Ask until 150 tokens were handed out in all: far more than the first second's
            # burst, so the refill arithmetic is what is tested.
            while sum(t.granted for t in grants) < 150:
                async with rate_buckets.single_statements(db) as conn:
                    taken = await rate_buckets.take(
                        conn, "cfg", want=rng.randint(1, 5), per_second=RATE, capacity=CAPACITY
                    )
                grants.append(taken)
                if taken.granted == 0:
                    await asyncio.sleep(0)  # let the others in; there is nothing to wait for

        await asyncio.gather(*(worker(db) for db in dbs))
    finally:
        for db in dbs:
            await db.close()

    granted = sum(t.granted for t in grants)
    first, last = min(t.now for t in grants), max(t.now for t in grants)
    # A token bucket hands out at most its capacity plus the refill between the first and
    # the last reservation, measured on the clock the bucket itself uses.
    allowed = CAPACITY + RATE * (last - first).total_seconds()
    print(
        f"\n{db_url.split(':')[0]}: {len(grants)} reservations from {CONNECTIONS} "
        f"connections, {granted} tokens granted, at most {allowed:.1f} allowed over "
        f"{(last - first).total_seconds():.2f} s"
    )
    assert granted <= allowed + 1e-6
    assert granted >= 150
    assert any(t.granted == 0 for t in grants)  # the limit was reached, not just approached
    assert all(t.tokens >= -1e-9 for t in grants)


async def test_a_pause_set_through_one_connection_holds_for_the_others(
    db_url: str,
) -> None:
    dbs = await _open(db_url, 2)
    setter, other = dbs
    try:
        async with rate_buckets.single_statements(other) as conn:
            before = await rate_buckets.take(
                conn, "cfg", want=1, per_second=RATE, capacity=CAPACITY
            )
            not_paused = await rate_buckets.paused_until(conn, "cfg")
        assert before.granted == 1 and not before.paused
        assert not_paused[0] is None

        until = utcnow() + timedelta(seconds=30)
        async with rate_buckets.single_statements(setter) as conn:
            assert await rate_buckets.pause(conn, "cfg", until) == until
            # An earlier time does not shorten the pause in force.
            assert await rate_buckets.pause(conn, "cfg", until - timedelta(seconds=20)) == until
            # A configuration without a rate limit gets its pause row on the way.
            await rate_buckets.pause(conn, "unlimited", until)

        async with rate_buckets.single_statements(other) as conn:
            held = await rate_buckets.take(conn, "cfg", want=3, per_second=RATE, capacity=CAPACITY)
            seen, now = await rate_buckets.paused_until(conn, "unlimited")
            untouched, _ = await rate_buckets.paused_until(conn, "another")
        assert held.granted == 0 and held.paused and held.paused_until == until
        assert seen == until and now < until
        assert untouched is None

        async with rate_buckets.single_statements(setter) as conn:
            bucket = await rate_buckets.get(conn, "cfg")
        assert bucket is not None and bucket.paused_until == until
    finally:
        for db in dbs:
            await db.close()


async def test_a_pause_that_ran_out_holds_nothing(db_url: str) -> None:
    (db,) = await _open(db_url, 1)
    try:
        async with rate_buckets.single_statements(db) as conn:
            await rate_buckets.pause(conn, "cfg", utcnow() - timedelta(seconds=1))
            taken = await rate_buckets.take(conn, "cfg", want=2, per_second=RATE, capacity=CAPACITY)
            until, _ = await rate_buckets.paused_until(conn, "cfg")
        # A row created by a pause starts empty and fills at the rate from then.
        assert not taken.paused
        assert until is None
    finally:
        await db.close()


async def test_refused_asks_are_told_to_come_back_one_token_apart(db_url: str) -> None:
    (db,) = await _open(db_url, 1)
    try:
        async with rate_buckets.single_statements(db) as conn:
            first = await rate_buckets.take(conn, "cfg", want=25, per_second=10, capacity=10)
            second = await rate_buckets.take(conn, "cfg", want=5, per_second=10, capacity=10)
    finally:
        await db.close()
    assert first.granted == 10 and len(first.retry_in()) == 15
    waits = first.retry_in()
    assert [round(b - a, 6) for a, b in itertools.pairwise(waits)] == [0.1] * 14
    assert waits[0] == pytest.approx(0.1, abs=0.01)
    # The next refused ones line up after those: none is told a time already given out.
    assert second.granted == 0
    later = second.retry_in()
    since = (second.now - first.now).total_seconds()
    assert since + later[0] == pytest.approx(waits[-1] + 0.1, abs=1e-3)
    assert later == sorted(later) and len(later) == 5
