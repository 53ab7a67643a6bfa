"""``tidings worker``: the background workers without the HTTP API (scale-out)."""

from __future__ import annotations

import asyncio
import signal

import structlog

from tidings.api.auth import KeyRing
from tidings.config import Settings
from tidings.providers.mailgun.client import MailgunClient, Timeouts
from tidings.providers.outbound import Outbound
from tidings.runtime import Runtime
from tidings.store.database import Database
from tidings.workers.dispatcher import Dispatcher
from tidings.workers.notifier import Notifier
from tidings.workers.poller import Poller

log = structlog.get_logger("tidings.worker")


async def run_worker(settings: Settings) -> None:
    db = Database(settings.database_url)
    await db.upgrade()
    rt = Runtime(settings=settings, db=db, keyring=KeyRing(None, []))
    client = MailgunClient(
        timeouts=Timeouts(
            connect=10.0, read=settings.send_timeout_s, total=settings.send_timeout_s + 10
        ),
        outbound=Outbound(rt.network_policy(), settings.dns_server),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.gather(
            Dispatcher(rt, client).run(stop), Poller(rt, client).run(stop), Notifier(rt).run(stop)
        )
    finally:
        await client.close()
        await db.close()
