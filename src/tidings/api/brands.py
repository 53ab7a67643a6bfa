"""Courier's Brands API (``/brands``) and the workspace default brand (``/tidings/brands/default``).

Create (an optional client-given ``id``; 409 if it is taken; ``Idempotency-Key`` replays the
first answer as ``/send`` does), list (oldest first, paged by cursor), retrieve, update
(Courier's full replacement: settings or snippets left out are cleared) and delete (204;
409 for the workspace default, as Courier refuses to delete its default brand). Bodies are
checked whole by :mod:`tidings.domain.brands`; an unknown field is refused by its path.

Tidings extension: Courier's workspace always has a default brand, set in its designer.
Tidings has none until one is chosen: ``PUT /tidings/brands/default`` with
``{"brand_id": ...}`` makes that brand the one a send naming no brand uses; ``GET`` answers
``{"brand_id": ...}`` (null when there is none) and ``DELETE`` clears it. The path is outside
``/brands/`` because a client may name a brand ``default``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from tidings.api import idempotency_keys
from tidings.domain.brands import BrandError, BrandFields, parse_brand
from tidings.errors import BadRequest, Conflict, NotFound
from tidings.ids import new_id
from tidings.runtime import Runtime, runtime
from tidings.store import brands as store
from tidings.store import idempotency
from tidings.store.clock import utcnow

router = APIRouter(tags=["brands"])

IDEMPOTENCY_PREFIX = "brand:"  # keys share a table with /send's
MAX_IDEMPOTENCY_KEY = 255 - len(IDEMPOTENCY_PREFIX)

BrandId = Annotated[str, Path(max_length=64)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=512)]

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_CREATE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Conflict: the id is taken, or an Idempotency-Key was reused with "
        "another body.",
        "content": _ERROR,
    }
}
_NO_BRAND: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not Found: there is no brand by that id.", "content": _ERROR}
}
_DELETE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Conflict: the brand is the workspace default.", "content": _ERROR}
}

_SETTINGS_DOC: dict[str, Any] = {
    "type": "object",
    "description": "Courier's brand settings: colors, email (header, footer, head, "
    "templateOverride) and inapp; see docs/brands.md.",
}
_SNIPPETS_DOC: dict[str, Any] = {
    "type": "object",
    "nullable": True,
    "properties": {
        "items": {
            "type": "array",
            "nullable": True,
            "items": {
                "type": "object",
                "required": ["name", "value"],
                "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
            },
        }
    },
}


def _body_doc(*, creating: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "name": {"type": "string"},
        "settings": {**_SETTINGS_DOC, "nullable": not creating},
        "snippets": _SNIPPETS_DOC,
    }
    if creating:
        properties = {"id": {"type": "string", "nullable": True}, **properties}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["name", "settings"] if creating else ["name"],
                        "properties": properties,
                    }
                }
            },
        }
    }


async def _body(request: Request) -> tuple[bytes, Any]:
    raw = await request.body()
    try:
        return raw, json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None


def _checked(body: Any, *, creating: bool) -> BrandFields:
    try:
        return parse_brand(body, creating=creating)
    except BrandError as exc:
        raise BadRequest(str(exc)) from None


@router.post(
    "/brands", status_code=200, openapi_extra=_body_doc(creating=True), responses=_CREATE_ERRORS
)
async def create_brand(
    request: Request,
    rt: Runtime = Depends(runtime),
    idempotency_key: str | None = Header(default=None),
    x_idempotency_expiration: str | None = Header(default=None),
) -> Response:
    """Create a brand; an ``Idempotency-Key`` replays the first answer until it expires."""
    raw, body = await _body(request)
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    key = IDEMPOTENCY_PREFIX + idempotency_key if idempotency_key else None
    if x_idempotency_expiration is not None and key is None:
        raise BadRequest("x-idempotency-expiration is given without an Idempotency-Key")
    expires_at = idempotency_keys.expiry(x_idempotency_expiration, utcnow()) if key else None
    request_hash = hashlib.sha256(raw).hexdigest()
    if key:
        async with rt.db.read() as conn:
            stored = await idempotency.find(conn, key)
        if stored is not None:
            return idempotency_keys.replay(stored, request_hash)
    fields = _checked(body, creating=True)
    brand_id = fields.id or new_id()
    try:
        async with rt.db.write() as conn:
            if key and (stored := await idempotency.find(conn, key)) is not None:
                return idempotency_keys.replay(stored, request_hash)
            if await store.exists(conn, brand_id):
                raise Conflict(f"A brand with id '{brand_id}' already exists")
            answer = await store.create(
                conn,
                brand_id=brand_id,
                name=fields.name,
                settings=fields.settings,
                snippets=fields.snippets,
            )
            if key and expires_at is not None:
                await idempotency.save(
                    conn,
                    key,
                    request_hash=request_hash,
                    status_code=200,
                    body=answer,
                    expires_at=expires_at,
                )
    except IntegrityError:
        # Another request committed first: the same Idempotency-Key (replay its answer) or
        # the same brand id (PostgreSQL; SQLite's one writer finds it above).
        if key:
            async with rt.db.read() as conn:
                stored = await idempotency.find(conn, key)
            if stored is not None:
                return idempotency_keys.replay(stored, request_hash)
        raise Conflict(f"A brand with id '{brand_id}' already exists") from None
    return JSONResponse(answer, status_code=200)


@router.get("/brands")
async def list_brands(
    rt: Runtime = Depends(runtime), cursor: Cursor = None, limit: Limit = 20
) -> dict[str, Any]:
    """Brands, oldest first, whole (settings and snippets included, as Courier lists them)."""
    async with rt.db.read() as conn:
        try:
            page = await store.list_page(conn, limit=limit, cursor=cursor or None)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return {
        "paging": {"cursor": page.cursor, "more": page.cursor is not None},
        "results": page.results,
    }


@router.get("/brands/{brand_id}")
async def get_brand(brand_id: BrandId, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    async with rt.db.read() as conn:
        found = await store.get_brand(conn, brand_id)
    if found is None:
        raise NotFound(f"No brand '{brand_id}'")
    return found


@router.put("/brands/{brand_id}", openapi_extra=_body_doc(creating=False))
async def update_brand(
    brand_id: BrandId, request: Request, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Full replacement: settings or snippets left out are cleared."""
    _raw, body = await _body(request)
    fields = _checked(body, creating=False)
    async with rt.db.write() as conn:
        replaced = await store.replace(
            conn, brand_id, name=fields.name, settings=fields.settings, snippets=fields.snippets
        )
    if replaced is None:
        raise NotFound(f"No brand '{brand_id}'")
    return replaced


