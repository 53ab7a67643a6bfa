"""Courier's Providers API for every registered provider's configurations, and each one's
webhook URL (``/webhooks/<provider key>/<token>``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import ValidationError

from tidings.api.errors import describe_validation
from tidings.api.schemas import ProviderIn, ProviderPatchIn
from tidings.domain.errors import ValidationError as FieldError
from tidings.errors import BadRequest, NotFound
from tidings.logging import register_provider_secrets
from tidings.providers import registry
from tidings.providers.outbound import Outbound
from tidings.providers.settings import public_settings
from tidings.runtime import Runtime, runtime
from tidings.store import providers
from tidings.store.clock import to_ms
from tidings.store.providers import StoredProvider

router = APIRouter(prefix="/providers", tags=["providers"])


def supported() -> tuple[str, ...]:
    return registry.keys()


def webhook_url(rt: Runtime, stored: StoredProvider) -> str:
    return f"{rt.public_url.rstrip('/')}/webhooks/{stored.provider}/{stored.webhook_token}"


def provider_body(rt: Runtime, stored: StoredProvider) -> dict[str, Any]:
    return {
        "id": stored.id,
        "provider": stored.provider,
        "alias": stored.alias,
        "title": stored.title or "Default Configuration",
        "settings": public_settings(stored.settings, _secret_fields(stored.provider)),
        "created": to_ms(stored.created),
        "updated": to_ms(stored.updated),
        "default": stored.is_default,
        "origin": stored.origin,
        "webhook_url": webhook_url(rt, stored),
    }


def _secret_fields(provider: str) -> tuple[str, ...]:
    try:
        return registry.provider_class(provider).settings_model.SECRET_FIELDS
    except registry.UnknownProvider:
        return ()


def validate_settings(provider: str, settings: dict[str, Any]) -> dict[str, Any]:
    if provider not in supported():
        raise BadRequest(
            f"provider: '{provider}' is not supported; supported: {', '.join(supported())}"
        )
    try:
        parsed = registry.provider_class(provider).settings_model.model_validate(settings)
    except ValidationError as exc:
        errors = [{**e, "loc": ("settings", *e["loc"])} for e in exc.errors()]
        raise BadRequest(describe_validation(errors)) from None
    valid = parsed.model_dump(mode="json", exclude_none=True)
    register_provider_secrets(valid)
    return valid


async def check_targets(rt: Runtime, provider: str, settings: dict[str, Any]) -> None:
    """The outbound network policy at creation: where calls go (the configuration's target)
    and any proxy must not reach a refused address, literally or by what a name resolves
    to."""
    outbound = Outbound(rt.network_policy(), rt.settings.dns_server)
    model = registry.provider_class(provider).settings_model
    config = model.model_validate(settings).to_config()
    field = next((f for f in model.TARGET_FIELDS if f != "proxy_url"), "host")
    targets = [(config.target, f"settings.{field}")]
    if settings.get("proxy_url"):
        targets.append((str(settings["proxy_url"]), "settings.proxy_url"))
    for url, path in targets:
        try:
            await outbound.check_target(url, path)
        except FieldError as exc:
            raise BadRequest(str(exc)) from None


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON Merge Patch."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


async def _load(rt: Runtime, provider_id: str) -> StoredProvider:
    async with rt.db.read() as conn:
        stored = await providers.get(conn, provider_id)
    if stored is None:
        raise NotFound()
    return stored


@router.get("/catalog")
async def get_catalog(channel: str | None = None) -> dict[str, Any]:
    body = registry.catalog()
    if channel:
        body["results"] = [r for r in body["results"] if r["channel"] == channel.lower()]
    return {"paging": {"cursor": None, "more": False}, **body}


@router.get("")
async def list_providers(rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    async with rt.db.read() as conn:
        stored = await providers.list_all(conn)
    return {
        "paging": {"cursor": None, "more": False},
        "results": [provider_body(rt, s) for s in stored],
    }


@router.post("", status_code=200)
async def create_provider(body: ProviderIn, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    settings = validate_settings(body.provider, body.settings)
    await check_targets(rt, body.provider, settings)
    async with rt.db.write() as conn:
        if body.alias and await providers.get(conn, body.alias):
            raise BadRequest(f"alias: '{body.alias}' is already used by another configuration")
        stored = await providers.create(
            conn, provider=body.provider, settings=settings, alias=body.alias, title=body.title
        )
        # A real configuration takes over from the sandbox's as the default.
        await providers.retire_sandbox_default(conn)
        stored = await providers.get(conn, stored.id) or stored
    rt.wake()
    return provider_body(rt, stored)


@router.get("/{provider_id}")
async def get_provider(provider_id: str, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return provider_body(rt, await _load(rt, provider_id))


@router.put("/{provider_id}")
async def replace_provider(
    provider_id: str, body: ProviderIn, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    current = await _load(rt, provider_id)
    if body.provider != current.provider:
        raise BadRequest(f"provider: must be '{current.provider}' for this configuration")
    settings = validate_settings(body.provider, body.settings)
    await check_targets(rt, body.provider, settings)
    async with rt.db.write() as conn:
        stored = await providers.update(
            conn, current.id, settings=settings, alias=body.alias, title=body.title
        )
    assert stored is not None
    return provider_body(rt, stored)


@router.patch("/{provider_id}")
async def patch_provider(
    provider_id: str, body: ProviderPatchIn, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    current = await _load(rt, provider_id)
    sent = body.model_dump(exclude_unset=True)
    if "provider" in sent and sent["provider"] != current.provider:
        raise BadRequest(f"provider: must be '{current.provider}' for this configuration")
    settings = current.settings
    if body.settings is not None:
        settings = validate_settings(current.provider, merge_patch(settings, body.settings))
        await check_targets(rt, current.provider, settings)
    async with rt.db.write() as conn:
        stored = await providers.update(
            conn,
            current.id,
            settings=settings,
            alias=sent.get("alias", current.alias),
            title=sent.get("title", current.title),
        )
    assert stored is not None
    return provider_body(rt, stored)


@router.delete("/{provider_id}", status_code=204)
async def delete_provider(provider_id: str, rt: Runtime = Depends(runtime)) -> Response:
    current = await _load(rt, provider_id)
    async with rt.db.write() as conn:
        await providers.delete(conn, current.id)
    return Response(status_code=204)
