"""The FastAPI app: its routes, and its own start-up (keys, sandbox); the rest of start-up and
the workers are ``tidings.wiring``'s, shared with ``tidings worker``."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import Depends, FastAPI

from tidings import __version__
from tidings.api import audiences as audiences_api
from tidings.api import brands as brands_api
from tidings.api import bulk as bulk_api
from tidings.api import errors as api_errors
from tidings.api import guard
from tidings.api import health as health_api
from tidings.api import lists as lists_api
from tidings.api import messages as messages_api
from tidings.api import metrics as metrics_api
from tidings.api import notifications as notifications_api
from tidings.api import preferences as preferences_api
from tidings.api import previews as previews_api
from tidings.api import profiles as profiles_api
from tidings.api import provider_tools as provider_tools_api
from tidings.api import providers as providers_api
from tidings.api import requests as requests_api
from tidings.api import routing_strategies as routing_strategies_api
from tidings.api import send as send_api
from tidings.api import status_endpoints as status_endpoints_api
from tidings.api import stream as stream_api
from tidings.api import suppressions as suppressions_api
from tidings.api import unmatched as unmatched_api
from tidings.api import unsubscribe as unsubscribe_api
from tidings.api import webhooks as webhooks_api
from tidings.api import workspace_preferences as workspace_preferences_api
from tidings.api.auth import require_api_key
from tidings.api.schemas import SendRequest
from tidings.config import Settings
from tidings.runtime import Runtime, webhook_url
from tidings.store import api_keys, providers
from tidings.store.database import Database
from tidings.store.keyring import KeyRing
from tidings.store.providers import StoredProvider
from tidings.ui import routes as ui_routes
from tidings.wiring import wired

log = structlog.get_logger("tidings")


@dataclass
class StartupReport:
    """What start-up did, for the console: a generated key is shown here once, never stored."""

    announce: bool = False
    generated_api_key: str | None = None
    sandbox_mode: bool = False
    provider_origin: str | None = None
    notes: list[str] = field(default_factory=list)


async def ensure_api_key(rt: Runtime, report: StartupReport) -> None:
    """With no TIDINGS_API_KEY and no key yet, generate one; only its hash is stored."""
    async with rt.db.write() as conn:
        if rt.settings.api_key is None and await api_keys.count(conn) == 0:
            key = api_keys.generate()
            await api_keys.add(conn, key, name="generated at first start")
            report.generated_api_key = key
        hashes = await api_keys.hashes(conn)
    configured = rt.settings.api_key.get_secret_value() if rt.settings.api_key else None
    rt.keyring = KeyRing(configured, hashes, db=rt.db)


async def ensure_providers(rt: Runtime, report: StartupReport) -> None:
    """After the wiring stored the MAILGUN_* configuration: the sandbox one stays the default
    only in sandbox mode."""
    if rt.settings.mailgun_from_env:
        report.provider_origin = "env"
    if rt.sandbox_mode:
        report.provider_origin = report.provider_origin or "sandbox"
        return
    async with rt.db.write() as conn:
        await providers.retire_sandbox_default(conn, prefer_origin="env")


def _sandbox_keys() -> dict[str, str]:
    """A fresh API key and signing key for this installation's embedded sandbox: the
    sandbox's well-known defaults would let anyone read the signing key and forge webhooks."""
    return {"api_key": "key-" + secrets.token_hex(16), "webhook_signing_key": secrets.token_hex(24)}


async def ensure_sandbox_provider(db: Database, public_url: str) -> StoredProvider:
    """The configuration that sends to the embedded sandbox (kept pointing at this server),
    with keys of its own, generated once and kept in it."""
    from tidings.sandbox.settings import DEFAULT_API_KEY, DEFAULT_DOMAIN, DEFAULT_SIGNING_KEY

    wanted = {
        "domain": DEFAULT_DOMAIN,
        "host": f"{public_url.rstrip('/')}/sandbox",
        "from_address": f"Tidings Sandbox <no-reply@{DEFAULT_DOMAIN}>",
        "polling": "on",
    }
    async with db.write() as conn:
        current = await providers.by_origin(conn, "sandbox")
        if current is None:
            others = await providers.list_all(conn)
            return await providers.create(
                conn,
                provider="mailgun",
                settings={**wanted, **_sandbox_keys()},
                title="Sandbox (local, nothing leaves this machine)",
                origin="sandbox",
                is_default=not others,
            )
        fresh = _sandbox_keys()
        # A database made before the keys were generated holds the public defaults.
        keys = {
            name: fresh[name]
            for name, default in (
                ("api_key", DEFAULT_API_KEY),
                ("webhook_signing_key", DEFAULT_SIGNING_KEY),
            )
            if current.settings.get(name) in (None, "", default)
        }
        if current.settings.get("host") != wanted["host"] or keys:
            settings = {**current.settings, **keys}
            if current.settings.get("host") != wanted["host"]:
                settings.update(wanted)
            updated = await providers.update(
                conn, current.id, settings=settings, alias=current.alias, title=current.title
            )
            assert updated is not None
            return updated
        return current


