"""Shared pytest configuration."""

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from tidings.store.database import Database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (TIDINGS_TEST_POSTGRES_URL points at
    a server; `.ci/run` starts one on loopback)."""
    base = os.environ.get("TIDINGS_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("TIDINGS_TEST_POSTGRES_URL is not set (`.ci/run` starts PostgreSQL)")
    name = "tidings_test_" + secrets.token_hex(6)
    url = sa.make_url(base)

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            database=url.database or "postgres",
        )
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh database, once on SQLite and once on PostgreSQL (skipped, saying
    why, where no server is set). A sync fixture: postgres_url creates its database with
    asyncio.run."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated :class:`Database` on ``db_url``, closed after the test."""
    database = Database(db_url)
    await database.upgrade()
    yield database
    await database.close()
