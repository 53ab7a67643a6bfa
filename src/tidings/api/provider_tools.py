"""Tools for one provider configuration that talk to Mailgun: connect and doctor.

* ``POST /providers/{id}/connect`` registers this configuration's webhook URL at Mailgun for
  every event kind Tidings reads (see :mod:`tidings.providers.mailgun.connect`) and answers
  what it registered and what was already there.
* ``GET /providers/{id}/doctor`` runs every check of :mod:`tidings.doctor` and answers them,
  each with its fix.

Both call Mailgun with the server's shared client, so through the configuration's own route
(direct or ``proxy_url``), exactly as sending does. A configuration Mailgun refuses (key,
region, domain) answers 400 with the sentence that says which; Mailgun unreachable, 502.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from tidings.api.providers import webhook_url
from tidings.doctor import DoctorOptions, WebhookActivity, describe_route, run_doctor
from tidings.errors import BadRequest, NotFound, TidingsError
from tidings.providers.mailgun.client import MailgunClient
from tidings.providers.mailgun.connect import connect
from tidings.providers.mailgun.errors import (
    MailgunAPIError,
    MailgunConfigError,
    MailgunConnectionError,
    MailgunError,
)
from tidings.providers.mailgun.settings import MailgunConfig, MailgunSettings
from tidings.providers.outbound import Outbound
from tidings.runtime import Runtime, runtime
from tidings.store import poll_cursors, providers
from tidings.store.providers import StoredProvider

router = APIRouter(prefix="/providers", tags=["providers"])


class MailgunUnreachable(TidingsError):
    """Mailgun could not be reached (or answered with a server error): not the caller's
    fault, and worth trying again."""

    status_code = 502
    error_type = "api_error"


def _client(request: Request) -> MailgunClient:
    client: MailgunClient = request.app.state.mailgun
    return client


async def _load(rt: Runtime, provider_id: str) -> tuple[StoredProvider, MailgunSettings]:
    async with rt.db.read() as conn:
        stored = await providers.get(conn, provider_id)
    if stored is None:
        raise NotFound(f"no provider configuration {provider_id!r}")
    return stored, MailgunSettings.model_validate(stored.settings)


def _as_api_error(exc: MailgunError) -> TidingsError:
    if isinstance(exc, MailgunConnectionError):
        return MailgunUnreachable(str(exc))
    if isinstance(exc, MailgunAPIError) and exc.status_code >= 500:
        return MailgunUnreachable(str(exc))
    if isinstance(exc, MailgunConfigError | MailgunAPIError):
        return BadRequest(str(exc))
    return BadRequest(str(exc))  # ConnectError: the key, region or domain is wrong


@router.post("/{provider_id}/connect")
async def connect_provider(
    provider_id: str, request: Request, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Register this configuration's webhook URL at Mailgun (idempotent)."""
    stored, settings = await _load(rt, provider_id)
    config = settings.to_config()
    try:
        report = await connect(_client(request), config, webhook_url(rt, stored))
    except MailgunError as exc:
        raise _as_api_error(exc) from exc
    return {"provider_id": stored.id, "route": describe_route(config), **report.as_dict()}


async def _activity(rt: Runtime, config: MailgunConfig) -> WebhookActivity:
    async with rt.db.read() as conn:
        cursor = await poll_cursors.get(conn, config.base_url, config.domain)
    if cursor is None:
        return WebhookActivity()
    return WebhookActivity(
        last_webhook_at=cursor.last_webhook_at, webhooks_since=cursor.webhooks_since
    )


@router.get("/{provider_id}/doctor")
async def doctor_provider(
    provider_id: str, request: Request, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Every doctor check for this configuration; never fails for what it finds."""
    stored, settings = await _load(rt, provider_id)
    config = settings.to_config()
    outbound = Outbound(rt.network_policy(), rt.settings.dns_server)
    refusals = [await outbound.refusal(url) for url in (config.proxy_url, config.base_url) if url]
    options = DoctorOptions(
        provider_id=stored.id,
        webhook_url=webhook_url(rt, stored),
        polling=settings.polling,
        activity=await _activity(rt, config),
        dns_server=rt.settings.dns_server,
        sandbox=stored.origin == "sandbox",
        poll_interval_s=rt.settings.poll_interval_s,
        auto_after_s=rt.settings.poll_auto_after_s,
        quiet_s=rt.settings.poll_auto_quiet_s,
        refused="; ".join(r for r in refusals if r) or None,
    )
    report = await run_doctor(_client(request), config, options)
    return {"route": describe_route(config), "polling": settings.polling, **report.as_dict()}
