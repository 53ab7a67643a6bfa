"""Many lookups of one kind, asked at about the same moment, answered by one query.

The dispatcher checks each message's recipient against the suppression list at the last
moment before its send. With dozens of sends starting in the same turn of the event loop,
one ``SELECT … WHERE address = ?`` each is dozens of trips to a database thread (or pooled
connection). A :class:`Coalescer` collects the keys asked for until the loop has run
everything that was ready, then asks once for all of them (``… WHERE address IN (…)``): each
caller still gets an answer read after it asked, so nothing is staler than before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
# Keys of one query at most (an IN list stays well inside every database's limits).
MAX_KEYS = 500


class Coalescer(Generic[K, V]):
    """``await get(key)``: the value ``fetch_many`` gives ``key``, or None if absent.

    ``fetch_many`` takes the keys asked for and returns the values found; a failure of it
    is every waiting caller's failure."""

    def __init__(self, fetch_many: Callable[[list[K]], Awaitable[Mapping[K, V]]]) -> None:
        self._fetch_many = fetch_many
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, key: K) -> V | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        self._waiting.setdefault(key, []).append(future)
        if not self._scheduled:
            self._scheduled = True
            # After every callback already ready has run: those are the other askers.
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, {}
        keys = list(waiting)
        for start in range(0, len(keys), MAX_KEYS):
            chunk = {key: waiting[key] for key in keys[start : start + MAX_KEYS]}
            task = asyncio.get_running_loop().create_task(self._answer(chunk))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, waiting: dict[K, list[asyncio.Future[V | None]]]) -> None:
        try:
            found = await self._fetch_many(list(waiting))
        except BaseException as exc:
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for key, futures in waiting.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(key))
