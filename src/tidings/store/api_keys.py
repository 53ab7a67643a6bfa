"""API keys: only a hash is stored; the key itself is shown once, when it is generated."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa

from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import api_keys


def hash_key(key: str) -> str:
    # Keys are 32 random bytes, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def generate() -> str:
    return "tk_" + secrets.token_urlsafe(32)


async def count(conn: Conn) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(api_keys)) or 0)


async def add(conn: Conn, key: str) -> None:
    await conn.execute(
        api_keys.insert().values(key_hash=hash_key(key), last4=key[-4:], created_at=utcnow())
    )


async def hashes(conn: Conn) -> list[str]:
    return list((await conn.execute(sa.select(api_keys.c.key_hash))).scalars())


def matches(key: str, known_hashes: list[str]) -> bool:
    digest = hash_key(key)
    return any(hmac.compare_digest(digest, known) for known in known_hashes)
