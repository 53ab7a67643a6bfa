"""Applying Alembic migrations from inside Tidings (at start, and by `tidings db upgrade`)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_connection(connection: Connection, revision: str = "head") -> None:
    """Bring the database behind a (sync) ``connection`` to ``revision``."""
    if connection.dialect.name == "postgresql":
        # Processes that start together (an API and its workers) must not migrate at once:
        # the first holds this lock until its transaction commits, the others then find
        # the database up to date. (A SQLite file has one writer at a time anyway.)
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('tidings-migrate'))"))
    command.upgrade(alembic_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (the newest by default)."""
    async with engine.begin() as conn:
        await conn.run_sync(upgrade_connection, revision)
