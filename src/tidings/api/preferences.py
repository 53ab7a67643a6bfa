"""Courier's user preferences (``/users/{user_id}/preferences…``): a recipient's choice per
subscription topic, honoured at send (:mod:`tidings.workers.consent`).

All six methods of the SDK's ``users.preferences``: list the user's overrides, replace them
all, update several, and read, set or reset one topic. A user's choice is OPTED_IN or
OPTED_OUT, optionally with the channels they want the topic on (``has_custom_routing`` and
``custom_routing``; Tidings sends email, so a choice without ``email`` means no email).
REQUIRED is the topic's, never the user's: opting out of a REQUIRED topic is a 400 naming
it. Every change is logged (``GET /preferences/logs``). ``tenant_id`` is refused (one
workspace) and so is ``digest_schedule_id`` (no digests).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from tidings.api.workspace_preferences import TENANTS, body_doc, channels, idempotent, json_body
from tidings.domain.consent import CHANNELS
from tidings.errors import BadRequest, NotFound
from tidings.runtime import Runtime, runtime
from tidings.store import preferences as store
from tidings.store.database import Conn
from tidings.store.preferences import StoredTopic, UserChoice

router = APIRouter(prefix="/users/{user_id}/preferences", tags=["user preferences"])

MAX_TOPICS = 50
_TOPIC_FIELDS = ("status", "custom_routing", "has_custom_routing", "digest_schedule_id")
_BULK_FIELDS = ("topic_id", "status", "custom_routing", "has_custom_routing")

UserId = Annotated[str, Path(min_length=1, max_length=255)]
TopicId = Annotated[str, Path(max_length=64)]
TenantId = Annotated[str | None, Query(max_length=255)]


_CHOICE = {
    "status": {"type": "string", "enum": ["OPTED_IN", "OPTED_OUT"]},
    "has_custom_routing": {"type": "boolean"},
    "custom_routing": {"type": "array", "items": {"type": "string", "enum": list(CHANNELS)}},
}
_BULK_DOC = body_doc(
    ["topics"],
    {
        "topics": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["topic_id", "status"],
                "properties": {"topic_id": {"type": "string"}, **_CHOICE},
            },
        }
    },
)
_TOPIC_DOC = body_doc(
    ["topic"],
    {
        "topic": {
            "type": "object",
            "required": ["status"],
            "properties": {**_CHOICE, "digest_schedule_id": {"type": "string", "nullable": True}},
        }
    },
)


class Refused(Exception):
    """A choice that cannot be stored for this topic (unknown, or REQUIRED)."""


def _no_tenant(tenant_id: str | None) -> None:
    if tenant_id:
        raise BadRequest(f"tenant_id: {TENANTS}")


def _choice_fields(value: Any, path: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """``{status, has_custom_routing, custom_routing}`` of one topic choice, checked."""
    if not isinstance(value, dict):
        raise BadRequest(f"{path} must be an object")
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise BadRequest(
            f"{path}.{unknown[0]}: not a field of a topic preference (fields: {', '.join(fields)})"
        )
    status = value.get("status")
    if status == "REQUIRED":
        raise BadRequest(
            f"{path}.status: REQUIRED is a topic's default, not a user's choice; "
            "give OPTED_IN or OPTED_OUT"
        )
    if status not in ("OPTED_IN", "OPTED_OUT"):
        raise BadRequest(f"{path}.status is required: OPTED_IN or OPTED_OUT")
    if value.get("digest_schedule_id") is not None:
        raise BadRequest(
            f"{path}.digest_schedule_id: topic digests are not supported by Tidings; leave it out"
        )
    custom = value.get("has_custom_routing")
    if custom is not None and not isinstance(custom, bool):
        raise BadRequest(f"{path}.has_custom_routing must be true or false")
    routing = channels(value.get("custom_routing"), f"{path}.custom_routing")
    return {"status": status, "has_custom_routing": bool(custom), "custom_routing": routing}


async def _topic(conn: Conn, topic_id: str) -> StoredTopic:
    found = await store.get_topic(conn, topic_id)
    if found is None:
        raise NotFound(f"No subscription topic '{topic_id}'")
    return found


def _check_allowed(topic: StoredTopic, status: str) -> None:
    if topic.default_status == "REQUIRED" and status == "OPTED_OUT":
        raise Refused(f"topic '{topic.id}' ({topic.name}) is REQUIRED: it cannot be opted out of")


async def _sections(conn: Conn) -> dict[str, str]:
    return {s.id: s.name for s in await store.list_sections(conn)}


def _shape(
    topic: StoredTopic, chosen: UserChoice | None, section_name: str | None
) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "default_status": topic.default_status,
        "status": chosen.status if chosen is not None else topic.default_status,
        "topic_id": topic.id,
        "topic_name": topic.name,
    }
    if chosen is not None:
        shape["has_custom_routing"] = chosen.has_custom_routing
        if chosen.has_custom_routing:
            shape["custom_routing"] = chosen.custom_routing
    if section_name is not None:
        shape["section_id"] = topic.section_id
        shape["section_name"] = section_name
    return shape


def _bulk_shape(topic_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "custom_routing": fields["custom_routing"] if fields["has_custom_routing"] else [],
        "has_custom_routing": fields["has_custom_routing"],
        "status": fields["status"],
        "topic_id": topic_id,
    }


def _topics_list(body: Any, *, minimum: int) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = [k for k in body if k != "topics"]
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a field here (fields: topics)")
    topics = body.get("topics")
    if not isinstance(topics, list) or not minimum <= len(topics) <= MAX_TOPICS:
        raise BadRequest(f"topics is required: a list of {minimum} to {MAX_TOPICS} topics")
    out = []
    seen: set[str] = set()
    for i, item in enumerate(topics):
        path = f"topics[{i}]"
        fields = _choice_fields(item, path, _BULK_FIELDS)
        topic_id = item.get("topic_id")
        if not isinstance(topic_id, str) or not topic_id:
            raise BadRequest(f"{path}.topic_id is required")
        if topic_id in seen:
            raise BadRequest(f"{path}.topic_id: {topic_id} is given twice")
        seen.add(topic_id)
        out.append({"topic_id": topic_id, **fields})
    return out


@router.get("")
async def list_preferences(
    user_id: UserId, rt: Runtime = Depends(runtime), tenant_id: TenantId = None
) -> dict[str, Any]:
    """The user's overrides, one per topic they chose for (topics since archived left out)."""
    _no_tenant(tenant_id)
    async with rt.db.read() as conn:
        sections = await _sections(conn)
        topics = {t.id: t for t in await store.live_topics(conn)}
        chosen = await store.choices_of(conn, user_id)
    items = [
        _shape(topics[c.topic_id], c, sections.get(topics[c.topic_id].section_id))
        for c in chosen
        if c.topic_id in topics
    ]
    return {"items": items, "paging": {"more": False}}


