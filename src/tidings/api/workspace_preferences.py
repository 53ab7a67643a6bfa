"""Courier's workspace preferences (``/preferences/sections…``, ``/preferences/logs``).

Sections group subscription topics; a topic's ``default_status`` (OPTED_IN, OPTED_OUT,
REQUIRED) is what a recipient who has chosen nothing gets, and ``include_unsubscribe_header``
whether its emails carry RFC 8058's one-click ``List-Unsubscribe`` (see
:mod:`tidings.workers.consent`). Shapes are the SDK's ``WorkspacePreferenceGetResponse``
and ``WorkspacePreferenceTopicGetResponse``; replace is a full replacement (omitted
optional fields are cleared); archiving a section that still has topics is a 409.

Refused rather than accepted and ignored: topic digests (``digest`` other than null, and
releasing a held digest: Tidings holds none), ``tenant_id`` (one workspace, no tenants),
and publishing the hosted preferences page (``POST /preferences/publish``, 400: Tidings
hosts only the one-click unsubscribe page).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from tidings.api import idempotency_keys
from tidings.api.auth import presented_key
from tidings.api.schemas import parse_when
from tidings.domain.consent import CHANNELS, STATUSES
from tidings.errors import BadRequest, Conflict, NotFound
from tidings.runtime import Runtime, runtime
from tidings.store import idempotency
from tidings.store import preferences as store
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.preferences import LogEntry, StoredSection, StoredTopic

router = APIRouter(prefix="/preferences", tags=["workspace preferences"])

MAX_NAME = 255
MAX_DESCRIPTION = 2000
MAX_IDEMPOTENCY_KEY = 200
ALLOWED_PREFERENCES = ("snooze", "channel_preferences")
TENANTS = "tenants are not supported: Tidings has one workspace; remove it"
_SECTION_FIELDS = ("name", "description", "has_custom_routing", "routing_options")
_TOPIC_FIELDS = (
    "default_status",
    "name",
    "allowed_preferences",
    "description",
    "digest",
    "include_unsubscribe_header",
    "routing_options",
    "topic_data",
)

Id = Annotated[str, Path(max_length=64)]
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The workspace preference still has topics.", "content": _ERROR}
}


def who(request: Request) -> str:
    """Courier's creator/updater: Tidings has no users, so the API key, by its hint."""
    key = presented_key(request)
    return f"tk_…{key[-4:]}" if len(key) >= 8 else "api"


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


async def json_body(request: Request) -> tuple[bytes, Any]:
    raw = await request.body()
    try:
        return raw, json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None


async def idempotent(
    rt: Runtime,
    *,
    prefix: str,
    key: str | None,
    expiration: str | None,
    raw: bytes,
    work: Callable[[Conn], Awaitable[dict[str, Any]]],
) -> Response:
    """Run ``work`` in a transaction and answer its body (200); with an ``Idempotency-Key``,
    a repeat replays the first answer (409 if the body differs), as ``/send`` does."""
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    stored_key = prefix + key if key else None
    request_hash = hashlib.sha256(raw).hexdigest()
    expires_at = idempotency_keys.expiry(expiration, utcnow()) if stored_key else None
    if stored_key:
        async with rt.db.read() as conn:
            stored = await idempotency.find(conn, stored_key)
        if stored is not None:
            return idempotency_keys.replay(stored, request_hash)
    try:
        async with rt.db.write() as conn:
            if stored_key and (stored := await idempotency.find(conn, stored_key)) is not None:
                return idempotency_keys.replay(stored, request_hash)
            answer = await work(conn)
            if stored_key:
                assert expires_at is not None
                await idempotency.save(
                    conn,
                    stored_key,
                    request_hash=request_hash,
                    status_code=200,
                    body=answer,
                    expires_at=expires_at,
                )
    except IntegrityError:
        # Another request with the same key committed first (PostgreSQL): replay its answer.
        if not stored_key:
            raise
        async with rt.db.read() as conn:
            stored = await idempotency.find(conn, stored_key)
        if stored is None:
            raise
        return idempotency_keys.replay(stored, request_hash)
    return JSONResponse(answer, status_code=200)


# -- validation -----------------------------------------------------------------------------


