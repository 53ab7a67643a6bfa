"""``tidings worker``: the background workers without the HTTP API (scale-out).

It never exits on a fault: a database that is not there yet at start is waited for, and
each loop outlives outages by itself (see ``tidings.workers.supervise``). Only SIGTERM or
SIGINT end it. It is wired exactly as ``tidings serve`` is (``tidings.wiring``).
"""

from __future__ import annotations

import asyncio
import signal

from tidings.config import Settings
from tidings.runtime import Runtime
from tidings.store.database import Database
from tidings.store.keyring import KeyRing
from tidings.wiring import wired


async def run_worker(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    rt = Runtime(settings=settings, db=Database(settings.database_url), keyring=KeyRing(None, []))
    async with wired(rt, stop, run_workers=True, wait_for_database=True):
        await stop.wait()
