"""The background loops of a process, started the same way by ``tidings serve`` and
``tidings worker``: each kept running on its own, so one ending cannot end the others."""

from __future__ import annotations

import asyncio

from tidings.providers.registry import Providers
from tidings.runtime import Runtime
from tidings.workers.dispatcher import Dispatcher
from tidings.workers.notifier import Notifier
from tidings.workers.poller import Poller
from tidings.workers.supervise import keep_running
from tidings.workers.suppression_sync import SuppressionSync
from tidings.workers.sweeper import Sweeper


def start_loops(rt: Runtime, providers: Providers, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """Dispatcher, poller, notifier, sweeper and the suppression sync as tasks that end once
    ``stop`` is set."""
    return [
        asyncio.create_task(
            keep_running(rt, "dispatcher", lambda: Dispatcher(rt, providers).run(stop), stop),
            name="dispatcher",
        ),
        asyncio.create_task(
            keep_running(rt, "poller", lambda: Poller(rt, providers).run(stop), stop), name="poller"
        ),
        asyncio.create_task(
            keep_running(rt, "notifier", lambda: Notifier(rt).run(stop), stop), name="notifier"
        ),
        asyncio.create_task(
            keep_running(rt, "sweeper", lambda: Sweeper(rt).run(stop), stop), name="sweeper"
        ),
        asyncio.create_task(
            keep_running(
                rt, "suppression_sync", lambda: SuppressionSync(rt, providers).run(stop), stop
            ),
            name="suppression_sync",
        ),
    ]
