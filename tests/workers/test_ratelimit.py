"""The limiters: a burst of sends asking at once is served from one bucket, in order, and a
pause set by one limiter holds the sends of every other one on the same database."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from tidings.store.clock import utcnow
from tidings.store.database import Database
from tidings.workers.ratelimit import (
    PAUSE_JITTER_S,
    Limiter,
    LocalLimiter,
    SharedLimiter,
    capacity,
    limiter_for,
    per_second,
)

LIMIT = {"rate": 10, "period": "second"}


def test_rates_and_burst() -> None:
    assert per_second(None) is None and per_second({}) is None
    assert per_second({"rate": 120, "period": "minute"}) == 2.0
    assert per_second({"rate": 36, "period": "hour"}) == 0.01
    assert capacity(20.0) == 20.0 and capacity(0.01) == 1.0


async def _burst(limiter: Limiter, key: str, count: int) -> list[float]:
    answers = await asyncio.gather(*(limiter.reserve(key, LIMIT) for _ in range(count)))
    return [a.wait_s for a in answers]


async def test_local_limiter_spaces_a_burst_and_holds_a_pause() -> None:
    limiter = LocalLimiter()
    waits = await _burst(limiter, "p1", 25)
    assert waits[:10] == [0.0] * 10  # one second's worth at once
    # The refused ones are told to come back one token apart (they ask again then).
    refused = waits[10:]
    assert refused == sorted(refused) and all(w > 0 for w in refused)
    assert refused[-1] == pytest.approx(1.5, abs=0.01)
    assert (await limiter.reserve("no-limit", None)).wait_s == 0

    until = utcnow() + timedelta(seconds=5)
    assert await limiter.pause("no-limit", until) == until
    assert await limiter.pause("no-limit", until - timedelta(seconds=3)) == until
    held = await limiter.reserve("no-limit", None)
    assert held.paused_until == until
    assert 4 < held.wait_s <= 5 + PAUSE_JITTER_S
    assert (await limiter.reserve("other", None)).wait_s == 0


async def test_shared_limiter_serves_a_burst_from_the_database(db_url: str) -> None:
    db = Database(db_url)
    await db.upgrade()
    try:
        limiter = SharedLimiter(db)
        waits = await _burst(limiter, "p1", 25)
    finally:
        await db.close()
    granted = [w for w in waits if w == 0]
    # The bucket starts full (10) and refills while the burst is served (a few ms).
    assert 10 <= len(granted) <= 11
    refused = waits[len(granted) :]
    assert all(w > 0 for w in refused) and refused == sorted(refused)
    # Refused sends come back one token apart: the last of them about 1.5 s out.
    assert refused[-1] == pytest.approx(len(refused) / 10, abs=0.11)


async def test_a_pause_reaches_every_limiter_on_the_database(db_url: str) -> None:
    first_db = Database(db_url)
    await first_db.upgrade()
    second_db = Database(db_url)
    try:
        first, second = SharedLimiter(first_db), SharedLimiter(second_db)
        assert (await second.reserve("p1", LIMIT)).wait_s == 0
        assert (await second.reserve("p2", None)).wait_s == 0
        until = utcnow() + timedelta(seconds=30)
        await first.pause("p1", until)
        await first.pause("p2", until)
        for key, limit in (("p1", LIMIT), ("p2", None)):
            held = await second.reserve(key, limit)
            assert held.paused_until == until and held.wait_s > 29
        assert (await second.reserve("p3", None)).wait_s == 0
    finally:
        await first_db.close()
        await second_db.close()


async def test_the_backend_picks_the_limiter(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    try:
        assert isinstance(limiter_for(db), LocalLimiter)
    finally:
        await db.close()
    pg = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        assert isinstance(limiter_for(pg), SharedLimiter)
    finally:
        await pg.close()
