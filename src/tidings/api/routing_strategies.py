"""Courier's Routing Strategies API (``/routing-strategies``), and the workspace default.

Create, list (metadata only, paged by cursor), retrieve, replace (full replacement: omitted
optional fields are cleared), archive (204; archived strategies are neither listed nor read)
and the templates linked to a strategy (none yet: stored templates do not exist, so that page
is truthfully empty). Bodies are validated whole; an unknown field is refused by name.

Tidings extension: Courier links strategies to notification templates, which Tidings does not
have yet, so one strategy may be marked the workspace default (``PUT
/routing-strategies/{id}/default``): it routes every send that gives no routing and no
``channels.email.providers`` of its own. ``GET /routing-strategies/default`` answers
``{"id": ...}`` (null when there is none); ``DELETE`` clears it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from tidings.api import idempotency_keys
from tidings.api.auth import presented_key
from tidings.api.notifications import template_summary
from tidings.api.schemas import check_channels, check_providers, check_routing
from tidings.api.send import _known_provider_keys as known_provider_keys
from tidings.domain.routing import COURIER_CHANNELS
from tidings.errors import BadRequest, Conflict, NotFound
from tidings.runtime import Runtime, runtime
from tidings.store import idempotency
from tidings.store import routing_strategies as store
from tidings.store import templates as templates_store
from tidings.store.clock import to_ms, utcnow
from tidings.store.routing_strategies import StoredStrategy

router = APIRouter(prefix="/routing-strategies", tags=["routing strategies"])

MAX_NAME = 255  # the column's width
MAX_DESCRIPTION = 2000
MAX_TAGS = 20
MAX_TAG = 128
IDEMPOTENCY_PREFIX = "rs:"  # keys share a table with /send's
MAX_IDEMPOTENCY_KEY = 255 - len(IDEMPOTENCY_PREFIX)
IDEMPOTENCY_TTL = timedelta(hours=24)
_FIELDS = ("name", "routing", "channels", "description", "providers", "tags")

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Conflict: an Idempotency-Key reused with another body, or archiving "
        "the workspace default strategy.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
}

StrategyId = Annotated[str, Path(max_length=64)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=512)]


def _who(request: Request) -> str:
    """Courier's creator/updater: Tidings has no users, so the API key, by its hint."""
    key = presented_key(request)
    return f"tk_…{key[-4:]}" if len(key) >= 8 else "api"


def _validated(body: Any) -> dict[str, Any]:
    """The stored form of a create/replace body: every field checked, omitted optional
    fields cleared (``channels``/``providers`` to ``{}``, the rest to null)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = [k for k in body if k not in _FIELDS]
    if unknown:
        raise BadRequest(
            f"{', '.join(unknown)}: not a field of a routing strategy "
            f"(fields: {', '.join(_FIELDS)})"
        )
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise BadRequest(f"name is required: 1 to {MAX_NAME} characters")
    if "routing" not in body or body["routing"] is None:
        raise BadRequest("routing is required")
    description = body.get("description")
    if description is not None and (
        not isinstance(description, str) or len(description) > MAX_DESCRIPTION
    ):
        raise BadRequest(f"description must be a string of at most {MAX_DESCRIPTION} characters")
    tags = body.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or len(tags) > MAX_TAGS:
            raise BadRequest(f"tags must be a list of at most {MAX_TAGS} strings")
        for i, tag in enumerate(tags):
            if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG:
                raise BadRequest(f"tags[{i}] must be a string of 1 to {MAX_TAG} characters")
    known = known_provider_keys()  # the same list /send checks against
    try:
        routing = check_routing(body["routing"], "routing", known, COURIER_CHANNELS)
        channels = check_channels(body.get("channels") or {}, "channels", known, COURIER_CHANNELS)
        providers = check_providers(body.get("providers") or {}, "providers", known)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return {
        "name": name,
        "routing": routing,
        "channels": channels,
        "providers": providers,
        "description": description,
        "tags": list(tags) if tags is not None else None,
    }


def _summary(s: StoredStrategy) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "tags": s.tags,
        "created": to_ms(s.created),
        "creator": s.creator,
        "updated": to_ms(s.updated),
        "updater": s.updater,
    }


def _full(s: StoredStrategy) -> dict[str, Any]:
    return {**_summary(s), "routing": s.routing, "channels": s.channels, "providers": s.providers}


async def _body(request: Request) -> tuple[bytes, Any]:
    raw = await request.body()
    try:
        return raw, json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None


_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["name", "routing"],
                    "properties": {
                        "name": {"type": "string"},
                        "routing": {"type": "object"},
                        "channels": {"type": "object"},
                        "providers": {"type": "object"},
                        "description": {"type": "string", "nullable": True},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                }
            }
        },
    }
}


@router.post("", status_code=200, openapi_extra=_BODY_DOC, responses=_CONFLICT)
async def create_strategy(
    request: Request,
    rt: Runtime = Depends(runtime),
    idempotency_key: str | None = Header(default=None),
) -> Response:
    """Create a strategy; an ``Idempotency-Key`` replays the first answer for 24 hours."""
    raw, body = await _body(request)
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    key = IDEMPOTENCY_PREFIX + idempotency_key if idempotency_key else None
    request_hash = hashlib.sha256(raw).hexdigest()
    if key:
        async with rt.db.read() as conn:
            stored = await idempotency.find(conn, key)
        if stored is not None:
            return idempotency_keys.replay(stored, request_hash)
    fields = _validated(body)
    who = _who(request)
    try:
        async with rt.db.write() as conn:
            if key and (stored := await idempotency.find(conn, key)) is not None:
                return idempotency_keys.replay(stored, request_hash)
            created = await store.create(conn, creator=who, **fields)
            answer = _full(created)
            if key:
                await idempotency.save(
                    conn,
                    key,
                    request_hash=request_hash,
                    status_code=200,
                    body=answer,
                    expires_at=utcnow() + IDEMPOTENCY_TTL,
                )
    except IntegrityError:
        # Another request with the same key committed first (PostgreSQL): replay its answer.
        if not key:
            raise
        async with rt.db.read() as conn:
            stored = await idempotency.find(conn, key)
        if stored is None:
            raise
        return idempotency_keys.replay(stored, request_hash)
    return JSONResponse(answer, status_code=200)


@router.get("")
async def list_strategies(
    rt: Runtime = Depends(runtime), cursor: Cursor = None, limit: Limit = 20
) -> dict[str, Any]:
    """Live strategies, oldest first, metadata only (no routing/channels/providers)."""
    async with rt.db.read() as conn:
        try:
            page = await store.list_page(conn, limit=limit, cursor=cursor or None)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return {
        "paging": {"cursor": page.cursor, "more": page.cursor is not None},
        "results": [_summary(s) for s in page.results],
    }


# Before /{id}, so that "default" is not taken for a strategy id.
@router.get("/default")
async def get_default(rt: Runtime = Depends(runtime)) -> dict[str, str | None]:
    """The workspace default strategy's id (a Tidings extension), or null."""
    async with rt.db.read() as conn:
        found = await store.default(conn)
    return {"id": found.id if found else None}