@router.delete("/brands/{brand_id}", status_code=204, responses=_DELETE_ERRORS)
async def delete_brand(brand_id: BrandId, rt: Runtime = Depends(runtime)) -> Response:
    async with rt.db.write() as conn:
        if await store.default_id(conn) == brand_id:
            raise Conflict(
                f"Cannot delete default brand '{brand_id}': make another brand the default "
                "(PUT /tidings/brands/default) or clear it (DELETE /tidings/brands/default) "
                "first"
            )
        if not await store.delete(conn, brand_id):
            raise NotFound(f"No brand '{brand_id}'")
    return Response(status_code=204)


_DEFAULT_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["brand_id"],
                    "properties": {"brand_id": {"type": "string"}},
                }
            }
        },
    }
}


@router.get("/tidings/brands/default")
async def get_default(rt: Runtime = Depends(runtime)) -> dict[str, str | None]:
    """The workspace default brand's id (a Tidings extension), or null."""
    async with rt.db.read() as conn:
        return {"brand_id": await store.default_id(conn)}


@router.put("/tidings/brands/default", openapi_extra=_DEFAULT_DOC, responses=_NO_BRAND)
async def set_default(request: Request, rt: Runtime = Depends(runtime)) -> dict[str, str | None]:
    """Make a brand the one sends naming no brand use (a Tidings extension)."""
    _raw, body = await _body(request)
    if not isinstance(body, dict):
        raise BadRequest('the request body must be a JSON object: {"brand_id": ...}')
    unknown = [k for k in body if k != "brand_id"]
    if unknown:
        raise BadRequest(f"{', '.join(unknown)}: not a field here (fields: brand_id)")
    brand_id = body.get("brand_id")
    if not isinstance(brand_id, str) or not 0 < len(brand_id) <= 64:
        raise BadRequest("brand_id is required: the id of a brand")
    async with rt.db.write() as conn:
        if not await store.exists(conn, brand_id):
            raise NotFound(f"No brand '{brand_id}'")
        await store.set_default(conn, brand_id)
    return {"brand_id": brand_id}


@router.delete("/tidings/brands/default", status_code=204)
async def clear_default(rt: Runtime = Depends(runtime)) -> Response:
    """Sends naming no brand go out without one again."""
    async with rt.db.write() as conn:
        await store.clear_default(conn)
    return Response(status_code=204)
