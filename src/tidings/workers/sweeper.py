"""Scheduled sweeps: the rows that only expire (used webhook tokens, idempotency keys, UI
sessions) are deleted here, or their tables would grow forever.

Every ``TIDINGS_SWEEP_INTERVAL_S`` a supervised loop deletes what has expired, at most
``TIDINGS_SWEEP_BATCH`` rows per transaction, so a large backlog never holds one long
transaction (or SQLite's single writer) for long. Several workers may sweep at once: a
delete of what is already gone deletes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from tidings.runtime import Runtime
from tidings.store import events, idempotency, ui_sessions
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.workers.supervise import Supervised, wait_or_stop

log = structlog.get_logger("tidings.sweeper")

Sweep = Callable[[Conn, datetime, int], Awaitable[int]]


def sweeps(rt: Runtime) -> dict[str, Sweep]:
    """What is swept, by table. A webhook token is refused by its timestamp once it is older
    than the freshness window either side of its first use, so it is kept for two windows."""
    keep_tokens_s = 2 * rt.settings.webhook_window_s

    async def tokens(conn: Conn, now: datetime, limit: int) -> int:
        return await events.sweep_tokens(conn, keep_tokens_s, now=now, limit=limit)

    async def keys(conn: Conn, now: datetime, limit: int) -> int:
        return await idempotency.sweep(conn, now=now, limit=limit)

    async def sessions(conn: Conn, now: datetime, limit: int) -> int:
        return await ui_sessions.sweep(conn, now=now, limit=limit)

    return {"webhook_tokens": tokens, "idempotency_keys": keys, "ui_sessions": sessions}


async def sweep_once(rt: Runtime, now: datetime | None = None) -> dict[str, int]:
    """Delete everything expired at ``now`` (default: the present), one bounded transaction
    at a time; returns how many rows went, by table."""
    now = now or utcnow()
    batch = rt.settings.sweep_batch
    counts: dict[str, int] = {}
    for table, sweep in sweeps(rt).items():
        total = 0
        while True:
            async with rt.db.write() as conn:
                gone = await sweep(conn, now, batch)
            total += gone
            if gone < batch:
                break
            await asyncio.sleep(0)  # let the process's other work in between batches
        if total:
            rt.metrics.swept.labels(table).inc(total)
        counts[table] = total
    if any(counts.values()):
        log.info("swept expired rows", **counts)
    return counts


class Sweeper:
    """The loop: a sweep, then ``TIDINGS_SWEEP_INTERVAL_S`` of rest (cut short by ``stop``)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.rt.settings.sweep_interval_s
        supervised = Supervised(self.rt, "sweeper", cadence_s=interval, what="sweeping")

        async def step() -> None:
            await sweep_once(self.rt)
            supervised.ok()
            await wait_or_stop(stop, interval)

        await supervised.run(step, stop)
