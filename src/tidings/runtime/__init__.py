"""The live objects one Tidings process shares between its routes and workers.

Besides :class:`Runtime`, this package holds what the API and the UI both need to let a
request in (``throttle``: wrong keys per address; ``sessions``: the UI's login cookie); the
key ring itself is the store's (``tidings.store.keyring``). It imports only config, store and
metrics (an import-linter contract in pyproject.toml): the render pool and the outbound
client are given to it by the wiring (``tidings.wiring``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from fastapi import Request

from tidings.config import Settings
from tidings.domain.network import OutboundPolicy, origin_of, parse_origins
from tidings.logging import register_provider_secrets
from tidings.metrics import Metrics
from tidings.runtime.throttle import Limits, Throttle
from tidings.runtime.wake import WakePipes
from tidings.store.database import Database
from tidings.store.keyring import KeyRing
from tidings.store.providers import StoredProvider

T = TypeVar("T")


class Renderer(Protocol):
    """What renders user templates for the dispatcher: ``tidings.render.pool.RenderPool``,
    given by the wiring of a process that runs workers."""

    async def run(self, function: Callable[..., T], *args: Any) -> T: ...


class NoRenderer:
    """The renderer of a process that runs no workers (``serve --no-workers``): it renders
    nothing, and says so if asked."""

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        raise RuntimeError("this process runs no workers: it has no render pool")


def webhook_url(public_url: str, stored: StoredProvider) -> str:
    """Where the provider of ``stored`` posts its signed webhooks to this server."""
    return f"{public_url.rstrip('/')}/webhooks/{stored.provider}/{stored.webhook_token}"


@dataclass
class LoopHealth:
    """What one background loop of this process last did, for ``/health/ready`` and the
    metrics (written by :mod:`tidings.workers.supervise`)."""

    name: str
    # A healthy loop succeeds at least this often; longer without a success is "stale".
    stale_after_s: float
    started_at: float = field(default_factory=time.time)  # unix seconds
    last_success: float | None = None  # unix seconds
    failing_since: float | None = None  # unix seconds; None while healthy
    failures: int = 0  # in the current episode
    last_error: str | None = None  # the error's kind, no detail (it may carry data)
    running: bool = True

    def stale(self, now: float) -> bool:
        return now - (self.last_success or self.started_at) > self.stale_after_s


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
    # Worker processes that render user templates: set, started and closed by the wiring
    # that runs the dispatcher (tidings.wiring); an API-only process renders nothing.
    render_pool: Renderer = field(default_factory=NoRenderer)
    # The background loops running in this process, by name (none in an API-only process).
    loops: dict[str, LoopHealth] = field(default_factory=dict)
    # Failed keys per client address and overall (in memory: each process counts its own).
    throttle: Throttle = field(init=False)
    # Child worker processes of `tidings serve` (TIDINGS_WORKER_PROCESSES) are woken through
    # these pipes, as this process's own dispatcher is by ``wakeup`` (see runtime/wake.py).
    wake_pipes: WakePipes = field(default_factory=lambda: WakePipes([]))

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

    def learn_provider_secrets(self, settings: dict[str, Any]) -> None:
        """Teach this process's log masker a provider configuration's keys: one added through
        another process's API reaches this one only through the database."""
        register_provider_secrets(settings)

    def wake(self) -> None:
        """New work is committed: the dispatcher here, and in child worker processes, looks
        at once instead of at its next idle check."""
        self.wakeup.set()
        self.wake_pipes.wake()

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


async def runtime(request: Request) -> Runtime:
    """The route dependency: ``async`` so that FastAPI calls it on the event loop (a plain
    function would cost every request a trip to its threadpool and back)."""
    rt: Runtime = request.app.state.runtime
    return rt
