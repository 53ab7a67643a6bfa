"""The scheduled sweeps: expired rows go, fresh ones stay, in bounded batches, on SQLite and
PostgreSQL; and the loop that ``start_loops`` runs does sweep (a real database each)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import sqlalchemy as sa

from tidings.config import Settings
from tidings.runtime import Runtime
from tidings.store import events, idempotency, ui_sessions
from tidings.store.clock import utcnow
from tidings.store.database import Database
from tidings.store.keyring import KeyRing
from tidings.store.tables import idempotency_keys, webhook_tokens
from tidings.store.tables import ui_sessions as ui_sessions_table
from tidings.workers.supervise import keep_running
from tidings.workers.sweeper import Sweeper, sweep_once


def _runtime(db: Database, **values: object) -> Runtime:
    return Runtime(settings=Settings(**values), db=db, keyring=KeyRing(None, []))  # type: ignore[arg-type]


async def _seed(db: Database, *, expired: int, fresh: int) -> None:
    """``expired`` and ``fresh`` rows in each swept table (as of now, window 900 s)."""
    now = utcnow()
    async with db.write() as conn:
        for i in range(expired + fresh):
            old = i < expired
            await conn.execute(
                webhook_tokens.insert().values(
                    token=f"tok-{i}", seen_at=now - timedelta(seconds=3600 if old else 10)
                )
            )
            await idempotency.save(
                conn,
                f"key-{i}",
                request_hash="h",
                status_code=202,
                body={"requestId": str(i)},
                expires_at=now + timedelta(seconds=-1 if old else 3600),
            )
            await ui_sessions.create(
                conn,
                f"session-{i}",
                now=now - timedelta(seconds=7200 if old else 0),
                ttl=timedelta(seconds=3600),
            )


async def _left(db: Database) -> dict[str, list[str]]:
    async with db.read() as conn:
        return {
            "webhook_tokens": sorted(
                (await conn.execute(sa.select(webhook_tokens.c.token))).scalars()
            ),
            "idempotency_keys": sorted(
                (await conn.execute(sa.select(idempotency_keys.c.key))).scalars()
            ),
            "ui_sessions": sorted(
                (await conn.execute(sa.select(ui_sessions_table.c.token_hash))).scalars()
            ),
        }


async def test_expired_rows_go_and_fresh_ones_stay_in_bounded_batches(db: Database) -> None:
    await _seed(db, expired=5, fresh=2)
    rt = _runtime(db, webhook_window_s=900.0, sweep_batch=2)
    counts = await sweep_once(rt)
    assert counts == {"webhook_tokens": 5, "idempotency_keys": 5, "ui_sessions": 5}
    assert await _left(db) == {
        "webhook_tokens": ["tok-5", "tok-6"],
        "idempotency_keys": ["key-5", "key-6"],
        "ui_sessions": ["session-5", "session-6"],
    }
    assert rt.metrics.swept.labels("webhook_tokens")._value.get() == 5
    # Nothing more to sweep: a second sweep deletes nothing.
    assert await sweep_once(rt) == {"webhook_tokens": 0, "idempotency_keys": 0, "ui_sessions": 0}


async def test_one_batch_deletes_at_most_the_batch_size(db: Database) -> None:
    await _seed(db, expired=3, fresh=0)
    now = utcnow()
    async with db.write() as conn:
        assert await events.sweep_tokens(conn, 1800.0, now=now, limit=2) == 2
        assert await idempotency.sweep(conn, now=now, limit=2) == 2
        assert await ui_sessions.sweep(conn, now=now, limit=2) == 2
    assert {name: len(rows) for name, rows in (await _left(db)).items()} == {
        "webhook_tokens": 1,
        "idempotency_keys": 1,
        "ui_sessions": 1,
    }


async def test_a_token_inside_the_replay_window_is_kept(db: Database) -> None:
    # Seen 1000 s ago with a 900 s window: a replay could still carry a fresh-enough
    # timestamp (up to two windows after it was first seen), so the token must stay.
    async with db.write() as conn:
        await conn.execute(
            webhook_tokens.insert().values(token="t", seen_at=utcnow() - timedelta(seconds=1000))
        )
    await sweep_once(_runtime(db, webhook_window_s=900.0))
    assert (await _left(db))["webhook_tokens"] == ["t"]


async def test_the_loop_started_with_the_others_sweeps(db: Database) -> None:
    await _seed(db, expired=2, fresh=1)
    rt = _runtime(db, sweep_interval_s=3600.0)
    stop = asyncio.Event()
    task = asyncio.create_task(keep_running(rt, "sweeper", lambda: Sweeper(rt).run(stop), stop))
    try:
        deadline = time.monotonic() + 30
        while (await _left(db))["idempotency_keys"] != ["key-2"]:
            assert time.monotonic() < deadline, await _left(db)
            await asyncio.sleep(0.05)
        assert await _left(db) == {
            "webhook_tokens": ["tok-2"],
            "idempotency_keys": ["key-2"],
            "ui_sessions": ["session-2"],
        }
        assert rt.loops["sweeper"].last_success is not None
    finally:
        stop.set()
        await task