def _object(body: Any, fields: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = [k for k in body if k not in fields]
    if unknown:
        raise BadRequest(
            f"{', '.join(unknown)}: not a field of a {what} (fields: {', '.join(fields)})"
        )
    return body


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise BadRequest(f"name is required: 1 to {MAX_NAME} characters")
    return name


def _description(body: dict[str, Any]) -> str | None:
    value = body.get("description")
    if value is not None and (not isinstance(value, str) or len(value) > MAX_DESCRIPTION):
        raise BadRequest(f"description must be a string of at most {MAX_DESCRIPTION} characters")
    return value


def channels(value: Any, path: str) -> list[str]:
    """A list of Courier's channel classifications (null: empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{path} must be a list of channels ({', '.join(CHANNELS)})")
    for i, item in enumerate(value):
        if item not in CHANNELS:
            raise BadRequest(f"{path}[{i}] must be one of {', '.join(CHANNELS)}")
    return list(dict.fromkeys(value))


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def _section_fields(body: Any) -> dict[str, Any]:
    body = _object(body, _SECTION_FIELDS, "workspace preference")
    return {
        "name": _name(body),
        "description": _description(body),
        "has_custom_routing": _bool(body, "has_custom_routing", False),
        "routing_options": channels(body.get("routing_options"), "routing_options"),
    }


def _topic_fields(body: Any) -> dict[str, Any]:
    body = _object(body, _TOPIC_FIELDS, "subscription topic")
    status = body.get("default_status")
    if status not in STATUSES:
        raise BadRequest(f"default_status is required: one of {', '.join(STATUSES)}")
    if body.get("digest") is not None:
        raise BadRequest(
            "digest: topic digests are not supported by Tidings (it sends each message as it "
            "comes); send null or leave it out"
        )
    allowed = body.get("allowed_preferences")
    if allowed is None:
        allowed = []
    if not isinstance(allowed, list) or any(a not in ALLOWED_PREFERENCES for a in allowed):
        raise BadRequest(f"allowed_preferences must be a list of {', '.join(ALLOWED_PREFERENCES)}")
    if "snooze" in allowed:
        raise BadRequest(
            "allowed_preferences: snooze is not supported by Tidings (a snoozed recipient "
            "would still be sent to); use channel_preferences or leave it out"
        )
    topic_data = body.get("topic_data")
    if topic_data is not None and not isinstance(topic_data, dict):
        raise BadRequest("topic_data must be an object")
    return {
        "name": _name(body),
        "description": _description(body),
        "default_status": status,
        "allowed_preferences": list(dict.fromkeys(allowed)),
        # Unset: on, so that a topic's email carries one-click unsubscribe unless the topic
        # says it is transactional (REQUIRED topics never carry it: see workers/consent.py).
        "include_unsubscribe_header": _bool(body, "include_unsubscribe_header", True),
        "routing_options": channels(body.get("routing_options"), "routing_options"),
        "topic_data": dict(topic_data or {}),
    }


# -- documentation of the bodies (read by hand, so that unknown fields can be named) -------

_CHANNELS_DOC = {"type": "array", "items": {"type": "string", "enum": list(CHANNELS)}}


def body_doc(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its JSON body itself."""
    schema = {"type": "object", "required": required, "properties": properties}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_SECTION_DOC = body_doc(
    ["name"],
    {
        "name": {"type": "string"},
        "description": {"type": "string", "nullable": True},
        "has_custom_routing": {"type": "boolean", "nullable": True},
        "routing_options": {**_CHANNELS_DOC, "nullable": True},
    },
)
_TOPIC_DOC = body_doc(
    ["default_status", "name"],
    {
        "default_status": {"type": "string", "enum": list(STATUSES)},
        "name": {"type": "string"},
        "allowed_preferences": {
            "type": "array",
            "items": {"type": "string", "enum": list(ALLOWED_PREFERENCES)},
            "nullable": True,
        },
        "description": {"type": "string", "nullable": True},
        "digest": {"type": "object", "nullable": True},
        "include_unsubscribe_header": {"type": "boolean", "nullable": True},
        "routing_options": {**_CHANNELS_DOC, "nullable": True},
        "topic_data": {"type": "object", "nullable": True},
    },
)
_RELEASE_DOC = body_doc(
    ["user_id"], {"user_id": {"type": "string"}, "tenant_id": {"type": "string"}}
)


# -- shapes ---------------------------------------------------------------------------------


def topic_shape(t: StoredTopic) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "id": t.id,
        "allowed_preferences": t.allowed_preferences,
        "created": iso(t.created),
        "default_status": t.default_status,
        "include_unsubscribe_header": t.include_unsubscribe_header,
        "name": t.name,
        "routing_options": t.routing_options,
        "topic_data": t.topic_data,
        "updated": iso(t.updated),
        "creator": t.creator,
        "description": t.description,
        "digest": None,
        "updater": t.updater,
    }
    return shape


