"""SQLite without the async driver's per-statement cost: statements run on threads that own
plain (sync) pysqlite connections, one hop to a thread per statement, and a whole group
commit (``Database.grouped``) in a single hop.

The async adapter (aiosqlite) makes about four round trips through the event loop for each
statement (cursor, execute, fetch, close). On a busy loop each of those waits its turn, so
a write transaction holding SQLite's one write lock across many statements held it for tens
of milliseconds. Here a statement is compiled, executed and fully fetched on the thread,
and the caller gets a buffered result: one round trip. A grouped batch of writes is run
entirely on the writer thread: its works are coroutines that only await their connection,
whose ``execute`` then completes at once, so they run to completion there without the loop.

Threads: one writer (writes are serialised anyway; ``Database`` also holds its write lock)
and a few readers; WAL lets readers proceed while the writer commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, CursorResult, Dialect, Engine, Row, RowMapping
from sqlalchemy.exc import InvalidRequestError, MultipleResultsFound, NoResultFound
from sqlalchemy.pool import NullPool, StaticPool
from sqlalchemy.sql.base import Executable

from tidings.store.appends import Appends, Batch

T = TypeVar("T")
AnyRow = Row[*tuple[Any, ...]]  # a row of any columns
log = logging.getLogger("tidings.store.sqlite")
READER_THREADS = 3
# Connections kept open for reads. A read gives its connection back after its statements
# (queued behind the others), so under load as many sessions hold one as there are
# requests in flight; opening one costs a connect and its pragmas, far more than a read.
IDLE_READERS = 64


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while one writer commits; NORMAL sync is durable across
    # process crashes (the WAL is fsynced at checkpoints) and far faster than FULL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Scalars(list[Any]):
    """The first column of each row (``Result.scalars()``), already fetched."""

    def all(self) -> list[Any]:
        return list(self)

    def first(self) -> Any:
        return self[0] if self else None

    def one(self) -> Any:
        if len(self) != 1:
            raise (
                NoResultFound("No row was found")
                if not self
                else MultipleResultsFound("Multiple rows were found when exactly one was required")
            )
        return self[0]


class BufferedResult:
    """A statement's result, fetched whole on the database thread: the subset of
    SQLAlchemy's ``CursorResult`` that Tidings uses, safe to read from any thread."""

    __slots__ = ("_inserted_primary_key", "_keys", "_next", "_rows", "returns_rows", "rowcount")

    def __init__(
        self,
        rows: list[AnyRow],
        keys: Sequence[str],
        rowcount: int,
        returns_rows: bool,
        inserted_primary_key: AnyRow | None,
    ) -> None:
        self._rows = rows
        self._keys = list(keys)
        self._next = 0
        self.rowcount = rowcount
        self.returns_rows = returns_rows
        self._inserted_primary_key = inserted_primary_key

    @property
    def inserted_primary_key(self) -> AnyRow | None:
        if self._inserted_primary_key is None:
            raise InvalidRequestError(
                "inserted_primary_key is only available for a single-row insert()"
            )
        return self._inserted_primary_key

    def keys(self) -> list[str]:
        return list(self._keys)

    def __iter__(self) -> Iterator[AnyRow]:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return iter(rows)

    def all(self) -> list[AnyRow]:
        return list(self)

    fetchall = all

    def fetchone(self) -> AnyRow | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def first(self) -> AnyRow | None:
        row = self.fetchone()
        self._next = len(self._rows)
        return row

    def one_or_none(self) -> AnyRow | None:
        rows = self.all()
        if len(rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return rows[0] if rows else None

    def one(self) -> AnyRow:
        row = self.one_or_none()
        if row is None:
            raise NoResultFound("No row was found when one was required")
        return row

    def scalar(self) -> Any:
        row = self.first()
        return None if row is None else row[0]

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalars(self) -> Scalars:
        return Scalars(row[0] for row in self)

    def mappings(self) -> list[RowMapping]:
        return [row._mapping for row in self]

    def close(self) -> None:
        self._next = len(self._rows)


def execute(conn: Connection, statement: Executable, parameters: Any = None) -> BufferedResult:
    """Run ``statement`` and fetch everything the caller may ask of its result."""
    result: CursorResult[Any] = conn.execute(statement, parameters)
    if result.returns_rows:
        keys = list(result.keys())
        rows: list[AnyRow] = list(result.all())
        return BufferedResult(rows, keys, result.rowcount, True, None)
    ipk = None
    context = result.context
    if context.isinsert and not context.executemany:
        ipk = result.inserted_primary_key
    return BufferedResult([], (), result.rowcount, False, ipk)


def run_batches(conn: Connection, batches: list[Batch]) -> None:
    """Write deferred appends (``tidings.store.appends``): one executemany each."""
    for insert, rows in batches:
        conn.execute(insert, rows)


def _resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class Workers:
    """Threads that run blocking calls for the event loop, one queue for all of them."""

    def __init__(self, name: str, threads: int) -> None:
        self._name = name
        self._count = threads
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def _ensure(self) -> None:
        if not self._threads:
            for n in range(self._count):
                thread = threading.Thread(target=self._run, name=f"{self._name}-{n}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` on a worker thread; the future resolves on the calling loop."""
        self._ensure()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, args, future, loop))
        return future

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)`` on a worker thread, not waited for (errors are logged)."""
        self._ensure()
        self._jobs.put((fn, args, None, None))

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, future, loop = job
            try:
                value, ok = fn(*args), True
            except BaseException as exc:
                value, ok = exc, False
                if future is None:
                    log.exception("background database call failed", exc_info=exc)
            if future is not None:
                # RuntimeError: the loop is closed, nobody is waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, future, ok, value)
            del job, fn, args, future, loop, value

    async def stop(self) -> None:
        """Finish the queued jobs, then end the threads."""
        threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            await asyncio.to_thread(thread.join)


class _Session:
    """One reader's connection for the span of a ``Database.read()``: taken from the idle
    ones (or opened) on first use, rolled back and given back when the read ends."""

    __slots__ = ("backend", "conn", "done", "lock")

    def __init__(self, backend: SqliteBackend) -> None:
        self.backend = backend
        self.conn: Connection | None = None
        self.done = False
        # Held while the connection is in use on a thread: a read cancelled mid-statement
        # must not have its release run beside the statement on another reader thread.
        self.lock = threading.Lock()

    def execute(self, statement: Executable, parameters: Any) -> BufferedResult:
        with self.lock:
            if self.conn is None:
                self.conn = self.backend.take_reader()
            try:
                return execute(self.conn, statement, parameters)
            finally:
                if self.done:  # the read ended (cancelled) while this statement was queued
                    self._give_back()

    def release(self) -> None:
        with self.lock:
            self.done = True
            self._give_back()

    def _give_back(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self.backend.give_back_reader(conn)


class ThreadConn:
    """What store functions get for SQLite: ``await conn.execute(stmt)`` is one hop to the
    thread that owns the connection, and returns a fully fetched result.

    With ``appends`` (the writer's connection), rows appended to it are collected and go
    to the thread with the next statement that must see them, or with the commit."""

    __slots__ = ("_call", "_dialect", "appends", "used")

    def __init__(
        self,
        dialect: Dialect,
        call: Callable[[Executable, Any, list[Batch]], Awaitable[BufferedResult]],
        appends: Appends | None = None,
    ) -> None:
        self._dialect = dialect
        self._call = call
        self.appends = appends
        self.used = False

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> BufferedResult:
        self.used = True
        due = self.appends.due(statement) if self.appends else []
        return await self._call(statement, parameters, due)

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return (await self.execute(statement, parameters)).scalar()


class InlineConn:
    """The writer's connection seen from a work running on the writer thread itself:
    ``execute`` runs at once, so awaiting it never suspends. Appended rows are collected
    (``appends``) and written before a statement that must see them, or by ``flush``."""

    __slots__ = ("_conn", "appends")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.appends = Appends()

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> BufferedResult:
        if self.appends:
            run_batches(self._conn, self.appends.due(statement))
        return execute(self._conn, statement, parameters)

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return (await self.execute(statement, parameters)).scalar()

    def flush(self) -> None:
        """Write every collected row (before the commit)."""
        run_batches(self._conn, self.appends.take_all())


def drive(work: Callable[[InlineConn], Awaitable[T]], conn: InlineConn) -> T:
    """Run ``work`` to completion here and now: it may await only its connection."""
    steps = work(conn).__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        value: T = done.value
        return value
    steps.close()
    raise RuntimeError(
        "a Database.grouped() work awaited something other than its connection; "
        "it must touch nothing outside the database"
    )


Outcome = tuple[bool, Any]  # (True, result) or (False, exception)
GroupWork = tuple[Callable[[InlineConn], Awaitable[Any]], contextvars.Context]


class SqliteBackend:
    """The threads and connections behind ``Database`` for SQLite."""

    def __init__(self, url: str) -> None:
        sync_url = sa.make_url(url).set(drivername="sqlite+pysqlite")
        self.memory = sync_url.database in (None, "", ":memory:") or "mode=memory" in str(sync_url)
        # Connections are opened and kept by this class (NullPool: the engine keeps none).
        # An in-memory database exists once per connection: there, everything shares one.
        # hide_parameters: errors (raised to callers, or logged by the threads below) never
        # carry a statement's values.
        self.engine: Engine = sa.create_engine(
            sync_url,
            poolclass=StaticPool if self.memory else NullPool,
            connect_args={"check_same_thread": False},
            hide_parameters=True,
        )
        event.listen(self.engine, "connect", sqlite_pragmas)
        self.writer = Workers("tidings-sqlite-writer", 1)
        self.readers = (
            self.writer if self.memory else Workers("tidings-sqlite-reader", READER_THREADS)
        )
        self._writer_conn: Connection | None = None
        self._idle: deque[Connection] = deque()

    @property
    def dialect(self) -> Dialect:
        return self.engine.dialect

    # -- writes (on the writer thread) ----------------------------------------------------

    def _wconn(self) -> Connection:
        if self._writer_conn is None:
            self._writer_conn = self.engine.connect()
        return self._writer_conn

    def _write_execute(
        self, statement: Executable, parameters: Any, due: list[Batch]
    ) -> BufferedResult:
        conn = self._wconn()
        run_batches(conn, due)
        return execute(conn, statement, parameters)

    def write_conn(self) -> ThreadConn:
        def call(
            statement: Executable, parameters: Any, due: list[Batch]
        ) -> Awaitable[BufferedResult]:
            return self.writer.call(self._write_execute, statement, parameters, due)

        return ThreadConn(self.dialect, call, Appends())

    def _end(self, commit: bool, due: list[Batch]) -> None:
        if not commit:
            if self._writer_conn is not None:
                self._writer_conn.rollback()
            return
        conn = self._wconn() if due else self._writer_conn
        if conn is None:
            return
        try:
            run_batches(conn, due)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    async def end(self, conn: ThreadConn, *, commit: bool) -> None:
        """Commit (or roll back) the transaction that ``conn``'s statements began; its
        collected appends are written first, in the same hop, or dropped."""
        due = conn.appends.take_all() if conn.appends is not None else []
        if conn.used or (commit and due):
            await self.writer.call(self._end, commit, due if commit else [])

    def _group(self, works: list[GroupWork]) -> list[Outcome]:
        conn = self._wconn()
        inline = InlineConn(conn)
        try:
            results = [ctx.run(drive, work, inline) for work, ctx in works]
            inline.flush()
            conn.commit()
        except Exception:
            inline.appends.clear()  # the rows of the failed group go with it
            conn.rollback()
        else:
            return [(True, result) for result in results]
        # Someone in the group failed: give each its own transaction.
        outcomes: list[Outcome] = []
        for work, ctx in works:
            try:
                result = ctx.run(drive, work, inline)
                inline.flush()
                conn.commit()
            except Exception as exc:
                inline.appends.clear()
                conn.rollback()
                outcomes.append((False, exc))
            else:
                outcomes.append((True, result))
        return outcomes

    async def group(self, works: list[GroupWork]) -> list[Outcome]:
        """Run ``works`` in one transaction on the writer thread (each alone, if any fails)."""
        return await self.writer.call(self._group, works)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in a transaction of its own, on a fresh connection, on the writer thread."""

        def run() -> T:
            with self.engine.begin() as conn:
                return fn(conn)

        return await self.writer.call(run)

    # -- reads (on the reader threads) ----------------------------------------------------

    def take_reader(self) -> Connection:
        try:
            return self._idle.pop()
        except IndexError:
            return self.engine.connect()

    def give_back_reader(self, conn: Connection) -> None:
        conn.rollback()
        if len(self._idle) < IDLE_READERS:
            self._idle.append(conn)
        else:
            conn.close()

    def read_session(self) -> tuple[ThreadConn, _Session]:
        session = _Session(self)

        def call(statement: Executable, parameters: Any, _due: Any) -> Awaitable[BufferedResult]:
            return self.readers.call(session.execute, statement, parameters)

        return ThreadConn(self.dialect, call), session

    def end_read(self, conn: ThreadConn, session: _Session) -> None:
        """Give the connection back after the read (not waited for: nothing depends on it,
        and a later statement of this session, if any, gives it back itself)."""
        if conn.used:
            self.readers.post(session.release)

    # -- the end --------------------------------------------------------------------------

    async def close(self) -> None:
        await self.readers.stop()
        if self.readers is not self.writer:
            await self.writer.stop()
        while self._idle:
            self._idle.pop().close()
        if self._writer_conn is not None:
            conn, self._writer_conn = self._writer_conn, None
            conn.close()
        self.engine.dispose()
