"""``tidings worker``: the background workers without the HTTP API (scale-out).

It never exits on a fault: a database that is not there yet at start is waited for, and
each loop outlives outages by itself (see ``tidings.workers.supervise``). Only SIGTERM or
SIGINT end it.
"""

from __future__ import annotations

import asyncio
import signal

import structlog

from tidings.api.auth import KeyRing
from tidings.app import open_providers, register_secrets
from tidings.config import Settings
from tidings.runtime import Runtime
from tidings.store.database import Database
from tidings.workers.loops import start_loops
from tidings.workers.supervise import bounded, until_done

log = structlog.get_logger("tidings.worker")


async def run_worker(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    db = Database(settings.database_url)
    rt = Runtime(settings=settings, db=db, keyring=KeyRing(None, []))
    providers = open_providers(rt)
    await rt.render_pool.start()
    try:
        # A database that is not there yet is waited for, not a reason to exit.
        ready = await until_done(rt, db.upgrade, stop, what="migrating the database")
        # The stored provider keys, masked in this process's logs too (after the migration:
        # the table may not exist before it).
        ready = ready and await until_done(
            rt, lambda: register_secrets(rt), stop, what="reading the stored provider keys"
        )
        if ready:
            await asyncio.gather(*start_loops(rt, providers, stop))
    finally:
        await rt.render_pool.close()
        await providers.close()
        await bounded(db.close(), 10.0, "closing the database")