@router.put("", openapi_extra=_BULK_DOC)
async def replace_preferences(
    user_id: UserId, request: Request, rt: Runtime = Depends(runtime), tenant_id: TenantId = None
) -> dict[str, Any]:
    """The complete set of overrides: any not listed is reset to its topic's default."""
    _no_tenant(tenant_id)
    _raw, body = await json_body(request)
    wanted = _topics_list(body, minimum=0)
    async with rt.db.write() as conn:
        for i, item in enumerate(wanted):
            topic = await store.get_topic(conn, item["topic_id"])
            if topic is None:
                raise BadRequest(
                    f"topics[{i}].topic_id: no subscription topic {item['topic_id']!r}"
                )
            try:
                _check_allowed(topic, item["status"])
            except Refused as exc:
                raise BadRequest(f"topics[{i}]: {exc}") from None
        listed = {item["topic_id"] for item in wanted}
        deleted = []
        for existing in await store.choices_of(conn, user_id):
            if existing.topic_id not in listed:
                topic = await store.get_topic(conn, existing.topic_id)
                await store.reset_choice(conn, user_id, topic, existing.topic_id, source="api")
                deleted.append(existing.topic_id)
        for item in wanted:
            topic = await _topic(conn, item["topic_id"])
            await store.set_choice(
                conn,
                user_id,
                topic,
                status=item["status"],
                has_custom_routing=item["has_custom_routing"],
                custom_routing=item["custom_routing"],
                source="api",
            )
    return {"deleted": deleted, "items": [_bulk_shape(i["topic_id"], i) for i in wanted]}


