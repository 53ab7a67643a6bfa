"""A per-process cache of one workspace default (the default brand, the default routing
strategy): what every ``/send`` without a choice of its own reads, and which changes rarely.

Every accepted send used to read both defaults from the database before its write: on
SQLite two hops to a reader thread, on PostgreSQL two pooled connections and their round
trips. A value read is now kept for :data:`CACHE_S` seconds, per database (an engine's
dialect object stands for its database, so two databases in one process, as in tests, never
see each other's values).

Freshness, the promise to callers:

* A write through this process's store functions (:meth:`DefaultCache.invalidate`, called
  by the functions that change what the default is or holds) forgets every cached value at
  once, and nothing read in the :data:`CACHE_S` seconds that follow is cached: a transaction
  that made the change, still uncommitted when another read ran, cannot leave the old value
  behind once it commits.
* A change made by another process (``tidings serve`` and ``tidings worker`` sharing a
  PostgreSQL database) is seen within :data:`CACHE_S` seconds.

When the value is due to be read again, the requests that want it meanwhile wait for the
one read under way instead of each reading it (they arrive together under load).
"""

from __future__ import annotations

import asyncio
import copy
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.engine import Dialect

from tidings.store.database import Conn

T = TypeVar("T")

CACHE_S = 1.0  # how long a value read is trusted; what another process's change may wait


class DefaultCache(Generic[T]):
    """One default, cached per database for ``ttl_s`` seconds (see the module's note)."""

    def __init__(self, ttl_s: float = CACHE_S) -> None:
        self._ttl_s = ttl_s
        self._entries: weakref.WeakKeyDictionary[Dialect, tuple[float, T]] = (
            weakref.WeakKeyDictionary()
        )
        # The read under way per database, and the generation it began in.
        self._reading: weakref.WeakKeyDictionary[Dialect, tuple[int, asyncio.Future[T]]] = (
            weakref.WeakKeyDictionary()
        )
        self._generation = 0
        self._held_until = 0.0

    def invalidate(self) -> None:
        """Forget the cached values, and cache nothing for the next ``ttl_s`` seconds."""
        self._generation += 1
        self._entries.clear()
        self._held_until = time.monotonic() + self._ttl_s

    async def get(self, conn: Conn, read: Callable[[Conn], Awaitable[T]]) -> T:
        """The cached value for ``conn``'s database, else ``read(conn)`` (then cached). The
        caller gets its own copy: changing it changes nothing cached."""
        key = conn.dialect
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self._ttl_s:
            return copy.deepcopy(entry[1])
        generation = self._generation
        under_way = self._reading.get(key)
        if under_way is not None and under_way[0] == generation:
            await asyncio.wait([under_way[1]])
            if not under_way[1].cancelled() and under_way[1].exception() is None:
                return copy.deepcopy(under_way[1].result())
            # That read failed (its connection's trouble, or its request gave up): read here.
        reading: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._reading[key] = (generation, reading)
        try:
            value = await read(conn)
        except BaseException:
            reading.cancel()
            raise
        finally:
            if self._reading.get(key, (0, None))[1] is reading:
                del self._reading[key]
        pristine = copy.deepcopy(value)
        reading.set_result(pristine)
        # Not when a write of this process came in between (its value may not be the one
        # read), nor while the last write's transaction may still be committing.
        if generation == self._generation and now >= self._held_until:
            self._entries[key] = (now, pristine)
        return value


__all__ = ["CACHE_S", "DefaultCache"]
