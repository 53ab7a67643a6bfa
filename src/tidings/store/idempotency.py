"""Idempotency keys: the first answer to a keyed request, replayed for later ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import idempotency_keys


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    request_hash: str
    status_code: int
    body: dict[str, Any]


async def find(conn: Conn, key: str) -> StoredAnswer | None:
    row = (
        await conn.execute(
            sa.select(idempotency_keys).where(
                idempotency_keys.c.key == key, idempotency_keys.c.expires_at > utcnow()
            )
        )
    ).first()
    if row is None:
        return None
    return StoredAnswer(row.request_hash, row.status_code, dict(row.body))


async def save(
    conn: Conn,
    key: str,
    *,
    request_hash: str,
    status_code: int,
    body: dict[str, Any],
    expires_at: datetime,
) -> None:
    # An expired row with the same key may linger until the sweep: replace it.
    await conn.execute(idempotency_keys.delete().where(idempotency_keys.c.key == key))
    await conn.execute(
        idempotency_keys.insert().values(
            key=key,
            request_hash=request_hash,
            status_code=status_code,
            body=body,
            expires_at=expires_at,
        )
    )


async def sweep(conn: Conn, *, now: datetime | None = None, limit: int | None = None) -> int:
    """Delete expired keys (at most ``limit``); returns how many."""
    expired = idempotency_keys.c.expires_at <= (now or utcnow())
    if limit is not None:
        batch = sa.select(idempotency_keys.c.key).where(expired).limit(limit)
        expired = idempotency_keys.c.key.in_(batch.scalar_subquery())
    result = await conn.execute(idempotency_keys.delete().where(expired))
    return int(result.rowcount or 0)
