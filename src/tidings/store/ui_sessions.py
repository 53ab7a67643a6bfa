"""Web UI sessions: one row per logged-in browser, keyed by the hash of its cookie's token.

The token itself is only in the browser's cookie; a row says until when it opens the UI.
Logging out deletes the row, so a copied cookie stops working at once, on every process.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from tidings.store.database import Conn
from tidings.store.tables import ui_sessions

# last_seen_at is for people reading the table; writing it on every request would put a
# write on every UI request, so it is refreshed at most this often.
TOUCH_EVERY = timedelta(seconds=60)


async def create(conn: Conn, token_hash: str, *, now: datetime, ttl: timedelta) -> None:
    await conn.execute(
        ui_sessions.insert().values(
            token_hash=token_hash, created_at=now, expires_at=now + ttl, last_seen_at=now
        )
    )


async def last_seen(conn: Conn, token_hash: str, *, now: datetime) -> datetime | None:
    """When a live session was last seen; None when there is no such unexpired session."""
    row = (
        await conn.execute(
            sa.select(ui_sessions.c.last_seen_at, ui_sessions.c.created_at).where(
                ui_sessions.c.token_hash == token_hash, ui_sessions.c.expires_at > now
            )
        )
    ).first()
    if row is None:
        return None
    seen: datetime = row.last_seen_at or row.created_at
    return seen


async def touch(conn: Conn, token_hash: str, *, now: datetime) -> None:
    await conn.execute(
        ui_sessions.update().where(ui_sessions.c.token_hash == token_hash).values(last_seen_at=now)
    )


async def revoke(conn: Conn, token_hash: str) -> bool:
    result = await conn.execute(ui_sessions.delete().where(ui_sessions.c.token_hash == token_hash))
    return bool(result.rowcount)


async def revoke_all(conn: Conn) -> int:
    """End every session (a key was revoked or rotated)."""
    result = await conn.execute(ui_sessions.delete())
    return int(result.rowcount or 0)


async def sweep(conn: Conn, *, now: datetime, limit: int | None = None) -> int:
    """Delete the expired rows (at most ``limit``); returns how many."""
    expired = ui_sessions.c.expires_at <= now
    if limit is not None:
        batch = sa.select(ui_sessions.c.token_hash).where(expired).limit(limit)
        expired = ui_sessions.c.token_hash.in_(batch.scalar_subquery())
    result = await conn.execute(ui_sessions.delete().where(expired))
    return int(result.rowcount or 0)


async def count(conn: Conn) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(ui_sessions)) or 0)
