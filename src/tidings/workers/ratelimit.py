"""Per-configuration send rate limits and the pauses providers ask for, behind one interface.

* :class:`SharedLimiter` (PostgreSQL, any number of workers): one token bucket per provider
  configuration in the database (``store.rate_buckets``), so a configuration's
  ``rate_limit`` holds for the whole cluster, and a 420/429 pause set by one worker holds
  every worker until the time the provider gave.
* :class:`LocalLimiter` (SQLite, one process): the bucket and the pause in memory.

A send over the limit or during a pause is not dropped: the dispatcher puts it back in the
queue for when the bucket will have a token or the pause ends, without spending an attempt.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from tidings.store import rate_buckets
from tidings.store.clock import utcnow
from tidings.store.database import Database

log = structlog.get_logger("tidings.ratelimit")

_PER = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
# Sends held by a pause come back spread over this much, so they do not all ask at once.
PAUSE_JITTER_S = 0.25
# At most this many waiting sends are served by one database reservation.
MAX_GROUP = 256


@dataclass(frozen=True, slots=True)
class Reservation:
    """The answer to "may I send now?": yes (``wait_s == 0``), or the seconds to wait.
    ``paused_until`` is set when the wait is a pause the provider asked for."""

    wait_s: float = 0.0
    paused_until: datetime | None = None


GO = Reservation()


class Limiter(Protocol):
    async def reserve(self, key: str, limit: Mapping[str, Any] | None) -> Reservation:
        """One token of ``key``'s bucket (``limit`` is the configuration's ``rate_limit``;
        None: no limit, only a pause can hold the send)."""
        ...

    async def pause(self, key: str, until: datetime) -> datetime:
        """The provider asked to wait until ``until``: hold every send of ``key`` until then.
        Returns the pause in force (a later one already set is kept)."""
        ...


def per_second(limit: Mapping[str, Any] | None) -> float | None:
    """Tokens a second for a stored ``rate_limit`` (``{"rate": 20, "period": "second"}``)."""
    if not limit:
        return None
    return float(limit["rate"]) / _PER[str(limit.get("period", "second"))]


def capacity(rate: float) -> float:
    """At most one second's worth of burst (and at least one token)."""
    return max(1.0, rate)


def limiter_for(db: Database) -> Limiter:
    """Shared through the database when other processes may send too; else in memory."""
    return LocalLimiter() if db.is_sqlite else SharedLimiter(db)


def _paused(until: datetime, now: datetime) -> Reservation:
    wait = (until - now).total_seconds() + random.uniform(0, PAUSE_JITTER_S)
    return Reservation(wait_s=max(wait, 0.001), paused_until=until)


class LocalLimiter:
    """This process's buckets and pauses: enough when one process owns the database."""

    def __init__(self) -> None:
        # key -> (tokens, last refill on the monotonic clock)
        self._buckets: dict[str, tuple[float, float]] = {}
        # key -> the latest time a refused send was told to come back (monotonic clock)
        self._backlog: dict[str, float] = {}
        self._pauses: dict[str, datetime] = {}

    async def reserve(self, key: str, limit: Mapping[str, Any] | None) -> Reservation:
        until = self._pauses.get(key)
        if until is not None:
            now = utcnow()
            if until > now:
                return _paused(until, now)
            del self._pauses[key]
        rate = per_second(limit)
        if rate is None:
            return GO
        full = capacity(rate)
        now_m = time.monotonic()
        tokens, last = self._buckets.get(key, (full, now_m))
        tokens = min(full, tokens + (now_m - last) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now_m)
            return GO
        self._buckets[key] = (tokens, now_m)
        # One token after the refused sends told before it (as the shared limiter does).
        slot = max(self._backlog.get(key, now_m), now_m - tokens / rate) + 1.0 / rate
        self._backlog[key] = slot
        return Reservation(wait_s=slot - now_m)

    async def pause(self, key: str, until: datetime) -> datetime:
        current = self._pauses.get(key)
        if current is None or until > current:
            self._pauses[key] = current = until
            log.info(
                "sends paused: the provider asked to wait", integration=key, until=until.isoformat()
            )
        return current


@dataclass
class _Waiter:
    rate: float | None
    future: asyncio.Future[Reservation] = field(repr=False)


class SharedLimiter:
    """Buckets and pauses in the database, shared by every worker.

    Each reservation is one statement (``store.rate_buckets.take``: an ``UPDATE …
    RETURNING`` on an autocommit connection). Sends of one configuration that ask while a
    statement is out wait for the next one, which takes as many tokens as there are
    waiters: under load a claimed batch costs a few round trips, not one per message, and
    no token is taken that is not used at once (tokens kept in a process would let it burst
    past the limit and miss another worker's pause)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: dict[str, list[_Waiter]] = {}
        self._serving: dict[str, asyncio.Task[None]] = {}

    async def reserve(self, key: str, limit: Mapping[str, Any] | None) -> Reservation:
        future: asyncio.Future[Reservation] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(_Waiter(per_second(limit), future))
        if key not in self._serving:
            self._serving[key] = asyncio.create_task(self._serve(key), name=f"rate-{key}")
        return await future

    async def pause(self, key: str, until: datetime) -> datetime:
        async with rate_buckets.single_statements(self._db) as conn:
            current = await rate_buckets.pause(conn, key, until)
        if current == until:
            log.info(
                "sends paused for every worker: the provider asked to wait",
                integration=key,
                until=until.isoformat(),
            )
        return current

    async def _serve(self, key: str) -> None:
        try:
            while waiting := self._waiting.pop(key, None):
                group = [w for w in waiting if not w.future.done()]
                if len(group) > MAX_GROUP:
                    self._waiting.setdefault(key, [])[:0] = group[MAX_GROUP:]
                    group = group[:MAX_GROUP]
                if not group:
                    continue
                try:
                    answers = await self._take(key, group[-1].rate, len(group))
                except Exception as exc:  # the sends fail and are retried later, not sent
                    for waiter in group:
                        if not waiter.future.done():
                            waiter.future.set_exception(exc)
                    continue
                for waiter, answer in zip(group, answers, strict=True):
                    if not waiter.future.done():
                        waiter.future.set_result(answer)
        finally:
            del self._serving[key]

    async def _take(self, key: str, rate: float | None, want: int) -> list[Reservation]:
        async with rate_buckets.single_statements(self._db) as conn:
            if rate is None:
                until, now = await rate_buckets.paused_until(conn, key)
                if until is None:
                    return [GO] * want
                return [_paused(until, now) for _ in range(want)]
            taken = await rate_buckets.take(
                conn, key, want=want, per_second=rate, capacity=capacity(rate)
            )
        if taken.paused and taken.paused_until is not None:
            return [_paused(taken.paused_until, taken.now) for _ in range(want)]
        # The refused ones come back one token apart, after those told before them.
        return [GO] * taken.granted + [Reservation(wait_s=w) for w in taken.retry_in()]
