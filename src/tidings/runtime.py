"""The live objects one Tidings process shares between its routes and workers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request

from tidings.api.auth import KeyRing
from tidings.config import Settings
from tidings.domain.network import OutboundPolicy, origin_of, parse_origins
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

    def wake(self) -> None:
        self.wakeup.set()

    def network_policy(self) -> OutboundPolicy:
        """The outbound network policy: what the operator set is trusted (MAILGUN_HOST,
        TIDINGS_PROVIDER_HOSTS, the embedded sandbox); private networks are open in sandbox
        mode unless TIDINGS_ALLOW_PRIVATE_NETWORKS says otherwise."""
        settings = self.settings
        sandbox = self.sandbox_mode or settings.sandbox is True
        trusted = set(parse_origins(settings.provider_hosts))
        if settings.mailgun_host:
            host = settings.mailgun_host.strip()
            trusted.add(origin_of(host if "://" in host else f"https://{host}"))
        if sandbox:
            trusted.add(origin_of(self.public_url))
        allow = settings.allow_private_networks
        return OutboundPolicy(
            allow_private=sandbox if allow is None else allow, trusted=frozenset(trusted)
        )


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt
