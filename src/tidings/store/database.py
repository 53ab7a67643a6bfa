"""The database handle: SQLite tuned for a single busy process (WAL), or PostgreSQL.

PostgreSQL goes through SQLAlchemy's async engine (asyncpg). SQLite goes through threads
that own plain pysqlite connections (see ``tidings.store.sqlite_backend``): the async
adapter's per-statement round trips through the event loop made SQLite writes slow and held
its one write lock long. Store functions see either as a ``Conn``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import asyncpg  # no stubs (see pyproject); only its error classes are used
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

from tidings.store import migrate
from tidings.store.appends import Appends
from tidings.store.errors import DatabaseUnavailable
from tidings.store.sqlite_backend import BufferedResult, SqliteBackend, sqlite_pragmas

T = TypeVar("T")
MAX_GROUP = 256
# PostgreSQL connections a process keeps, may open beyond them, and renews after (seconds).
POOL_SIZE = 10
POOL_OVERFLOW = 20
POOL_RECYCLE_S = 1800
# How often an idle LISTEN connection is checked (a restarted server closes it quietly).
LISTEN_CHECK_S = 5.0


def is_database_error(exc: BaseException) -> bool:
    """An error from the database or the road to it (not a bug in the caller)."""
    return isinstance(
        exc,
        sa_exc.SQLAlchemyError | asyncpg.PostgresError | asyncpg.InterfaceError | sqlite3.Error,
    )


class Conn(Protocol):
    """A connection as store functions use it: SQLAlchemy's ``AsyncConnection``
    (PostgreSQL), or the SQLite backend's thread connection (fully fetched results)."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]] | BufferedResult: ...

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any: ...


Work = Callable[[Conn], Awaitable[Any]]


class PgWriteConn:
    """A PostgreSQL connection in a write transaction: SQLAlchemy's, plus deferred appends
    (``tidings.store.appends``), written before a statement that must see them or by
    ``flush`` before the commit."""

    __slots__ = ("_conn", "appends")

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.appends = Appends()

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        if self.appends:
            for insert, rows in self.appends.due(statement):
                await self._conn.execute(insert, rows)
        return await self._conn.execute(statement, parameters)

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return (await self.execute(statement, parameters)).scalar()

    async def flush(self) -> None:
        for insert, rows in self.appends.take_all():
            await self._conn.execute(insert, rows)


