"""``tidings worker``: the background workers without the HTTP API (scale-out).

It never exits on a fault: a database that is not there yet at start is waited for, and
each loop outlives outages by itself (see ``tidings.workers.supervise``). Only SIGTERM or
SIGINT end it (or, for a child of `tidings serve`, the server going away). It is wired
exactly as ``tidings serve`` is (``tidings.wiring``).
"""

from __future__ import annotations

import asyncio
import signal

import structlog

from tidings.config import Settings
from tidings.runtime import Runtime, wake
from tidings.store.database import Database
from tidings.store.keyring import KeyRing
from tidings.wiring import wired

log = structlog.get_logger("tidings.worker")


async def run_worker(settings: Settings, *, wake_fd: int | None = None) -> None:
    """``wake_fd``: started by `tidings serve` (TIDINGS_WORKER_PROCESSES), the pipe through
    which it says that new work is committed; the worker stops when the server is gone."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    rt = Runtime(settings=settings, db=Database(settings.database_url), keyring=KeyRing(None, []))
    if wake_fd is not None:

        def parent_gone() -> None:
            log.warning("the server that started this worker is gone; stopping")
            stop.set()

        wake.listen(wake_fd, rt.wake, parent_gone)
    async with wired(rt, stop, run_workers=True, wait_for_database=True):
        await stop.wait()
