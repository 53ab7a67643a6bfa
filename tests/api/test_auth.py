"""The key ring reads the database: a key made elsewhere (``tidings keys create``) opens the
API at once, a revoked one stops, and a key's last use is written at most once a minute."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tidings.store import api_keys
from tidings.store.database import Database
from tidings.store.keyring import KeyRing


async def _last_used(db: Database) -> list[object]:
    async with db.read() as conn:
        return [k.last_used_at for k in await api_keys.list_all(conn)]


async def test_keys_made_and_revoked_in_another_process_take_effect(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    server_db, other_db = Database(url), Database(url)  # the server, and `tidings keys`
    await server_db.upgrade()
    try:
        ring = KeyRing(None, [], db=server_db, ttl_s=0.2)
        key = api_keys.generate()
        assert not await ring.verify(key)
        async with other_db.write() as conn:
            stored = await api_keys.add(conn, key, name="made elsewhere")
        assert await ring.verify(key)  # at once: a miss is looked up
        assert not await ring.verify("tk_" + "x" * 43)
        assert not await ring.verify("")

        async with other_db.write() as conn:
            await api_keys.delete(conn, stored.id)
        deadline = time.monotonic() + 10
        still_open = True
        while still_open and time.monotonic() < deadline:
            still_open = await ring.verify(key)
            await asyncio.sleep(0.05)
        assert not still_open  # once the cache is read again
        await ring.aclose()
    finally:
        await server_db.close()
        await other_db.close()


async def test_last_use_is_recorded_once_a_minute_off_the_request(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    await db.upgrade()
    try:
        key = api_keys.generate()
        async with db.write() as conn:
            await api_keys.add(conn, key)
        ring = KeyRing(None, [], db=db)
        assert await _last_used(db) == [None]
        for _ in range(20):
            assert await ring.verify(key)
        await ring.aclose()
        (first,) = await _last_used(db)
        assert first is not None
        # Within the minute, further uses write nothing.
        assert await ring.verify(key)
        await ring.aclose()
        assert await _last_used(db) == [first]
    finally:
        await db.close()


async def test_the_configured_key_needs_no_database() -> None:
    ring = KeyRing("tk_configured_0123456789abcdef", [])
    assert await ring.verify("tk_configured_0123456789abcdef")
    assert not await ring.verify("tk_configured_0123456789abcdeX")
