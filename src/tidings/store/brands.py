"""Stored brands (Courier's Brands API) and the workspace default brand.

A brand is kept as the documents the API checked (``settings``, ``snippets``, in Courier's
shape) and read back in the API's shape (:func:`get_brand`), which is also what the render
layer's :func:`tidings.render.branding.brand_look` takes. Every write is published at once:
``version`` counts the writes and ``published`` is the last write's time. Deleting removes
the row (Courier deletes too; a template naming a deleted brand finds none); the default
brand cannot be deleted, which the API answers with 409 as Courier does.

:func:`default_brand` (what every send naming no brand reads) is cached in the process for
:data:`tidings.store.default_cache.CACHE_S` seconds: every write here that can change it
(setting or clearing the default, replacing or deleting a brand) forgets it at once; a change
made by another process is seen within that time. :func:`default_id` always reads.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.clock import to_ms, utcnow
from tidings.store.database import Conn
from tidings.store.default_cache import DefaultCache
from tidings.store.tables import brand_default, brands

WORKSPACE = "workspace"  # the one row of brand_default
_DEFAULT: DefaultCache[dict[str, Any] | None] = DefaultCache()


@dataclass(frozen=True, slots=True)
class Page:
    results: list[dict[str, Any]]
    cursor: str | None  # for the next page; None when this is the last


def _shape(row: sa.Row[Any]) -> dict[str, Any]:
    """The brand as the API answers it (the SDK's ``Brand``)."""
    brand: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "created": to_ms(row.created),
        "updated": to_ms(row.updated),
        "published": to_ms(row.updated),
        "version": f"v{row.version}",
        "settings": dict(row.settings),
    }
    if row.snippets is not None:
        brand["snippets"] = dict(row.snippets)
    return brand


async def exists(conn: Conn, brand_id: str) -> bool:
    found = await conn.scalar(sa.select(brands.c.id).where(brands.c.id == brand_id))
    return found is not None


async def create(
    conn: Conn,
    *,
    brand_id: str,
    name: str,
    settings: dict[str, Any],
    snippets: dict[str, Any] | None,
) -> dict[str, Any]:
    """Insert a brand (the caller checked that the id is free; a race ends in the table's
    primary key refusing the second insert)."""
    now = utcnow()
    await conn.execute(
        brands.insert().values(
            id=brand_id,
            name=name,
            settings=settings,
            snippets=snippets,
            version=1,
            created=now,
            updated=now,
        )
    )
    found = await get_brand(conn, brand_id)
    assert found is not None  # just inserted, in this transaction
    return found


async def get_brand(conn: Conn, brand_id: str) -> dict[str, Any] | None:
    """The brand in the API's shape, or None."""
    row = (await conn.execute(sa.select(brands).where(brands.c.id == brand_id))).first()
    return _shape(row) if row is not None else None


async def replace(
    conn: Conn,
    brand_id: str,
    *,
    name: str,
    settings: dict[str, Any],
    snippets: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """Full replacement (Courier's PUT); None if there is no such brand."""
    _DEFAULT.invalidate()  # it may be the default
    result = await conn.execute(
        brands.update()
        .where(brands.c.id == brand_id)
        .values(
            name=name,
            settings=settings,
            snippets=snippets,
            version=brands.c.version + 1,
            updated=utcnow(),
        )
    )
    if not result.rowcount:
        return None
    return await get_brand(conn, brand_id)


async def delete(conn: Conn, brand_id: str) -> bool:
    """Delete a brand; False if there is none by that id. The caller refuses the default."""
    _DEFAULT.invalidate()
    result = await conn.execute(brands.delete().where(brands.c.id == brand_id))
    return bool(result.rowcount)


def encode_cursor(created: datetime, brand_id: str) -> str:
    raw = json.dumps([created.isoformat(), brand_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; ``ValueError`` if it is not one this module wrote."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, brand_id = json.loads(raw)
        return datetime.fromisoformat(created), str(brand_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API returned") from exc


async def list_page(conn: Conn, *, limit: int, cursor: str | None) -> Page:
    """Brands, oldest first (a stable order for paging), ``limit`` at a time."""
    query = sa.select(brands)
    if cursor is not None:
        created, brand_id = decode_cursor(cursor)
        query = query.where(
            sa.or_(
                brands.c.created > created,
                sa.and_(brands.c.created == created, brands.c.id > brand_id),
            )
        )
    rows = (
        await conn.execute(query.order_by(brands.c.created, brands.c.id).limit(limit + 1))
    ).all()
    page = rows[:limit]
    last = page[-1] if page and len(rows) > limit else None
    return Page([_shape(r) for r in page], encode_cursor(last.created, last.id) if last else None)


async def default_id(conn: Conn) -> str | None:
    """The workspace default brand's id, or None."""
    value = await conn.scalar(
        sa.select(brand_default.c.brand_id).where(brand_default.c.scope == WORKSPACE)
    )
    return str(value) if value is not None else None


async def default_brand(conn: Conn) -> dict[str, Any] | None:
    """The workspace default brand in the API's shape (what a send naming none uses), read
    at most every ``CACHE_S`` seconds (see the module's note); the caller's own copy."""
    return await _DEFAULT.get(conn, _read_default_brand)


async def _read_default_brand(conn: Conn) -> dict[str, Any] | None:
    brand_id = await default_id(conn)
    return await get_brand(conn, brand_id) if brand_id is not None else None


async def set_default(conn: Conn, brand_id: str) -> None:
    _DEFAULT.invalidate()
    await conn.execute(brand_default.delete().where(brand_default.c.scope == WORKSPACE))
    await conn.execute(
        brand_default.insert().values(scope=WORKSPACE, brand_id=brand_id, updated=utcnow())
    )


async def clear_default(conn: Conn) -> None:
    _DEFAULT.invalidate()
    await conn.execute(brand_default.delete().where(brand_default.c.scope == WORKSPACE))
