"""API keys in the store: hashes only, named, found by id / hint / name, revoked by delete."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from tidings.store import api_keys
from tidings.store.clock import utcnow
from tidings.store.database import Database
from tidings.store.tables import api_keys as api_keys_table


async def test_keys_are_stored_as_hashes_listed_found_and_deleted(db_url: str) -> None:
    db = Database(db_url)
    await db.upgrade()
    try:
        first, second, third = api_keys.generate(), api_keys.generate(), api_keys.generate()
        async with db.write() as conn:
            a = await api_keys.add(conn, first, name="ci")
            b = await api_keys.add(conn, second)
            c = await api_keys.add(conn, third, name="ci")
        async with db.read() as conn:
            stored = (await conn.execute(sa.select(api_keys_table))).all()
            listed = await api_keys.list_all(conn)
            by_id = await api_keys.find(conn, str(b.id))
            by_key = await api_keys.find(conn, second)
            by_hint = await api_keys.find(conn, b.hint)
            by_last4 = await api_keys.find(conn, second[-4:])
            by_name = await api_keys.find(conn, "ci")
            unknown = await api_keys.find(conn, "nothing-like-it")
        for row in stored:
            assert all(k not in str(tuple(row)) for k in (first, second, third))
        assert [k.id for k in listed] == [a.id, b.id, c.id]
        assert [k.name for k in listed] == ["ci", None, "ci"]
        assert b.hint == "tk_…" + second[-4:]
        assert [k.id for k in by_id] == [k.id for k in by_key] == [b.id]
        assert b.id in [k.id for k in by_hint] and b.id in [k.id for k in by_last4]
        assert [k.id for k in by_name] == [a.id, c.id]  # a shared name is ambiguous
        assert unknown == []
        async with db.write() as conn:
            assert await api_keys.delete(conn, b.id)
            assert not await api_keys.delete(conn, b.id)
        async with db.read() as conn:
            assert not await api_keys.exists(conn, api_keys.hash_key(second))
            assert await api_keys.exists(conn, api_keys.hash_key(first))
            assert await api_keys.count(conn) == 2
    finally:
        await db.close()


async def test_touch_records_the_last_use_and_never_moves_it_back(db_url: str) -> None:
    db = Database(db_url)
    await db.upgrade()
    try:
        key = api_keys.generate()
        async with db.write() as conn:
            await api_keys.add(conn, key)
        later = utcnow() + timedelta(minutes=5)
        async with db.write() as conn:
            await api_keys.touch(conn, api_keys.hash_key(key), later)
            await api_keys.touch(conn, api_keys.hash_key(key), later - timedelta(minutes=1))
        async with db.read() as conn:
            (listed,) = await api_keys.list_all(conn)
        assert listed.last_used_at is not None
        assert abs((listed.last_used_at - later).total_seconds()) < 1
    finally:
        await db.close()
