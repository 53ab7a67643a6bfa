"""Deferred appends: rows for insert-only tables, written together just before a commit.

A delivered message adds several history entries and status events, each of which used to
be one INSERT of its own. Inside a write transaction, ``await append(conn, table, row)``
only collects the row; the transaction's connection writes every table's collected rows
with ONE executemany per table just before it commits (or before any statement that could
see them, see :meth:`Appends.due`). A group commit of many writes thus costs one INSERT per
table instead of one per row.

Guarantees:

* rows of one table are inserted in the order they were appended (so their ids grow in
  that order); a statement that touches a table with collected rows (a read of history, an
  ``INSERT … ON CONFLICT`` into it, …) writes them first, so a work reads its own writes;
  a statement that cannot be analysed cheaply (``text()``, a DELETE, anything but a plain
  SELECT/INSERT/UPDATE) writes everything first;
* on rollback the collected rows are dropped with the transaction (``clear``);
* where a connection cannot defer (a plain SQLAlchemy connection, a read), the row is
  inserted at once, as before.

The connections of ``tidings.store.database`` and ``tidings.store.sqlite_backend`` carry an
``appends`` attribute (an :class:`Appends`, or None where they cannot defer) and run the
batches :meth:`Appends.due` / :meth:`Appends.take_all` give them, each its own way.
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.base import Executable

Row = dict[str, Any]


class Executes(Protocol):
    """What ``append`` needs of a connection (every ``Conn`` is one)."""

    async def execute(self, statement: Executable, parameters: Any = None) -> Any: ...


Batch = tuple[sa.Insert, list[Row]]  # one executemany

# The insert of each table, built once (SQLAlchemy then reuses its compiled form).
_INSERTS: dict[sa.Table, sa.Insert] = {}
# The tables each statement touches (None: unknown, write everything first); per statement
# object, so that statements built once at import are analysed once.
_TOUCHED: weakref.WeakKeyDictionary[Executable, frozenset[sa.Table] | None] = (
    weakref.WeakKeyDictionary()
)
_ANALYSED = (sa.Select, sa.Insert, sa.Update)


def insert_of(table: sa.Table) -> sa.Insert:
    insert = _INSERTS.get(table)
    if insert is None:
        insert = _INSERTS[table] = table.insert()
    return insert


def touched(statement: Executable) -> frozenset[sa.Table] | None:
    """Every table ``statement`` names (its subqueries and aliases included), or None when
    that is not known cheaply: text, DELETE (rows appended for it may reference what it
    deletes), DDL, anything else."""
    try:
        return _TOUCHED[statement]
    except KeyError:
        pass
    except TypeError:  # not weakly referenceable: analysed every time
        return _analyse(statement)
    tables = _analyse(statement)
    _TOUCHED[statement] = tables
    return tables


def _analyse(statement: Executable) -> frozenset[sa.Table] | None:
    if not isinstance(statement, _ANALYSED):
        return None
    tables: set[sa.Table] = set()
    for element in visitors.iterate(statement):
        if isinstance(element, sa.Table):
            tables.add(element)
        elif isinstance(element, sa.TextClause):
            return None  # text inside: it could name any table
    return frozenset(tables)


class Appends:
    """The rows one write transaction has collected, per table, in append order."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[sa.Table, list[Row]] = {}

    def __bool__(self) -> bool:
        return bool(self._rows)

    def add(self, table: sa.Table, row: Row) -> None:
        rows = self._rows.get(table)
        if rows is None:
            self._rows[table] = [row]
        else:
            rows.append(row)

    def due(self, statement: Executable) -> list[Batch]:
        """The batches to write before ``statement`` runs (taken out of this collection)."""
        if not self._rows:
            return []
        tables = touched(statement)
        if tables is None:
            return self.take_all()
        hit = [table for table in self._rows if table in tables]
        return [batch for table in hit for batch in _batches(table, self._rows.pop(table))]

    def take_all(self) -> list[Batch]:
        """Every collected row as batches (tables in the order of their first row)."""
        rows, self._rows = self._rows, {}
        return [
            batch for table, table_rows in rows.items() for batch in _batches(table, table_rows)
        ]

    def clear(self) -> None:
        """The transaction rolled back: its rows are dropped with it."""
        self._rows = {}


def _batches(table: sa.Table, rows: list[Row]) -> list[Batch]:
    """One executemany per run of rows with the same columns (an executemany binds every
    row by the first one's keys), in order."""
    insert = insert_of(table)
    batches: list[Batch] = []
    keys: Any = None
    for row in rows:
        row_keys = row.keys()
        if batches and row_keys == keys:
            batches[-1][1].append(row)
        else:
            batches.append((insert, [row]))
            keys = row_keys
    return batches


async def append(conn: Executes, table: sa.Table, row: Row) -> None:
    """Add ``row`` to the insert-only ``table`` in ``conn``'s transaction: collected and
    written before the commit where ``conn`` can defer, else inserted now. Nothing may be
    read back from it (no id) but by a later statement, which sees it."""
    appends: Appends | None = getattr(conn, "appends", None)
    if appends is not None:
        appends.add(table, row)
        return
    await conn.execute(insert_of(table), row)
