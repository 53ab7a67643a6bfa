"""The suppression list: addresses that bounced hard, complained or unsubscribed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

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


@dataclass(frozen=True, slots=True)
class Imported:
    """An entry of a provider's own list, to be added to Tidings' list."""

    address: str
    reason: str
    code: int | None
    detail: str | None
    created_at: datetime | None = None


async def add_many(conn: Conn, entries: list[Imported]) -> int:
    """Add the entries whose address is not listed yet (a listed one keeps its first
    entry, as :func:`add` does); how many were added."""
    fresh: dict[str, Imported] = {}
    for entry in entries:
        address = entry.address.strip().lower()
        if address and address not in fresh:
            fresh[address] = entry
    if not fresh:
        return 0
    known = await get_many(conn, list(fresh))
    rows = [
        {
            "address": address,
            "reason": entry.reason,
            "code": entry.code,
            "detail": entry.detail,
            "message_id": None,
            "created_at": entry.created_at or utcnow(),
        }
        for address, entry in fresh.items()
        if address not in known
    ]
    if not rows:
        return 0
    # Another process may import the same list at the same moment: the first row wins.
    insert = (
        postgresql.insert(suppressions)
        if conn.dialect.name == "postgresql"
        else sqlite.insert(suppressions)
    ).on_conflict_do_nothing()
    added = 0
    for row in rows:
        result = await conn.execute(insert.values(**row))
        added += int(bool(result.rowcount))
    return added
