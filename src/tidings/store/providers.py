"""Stored provider configurations (Courier's Providers API), including the default one."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.ids import new_id, new_secret
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import providers


@dataclass(frozen=True, slots=True)
class StoredProvider:
    id: str
    provider: str
    alias: str | None
    title: str | None
    settings: dict[str, Any]
    webhook_token: str
    is_default: bool
    origin: str
    created: datetime
    updated: datetime


def _row(row: sa.Row[Any]) -> StoredProvider:
    return StoredProvider(
        id=row.id,
        provider=row.provider,
        alias=row.alias,
        title=row.title,
        settings=dict(row.settings),
        webhook_token=row.webhook_token,
        is_default=row.is_default,
        origin=row.origin,
        created=row.created,
        updated=row.updated,
    )


async def create(
    conn: Conn,
    *,
    provider: str,
    settings: dict[str, Any],
    alias: str | None = None,
    title: str | None = None,
    origin: str = "api",
    is_default: bool | None = None,
) -> StoredProvider:
    now = utcnow()
    if is_default is None:
        # The first configuration becomes the default one.
        is_default = (await conn.scalar(sa.select(sa.func.count()).select_from(providers))) == 0
    stored = StoredProvider(
        id=new_id("prv_"),
        provider=provider,
        alias=alias,
        title=title,
        settings=settings,
        webhook_token=new_secret(24),
        is_default=is_default,
        origin=origin,
        created=now,
        updated=now,
    )
    await conn.execute(providers.insert().values(**asdict(stored)))
    return stored


async def get(conn: Conn, provider_id: str) -> StoredProvider | None:
    row = (
        await conn.execute(
            sa.select(providers).where(
                sa.or_(providers.c.id == provider_id, providers.c.alias == provider_id)
            )
        )
    ).first()
    return _row(row) if row else None


# Built once: every webhook looks its configuration up (its cache key and compiled form reused).
_BY_WEBHOOK_TOKEN = sa.select(providers).where(providers.c.webhook_token == sa.bindparam("token"))


async def by_webhook_token(conn: Conn, token: str) -> StoredProvider | None:
    row = (await conn.execute(_BY_WEBHOOK_TOKEN, {"token": token})).first()
    return _row(row) if row else None


async def list_all(conn: Conn) -> list[StoredProvider]:
    rows = await conn.execute(sa.select(providers).order_by(providers.c.created, providers.c.id))
    return [_row(r) for r in rows]


async def default(conn: Conn, provider: str | None = None) -> StoredProvider | None:
    """The default configuration of ``provider`` (the workspace's when None): the one
    marked default, else the oldest."""
    query = sa.select(providers)
    if provider is not None:
        query = query.where(providers.c.provider == provider)
    row = (
        await conn.execute(
            query.order_by(providers.c.is_default.desc(), providers.c.created).limit(1)
        )
    ).first()
    return _row(row) if row else None


async def by_origin(conn: Conn, origin: str) -> StoredProvider | None:
    row = (await conn.execute(sa.select(providers).where(providers.c.origin == origin))).first()
    return _row(row) if row else None


async def update(
    conn: Conn,
    provider_id: str,
    *,
    settings: dict[str, Any],
    alias: str | None,
    title: str | None,
) -> StoredProvider | None:
    await conn.execute(
        providers.update()
        .where(providers.c.id == provider_id)
        .values(settings=settings, alias=alias, title=title, updated=utcnow())
    )
    return await get(conn, provider_id)


async def set_default(conn: Conn, provider_id: str) -> None:
    await conn.execute(providers.update().values(is_default=providers.c.id == provider_id))


async def delete(conn: Conn, provider_id: str) -> bool:
    result = await conn.execute(providers.delete().where(providers.c.id == provider_id))
    return bool(result.rowcount)


async def retire_sandbox_default(conn: Conn, prefer_origin: str | None = None) -> None:
    """Once a real configuration exists, the sandbox's stops being the default: mail then goes
    to Mailgun, not to a sandbox this server may no longer run. The ``prefer_origin`` one
    wins (MAILGUN_* variables), else the newest."""
    current = await default(conn)
    if current is None or current.origin != "sandbox":
        return
    real = [p for p in await list_all(conn) if p.origin != "sandbox"]
    if not real:
        return
    preferred = [p for p in real if p.origin == prefer_origin] or real
    await set_default(conn, preferred[-1].id)
