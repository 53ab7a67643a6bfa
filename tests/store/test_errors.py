"""Database faults are recognised from the drivers' real errors (no fakes): SQLite's full and
read-only files, PostgreSQL's read-only transactions and refused connections."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.servers import free_port
from tidings.store.database import Database
from tidings.store.errors import DatabaseUnavailable, Fault, classify
from tidings.store.tables import webhook_tokens


def test_a_full_sqlite_file_is_full(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "full.db")
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.execute("PRAGMA max_page_count = 3")  # a real SQLITE_FULL, without filling a disk
    with pytest.raises(sqlite3.Error) as caught:
        for _ in range(100):
            conn.execute("INSERT INTO t VALUES (?)", ("x" * 4000,))
    conn.close()
    assert "full" in str(caught.value)
    assert classify(caught.value) is Fault.FULL


def test_a_read_only_sqlite_file_is_read_only(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x TEXT)").connection.close()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.Error) as caught:
        conn.execute("INSERT INTO t VALUES ('x')")
    conn.close()
    assert classify(caught.value) is Fault.READ_ONLY


async def test_through_the_database_handle_sqlalchemy_wrappers_are_seen_through(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    db = Database(f"sqlite:///{path}")
    await db.upgrade()
    await db.close()
    db = Database(f"sqlite:///{path}")
    try:
        with pytest.raises(Exception) as caught:
            async with db.write() as conn:
                await conn.execute(sa.text("PRAGMA query_only = ON"))
                await conn.execute(webhook_tokens.insert().values(token="t", seen_at=sa.func.now()))
    finally:
        await db.close()
    assert classify(caught.value) is Fault.READ_ONLY


def test_other_errors_are_not_faults() -> None:
    assert classify(ValueError("bad input")) is None
    assert classify(OSError(75, "Value too large")) is None  # not raised by the database
    with pytest.raises(sqlite3.Error) as caught:
        sqlite3.connect(":memory:").execute("SELECT * FROM nowhere")
    assert classify(caught.value) is None


async def test_postgres_refused_connection_is_unavailable() -> None:
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/postgres")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            async with db.read() as conn:
                await conn.scalar(sa.select(1))
    finally:
        await db.close()
    assert classify(caught.value) is Fault.UNAVAILABLE


async def test_postgres_read_only_transaction_is_read_only(postgres_url: str) -> None:
    db = Database(postgres_url)
    await db.upgrade()
    try:
        with pytest.raises(Exception) as caught:
            async with db.write() as conn:
                await conn.execute(sa.text("SET TRANSACTION READ ONLY"))
                await conn.execute(webhook_tokens.insert().values(token="t", seen_at=sa.func.now()))
    finally:
        await db.close()
    assert classify(caught.value) is Fault.READ_ONLY
