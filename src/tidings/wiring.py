"""One wiring for both process kinds: what ``tidings serve`` (``app.py``) and ``tidings
worker`` (``worker.py``) open, teach and start, in one place so the two cannot drift.

:func:`wired` migrates the database, seeds the provider the ``MAILGUN_*`` variables describe,
teaches the log masker every stored key, opens the providers (the one place
that constructs them) and, for a process that runs workers, starts the render pool and the loops;
on exit it stops and closes all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tidings.config import Settings
from tidings.logging import register_provider_secrets, register_secret
from tidings.providers.base import ProviderContext
from tidings.providers.mailgun.settings import MailgunSettings
from tidings.providers.outbound import Outbound
from tidings.providers.registry import Providers
from tidings.render.pool import PoolConfig, RenderPool, default_size
from tidings.render.templating import SandboxLimits
from tidings.runtime import Runtime
from tidings.store import providers
from tidings.workers.loops import start_loops
from tidings.workers.supervise import bounded, until_done


def render_pool_config(settings: Settings) -> PoolConfig:
    return PoolConfig(
        size=settings.render_workers or default_size(),
        timeout_s=settings.render_timeout_s,
        memory_mb=settings.render_memory_mb,
        limits=SandboxLimits(
            max_output=settings.render_max_output_chars,
            max_loop_iterations=settings.render_max_loop_iterations,
        ),
        # Imported once by the fork server, so that each worker starts with it imported.
        preload=("tidings.workers.compose",),
        # A message waiting for a worker goes back to the queue before its lease runs out
        # (another dispatcher would take it over and send it a second time).
        max_wait_s=settings.lease_s / 2,
    )


def open_providers(rt: Runtime) -> Providers:
    """One live instance of every provider for this process, on its network policy: every
    outbound provider call of this process goes through it."""
    settings = rt.settings
    return Providers(
        ProviderContext(
            outbound=Outbound(rt.network_policy(), settings.dns_server),
            connect_timeout_s=10.0,
            read_timeout_s=settings.send_timeout_s,
            total_timeout_s=settings.send_timeout_s + 10,
            user_agent="tidings (aiohttp)",
        )
    )


def env_provider_settings(settings: Settings) -> dict[str, Any] | None:
    if not settings.mailgun_from_env:
        return None
    assert settings.mailgun_api_key is not None
    raw: dict[str, Any] = {
        "api_key": settings.mailgun_api_key.get_secret_value(),
        "domain": settings.mailgun_domain,
    }
    if settings.mailgun_host:
        raw["host"] = settings.mailgun_host
    if settings.mailgun_from:
        raw["from_address"] = settings.mailgun_from
    if settings.mailgun_webhook_signing_key:
        raw["webhook_signing_key"] = settings.mailgun_webhook_signing_key.get_secret_value()
    return MailgunSettings.model_validate(raw).model_dump(mode="json", exclude_none=True)


async def seed_env_provider(rt: Runtime) -> bool:
    """Store the configuration the MAILGUN_* variables describe (kept in step with them);
    True when there is one."""
    from_env = env_provider_settings(rt.settings)
    if from_env is None:
        return False
    async with rt.db.write() as conn:
        current = await providers.by_origin(conn, "env")
        if current is None:
            await providers.create(
                conn,
                provider="mailgun",
                settings=from_env,
                title="From MAILGUN_* variables",
                origin="env",
                is_default=None,
            )
        elif current.settings != from_env:
            await providers.update(
                conn, current.id, settings=from_env, alias=current.alias, title=current.title
            )
    return True


async def register_secrets(rt: Runtime) -> None:
    """Teach the log masker every key this process knows, so no log line can carry one."""
    if rt.settings.api_key is not None:
        register_secret(rt.settings.api_key.get_secret_value())
    async with rt.db.read() as conn:
        for stored in await providers.list_all(conn):
            register_provider_secrets(stored.settings)


@dataclass
class Wired:
    """What :func:`wired` opened. ``ready`` is False when ``stop`` came before start-up
    finished (a worker waiting for its database)."""

    providers: Providers
    ready: bool
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def wired(
    rt: Runtime,
    stop: asyncio.Event,
    *,
    run_workers: bool,
    wait_for_database: bool = False,
    prepare: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[Wired]:
    """Start a process on ``rt``: migrate, seed the MAILGUN_* provider, register the stored
    keys with the log masker, then ``prepare`` (the API's own start-up), then the render pool
    and the loops when ``run_workers``. With ``wait_for_database`` (a worker) a database that
    is not there yet is waited for until ``stop``; otherwise start-up fails with it. On exit
    the loops are stopped and everything is closed, the database last."""

    async def start() -> None:
        await rt.db.upgrade()
        await seed_env_provider(rt)
        # After the migration: the providers table may not exist before it.
        await register_secrets(rt)
        if prepare is not None:
            await prepare()

    providers = open_providers(rt)
    pool: RenderPool | None = None
    done = Wired(providers=providers, ready=False)
    try:
        if wait_for_database:
            done.ready = await until_done(rt, start, stop, what="starting up (the database)")
        else:
            await start()
            done.ready = True
        if run_workers and done.ready:
            pool = RenderPool(render_pool_config(rt.settings))
            rt.render_pool = pool
            await pool.start()
            done.tasks = start_loops(rt, providers, stop)
        yield done
    finally:
        stop.set()
        rt.wake()
        if done.tasks:
            await asyncio.gather(*done.tasks, return_exceptions=True)
        if pool is not None:
            await pool.close()
        await providers.close()
        await rt.keyring.aclose()
        await bounded(rt.db.close(), 10.0, "closing the database")
