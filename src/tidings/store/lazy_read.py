"""One read session shared by every read of a request, opened only if one is made.

The accept path of a send reads several things (the idempotency key, a template, a brand,
a routing strategy, a list's members), each only in some sends, and most sends read none
of them once the workspace defaults are cached (``store.default_cache``). Opening a read
for each on PostgreSQL took a pooled connection (its pre-ping and its rollback on return)
even for a read that ran no statement; :class:`LazyRead` takes one connection for all of
them, at the first statement, and none when there is none. On SQLite a read session costs
nothing until its first statement, so it is opened at once.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Any

from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.sql.base import Executable

from tidings.store.database import Conn, Database
from tidings.store.sqlite_backend import BufferedResult


class LazyRead:
    """A :class:`~tidings.store.database.Conn` for reads: ``async with LazyRead(db) as
    conn``; the session is opened by the first statement and ended with the block."""

    __slots__ = ("_conn", "_db", "_session")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._session: contextlib.AbstractAsyncContextManager[Conn] | None = None
        self._conn: Conn | None = None

    async def __aenter__(self) -> LazyRead:
        if self._db.is_sqlite:
            await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session, self._conn = self._session, None, None
        if session is not None:
            await session.__aexit__(exc_type, exc, tb)

    async def _open(self) -> Conn:
        if self._conn is None:
            session = self._db.read()
            self._conn = await session.__aenter__()
            self._session = session
        return self._conn

    @property
    def dialect(self) -> Dialect:
        # PostgreSQL's engine (made with the Database) has the dialect its connections use.
        return self._conn.dialect if self._conn is not None else self._db.engine.dialect

    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]] | BufferedResult:
        return await (await self._open()).execute(statement, parameters)

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return await (await self._open()).scalar(statement, parameters)


__all__ = ["LazyRead"]
