"""What a database failure means for whoever asked: unavailable, full, read-only, or other.

The one place that knows the drivers' errors (pysqlite's result codes, PostgreSQL's
SQLSTATEs, SQLAlchemy's wrappers and pool timeout, a refused connection). Callers ask
:func:`classify` and answer accordingly (the API: 503 with ``Retry-After``); an error it
does not recognise is ``None`` — a bug, not an outage.
"""

from __future__ import annotations

import enum
import sqlite3

import asyncpg
import sqlalchemy.exc


class Fault(enum.StrEnum):
    UNAVAILABLE = "unavailable"  # cannot connect, connection lost, pool exhausted, locked
    FULL = "full"  # out of disk (or of the file's page budget)
    READ_ONLY = "read_only"  # the database or the transaction refuses writes


class DatabaseUnavailable(Exception):
    """The database could not be reached (raised where a connection is taken, with the
    driver's error as its cause): a refused or timed-out connect says nothing else."""


# pysqlite's primary result codes (the low byte of the extended code).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 5, 6, 8
_SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_PROTOCOL = 10, 13, 14, 15
_SQLITE = {
    _SQLITE_FULL: Fault.FULL,
    _SQLITE_READONLY: Fault.READ_ONLY,
    _SQLITE_BUSY: Fault.UNAVAILABLE,
    _SQLITE_LOCKED: Fault.UNAVAILABLE,
    _SQLITE_IOERR: Fault.UNAVAILABLE,
    _SQLITE_CANTOPEN: Fault.UNAVAILABLE,
    _SQLITE_PROTOCOL: Fault.UNAVAILABLE,
}
_SQLITE_TEXT = {
    "database or disk is full": Fault.FULL,
    "attempt to write a readonly database": Fault.READ_ONLY,
    "database is locked": Fault.UNAVAILABLE,
    "disk i/o error": Fault.UNAVAILABLE,
    "unable to open database file": Fault.UNAVAILABLE,
}


def _postgres(sqlstate: str) -> Fault | None:
    if sqlstate == "53100":  # disk_full
        return Fault.FULL
    if sqlstate == "25006":  # read_only_sql_transaction (a standby, or read-only default)
        return Fault.READ_ONLY
    # 08: connection exception; 57P01-03: shutdown / crash / cannot connect now;
    # 53: insufficient resources (too many connections, out of memory);
    # 58: system error (an I/O error at the server).
    if sqlstate[:2] in ("08", "53", "58") or sqlstate in ("57P01", "57P02", "57P03"):
        return Fault.UNAVAILABLE
    return None


def _one(exc: BaseException) -> Fault | None:
    if isinstance(exc, DatabaseUnavailable | sqlalchemy.exc.TimeoutError):
        return Fault.UNAVAILABLE
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return Fault.UNAVAILABLE
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and (code & 0xFF) in _SQLITE:
            return _SQLITE[code & 0xFF]
        text = str(exc).lower()
        return next((fault for key, fault in _SQLITE_TEXT.items() if key in text), None)
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None)
        return _postgres(sqlstate) if isinstance(sqlstate, str) else None
    if isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError):
        return Fault.UNAVAILABLE
    # "connection is closed" / "cannot perform operation: another operation is in
    # progress" after a lost link; a DataError (a bad parameter) is a bug, not an outage.
    if isinstance(exc, asyncpg.exceptions.InterfaceError) and not isinstance(
        exc, asyncpg.exceptions.DataError
    ):
        return Fault.UNAVAILABLE if "connection" in str(exc).lower() else None
    return None


def classify(exc: BaseException) -> Fault | None:
    """The database fault behind ``exc``, looking through SQLAlchemy's wrapper (``orig``)
    and the chain of causes; ``None`` when it is not one."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        fault = _one(current)
        if fault is not None:
            return fault
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        orig = getattr(current, "orig", None)
        todo.extend([orig if isinstance(orig, BaseException) else None, current.__cause__])
        if not current.__suppress_context__:
            todo.append(current.__context__)
    return None