@router.delete("/default", status_code=204)
async def clear_default(rt: Runtime = Depends(runtime)) -> Response:
    """Sends without routing of their own go through the default provider again."""
    async with rt.db.write() as conn:
        await store.clear_default(conn)
    return Response(status_code=204)


@router.get("/{strategy_id}")
async def get_strategy(strategy_id: StrategyId, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    async with rt.db.read() as conn:
        found = await store.get(conn, strategy_id)
    if found is None:
        raise NotFound(f"No routing strategy '{strategy_id}'")
    return _full(found)


@router.put("/{strategy_id}", openapi_extra=_BODY_DOC)
async def replace_strategy(
    strategy_id: StrategyId, request: Request, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Full replacement: optional fields left out are cleared."""
    _raw, body = await _body(request)
    fields = _validated(body)
    async with rt.db.write() as conn:
        replaced = await store.replace(conn, strategy_id, updater=_who(request), **fields)
    if replaced is None:
        raise NotFound(f"No routing strategy '{strategy_id}'")
    return _full(replaced)


@router.delete("/{strategy_id}", status_code=204, responses=_CONFLICT)
async def archive_strategy(strategy_id: StrategyId, rt: Runtime = Depends(runtime)) -> Response:
    async with rt.db.write() as conn:
        if await store.default_id(conn) == strategy_id:
            raise Conflict(
                f"Routing strategy '{strategy_id}' is the workspace default; clear it "
                "(DELETE /routing-strategies/default) or make another the default first"
            )
        if not await store.archive(conn, strategy_id):
            raise NotFound(f"No routing strategy '{strategy_id}'")
    return Response(status_code=204)


@router.get("/{strategy_id}/notifications")
async def list_notifications(
    strategy_id: StrategyId,
    rt: Runtime = Depends(runtime),
    cursor: Cursor = None,
    limit: Limit = 20,
) -> dict[str, Any]:
    """Templates whose routing is this strategy (as NotificationTemplateSummary items)."""
    async with rt.db.read() as conn:
        found = await store.get(conn, strategy_id)
        if found is None:
            raise NotFound(f"No routing strategy '{strategy_id}'")
        try:
            page = await templates_store.list_page(
                conn, limit=limit, cursor=cursor, strategy_id=strategy_id
            )
        except ValueError:
            raise BadRequest("cursor is not a cursor this server handed out") from None
    return {
        "paging": {"cursor": page.cursor, "more": page.cursor is not None},
        "results": [template_summary(t) for t in page.results],
    }


@router.put("/{strategy_id}/default", status_code=204)
async def set_default(strategy_id: StrategyId, rt: Runtime = Depends(runtime)) -> Response:
    """Make this strategy the workspace default (a Tidings extension)."""
    async with rt.db.write() as conn:
        if await store.get(conn, strategy_id) is None:
            raise NotFound(f"No routing strategy '{strategy_id}'")
        await store.set_default(conn, strategy_id)
    return Response(status_code=204)