def normalise_url(url: str) -> str:
    """Accept the URLs people write (``sqlite:///x.db``, ``postgresql://``) for async drivers."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    if url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    return url


class Database:
    """Owns the connections. SQLite allows one writer at a time, so in-process writes queue
    on a lock instead of failing on ``database is locked``; PostgreSQL needs no such lock."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self._engine: AsyncEngine | None = None
        self._sqlite = SqliteBackend(self.url) if self.is_sqlite else None
        if self._sqlite is None:
            # hide_parameters: a database error's text (logged, or shown in a traceback)
            # must not carry the values of a statement, which hold what a message carried.
            # No pre-ping: on asyncpg it is three round trips (BEGIN, ``;``, ROLLBACK) on
            # every checkout, the largest share of a worker's socket writes. A connection
            # that died with its server fails its first statement instead: SQLAlchemy then
            # drops the whole pool (a disconnect invalidates every older connection) and
            # the caller's fault handling retries, as it does for any outage.
            # pool_size: the connections kept. Overflow ones are closed on return, and a new
            # one costs a TCP + SSL-attempt + auth handshake and an empty prepared-statement
            # cache; but every kept one counts against the server's max_connections (100 by
            # default) in each process: an API and three workers keep 40.
            self._engine = create_async_engine(
                self.url,
                pool_size=POOL_SIZE,
                max_overflow=POOL_OVERFLOW,
                pool_pre_ping=False,
                pool_recycle=POOL_RECYCLE_S,
                hide_parameters=True,
            )
            event.listen(self._engine.sync_engine.pool, "checkout", _drop_if_closed)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._pending: list[tuple[Work, asyncio.Future[Any], contextvars.Context]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def engine(self) -> AsyncEngine:
        """An async engine on the database. Tidings itself uses it only for PostgreSQL; for
        SQLite one is made on demand (its own connections, like another process's)."""
        if self._engine is None:
            self._engine = create_async_engine(self.url, hide_parameters=True)
            event.listen(self._engine.sync_engine, "connect", sqlite_pragmas)
        return self._engine

    async def listen(
        self,
        channel: str,
        on_notify: Callable[[], None],
        stop: asyncio.Event,
        on_alive: Callable[[], None] | None = None,
    ) -> None:
        """PostgreSQL: call ``on_notify`` on every NOTIFY of ``channel`` until ``stop``. Workers
        in other processes are woken this way the moment work is committed.

        ``on_alive`` is called once listening and after each check of the connection (every
        ``LISTEN_CHECK_S``). A lost connection raises ``ConnectionError`` for the caller to
        listen again; ``on_notify`` is called once on connecting, since whatever was
        committed while nobody listened woke no one."""
        if self._sqlite is not None:
            return  # one process owns a SQLite file; it wakes itself in memory
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            lost = asyncio.Event()

            def callback(*_args: Any) -> None:
                on_notify()

            def terminated(*_args: Any) -> None:
                lost.set()

            await driver.add_listener(channel, callback)
            driver.add_termination_listener(terminated)
            try:
                on_notify()
                while not stop.is_set():
                    if on_alive is not None:
                        on_alive()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(LISTEN_CHECK_S):
                            await _first(stop.wait(), lost.wait())
                    if lost.is_set() or driver.is_closed():
                        raise ConnectionError(f"the LISTEN connection for {channel} was lost")
                    if not stop.is_set():
                        # A server that went away without a word is noticed here.
                        async with asyncio.timeout(LISTEN_CHECK_S):
                            await driver.execute("SELECT 1")
            finally:
                driver.remove_termination_listener(terminated)
                if not driver.is_closed():
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(1.0):
                            await driver.remove_listener(channel, callback)

    async def ping(self, timeout_s: float) -> None:
        """A cheap round trip (``SELECT 1``); raises if the database does not answer in time."""
        async with asyncio.timeout(timeout_s):
            async with self.read() as conn:
                await conn.scalar(sa.select(1))

    @property
    def dialect(self) -> str:
        if self._sqlite is not None:
            return self._sqlite.dialect.name
        return self.engine.dialect.name

    async def upgrade(self) -> None:
        if self._sqlite is None:
            await migrate.upgrade(self.engine)
            return
        assert self._write_lock is not None
        async with self._write_lock:
            await self._sqlite.run_sync(migrate.upgrade_connection)

    @contextlib.asynccontextmanager
    async def _pg(self, *, begin: bool) -> AsyncIterator[AsyncConnection]:
        """A pooled PostgreSQL connection (in a transaction with ``begin``). A refused or
        timed-out connect surfaces from asyncpg as a bare ``OSError``/``TimeoutError``; it is
        named here, where it can only mean the database is out of reach."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                conn = await stack.enter_async_context(
                    self.engine.begin() if begin else self.engine.connect()
                )
            except (OSError, TimeoutError) as exc:
                raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc
            if not begin:
                # Reads run in autocommit: under READ COMMITTED a transaction gives its
                # statements no common snapshot anyway, and it would cost a BEGIN and a
                # ROLLBACK round trip each. Set on the adapter only (no I/O); the pool sets
                # the default back when the connection is returned.
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        if self._sqlite is None:
            async with self._pg(begin=False) as conn:
                yield conn
            return
        reader, session = self._sqlite.read_session()
        try:
            yield reader
        finally:
            self._sqlite.end_read(reader, session)

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        """A transaction that commits on success and rolls back on error (appended rows,
        ``tidings.store.appends``, are written just before the commit or dropped)."""
        if self._sqlite is None or self._write_lock is None:
            async with self._pg(begin=True) as conn:
                wrapped = PgWriteConn(conn)
                yield wrapped
                await wrapped.flush()
            return
        async with self._write_lock:
            writer = self._sqlite.write_conn()
            try:
                yield writer
            except BaseException:
                await self._sqlite.end(writer, commit=False)
                raise
            await self._sqlite.end(writer, commit=True)

    async def grouped(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction shared with whatever other writes are waiting.

        Group commit: while one transaction commits, the writes that arrive queue up and
        then commit together, so a burst of small writes costs a few commits instead of one
        each. ``work`` must touch nothing outside the database before the commit: it may be
        run a second time, alone, if another write in its group fails (then only the failing
        one sees its exception); on SQLite it runs on the database's thread and may await
        nothing but its connection. Returns once ``work``'s changes are committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future, contextvars.copy_context()))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
            batch = [entry for entry in batch if not entry[1].cancelled()]
            if not batch:
                continue
            if self._sqlite is not None:
                await self._flush_sqlite(self._sqlite, batch)
                continue
            try:
                results = []
                async with self.write() as conn:
                    for work, _, _ in batch:
                        results.append(await work(conn))
            except Exception:
                # Someone in the group failed: give each its own transaction.
                for work, future, _ in batch:
                    await self._run_alone(work, future)
                continue
            for (_, future, _), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _flush_sqlite(
        self, sqlite: SqliteBackend, batch: list[tuple[Work, asyncio.Future[Any], Any]]
    ) -> None:
        """The whole group in one trip to the writer thread."""
        assert self._write_lock is not None
        try:
            async with self._write_lock:
                outcomes = await sqlite.group([(work, ctx) for work, _, ctx in batch])
        except Exception as exc:  # the group could not run at all
            outcomes = [(False, exc)] * len(batch)
        for (_, future, _), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def _run_alone(self, work: Work, future: asyncio.Future[Any]) -> None:
        try:
            async with self.write() as conn:
                result = await work(conn)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        if self._sqlite is not None:
            await self._sqlite.close()
        if self._engine is not None:
            await self._engine.dispose()


def _drop_if_closed(_dbapi: Any, record: Any, _proxy: Any) -> None:
    """The pre-ping without a round trip: a connection whose server closed it (a restart,
    an admin's terminate; asyncpg notices the hang-up at once) is not handed out but
    replaced. One that died without a word fails its first statement instead."""
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise sa_exc.DisconnectionError("the database closed this connection")


async def _first(*waits: Awaitable[Any]) -> None:
    """Wait until the first of ``waits`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