async def decide_sandbox_mode(settings: Settings, db: Database) -> bool:
    if settings.sandbox is not None:
        return settings.sandbox
    if settings.mailgun_from_env:
        return False
    async with db.read() as conn:
        stored = await providers.list_all(conn)
    return not any(p.origin != "sandbox" for p in stored)


def create_app(
    settings: Settings | None = None,
    *,
    run_workers: bool = True,
    report: StartupReport | None = None,
) -> FastAPI:
    """The Tidings ASGI app. Start-up migrates the database, makes sure there is an API key
    and a provider, mounts the sandbox in sandbox mode, and starts the workers."""
    settings = settings or Settings()
    report = report if report is not None else StartupReport()
    db = Database(settings.database_url)
    public_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    rt = Runtime(settings=settings, db=db, keyring=KeyRing(None, []), public_url=public_url)
    sandbox_holder: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def prepare() -> None:
            await ensure_api_key(rt, report)
            if rt.sandbox_mode:
                await sandbox_holder["sandbox"].start()
            await ensure_providers(rt, report)
            report.sandbox_mode = rt.sandbox_mode
            if report.announce:
                _announce(rt, report)

        try:
            async with wired(rt, asyncio.Event(), run_workers=run_workers, prepare=prepare) as w:
                app.state.providers = w.providers
                yield
        finally:
            if rt.sandbox_mode and "sandbox" in sandbox_holder:
                await sandbox_holder["sandbox"].stop()

    app = FastAPI(
        title="Tidings",
        version=__version__,
        description="Courier-compatible notification delivery through Mailgun.",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    api_errors.install(app)
    protected = [Depends(require_api_key)]
    # Mailgun authenticates by signature, not by our API key. First: the busiest route
    # under load (2-4 webhooks per message) is matched without trying every other one.
    app.include_router(webhooks_api.router)
    app.include_router(send_api.router, dependencies=protected)
    # Before the messages router, so that /messages/stream is not taken for a message id.
    app.include_router(stream_api.router, dependencies=protected)
    app.include_router(messages_api.router, dependencies=protected)
    app.include_router(profiles_api.router, dependencies=protected)
    app.include_router(lists_api.router, dependencies=protected)
    app.include_router(requests_api.router, dependencies=protected)
    app.include_router(providers_api.router, dependencies=protected)
    app.include_router(provider_tools_api.router, dependencies=protected)
    app.include_router(suppressions_api.router, dependencies=protected)
    app.include_router(unmatched_api.router, dependencies=protected)
    app.include_router(metrics_api.router, dependencies=protected)
    app.include_router(status_endpoints_api.router, dependencies=protected)
    app.include_router(routing_strategies_api.router, dependencies=protected)
    app.include_router(notifications_api.router, dependencies=protected)
    app.include_router(brands_api.router, dependencies=protected)
    app.include_router(previews_api.router, dependencies=protected)
    app.include_router(audiences_api.router, dependencies=protected)
    app.include_router(workspace_preferences_api.router, dependencies=protected)
    app.include_router(preferences_api.router, dependencies=protected)
    # One-click unsubscribe links: the signed token is the authority, not our API key.
    app.include_router(unsubscribe_api.router)
    app.include_router(bulk_api.router, dependencies=protected)
    # Probes answer without a key, like /health.
    app.include_router(health_api.router)
    # The UI checks its own session (a login form, then a signed cookie), and owns "/".
    app.include_router(ui_routes.router)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "sandbox": rt.sandbox_mode}

    api_errors.document(app, models=[SendRequest])
    # Added last, so outermost: the request id and the JSON answer for anything unforeseen
    # wrap everything else, size limits included (one layer, one pass over the headers).
    # The sandbox keeps Mailgun's own limits.
    app.add_middleware(guard.RequestGuard, limits=body_limits(settings))

    # Sandbox mode is decided before serving (it needs the database), see `build_app`.
    app.state.mount_sandbox = lambda webhook_url, provider: _mount_sandbox(
        app, rt, sandbox_holder, webhook_url, provider
    )
    return app


