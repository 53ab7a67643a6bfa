"""API keys: only a hash is stored; the key itself is shown once, when it is generated.

A key has a number (its id), an optional name a person gives it, its last four characters
(so a person can tell keys apart; never more of it), when it was made and when it was last
accepted. Revoking a key deletes its row: nothing of it is left that could open anything.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import api_keys

PREFIX = "tk_"


def hash_key(key: str) -> str:
    # Keys are 32 random bytes, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def generate() -> str:
    return PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: int
    name: str | None
    last4: str
    created_at: datetime
    last_used_at: datetime | None

    @property
    def hint(self) -> str:
        """How a person tells this key apart without seeing it: ``tk_…abcd``."""
        return f"{PREFIX}…{self.last4}"


def _stored(row: Any) -> StoredKey:
    return StoredKey(id=row[0], name=row[1], last4=row[2], created_at=row[3], last_used_at=row[4])


_COLUMNS = (
    api_keys.c.id,
    api_keys.c.name,
    api_keys.c.last4,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
)


async def count(conn: Conn) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(api_keys)) or 0)


async def add(conn: Conn, key: str, *, name: str | None = None) -> StoredKey:
    """Store ``key``'s hash (never the key); the new row as ``list_all`` shows it."""
    now = utcnow()
    result = await conn.execute(
        api_keys.insert().values(key_hash=hash_key(key), last4=key[-4:], created_at=now, name=name)
    )
    assert result.inserted_primary_key is not None
    return StoredKey(
        id=int(result.inserted_primary_key[0]),
        name=name,
        last4=key[-4:],
        created_at=now,
        last_used_at=None,
    )


async def hashes(conn: Conn) -> list[str]:
    return list((await conn.execute(sa.select(api_keys.c.key_hash))).scalars())


async def exists(conn: Conn, key_hash: str) -> bool:
    found = await conn.scalar(sa.select(api_keys.c.id).where(api_keys.c.key_hash == key_hash))
    return found is not None


async def list_all(conn: Conn) -> list[StoredKey]:
    rows = (await conn.execute(sa.select(*_COLUMNS).order_by(api_keys.c.id))).all()
    return [_stored(row) for row in rows]


async def find(conn: Conn, ref: str) -> list[StoredKey]:
    """The keys ``ref`` names: an id (``3``), the key itself, its hint (``tk_…abcd``,
    ``…abcd`` or ``abcd``), or a name. More than one when a hint or name is shared."""
    ref = ref.strip()
    if ref.isdigit():
        condition: sa.ColumnElement[bool] = api_keys.c.id == int(ref)
    elif ref.startswith(PREFIX) and len(ref) > 20:
        condition = api_keys.c.key_hash == hash_key(ref)
    else:
        last4 = ref.removeprefix(PREFIX).lstrip("…").removeprefix("...")
        condition = api_keys.c.name == ref
        if len(last4) == 4:
            condition = sa.or_(condition, api_keys.c.last4 == last4)
    rows = (await conn.execute(sa.select(*_COLUMNS).where(condition).order_by(api_keys.c.id))).all()
    return [_stored(row) for row in rows]


async def delete(conn: Conn, key_id: int) -> bool:
    result = await conn.execute(api_keys.delete().where(api_keys.c.id == key_id))
    return bool(result.rowcount)


async def touch(conn: Conn, key_hash: str, when: datetime) -> None:
    """Record that the key was accepted at ``when`` (never moving the time back)."""
    await conn.execute(
        api_keys.update()
        .where(api_keys.c.key_hash == key_hash)
        .where(sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < when))
        .values(last_used_at=when)
    )


def matches(key: str, known_hashes: list[str]) -> bool:
    digest = hash_key(key)
    return any(hmac.compare_digest(digest, known) for known in known_hashes)
