"""The commit of ``POST /send``: the sends accepted by concurrent requests, written together.

Each accepted send writes its idempotency key (if any), its request record (if it answers
a request id), its messages with their tags and first history entries, their first status
events, and a queue notification. Written one request at a time that was about seven
statements per request even inside a group commit, each a round trip to PostgreSQL (and a
statement's worth of SQLAlchemy under the GIL on SQLite's writer thread). Here the sends
that arrive while the previous commit runs are gathered and written in one transaction (on
SQLite as one ``Database.grouped`` work; on PostgreSQL on a connection of its own, see
:meth:`Committer._gathered`): one multi-row statement per table for all of them.

Nothing changes for a single send: it is committed, with everything it wrote, before its
request is answered, and what the database refuses is refused to that request alone — when
a gathered commit fails, every send in it is committed again on its own (in one group
commit, which isolates the failing one again), so one bad send (an idempotency key a
concurrent request took first) costs the others nothing but the retry.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidings.store import idempotency, requests
from tidings.store import messages as store
from tidings.store.database import Conn, Database
from tidings.store.status_feed import publish_new

# A gathered commit takes sends until it holds this many messages (a bigger send goes
# alone) or this many sends; the rest wait for the next one.
MAX_MESSAGES = 1000
MAX_SENDS = 256
# An IN list of a whole big list send would pass the database's limit on bound parameters.
_PUBLISH_SLICE = 1000


@dataclass(frozen=True, slots=True)
class Send:
    """What one accepted ``/send`` writes."""

    new: list[store.NewMessage]
    first: list[store.HistoryEntry]
    request_id: str
    # A request record, for an answer by request id (several recipients, or a group).
    record_request: bool
    idempotency_key: str | None = None
    request_hash: str = ""
    answer: dict[str, Any] | None = None
    key_expiry: datetime | None = None


async def write(conn: Conn, sends: list[Send]) -> list[idempotency.StoredAnswer | None]:
    """Write ``sends`` in ``conn``'s transaction. For each, None, or the answer already
    stored for its idempotency key (then it writes nothing: the caller replays)."""
    outcomes: list[idempotency.StoredAnswer | None] = []
    kept: list[Send] = []
    for send in sends:
        if send.idempotency_key:
            # Also sees a key saved by an earlier send of this same commit.
            stored = await idempotency.find(conn, send.idempotency_key)
            if stored is not None:
                outcomes.append(stored)
                continue
            assert send.key_expiry is not None and send.answer is not None
            await idempotency.save(
                conn,
                send.idempotency_key,
                request_hash=send.request_hash,
                status_code=202,
                body=send.answer,
                expires_at=send.key_expiry,
            )
        outcomes.append(None)
        kept.append(send)
    if not kept:
        return outcomes
    await requests.record_many(conn, [(s.request_id, len(s.new)) for s in kept if s.record_request])
    new = [m for s in kept for m in s.new]
    inserted = await store.insert(conn, new, [h for s in kept for h in s.first])
    ids = [m.id for m in new]
    for at in range(0, len(ids), _PUBLISH_SLICE):
        # What insert stored is what is published: no second read of the rows.
        await publish_new(conn, ids[at : at + _PUBLISH_SLICE], inserted[at : at + _PUBLISH_SLICE])
    await store.notify_queue(conn)
    return outcomes


_Waiting = tuple[Send, "asyncio.Future[idempotency.StoredAnswer | None]"]


class Committer:
    """Gathers the sends of one database and commits them (see the module's note)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: deque[_Waiting] = deque()
        self._task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def commit(self, send: Send) -> idempotency.StoredAnswer | None:
        """Returns once ``send`` is committed (None), or with the answer already stored
        for its idempotency key (nothing written); raises what its commit raised."""
        future: asyncio.Future[idempotency.StoredAnswer | None] = self._loop.create_future()
        self._pending.append((send, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._pending:
            batch = self._take()
            if not batch:
                continue
            try:
                await self._commit(batch)
            except BaseException as exc:
                # Cancelled (the loop is closing): nobody is left waiting but these.
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise

    def _take(self) -> list[_Waiting]:
        """The next sends to commit together, oldest first; a request given up on before
        its turn (cancelled) is not committed."""
        batch: list[_Waiting] = []
        messages = 0
        while self._pending and len(batch) < MAX_SENDS:
            send, future = self._pending[0]
            if batch and messages + len(send.new) > MAX_MESSAGES:
                break
            self._pending.popleft()
            if future.cancelled():
                continue
            batch.append((send, future))
            messages += len(send.new)
        return batch

    async def _commit(self, batch: list[_Waiting]) -> None:
        sends = [send for send, _ in batch]

        async def work(conn: Conn) -> list[idempotency.StoredAnswer | None]:
            return await write(conn, sends)

        try:
            outcomes = await self._gathered(work)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            # Each on its own again, so that only the one the database refuses fails.
            await asyncio.gather(*(self._alone(send, future) for send, future in batch))
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)

    async def _gathered(
        self, work: Callable[[Conn], Awaitable[list[idempotency.StoredAnswer | None]]]
    ) -> list[idempotency.StoredAnswer | None]:
        """Run ``work`` in a transaction of its own. SQLite: in the database's group commit
        (one trip to its one writer thread, with the other writes waiting). PostgreSQL: on
        a pooled connection of its own, beside the group commit: that one runs its works
        one after another on one connection, a round trip per statement, so under load a
        send waited there behind hundreds of the dispatcher's statements; this work is a
        group commit already."""
        if self._db.is_sqlite:
            return await self._db.grouped(work)
        async with self._db.write() as conn:
            return await work(conn)

    async def _alone(
        self, send: Send, future: asyncio.Future[idempotency.StoredAnswer | None]
    ) -> None:
        async def work(conn: Conn) -> list[idempotency.StoredAnswer | None]:
            return await write(conn, [send])

        try:
            (outcome,) = await self._gathered(work)
        except Exception as exc:
            _settle(future, exc=exc)
        else:
            _settle(future, outcome)


def _settle(
    future: asyncio.Future[idempotency.StoredAnswer | None],
    outcome: idempotency.StoredAnswer | None = None,
    *,
    exc: BaseException | None = None,
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(outcome)


_COMMITTERS: weakref.WeakKeyDictionary[Database, Committer] = weakref.WeakKeyDictionary()


async def commit(db: Database, send: Send) -> idempotency.StoredAnswer | None:
    """Commit ``send`` on ``db``, together with the sends that arrive meanwhile."""
    committer = _COMMITTERS.get(db)
    if committer is None or committer.loop is not asyncio.get_running_loop():
        committer = _COMMITTERS[db] = Committer(db)
    return await committer.commit(send)


__all__ = ["MAX_MESSAGES", "MAX_SENDS", "Committer", "Send", "commit", "write"]
