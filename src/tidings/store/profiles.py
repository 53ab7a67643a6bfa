"""Stored user profiles (Courier's Profiles API): a JSON document per user id."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import profiles


async def get(conn: Conn, user_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    row = (
        await conn.execute(
            sa.select(profiles.c.profile, profiles.c.preferences).where(
                profiles.c.user_id == user_id
            )
        )
    ).first()
    return (dict(row.profile), dict(row.preferences)) if row else None


async def get_many(conn: Conn, user_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not user_ids:
        return {}
    rows = await conn.execute(
        sa.select(profiles.c.user_id, profiles.c.profile).where(profiles.c.user_id.in_(user_ids))
    )
    return {r.user_id: dict(r.profile) for r in rows}


async def put(conn: Conn, user_id: str, profile: dict[str, Any]) -> None:
    """Create or replace the profile document (preferences are kept)."""
    now = utcnow()
    result = await conn.execute(
        profiles.update().where(profiles.c.user_id == user_id).values(profile=profile, updated=now)
    )
    if not result.rowcount:
        await conn.execute(
            profiles.insert().values(user_id=user_id, profile=profile, preferences={}, updated=now)
        )


async def delete(conn: Conn, user_id: str) -> bool:
    result = await conn.execute(profiles.delete().where(profiles.c.user_id == user_id))
    return bool(result.rowcount)
