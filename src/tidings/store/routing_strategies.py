"""Stored routing strategies (Courier's Routing Strategies API) and the workspace default.

A strategy is kept as the documents it was given (``routing``, ``channels``, ``providers``),
validated by the API. Archiving sets ``archived_at``; an archived strategy is neither listed
nor read, but its row stays so that nothing that named it points at nothing.

:func:`default` (what every send without routing of its own reads) is cached in the process
for :data:`tidings.store.default_cache.CACHE_S` seconds: every write here that can change it
(setting or clearing the default, replacing or archiving a strategy) forgets it at once; a
change made by another process is seen within that time. :func:`default_id` always reads.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.ids import new_id
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.default_cache import DefaultCache
from tidings.store.tables import routing_default, routing_strategies

WORKSPACE = "workspace"  # the one row of routing_default


@dataclass(frozen=True, slots=True)
class StoredStrategy:
    id: str
    name: str
    description: str | None
    tags: list[str] | None
    routing: dict[str, Any]
    channels: dict[str, Any]
    providers: dict[str, Any]
    created: datetime
    updated: datetime | None
    creator: str
    updater: str | None


_DEFAULT: DefaultCache[StoredStrategy | None] = DefaultCache()


@dataclass(frozen=True, slots=True)
class Page:
    results: list[StoredStrategy]
    cursor: str | None  # for the next page; None when this is the last


def _row(row: sa.Row[Any]) -> StoredStrategy:
    return StoredStrategy(
        id=row.id,
        name=row.name,
        description=row.description,
        tags=list(row.tags) if row.tags is not None else None,
        routing=dict(row.routing),
        channels=dict(row.channels),
        providers=dict(row.providers),
        created=row.created,
        updated=row.updated,
        creator=row.creator,
        updater=row.updater,
    )


async def create(
    conn: Conn,
    *,
    name: str,
    routing: dict[str, Any],
    channels: dict[str, Any],
    providers: dict[str, Any],
    description: str | None,
    tags: list[str] | None,
    creator: str,
) -> StoredStrategy:
    now = utcnow()
    stored = StoredStrategy(
        id=new_id("rs_"),
        name=name,
        description=description,
        tags=tags,
        routing=routing,
        channels=channels,
        providers=providers,
        created=now,
        updated=now,
        creator=creator,
        updater=creator,
    )
    await conn.execute(
        routing_strategies.insert().values(
            id=stored.id,
            name=name,
            description=description,
            tags=tags,
            routing=routing,
            channels=channels,
            providers=providers,
            created=now,
            updated=now,
            creator=creator,
            updater=creator,
        )
    )
    return stored


def _live() -> sa.ColumnElement[bool]:
    return routing_strategies.c.archived_at.is_(None)


async def get(conn: Conn, strategy_id: str) -> StoredStrategy | None:
    """A strategy that is not archived, or None."""
    row = (
        await conn.execute(
            sa.select(routing_strategies).where(routing_strategies.c.id == strategy_id, _live())
        )
    ).first()
    return _row(row) if row is not None else None


async def replace(
    conn: Conn,
    strategy_id: str,
    *,
    name: str,
    routing: dict[str, Any],
    channels: dict[str, Any],
    providers: dict[str, Any],
    description: str | None,
    tags: list[str] | None,
    updater: str,
) -> StoredStrategy | None:
    """Full replacement (omitted optional fields are cleared); None if there is no such
    strategy, or it is archived."""
    _DEFAULT.invalidate()  # it may be the default
    result = await conn.execute(
        routing_strategies.update()
        .where(routing_strategies.c.id == strategy_id, _live())
        .values(
            name=name,
            routing=routing,
            channels=channels,
            providers=providers,
            description=description,
            tags=tags,
            updated=utcnow(),
            updater=updater,
        )
    )
    if not result.rowcount:
        return None
    return await get(conn, strategy_id)


async def archive(conn: Conn, strategy_id: str) -> bool:
    """Archive a live strategy; False if there is none by that id."""
    _DEFAULT.invalidate()
    result = await conn.execute(
        routing_strategies.update()
        .where(routing_strategies.c.id == strategy_id, _live())
        .values(archived_at=utcnow())
    )
    return bool(result.rowcount)


def encode_cursor(created: datetime, strategy_id: str) -> str:
    raw = json.dumps([created.isoformat(), strategy_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; ``ValueError`` if it is not one this module wrote."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, strategy_id = json.loads(raw)
        return datetime.fromisoformat(created), str(strategy_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API returned") from exc


async def list_page(conn: Conn, *, limit: int, cursor: str | None) -> Page:
    """Live strategies, oldest first (a stable order for paging), ``limit`` at a time."""
    query = sa.select(routing_strategies).where(_live())
    if cursor is not None:
        created, strategy_id = decode_cursor(cursor)
        query = query.where(
            sa.or_(
                routing_strategies.c.created > created,
                sa.and_(
                    routing_strategies.c.created == created,
                    routing_strategies.c.id > strategy_id,
                ),
            )
        )
    rows = (
        await conn.execute(
            query.order_by(routing_strategies.c.created, routing_strategies.c.id).limit(limit + 1)
        )
    ).all()
    results = [_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    last = results[-1] if results else None
    return Page(results, encode_cursor(last.created, last.id) if more and last else None)


async def default_id(conn: Conn) -> str | None:
    """The workspace default strategy's id, or None."""
    value = await conn.scalar(
        sa.select(routing_default.c.strategy_id).where(routing_default.c.scope == WORKSPACE)
    )
    return str(value) if value is not None else None


async def default(conn: Conn) -> StoredStrategy | None:
    """The workspace default strategy (what a send without routing of its own uses), read
    at most every ``CACHE_S`` seconds (see the module's note); the caller's own copy."""
    return await _DEFAULT.get(conn, _read_default)


async def _read_default(conn: Conn) -> StoredStrategy | None:
    strategy_id = await default_id(conn)
    return await get(conn, strategy_id) if strategy_id is not None else None


async def set_default(conn: Conn, strategy_id: str) -> None:
    _DEFAULT.invalidate()
    await conn.execute(routing_default.delete().where(routing_default.c.scope == WORKSPACE))
    await conn.execute(
        routing_default.insert().values(scope=WORKSPACE, strategy_id=strategy_id, updated=utcnow())
    )


async def clear_default(conn: Conn) -> None:
    _DEFAULT.invalidate()
    await conn.execute(routing_default.delete().where(routing_default.c.scope == WORKSPACE))
