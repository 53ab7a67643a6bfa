"""The migrations and ``store/tables.py`` describe the same schema: Alembic's autogenerate
compare, against a database upgraded to head, finds no difference (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tidings.store.database import Database
from tidings.store.tables import metadata


def _differences(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    diff: list[Any] = compare_metadata(context, metadata)
    # Alembic's own bookkeeping table is not part of the application's schema.
    return [d for d in diff if "alembic_version" not in repr(d)]


async def test_the_migrated_schema_is_the_one_tables_py_describes(db_url: str) -> None:
    db = Database(db_url)
    await db.upgrade()
    try:
        async with db.engine.connect() as conn:
            differences = await conn.run_sync(_differences)
    finally:
        await db.close()
    assert differences == []