@router.post("", openapi_extra=_BULK_DOC)
async def update_preferences(
    user_id: UserId,
    request: Request,
    rt: Runtime = Depends(runtime),
    tenant_id: TenantId = None,
    idempotency_key: str | None = Header(default=None),
    x_idempotency_expiration: str | None = Header(default=None),
) -> Response:
    """Create or update several topics; a topic that cannot be applied (unknown, or an
    opt-out of a REQUIRED topic) is listed in ``errors`` and the others are applied."""
    _no_tenant(tenant_id)
    raw, body = await json_body(request)
    wanted = _topics_list(body, minimum=1)

    async def work(conn: Conn) -> dict[str, Any]:
        items, errors = [], []
        for item in wanted:
            topic = await store.get_topic(conn, item["topic_id"])
            if topic is None:
                errors.append(
                    {"topic_id": item["topic_id"], "reason": "no such subscription topic"}
                )
                continue
            try:
                _check_allowed(topic, item["status"])
            except Refused as exc:
                errors.append({"topic_id": topic.id, "reason": str(exc)})
                continue
            await store.set_choice(
                conn,
                user_id,
                topic,
                status=item["status"],
                has_custom_routing=item["has_custom_routing"],
                custom_routing=item["custom_routing"],
                source="api",
            )
            items.append(_bulk_shape(topic.id, item))
        return {"errors": errors, "items": items}

    return await idempotent(
        rt,
        prefix=f"up:{user_id}:",
        key=idempotency_key,
        expiration=x_idempotency_expiration,
        raw=raw,
        work=work,
    )


@router.get("/{topic_id}")
async def get_preference(
    user_id: UserId, topic_id: TopicId, rt: Runtime = Depends(runtime), tenant_id: TenantId = None
) -> dict[str, Any]:
    """The user's choice for one topic, or the topic's default when they made none."""
    _no_tenant(tenant_id)
    async with rt.db.read() as conn:
        topic = await _topic(conn, topic_id)
        chosen = await store.choice(conn, user_id, topic_id)
        sections = await _sections(conn)
    return {"topic": _shape(topic, chosen, sections.get(topic.section_id))}


@router.put("/{topic_id}", openapi_extra=_TOPIC_DOC)
async def set_preference(
    user_id: UserId,
    topic_id: TopicId,
    request: Request,
    rt: Runtime = Depends(runtime),
    tenant_id: TenantId = None,
) -> dict[str, str]:
    _no_tenant(tenant_id)
    _raw, body = await json_body(request)
    if not isinstance(body, dict) or set(body) - {"topic"}:
        raise BadRequest('the request body must be {"topic": {...}}')
    fields = _choice_fields(body.get("topic"), "topic", _TOPIC_FIELDS)
    async with rt.db.write() as conn:
        topic = await _topic(conn, topic_id)
        try:
            _check_allowed(topic, fields["status"])
        except Refused as exc:
            raise BadRequest(f"topic.status: {exc}") from None
        await store.set_choice(conn, user_id, topic, source="api", **fields)
    return {"message": "success"}


@router.delete("/{topic_id}", status_code=204)
async def reset_preference(
    user_id: UserId, topic_id: TopicId, rt: Runtime = Depends(runtime), tenant_id: TenantId = None
) -> Response:
    """Remove the user's choice: the topic's default applies again (204 when there was none)."""
    _no_tenant(tenant_id)
    async with rt.db.write() as conn:
        topic = await store.get_topic(conn, topic_id)
        had = await store.reset_choice(conn, user_id, topic, topic_id, source="api")
    if topic is None and not had:
        raise NotFound(f"No subscription topic '{topic_id}'")
    return Response(status_code=204)


async def topic_of_send(
    rt: Runtime, raw_message: dict[str, Any], template_topic_id: str | None
) -> dict[str, Any]:
    """What a message's payload records of its subscription topic: ``message.preferences.
    subscription_topic_id`` (which must name a live topic), else the stored template's;
    the dispatcher checks the recipient against it (workers/consent.py)."""
    given = raw_message.get("preferences") or {}
    topic_id = given.get("subscription_topic_id") if isinstance(given, dict) else None
    if topic_id:
        async with rt.db.read() as conn:
            if await store.get_topic(conn, topic_id) is None:
                raise BadRequest(
                    f"message.preferences.subscription_topic_id: no subscription topic {topic_id!r}"
                )
        return {"subscription_topic_id": topic_id}
    return {"subscription_topic_id": template_topic_id} if template_topic_id else {}
