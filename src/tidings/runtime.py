"""The live objects one Tidings process shares between its routes and workers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request

from tidings.api.auth import KeyRing
from tidings.api.throttle import Limits, Throttle
from tidings.config import Settings
from tidings.metrics import Metrics
from tidings.store.database import Database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keyring: KeyRing
    # Set when new work is committed so an idle dispatcher in this process wakes at once.
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when the server begins to shut down: long-lived responses (SSE) end themselves.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    metrics: Metrics = field(default_factory=Metrics)
    sandbox_mode: bool = False
    public_url: str = "http://127.0.0.1:8000"
    # Failed keys per client address and overall (in memory: each process counts its own).
    throttle: Throttle = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.throttle = Throttle(
            Limits(
                burst=s.auth_fail_burst,
                per_minute=s.auth_fail_per_minute,
                global_burst=s.auth_fail_global_burst,
                global_per_minute=s.auth_fail_global_per_minute,
            )
        )

    def wake(self) -> None:
        self.wakeup.set()


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt
