"""Tools for one provider configuration that talk to the provider: connect and doctor.

* ``POST /providers/{id}/connect`` registers this configuration's webhook URL at the
  provider for every event kind Tidings reads (``Provider.connect``) and answers what it
  registered and what was already there.
  Where the provider keeps suppression lists of its own (Mailgun's bounces, unsubscribes
  and complaints), they are imported into Tidings' list too (``suppressions`` in the answer).
* ``GET /providers/{id}/doctor`` runs the provider's doctor checks (``Provider.doctor``)
  and answers them, each with its fix.

Both go through the process's live providers, so through the configuration's own route
(direct or ``proxy_url``), exactly as sending does. A configuration the provider refuses
(key, region, domain), or a provider without the capability, answers 400 with the sentence
that says which; the provider unreachable, 502.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from tidings.api.providers import webhook_url
from tidings.errors import BadRequest, NotFound, TidingsError
from tidings.providers.base import (
    DoctorOptions,
    Provider,
    ProviderAPIError,
    ProviderConfig,
    ProviderError,
    ProviderSettings,
    ProviderUnreachable,
    RemoteSuppression,
    SuppressionLists,
    WebhookActivity,
)
from tidings.providers.outbound import Outbound
from tidings.providers.registry import Providers, UnknownProvider
from tidings.runtime import Runtime, runtime
from tidings.store import poll_cursors, providers, suppressions
from tidings.store.providers import StoredProvider

router = APIRouter(prefix="/providers", tags=["providers"])


class ProviderUnreachableError(TidingsError):
    """The provider could not be reached (or answered with a server error): not the
    caller's fault, and worth trying again."""

    status_code = 502
    error_type = "api_error"


async def _load(
    rt: Runtime, request: Request, provider_id: str
) -> tuple[StoredProvider, Provider, ProviderSettings]:
    async with rt.db.read() as conn:
        stored = await providers.get(conn, provider_id)
    if stored is None:
        raise NotFound(f"no provider configuration {provider_id!r}")
    live: Providers = request.app.state.providers
    try:
        impl = live.get(stored.provider)
        return stored, impl, impl.parse_settings(stored.settings)
    except (UnknownProvider, ValidationError) as exc:
        raise BadRequest(f"bad provider configuration: {exc}") from None


def _as_api_error(exc: ProviderError) -> TidingsError:
    if isinstance(exc, ProviderUnreachable):
        return ProviderUnreachableError(str(exc))
    if isinstance(exc, ProviderAPIError) and exc.status_code >= 500:
        return ProviderUnreachableError(str(exc))
    return BadRequest(str(exc))  # the key, region or domain is wrong; or no such capability


@router.post("/{provider_id}/connect")
async def connect_provider(
    provider_id: str, request: Request, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Register this configuration's webhook URL at the provider (idempotent)."""
    stored, impl, settings = await _load(rt, request, provider_id)
    config = settings.to_config()
    try:
        result = await impl.connect(config, webhook_url(rt, stored))
    except ProviderError as exc:
        raise _as_api_error(exc) from exc
    answer = {"provider_id": stored.id, **result.answer}
    if impl.suppressions is not None:
        answer["suppressions"] = await _import_suppressions(rt, impl.suppressions, config)
    return answer


async def _import_suppressions(
    rt: Runtime, lists: SuppressionLists, config: ProviderConfig
) -> dict[str, Any]:
    """Import the provider's own suppression lists into Tidings' (issue 12). A failure is
    reported in the answer, not raised: the webhooks are registered either way, and the
    periodic sync imports the lists later."""

    async def write(page: list[RemoteSuppression]) -> int:
        entries = [
            suppressions.Imported(e.address, e.reason, e.code, e.detail, e.created_at) for e in page
        ]
        async with rt.db.write() as conn:
            return await suppressions.add_many(conn, entries)

    try:
        read, added = await lists.import_all(config, write)
    except ProviderError as exc:
        return {
            "imported": False,
            "error": f"could not read the provider's suppression lists: {exc} (the periodic "
            "sync tries again)",
        }
    return {"imported": True, "read": read, "added": added}


async def _activity(rt: Runtime, config: ProviderConfig) -> WebhookActivity:
    async with rt.db.read() as conn:
        cursor = await poll_cursors.get(conn, config.target, config.domain or "")
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
    stored, impl, settings = await _load(rt, request, provider_id)
    config = settings.to_config()
    outbound = Outbound(rt.network_policy(), rt.settings.dns_server)
    targets = [stored.settings.get("proxy_url"), config.target]
    refusals = [await outbound.refusal(str(url)) for url in targets if url]
    options = DoctorOptions(
        provider_id=stored.id,
        webhook_url=webhook_url(rt, stored),
        polling=settings.polling_mode(),
        activity=await _activity(rt, config),
        dns_server=rt.settings.dns_server,
        sandbox=stored.origin == "sandbox",
        poll_interval_s=rt.settings.poll_interval_s,
        auto_after_s=rt.settings.poll_auto_after_s,
        quiet_s=rt.settings.poll_auto_quiet_s,
        refused="; ".join(r for r in refusals if r) or None,
    )
    answer = await impl.doctor(config, options)
    if answer is None:
        raise BadRequest(f"{impl.name} has no doctor checks")
    return answer
