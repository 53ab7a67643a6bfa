"""The workspace defaults cached in the process (store.default_cache), on SQLite and
PostgreSQL: this process's changes are seen at once, another process's soon, a caller's copy
is its own, and two databases never share a value."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import sqlalchemy as sa

from tidings.store import brands
from tidings.store import routing_strategies as strategies
from tidings.store.database import Database
from tidings.store.default_cache import CACHE_S
from tidings.store.tables import brand_default, routing_default


async def _brand(db: Database, brand_id: str) -> None:
    async with db.write() as conn:
        await brands.create(conn, brand_id=brand_id, name=brand_id, settings={}, snippets=None)


async def _default_brand_id(db: Database) -> str | None:
    async with db.read() as conn:
        found = await brands.default_brand(conn)
    return found["id"] if found else None


async def test_this_process_changes_are_seen_at_once(db: Database) -> None:
    await _brand(db, "one")
    await _brand(db, "two")
    # Not a wait for something to happen: this process's writes hold the cache off for
    # CACHE_S, and this test is about a value that is cached.
    await asyncio.sleep(CACHE_S)
    assert await _default_brand_id(db) is None  # read, and cached
    for brand_id in ("one", "two", None, "one"):
        async with db.write() as conn:
            if brand_id is None:
                await brands.clear_default(conn)
            else:
                await brands.set_default(conn, brand_id)
        assert await _default_brand_id(db) == brand_id
    async with db.write() as conn:
        await brands.replace(conn, "one", name="One renamed", settings={}, snippets=None)
    async with db.read() as conn:
        found = await brands.default_brand(conn)
    assert found is not None and found["name"] == "One renamed"


async def test_a_change_behind_the_store_is_seen_within_the_cache_time(db: Database) -> None:
    """As another process's change (it invalidates nothing here)."""
    await _brand(db, "one")
    await asyncio.sleep(CACHE_S)  # past the hold after the write above: reads are cached
    assert await _default_brand_id(db) is None
    assert await _default_brand_id(db) is None
    async with db.write() as conn:
        await conn.execute(
            brand_default.insert().values(
                scope=brands.WORKSPACE, brand_id="one", updated=sa.func.now()
            )
        )
    deadline = time.monotonic() + 30
    while await _default_brand_id(db) != "one":
        assert time.monotonic() < deadline, "the changed default was never read"
        await asyncio.sleep(0.05)


async def test_the_caller_gets_its_own_copy(db: Database) -> None:
    async with db.write() as conn:
        await brands.create(
            conn,
            brand_id="one",
            name="One",
            settings={"colors": {"primary": "#000"}},
            snippets=None,
        )
        await brands.set_default(conn, "one")
    for _ in range(3):
        async with db.read() as conn:
            found = await brands.default_brand(conn)
        assert found is not None and found["settings"] == {"colors": {"primary": "#000"}}
        found["settings"]["colors"]["primary"] = "#fff"
        found["name"] = "changed"


async def test_two_databases_never_share_a_value(db: Database, tmp_path: Path) -> None:
    other = Database(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    await other.upgrade()
    try:
        await _brand(db, "one")
        async with db.write() as conn:
            await brands.set_default(conn, "one")
        made = None
        async with db.write() as conn:
            made = await strategies.create(
                conn,
                name="s",
                routing={"method": "single", "channels": ["email"]},
                channels={},
                providers={},
                description=None,
                tags=None,
                creator="test",
            )
            await strategies.set_default(conn, made.id)
        await asyncio.sleep(CACHE_S)
        for _ in range(2):  # the second from the cache
            assert await _default_brand_id(db) == "one"
            assert await _default_brand_id(other) is None
            async with db.read() as conn:
                found = await strategies.default(conn)
                assert found is not None and found.id == made.id
            async with other.read() as conn:
                assert await strategies.default(conn) is None
    finally:
        await other.close()


async def test_concurrent_readers_all_get_the_value(db: Database) -> None:
    async with db.write() as conn:
        made = await strategies.create(
            conn,
            name="s",
            routing={"method": "single", "channels": ["email"]},
            channels={},
            providers={},
            description=None,
            tags=None,
            creator="test",
        )
        await strategies.set_default(conn, made.id)
    await asyncio.sleep(CACHE_S)

    async def one() -> str | None:
        async with db.read() as conn:
            found = await strategies.default(conn)
        return found.id if found else None

    assert await asyncio.gather(*(one() for _ in range(40))) == [made.id] * 40
    async with db.write() as conn:
        await conn.execute(routing_default.delete())  # behind the store's back
    deadline = time.monotonic() + 30
    while await one() is not None:
        assert time.monotonic() < deadline, "the cleared default was never read"
        await asyncio.sleep(0.05)