def body_limits(settings: Settings) -> guard.BodyLimits:
    return guard.BodyLimits(
        default=settings.max_body_bytes,
        by_prefix=(
            ("/send", settings.max_send_body_bytes, "TIDINGS_MAX_SEND_BODY_BYTES"),
            (
                "/webhooks/mailgun",
                settings.max_webhook_body_bytes,
                "TIDINGS_MAX_WEBHOOK_BODY_BYTES",
            ),
        ),
        exempt=("/sandbox",),
    )


def _mount_sandbox(
    app: FastAPI,
    rt: Runtime,
    holder: dict[str, Any],
    webhook_url: str,
    provider: StoredProvider,
) -> None:
    """Mount the Mailgun sandbox at /sandbox, with this server's webhook URL registered for
    every event kind, so the whole flow (send, events, signed webhooks) works locally. It
    takes its keys from its stored configuration; its inbox and inspection APIs answer only
    loopback clients unless TIDINGS_SANDBOX_EXPOSE is on."""
    from tidings.sandbox import Sandbox, SandboxSettings

    rt.sandbox_mode = True
    sandbox = Sandbox(
        SandboxSettings(
            webhook_urls=[webhook_url],
            api_key=str(provider.settings["api_key"]),
            signing_key=str(provider.settings["webhook_signing_key"]),
            inspection_loopback_only=not rt.settings.sandbox_expose,
        )
    )
    holder["sandbox"] = sandbox
    app.mount("/sandbox", sandbox.asgi(""))


async def build_app(
    settings: Settings | None = None,
    *,
    run_workers: bool = True,
    report: StartupReport | None = None,
) -> FastAPI:
    """``create_app`` plus the sandbox-mode decision, which must be made before serving."""
    settings = settings or Settings()
    public_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    db = Database(settings.database_url)
    sandbox_provider: StoredProvider | None = None
    try:
        await db.upgrade()
        if await decide_sandbox_mode(settings, db):
            sandbox_provider = await ensure_sandbox_provider(db, public_url)
    finally:
        await db.close()
    app = create_app(settings, run_workers=run_workers, report=report)
    if sandbox_provider is not None:
        app.state.mount_sandbox(webhook_url(public_url, sandbox_provider), sandbox_provider)
    return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _announce(rt: Runtime, report: StartupReport) -> None:
    """Say plainly, once, how this server is set up (and the generated key, if any)."""
    from rich.console import Console

    console = Console(stderr=True)
    console.print(
        f"[bold]Tidings {__version__}[/bold] on {rt.public_url}  (database: {rt.db.dialect})"
    )
    if report.generated_api_key:
        console.print(
            "[yellow]No TIDINGS_API_KEY was set: generated one. It is shown this once; only "
            "its hash is stored:[/yellow]"
        )
        console.print(f"    [bold]{report.generated_api_key}[/bold]")
        console.print(
            "Lost it? `tidings keys create` (in this directory, or with the same "
            "TIDINGS_DATABASE_URL) makes another."
        )
    if rt.sandbox_mode:
        console.print(
            "[cyan]Sandbox mode:[/cyan] no Mailgun account is configured, so email goes to the "
            f"built-in Mailgun sandbox at {rt.public_url}/sandbox/ and never leaves this "
            "machine. Set MAILGUN_API_KEY and MAILGUN_DOMAIN (or POST /providers) to send "
            "for real."
        )
        if rt.settings.sandbox_expose:
            console.print(
                "[red]TIDINGS_SANDBOX_EXPOSE is on:[/red] anyone who can reach this port can "
                "read the sandbox's mail (/sandbox/) and switch its faults."
            )
        else:
            listening = (
                ""
                if _is_loopback(rt.settings.host)
                else f" (the API itself listens on {rt.settings.host}, open to the network)"
            )
            console.print(
                "[cyan]The sandbox is loopback-only:[/cyan] its inbox, inspection and fault "
                f"APIs (/sandbox/) answer only clients on this machine{listening}. Set "
                "TIDINGS_SANDBOX_EXPOSE=1 to open them."
            )