def section_shape(s: StoredSection) -> dict[str, Any]:
    return {
        "id": s.id,
        "created": iso(s.created),
        "has_custom_routing": s.has_custom_routing,
        "name": s.name,
        "routing_options": s.routing_options,
        "topics": [topic_shape(t) for t in s.topics],
        "creator": s.creator,
        "description": s.description,
        "updated": iso(s.updated),
        "updater": s.updater,
    }


def log_shape(e: LogEntry) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "id": e.id,
        "custom_routing": e.custom_routing if e.has_custom_routing else [],
        "has_custom_routing": e.has_custom_routing,
        "status": e.status,
        "timestamp": iso(e.timestamp),
        "topic_id": e.topic_id,
        "topic_name": e.topic_name,
        "user_id": e.user_id,
    }
    if e.previous is not None:
        shape["previous"] = e.previous
    return shape


# -- sections -------------------------------------------------------------------------------


@router.post("/sections", openapi_extra=_SECTION_DOC)
async def create_section(
    request: Request,
    rt: Runtime = Depends(runtime),
    idempotency_key: str | None = Header(default=None),
    x_idempotency_expiration: str | None = Header(default=None),
) -> Response:
    raw, body = await json_body(request)
    fields = _section_fields(body)
    creator = who(request)

    async def work(conn: Conn) -> dict[str, Any]:
        return section_shape(await store.create_section(conn, who=creator, **fields))

    return await idempotent(
        rt,
        prefix="ps:",
        key=idempotency_key,
        expiration=x_idempotency_expiration,
        raw=raw,
        work=work,
    )


