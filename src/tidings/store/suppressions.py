"""The suppression list: addresses that bounced hard, complained or unsubscribed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.clock import to_ms, utcnow
from tidings.store.database import Conn
from tidings.store.tables import suppressions


@dataclass(frozen=True, slots=True)
class Suppression:
    address: str
    reason: str  # bounce | complaint | unsubscribe
    code: int | None
    detail: str | None
    message_id: str | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "reason": self.reason,
            "code": self.code,
            "detail": self.detail,
            "messageId": self.message_id,
            "created": to_ms(self.created_at),
        }


def _row(row: sa.Row[Any]) -> Suppression:
    return Suppression(
        row.address, row.reason, row.code, row.detail, row.message_id, row.created_at
    )


async def get(conn: Conn, address: str) -> Suppression | None:
    row = (
        await conn.execute(
            sa.select(suppressions).where(suppressions.c.address == address.strip().lower())
        )
    ).first()
    return _row(row) if row else None


async def get_many(conn: Conn, addresses: list[str]) -> dict[str, Suppression]:
    wanted = sorted({a.strip().lower() for a in addresses if a})
    if not wanted:
        return {}
    rows = await conn.execute(sa.select(suppressions).where(suppressions.c.address.in_(wanted)))
    return {row.address: _row(row) for row in rows}


async def add(
    conn: Conn,
    address: str,
    *,
    reason: str,
    code: int | None = None,
    detail: str | None = None,
    message_id: str | None = None,
) -> bool:
    """Add ``address``; an address already listed keeps its first entry. True if added."""
    address = address.strip().lower()
    if await get(conn, address) is not None:
        return False
    await conn.execute(
        suppressions.insert().values(
            address=address,
            reason=reason,
            code=code,
            detail=detail,
            message_id=message_id,
            created_at=utcnow(),
        )
    )
    return True


async def list_all(conn: Conn, *, limit: int = 100, after: str | None = None) -> list[Suppression]:
    query = sa.select(suppressions).order_by(suppressions.c.address).limit(limit)
    if after:
        query = query.where(suppressions.c.address > after)
    return [_row(r) for r in await conn.execute(query)]


async def remove(conn: Conn, address: str) -> bool:
    result = await conn.execute(
        suppressions.delete().where(suppressions.c.address == address.strip().lower())
    )
    return bool(result.rowcount)
