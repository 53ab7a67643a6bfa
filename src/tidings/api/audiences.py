"""Courier's Audiences API (``/audiences``): filter-based groups of users.

``PUT /audiences/{id}`` creates or replaces an audience whole (a name or description left out
is cleared to ""; ``filter`` is required, since an audience is the users its filter
matches), ``GET`` retrieves one, ``GET /audiences`` lists them oldest first by cursor,
``DELETE`` removes one (204; 404 if there is none), and ``GET /audiences/{id}/members`` pages
through the users the filter matches now. The filter is checked whole by
:mod:`tidings.domain.audiences` (operators, AND/OR nesting, bounds); a problem answers 400
naming the field (``filter.filters[1].operator``).

Membership is evaluated when asked for, over the stored profiles, rather than kept as a list
that Courier rebuilds as profiles change: the answer is the same, always current, and there
is nothing to rebuild. ``added_at`` is therefore when the member last came to match as far
as Tidings can tell: the later of the audience's last write and the profile's.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from tidings.domain.audiences import parse_filter
from tidings.domain.errors import ValidationError
from tidings.errors import BadRequest, NotFound
from tidings.runtime import Runtime, runtime
from tidings.store import audiences as store
from tidings.store.audiences import Member, StoredAudience

router = APIRouter(prefix="/audiences", tags=["audiences"])

MAX_ID = 128  # the column's width
MAX_NAME = 255
MAX_DESCRIPTION = 2000
MEMBER_REASON = "filter"  # why a user is a member: the audience's filter matches the profile
_FIELDS = ("name", "description", "filter", "operator")

AudienceId = Annotated[str, Path(max_length=MAX_ID)]
Cursor = Annotated[str | None, Query(max_length=512)]
Limit = Annotated[int, Query(ge=1, le=100)]


class Paging(BaseModel):
    cursor: str | None = None
    more: bool


class AudienceOut(BaseModel):
    """The SDK's ``Audience``."""

    id: str
    name: str
    description: str
    filter: dict[str, Any] | None = None
    operator: Literal["AND", "OR"] | None = None
    created_at: str
    updated_at: str


class AudienceUpdated(BaseModel):
    audience: AudienceOut


class AudienceList(BaseModel):
    items: list[AudienceOut]
    paging: Paging


class MemberOut(BaseModel):
    added_at: str
    audience_id: str
    audience_version: int
    member_id: str
    reason: str


class MemberList(BaseModel):
    items: list[MemberOut]
    paging: Paging


def _iso(value: datetime) -> str:
    """Courier's timestamp: ISO 8601 in UTC with milliseconds."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _out(a: StoredAudience) -> AudienceOut:
    operator = a.operator
    return AudienceOut(
        id=a.id,
        name=a.name,
        description=a.description,
        filter=a.filter,
        operator="AND" if operator == "AND" else "OR" if operator == "OR" else None,
        created_at=_iso(a.created),
        updated_at=_iso(a.updated),
    )


def _member(a: StoredAudience, m: Member) -> MemberOut:
    return MemberOut(
        added_at=_iso(max(a.updated, m.updated)),
        audience_id=a.id,
        audience_version=a.version,
        member_id=m.user_id,
        reason=MEMBER_REASON,
    )


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"{key} must be a string of at most {limit} characters")
    return value


_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["filter"],
                    "properties": {
                        "name": {"type": "string", "nullable": True},
                        "description": {"type": "string", "nullable": True},
                        "filter": {
                            "type": "object",
                            "description": "Courier's AudienceFilterConfig: "
                            '{"filters": [rule, ...], "operator": "AND" | "OR"}; a rule is '
                            '{"operator", "path", "value"} or {"operator": "AND" | "OR", '
                            '"filters": [...]}',
                        },
                        "operator": {"type": "string", "enum": ["AND", "OR"], "nullable": True},
                    },
                }
            }
        },
    }
}


@router.put("/{audience_id}", openapi_extra=_BODY_DOC)
async def update_audience(
    audience_id: AudienceId, request: Request, rt: Runtime = Depends(runtime)
) -> AudienceUpdated:
    """Create or replace the audience (Courier's ``audiences.update``)."""
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    for key in body:
        if key not in _FIELDS:
            raise BadRequest(
                f"{str(key)[:64]} is not a field of an audience (fields: {', '.join(_FIELDS)})"
            )
    name = _text(body, "name", MAX_NAME)
    description = _text(body, "description", MAX_DESCRIPTION)
    if body.get("filter") is None:
        raise BadRequest("filter is required: the rules that decide which users belong")
    try:
        rule = parse_filter(body["filter"], operator=body.get("operator"))
    except ValidationError as exc:
        raise BadRequest(str(exc)) from None
    for attempt in (1, 2):
        try:
            async with rt.db.write() as conn:
                stored = await store.update(
                    conn, audience_id, name=name, description=description, rule=rule
                )
            break
        except IntegrityError:
            # Another request created this id at the same moment (PostgreSQL; SQLite has
            # one writer): it committed, so this one is now a replacement.
            if attempt == 2:
                raise
    return AudienceUpdated(audience=_out(stored))


@router.get("")
async def list_audiences(
    rt: Runtime = Depends(runtime), cursor: Cursor = None, limit: Limit = 20
) -> AudienceList:
    """Audiences, oldest first (``limit`` is a Tidings extension; Courier pages by cursor)."""
    async with rt.db.read() as conn:
        try:
            page = await store.list_page(conn, limit=limit, cursor=cursor or None)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return AudienceList(
        items=[_out(a) for a in page.results],
        paging=Paging(cursor=page.cursor, more=page.cursor is not None),
    )


@router.get("/{audience_id}")
async def get_audience(audience_id: AudienceId, rt: Runtime = Depends(runtime)) -> AudienceOut:
    async with rt.db.read() as conn:
        found = await store.get(conn, audience_id)
    if found is None:
        raise NotFound(f"No audience '{audience_id}'")
    return _out(found)


@router.delete("/{audience_id}", status_code=204)
async def delete_audience(audience_id: AudienceId, rt: Runtime = Depends(runtime)) -> Response:
    async with rt.db.write() as conn:
        if not await store.delete(conn, audience_id):
            raise NotFound(f"No audience '{audience_id}'")
    return Response(status_code=204)


@router.get("/{audience_id}/members")
async def list_members(
    audience_id: AudienceId,
    rt: Runtime = Depends(runtime),
    cursor: Cursor = None,
    limit: Limit = 20,
) -> MemberList:
    """The users the audience's filter matches now, by user id."""
    async with rt.db.read() as conn:
        try:
            page = await store.members_page(conn, audience_id, limit=limit, cursor=cursor or None)
        except store.UnknownAudience as exc:
            raise NotFound(exc.message) from None
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return MemberList(
        items=[_member(page.audience, m) for m in page.members],
        paging=Paging(cursor=page.cursor, more=page.cursor is not None),
    )