@router.get("/sections")
async def list_sections(rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    async with rt.db.read() as conn:
        return {"results": [section_shape(s) for s in await store.list_sections(conn)]}


async def _section(conn: Conn, section_id: str) -> StoredSection:
    found = await store.get_section(conn, section_id)
    if found is None:
        raise NotFound(f"No workspace preference '{section_id}'")
    return found


@router.get("/sections/{section_id}")
async def get_section(section_id: Id, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    async with rt.db.read() as conn:
        return section_shape(await _section(conn, section_id))


@router.put("/sections/{section_id}", openapi_extra=_SECTION_DOC)
async def replace_section(
    section_id: Id, request: Request, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    _raw, body = await json_body(request)
    fields = _section_fields(body)
    async with rt.db.write() as conn:
        replaced = await store.replace_section(conn, section_id, who=who(request), **fields)
    if replaced is None:
        raise NotFound(f"No workspace preference '{section_id}'")
    return section_shape(replaced)


@router.delete("/sections/{section_id}", status_code=204, responses=_CONFLICT)
async def archive_section(section_id: Id, rt: Runtime = Depends(runtime)) -> Response:
    async with rt.db.write() as conn:
        section = await _section(conn, section_id)
        if section.topics:
            raise Conflict(
                f"Workspace preference '{section_id}' still has {len(section.topics)} "
                "topic(s); archive them first"
            )
        await store.archive_section(conn, section_id)
    return Response(status_code=204)


# -- topics ---------------------------------------------------------------------------------


@router.post("/sections/{section_id}/topics", openapi_extra=_TOPIC_DOC)
async def create_topic(
    section_id: Id,
    request: Request,
    rt: Runtime = Depends(runtime),
    idempotency_key: str | None = Header(default=None),
    x_idempotency_expiration: str | None = Header(default=None),
) -> Response:
    raw, body = await json_body(request)
    fields = _topic_fields(body)
    creator = who(request)

    async def work(conn: Conn) -> dict[str, Any]:
        await _section(conn, section_id)
        return topic_shape(await store.create_topic(conn, section_id, who=creator, **fields))

    return await idempotent(
        rt,
        prefix=f"pt:{section_id}:",
        key=idempotency_key,
        expiration=x_idempotency_expiration,
        raw=raw,
        work=work,
    )


@router.get("/sections/{section_id}/topics")
async def list_topics(section_id: Id, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    async with rt.db.read() as conn:
        section = await _section(conn, section_id)
    return {"results": [topic_shape(t) for t in section.topics]}


async def _topic(conn: Conn, section_id: str, topic_id: str) -> StoredTopic:
    found = await store.get_topic(conn, topic_id)
    if found is None or found.section_id != section_id:
        raise NotFound(f"No topic '{topic_id}' in workspace preference '{section_id}'")
    return found


@router.get("/sections/{section_id}/topics/{topic_id}")
async def get_topic(section_id: Id, topic_id: Id, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    async with rt.db.read() as conn:
        return topic_shape(await _topic(conn, section_id, topic_id))


@router.put("/sections/{section_id}/topics/{topic_id}", openapi_extra=_TOPIC_DOC)
async def replace_topic(
    section_id: Id, topic_id: Id, request: Request, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    _raw, body = await json_body(request)
    fields = _topic_fields(body)
    async with rt.db.write() as conn:
        replaced = await store.replace_topic(conn, section_id, topic_id, who=who(request), **fields)
    if replaced is None:
        raise NotFound(f"No topic '{topic_id}' in workspace preference '{section_id}'")
    return topic_shape(replaced)


@router.delete("/sections/{section_id}/topics/{topic_id}", status_code=204)
async def archive_topic(section_id: Id, topic_id: Id, rt: Runtime = Depends(runtime)) -> Response:
    async with rt.db.write() as conn:
        if not await store.archive_topic(conn, section_id, topic_id):
            raise NotFound(f"No topic '{topic_id}' in workspace preference '{section_id}'")
    return Response(status_code=204)


@router.delete("/sections/{section_id}/topics/{topic_id}/digest", status_code=204)
async def delete_digest(section_id: Id, topic_id: Id, rt: Runtime = Depends(runtime)) -> Response:
    """Turning off a digest: no topic has one in Tidings, so there is nothing to remove."""
    async with rt.db.read() as conn:
        await _topic(conn, section_id, topic_id)
    return Response(status_code=204)


@router.post("/sections/{section_id}/topics/{topic_id}/digest/release", openapi_extra=_RELEASE_DOC)
async def release_digest(
    section_id: Id, topic_id: Id, request: Request, rt: Runtime = Depends(runtime)
) -> Response:
    _raw, body = await json_body(request)
    body = _object(body, ("user_id", "tenant_id"), "digest release")
    if not isinstance(body.get("user_id"), str) or not body["user_id"]:
        raise BadRequest("user_id is required")
    if body.get("tenant_id") is not None:
        raise BadRequest(f"tenant_id: {TENANTS}")
    async with rt.db.read() as conn:
        await _topic(conn, section_id, topic_id)
    raise NotFound(
        f"topic '{topic_id}' has no digest (Tidings does not hold digests), so "
        f"{body['user_id']} has none to release"
    )


# -- the change log and publishing ----------------------------------------------------------


@router.get("/logs")
async def list_logs(
    rt: Runtime = Depends(runtime),
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    since: Annotated[str | None, Query(max_length=64)] = None,
    tenant_id: Annotated[str | None, Query(max_length=255)] = None,
    user_id: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    """Preference changes, newest first (the API's, the one-click links' and Mailgun's)."""
    if tenant_id:
        raise BadRequest(f"tenant_id: {TENANTS}")
    when: datetime | None = None
    if since:
        value = since if "T" in since else f"{since}T00:00:00+00:00"
        try:
            when = parse_when(value, "since")
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    async with rt.db.read() as conn:
        entries, next_cursor = await store.log_page(
            conn, limit=limit, cursor=cursor or None, since=when, user_id=user_id
        )
    paging: dict[str, Any] = {"more": next_cursor is not None}
    if next_cursor is not None:
        paging["cursor"] = next_cursor
    return {"items": [log_shape(e) for e in entries], "paging": paging}


@router.post("/publish")
async def publish() -> Response:
    # A 400 like every other field Tidings does not act on (a 5xx would say "try again").
    raise BadRequest(
        "publishing a hosted preferences page is not supported by Tidings: it hosts only "
        "the one-click unsubscribe page that topic emails link to (List-Unsubscribe); "
        "manage preferences with /users/{user_id}/preferences",
    )
