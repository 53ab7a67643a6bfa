"""Outbound status endpoints: where Tidings posts ``message:updated`` (Courier's format).

``POST /webhooks/endpoints`` registers a URL; its signing secret (generated as
``whsec_…`` unless given) appears in that answer only, and masked to its last four
characters everywhere else. ``GET /webhooks/endpoints/{id}/deliveries`` shows what was sent
there, how often it was tried and what the endpoint answered, for troubleshooting.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tidings.domain.errors import ValidationError as FieldError
from tidings.errors import BadRequest, NotFound
from tidings.providers.outbound import Outbound
from tidings.runtime import Runtime, runtime
from tidings.store import status_endpoints as store
from tidings.store.clock import to_ms

router = APIRouter(prefix="/webhooks/endpoints", tags=["status webhooks"])

SECRET_PREFIX = "whsec_"


def check_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if len(value) > 2000:
        raise ValueError("must be at most 2000 characters")
    return value


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    secret: str | None = Field(default=None, min_length=1, max_length=128)
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)


class EndpointPatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    secret: str | None = Field(default=None, min_length=1, max_length=128)
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)


async def check_target(rt: Runtime, url: str) -> None:
    """The outbound network policy at creation: a 400 naming ``url`` when it would reach
    a loopback, link-local or private address (literally or by what its name resolves to)."""
    outbound = Outbound(rt.network_policy(), rt.settings.dns_server)
    try:
        await outbound.check_target(url, "url", trust=False)
    except FieldError as exc:
        raise BadRequest(str(exc)) from None


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(24)


def mask(secret: str | None) -> str | None:
    if not secret:
        return None
    return "*" * 8 + secret[-4:]


def endpoint_body(endpoint: store.Endpoint, *, reveal: bool = False) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "enabled": endpoint.enabled,
        "created": to_ms(endpoint.created),
        "secret": endpoint.secret if reveal else mask(endpoint.secret),
    }


def delivery_body(row: sa.Row[Any]) -> dict[str, Any]:
    if row.delivered_at is not None:
        state = "delivered"
    elif row.next_attempt_at is None:
        state = "failed"  # given up: see last_error
    else:
        state = "pending"
    data = row.body.get("data", {}) if isinstance(row.body, dict) else {}
    return {
        "id": row.id,
        "messageId": row.message_id,
        "type": row.body.get("type") if isinstance(row.body, dict) else None,
        "messageStatus": data.get("status"),
        "state": state,
        "attempts": row.attempts,
        "nextAttemptAt": None if state != "pending" else to_ms(row.next_attempt_at),
        "deliveredAt": to_ms(row.delivered_at),
        "lastStatus": row.last_status,
        "lastError": row.last_error,
        "created": to_ms(row.created),
    }


async def _get(rt: Runtime, endpoint_id: str) -> store.Endpoint:
    async with rt.db.read() as conn:
        endpoint = await store.get(conn, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no status endpoint '{endpoint_id}'")
    return endpoint


@router.post("")
async def create_endpoint(body: EndpointIn, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    """Register an endpoint; the answer is the only one that shows the whole secret."""
    await check_target(rt, body.url)
    async with rt.db.write() as conn:
        endpoint = await store.create(
            conn, url=body.url, secret=body.secret or generate_secret(), enabled=body.enabled
        )
    return endpoint_body(endpoint, reveal=True)


@router.get("")
async def list_endpoints(rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    async with rt.db.read() as conn:
        endpoints = await store.list_all(conn)
    return {"results": [endpoint_body(e) for e in endpoints]}


@router.get("/{endpoint_id}")
async def get_endpoint(endpoint_id: str, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return endpoint_body(await _get(rt, endpoint_id))


@router.patch("/{endpoint_id}")
async def update_endpoint(
    endpoint_id: str, body: EndpointPatchIn, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Change url, enabled, or the secret (rotation); a field left out is unchanged."""
    values: dict[str, Any] = {}
    for name in ("url", "secret", "enabled"):
        if name in body.model_fields_set:
            value = getattr(body, name)
            if value is None:
                raise BadRequest(f"{name}: cannot be null")
            values[name] = value
    if "url" in values:
        await check_target(rt, values["url"])
    async with rt.db.write() as conn:
        endpoint = await store.update(conn, endpoint_id, **values)
    if endpoint is None:
        raise NotFound(f"no status endpoint '{endpoint_id}'")
    return endpoint_body(endpoint)


@router.delete("/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: str, rt: Runtime = Depends(runtime)) -> Response:
    """Remove the endpoint and every delivery still queued for it."""
    async with rt.db.write() as conn:
        deleted = await store.delete(conn, endpoint_id)
    if not deleted:
        raise NotFound(f"no status endpoint '{endpoint_id}'")
    return Response(status_code=204)


@router.get("/{endpoint_id}/deliveries")
async def list_deliveries(
    endpoint_id: str,
    rt: Runtime = Depends(runtime),
    limit: int = Query(default=50, ge=1, le=500),
    message_id: str | None = Query(default=None, alias="messageId"),
) -> dict[str, Any]:
    """The endpoint's most recent deliveries, newest first, with attempts and last answer."""
    async with rt.db.read() as conn:
        if await store.get(conn, endpoint_id) is None:
            raise NotFound(f"no status endpoint '{endpoint_id}'")
        rows = await store.deliveries_of(conn, endpoint_id, limit=limit, message_id=message_id)
    return {"results": [delivery_body(r) for r in rows]}
