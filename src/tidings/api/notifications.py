"""Courier's Notifications API (``/notifications``): stored templates, versions, content.

Every method of the ``trycourier`` SDK's ``notifications`` resource: create (a draft
unless ``state`` says PUBLISHED), list (live templates, paged by cursor), retrieve (the
published version by default, ``version=draft`` or ``v001``), replace, archive (archived
templates stay readable but are neither listed nor sendable, and their aliases are
freed), list_versions, publish (the draft, or a historical version published again as
the next one), get_metrics (from Tidings' own messages), and the content routes
(retrieve_content, put_content, put_element, put_locale) with per-element checksums.

Bodies are checked whole by :mod:`tidings.domain.templates`; an unknown field is refused
by name. ``Idempotency-Key`` on create and publish replays the first answer, as /send's
does (same table, keys prefixed so they cannot collide).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from tidings.api import idempotency_keys
from tidings.api.auth import presented_key
from tidings.domain import templates as domain
from tidings.domain.content import ELEMENTAL_VERSION
from tidings.domain.errors import ValidationError
from tidings.domain.templates import PUBLISHED, Missing, State, WritePayload
from tidings.errors import BadRequest, Conflict, NotFound
from tidings.runtime import Runtime, runtime
from tidings.store import idempotency
from tidings.store import routing_strategies as strategies
from tidings.store import templates as store
from tidings.store.clock import to_ms, utcnow
from tidings.store.database import Conn
from tidings.store.templates import AliasTaken, StoredTemplate

router = APIRouter(prefix="/notifications", tags=["notifications"])

CREATE_PREFIX = "nt:"  # idempotency keys share a table with /send's
PUBLISH_PREFIX = "ntp:"
MAX_IDEMPOTENCY_KEY = 180  # the column is 255 wide: room for the prefix and a template id

TemplateId = Annotated[str, Path(max_length=64)]
ElementId = Annotated[str, Path(max_length=domain.MAX_ELEMENT_ID)]
LocaleId = Annotated[str, Path(max_length=35, pattern=r"^[A-Za-z0-9_\-]+$")]
Cursor = Annotated[str | None, Query(max_length=512)]
VersionQuery = Annotated[str | None, Query(max_length=16)]

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Conflict: the alias belongs to another template, the template is "
        "archived, or an Idempotency-Key was reused with another body.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
}


def _who(request: Request) -> str:
    """Courier's creator/updater: Tidings has no users, so the API key, by its hint."""
    key = presented_key(request)
    return f"tk_…{key[-4:]}" if len(key) >= 8 else "api"


async def _body(request: Request, *, optional: bool = False) -> tuple[bytes, dict[str, Any]]:
    raw = await request.body()
    if optional and not raw.strip():
        return raw, {}
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return raw, body


def _only(body: dict[str, Any], fields: tuple[str, ...], what: str) -> None:
    unknown = [k for k in body if k not in fields]
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a field of {what} (fields: {', '.join(fields)})")


T = TypeVar("T")


def _checked(check: Callable[[], T]) -> T:
    try:
        return check()
    except ValidationError as exc:
        raise BadRequest(str(exc)) from None


def _state(body: dict[str, Any]) -> State:
    return _checked(lambda: domain.parse_state(body.get("state"), "state"))


def _alias_field(aliases: list[str]) -> dict[str, Any]:
    if not aliases:
        return {}
    return {"alias": aliases[0] if len(aliases) == 1 else aliases}


def _document_fields(document: dict[str, Any]) -> dict[str, Any]:
    fields = {
        "name": document["name"],
        "tags": document.get("tags") or [],
        "brand": document.get("brand"),
        "routing": document.get("routing"),
        "subscription": document.get("subscription"),
        "content": document["content"],
    }
    if document.get("email"):
        fields["email"] = document["email"]  # reads omit email when no header is set
    return fields


def _response(t: StoredTemplate, document: dict[str, Any], state: State) -> dict[str, Any]:
    return {
        "id": t.id,
        "created": to_ms(t.created),
        "creator": t.creator,
        "updated": to_ms(t.updated),
        "updater": t.updater,
        "state": state,
        **_alias_field(t.aliases),
        **_document_fields(document),
    }


def template_summary(t: StoredTemplate) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "id": t.id,
        "created": to_ms(t.created),
        "creator": t.creator,
        "updated": to_ms(t.updated),
        "updater": t.updater,
        "name": t.draft["name"],
        "state": t.state,
        "tags": t.draft.get("tags") or [],
    }
    topic = (t.published or {}).get("subscription")
    if topic:  # of the published version; omitted when none, or never published
        summary["subscription_topic_id"] = summary["topic_id"] = topic["topic_id"]
    return summary


def _mutation(t: StoredTemplate) -> dict[str, Any]:
    content = t.draft["content"]
    return {
        "id": t.id,
        "elements": domain.element_checksums(content),
        "state": t.state,
        "version": content.get("version", ELEMENTAL_VERSION),
    }


async def _live(conn: Conn, template_id: str, *, lock: bool = True) -> StoredTemplate:
    found = await store.get(conn, template_id, lock=lock)
    if found is None:
        raise NotFound(f"No notification template '{template_id}'")
    if found.archived_at is not None:
        raise Conflict(f"Notification template '{template_id}' is archived and cannot change")
    return found


async def _check_references(conn: Conn, payload: WritePayload) -> None:
    if payload.routing is not None:
        strategy_id = payload.routing["strategy_id"]
        if await strategies.get(conn, strategy_id) is None:
            raise BadRequest(
                f"notification.routing.strategy_id: there is no routing strategy "
                f"'{strategy_id}' (GET /routing-strategies lists them)"
            )


async def _set_alias(conn: Conn, template_id: str, payload: WritePayload) -> None:
    alias = payload.alias
    if isinstance(alias, Missing):
        return  # omitted: the aliases stay as they are
    try:
        await store.set_alias(conn, template_id, alias)
    except AliasTaken as exc:
        raise Conflict(
            f"notification.alias: '{exc.alias}' is already the alias of notification "
            f"template {exc.template_id}"
        ) from None


async def _publish_draft(conn: Conn, template: StoredTemplate, who: str) -> None:
    await store.publish(conn, template.id, document=template.draft, creator=who)


async def _reread(conn: Conn, template_id: str) -> StoredTemplate:
    found = await store.get(conn, template_id)
    assert found is not None
    return found


async def _alias_conflict(rt: Runtime, payload: WritePayload, template_id: str | None) -> None:
    """After an IntegrityError: a 409 if a concurrent request took the alias first."""
    if isinstance(payload.alias, str):
        async with rt.db.read() as conn:
            owner = await store.alias_owner(conn, payload.alias)
        if owner is not None and owner != template_id:
            raise Conflict(
                f"notification.alias: '{payload.alias}' is already the alias of "
                f"notification template {owner}"
            )


async def _idempotent(
    rt: Runtime,
    key: str | None,
    expiration: str | None,
    raw: bytes,
    work: Callable[[Conn], Awaitable[tuple[int, dict[str, Any]]]],
    on_integrity: Callable[[], Awaitable[None]] | None = None,
) -> Response:
    """Run ``work`` in one write transaction; with a key, store its answer there too and
    replay it for a later request with the same key (a different body → 409)."""
    request_hash = hashlib.sha256(raw).hexdigest()
    expires = idempotency_keys.expiry(expiration, utcnow()) if key else None
    if key:
        async with rt.db.read() as conn:
            stored = await idempotency.find(conn, key)
        if stored is not None:
            return idempotency_keys.replay(stored, request_hash)
    try:
        async with rt.db.write() as conn:
            if key and (stored := await idempotency.find(conn, key)) is not None:
                return idempotency_keys.replay(stored, request_hash)
            status, answer = await work(conn)
            if key:
                assert expires is not None
                await idempotency.save(
                    conn,
                    key,
                    request_hash=request_hash,
                    status_code=status,
                    body=answer,
                    expires_at=expires,
                )
    except IntegrityError:
        # A concurrent request committed first (PostgreSQL): the same key → its answer;
        # the same alias → 409.
        if key:
            async with rt.db.read() as conn:
                stored = await idempotency.find(conn, key)
            if stored is not None:
                return idempotency_keys.replay(stored, request_hash)
        if on_integrity is not None:
            await on_integrity()
        raise
    if status == 204:
        return Response(status_code=204)
    return JSONResponse(answer, status_code=status)


def _key(prefix: str, value: str | None) -> str | None:
    if value is None:
        return None
    # The stored key carries a prefix (and publish's the template id) in a 255-wide column.
    if not 0 < len(value) <= MAX_IDEMPOTENCY_KEY or len(prefix + value) > 255:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return prefix + value


_WRITE_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["notification"],
                    "properties": {
                        "notification": {
                            "type": "object",
                            "required": list(domain.REQUIRED_FIELDS),
                            "properties": {
                                "name": {"type": "string"},
                                "tags": {"type": "array", "items": {"type": "string"}},
                                "brand": {"type": "object", "nullable": True},
                                "routing": {"type": "object", "nullable": True},
                                "subscription": {"type": "object", "nullable": True},
                                "content": {"type": "object"},
                                "email": {"type": "object", "nullable": True},
                                "alias": {"type": "string", "nullable": True},
                            },
                        },
                        "state": {"type": "string", "enum": ["DRAFT", "PUBLISHED"]},
                    },
                }
            }
        },
    }
}


@router.post("", status_code=200, openapi_extra=_WRITE_DOC, responses=_CONFLICT)
async def create_notification(
    request: Request,
    rt: Runtime = Depends(runtime),
    idempotency_key: str | None = Header(default=None),
    x_idempotency_expiration: str | None = Header(default=None),
) -> Response:
    """Create a template: a draft unless ``state`` is PUBLISHED (then published as v001)."""
    raw, body = await _body(request)
    key = _key(CREATE_PREFIX, idempotency_key)
    _only(body, ("notification", "state"), "a template create")
    if "notification" not in body:
        raise BadRequest("notification is required")
    payload = _checked(
        lambda: domain.check_write_payload(body["notification"], "notification", creating=True)
    )
    state = _state(body)
    who = _who(request)

    async def work(conn: Conn) -> tuple[int, dict[str, Any]]:
        await _check_references(conn, payload)
        template_id = await store.create(conn, document=payload.document(None), creator=who)
        await _set_alias(conn, template_id, payload)
        created = await _reread(conn, template_id)
        if state == PUBLISHED:
            await _publish_draft(conn, created, who)
            created = await _reread(conn, template_id)
        return 200, _response(created, created.draft, created.state)

    return await _idempotent(
        rt,
        key,
        x_idempotency_expiration,
        raw,
        work,
        lambda: _alias_conflict(rt, payload, None),
    )


@router.get("")
async def list_notifications(
    rt: Runtime = Depends(runtime),
    cursor: Cursor = None,
    event_id: Annotated[str | None, Query(max_length=domain.MAX_ALIAS)] = None,
    notes: bool | None = None,
    tags: Annotated[str | None, Query(max_length=2000)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Live templates, oldest first. ``event_id``: the template with that alias; ``tags``:
    comma-separated, all required (case-insensitive). ``notes`` concerns Courier's legacy
    templates, which Tidings does not have, so it changes nothing."""
    del notes
    wanted = [t.strip() for t in tags.split(",") if t.strip()] if tags else None
    async with rt.db.read() as conn:
        try:
            page = await store.list_page(
                conn, limit=limit, cursor=cursor or None, tags=wanted, alias=event_id
            )
        except ValueError as exc:
            raise BadRequest(f"cursor: {exc}") from None
    return {
        "paging": {"cursor": page.cursor, "more": page.cursor is not None},
        "results": [template_summary(t) for t in page.results],
    }


async def _version_document(
    conn: Conn, t: StoredTemplate, version: str | None
) -> tuple[dict[str, Any], State]:
    """The document ``version`` names (default: published) and the state it reads."""
    wanted = version or "published"
    if wanted == "draft":
        return t.draft, t.state
    if wanted == "published":
        if t.published is None:
            raise NotFound(
                f"Notification template '{t.id}' has no published version yet; "
                "pass version=draft to read its draft"
            )
        return t.published, PUBLISHED
    if not domain.is_version_name(wanted):
        raise BadRequest('version must be "draft", "published" or a version like "v001"')
    stored = await store.get_version(conn, t.id, wanted)
    if stored is None:
        raise NotFound(f"Notification template '{t.id}' has no version '{wanted}'")
    return stored.document, PUBLISHED


async def _readable(conn: Conn, template_id: str) -> StoredTemplate:
    found = await store.get(conn, template_id)
    if found is None:
        raise NotFound(f"No notification template '{template_id}'")
    return found


@router.get("/{template_id}")
async def retrieve_notification(
    template_id: TemplateId, rt: Runtime = Depends(runtime), version: VersionQuery = None
) -> dict[str, Any]:
    """A template at a version: "published" (default), "draft", or "v001"."""
    async with rt.db.read() as conn:
        found = await _readable(conn, template_id)
        document, state = await _version_document(conn, found, version)
    return _response(found, document, state)


@router.put("/{template_id}", openapi_extra=_WRITE_DOC, responses=_CONFLICT)
async def replace_notification(
    template_id: TemplateId, request: Request, rt: Runtime = Depends(runtime)
) -> JSONResponse:
    """Replace the draft in full (content may be unwrapped); PUBLISHED publishes it too."""
    _raw, body = await _body(request)
    _only(body, ("notification", "state"), "a template replace")
    if "notification" not in body:
        raise BadRequest("notification is required")
    payload = _checked(
        lambda: domain.check_write_payload(body["notification"], "notification", creating=False)
    )
    state = _state(body)
    who = _who(request)
    try:
        async with rt.db.write() as conn:
            found = await _live(conn, template_id)
            await _check_references(conn, payload)
            stored_email = found.draft.get("email")
            await store.update_draft(conn, found.id, payload.document(stored_email), updater=who)
            await _set_alias(conn, found.id, payload)
            replaced = await _reread(conn, found.id)
            if state == PUBLISHED:
                await _publish_draft(conn, replaced, who)
                replaced = await _reread(conn, found.id)
    except IntegrityError:
        await _alias_conflict(rt, payload, template_id)
        raise
    return JSONResponse(_response(replaced, replaced.draft, replaced.state))


@router.delete("/{template_id}", status_code=204)
async def archive_notification(template_id: TemplateId, rt: Runtime = Depends(runtime)) -> Response:
    """Archive: no longer listed or sendable, its aliases freed; still readable."""
    async with rt.db.write() as conn:
        if not await store.archive(conn, template_id):
            if await store.get(conn, template_id) is None:
                raise NotFound(f"No notification template '{template_id}'")
            raise NotFound(f"Notification template '{template_id}' is already archived")
    return Response(status_code=204)


@router.get("/{template_id}/versions")
async def list_versions(
    template_id: TemplateId,
    rt: Runtime = Depends(runtime),
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=10)] = 10,
) -> dict[str, Any]:
    """The draft, then the published version ("published:v002"), then older versions,
    newest first."""
    async with rt.db.read() as conn:
        found = await _readable(conn, template_id)
        stored = await store.versions(conn, found.id)
    entries: list[dict[str, Any]] = [
        {
            "version": "draft",
            "created": to_ms(found.updated),
            "creator": found.updater,
            "has_changes": found.has_changes,
        }
    ]
    for v in stored:
        name = f"published:{v.version}" if v.version == found.published_version else v.version
        entries.append({"version": name, "created": to_ms(v.created), "creator": v.creator})
    start = 0
    if cursor:
        try:
            start = int(cursor.removeprefix("o"))
            if not cursor.startswith("o") or start < 0:
                raise ValueError(cursor)
        except ValueError:
            raise BadRequest("cursor: cursor is not one this API returned") from None
    page = entries[start : start + limit]
    more = start + limit < len(entries)
    return {
        "paging": {"cursor": f"o{start + limit}" if more else None, "more": more},
        "versions": page,
    }


def _body_doc(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": bool(required),
            "content": {
                "application/json": {
                    "schema": {"type": "object", "required": required, "properties": properties}
                }
            },
        }
    }


_STATE: dict[str, Any] = {"type": "string", "enum": ["DRAFT", "PUBLISHED"]}


@router.post(
    "/{template_id}/publish",
    status_code=204,
    responses=_CONFLICT,
    openapi_extra=_body_doc([], {"version": {"type": "string"}}),
)
async def publish_notification(
    template_id: TemplateId,
    request: Request,
    rt: Runtime = Depends(runtime),
    idempotency_key: str | None = Header(default=None),
    x_idempotency_expiration: str | None = Header(default=None),
) -> Response:
    """Publish the draft as the next version; ``version`` publishes a historical version
    again (as the next version, so the history stays in order)."""
    raw, body = await _body(request, optional=True)
    _only(body, ("version",), "publish")
    version = body.get("version")
    if version is not None and (
        not isinstance(version, str) or not domain.is_version_name(version)
    ):
        raise BadRequest('version must be a published version like "v001"')
    key = _key(f"{PUBLISH_PREFIX}{template_id}:", idempotency_key)
    who = _who(request)

    async def work(conn: Conn) -> tuple[int, dict[str, Any]]:
        found = await _live(conn, template_id)
        if version is None:
            await _publish_draft(conn, found, who)
        else:
            historical = await store.get_version(conn, found.id, version)
            if historical is None:
                raise NotFound(f"Notification template '{template_id}' has no version '{version}'")
            await store.publish(conn, found.id, document=historical.document, creator=who)
        return 204, {}

    return await _idempotent(rt, key, x_idempotency_expiration, raw, work)


def _instant(value: str, name: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 timestamp with an offset") from None
    if at.tzinfo is None:
        raise BadRequest(f"{name} must carry an offset (2026-04-01T00:00:00Z)")
    return at.astimezone(UTC)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@router.get("/{template_id}/metrics")
async def get_metrics(
    template_id: TemplateId,
    rt: Runtime = Depends(runtime),
    start: Annotated[str | None, Query(max_length=64)] = None,
    end: Annotated[str | None, Query(max_length=64)] = None,
    lookback: Annotated[str | None, Query(max_length=32)] = None,
    granularity: Literal["HOUR", "DAY", "WEEK", "MONTH"] = "DAY",
) -> dict[str, Any]:
    """The delivery funnel of the template's messages, per bucket and provider (channel
    email). An unknown template has an all-empty series, as Courier's."""
    window = _checked(
        lambda: domain.metrics_window(
            start=_instant(start, "start") if start else None,
            end=_instant(end, "end") if end else None,
            lookback=domain.parse_duration(lookback, "lookback") if lookback else None,
            granularity=granularity,
            now=utcnow(),
        )
    )
    series: list[dict[str, Any]] = []
    async with rt.db.read() as conn:
        any_messages = await store.has_messages(conn, template_id, window.start, window.end)
        for i, at in enumerate(window.buckets):
            until = window.buckets[i + 1] if i + 1 < len(window.buckets) else window.end
            counts = (
                await store.count_messages(conn, template_id, at, until) if any_messages else []
            )
            series.append(
                {
                    "period": _iso(at),
                    "data": [
                        {
                            "channel": "email",
                            "provider": c.provider,
                            "sent": c.sent,
                            "delivered": c.delivered,
                            "opened": c.opened,
                            "clicked": c.clicked,
                            "errors": c.errors,
                            "undeliverable": c.undeliverable,
                        }
                        for c in counts
                    ],
                }
            )
    return {
        "notificationId": template_id,
        "granularity": window.granularity,
        "start": _iso(window.start),
        "end": _iso(window.end),
        "series": series,
    }


@router.get("/{template_id}/content")
async def retrieve_content(
    template_id: TemplateId, rt: Runtime = Depends(runtime), version: VersionQuery = None
) -> dict[str, Any]:
    """A version's Elemental content with per-element and per-locale checksums."""
    async with rt.db.read() as conn:
        found = await _readable(conn, template_id)
        document, _state = await _version_document(conn, found, version)
    return domain.with_checksums(document["content"])


async def _edit_content(
    rt: Runtime,
    request: Request,
    template_id: str,
    state: State,
    edit: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Apply ``edit`` to the draft's content, check the result, store it (and publish it
    when ``state`` is PUBLISHED); answer the mutation response."""
    who = _who(request)
    async with rt.db.write() as conn:
        found = await _live(conn, template_id)
        content = edit(found.draft["content"])
        checked = _checked(lambda: domain.check_content(content, "content", require_channel=False))
        document = {**found.draft, "content": checked}
        if document.get("email") and not domain.has_email_channel(checked):
            document["email"] = None  # headers live only while there is an email channel
        await store.update_draft(conn, found.id, document, updater=who)
        edited = await _reread(conn, found.id)
        if state == PUBLISHED:
            await _publish_draft(conn, edited, who)
            edited = await _reread(conn, found.id)
    return _mutation(edited)


@router.put(
    "/{template_id}/content",
    responses=_CONFLICT,
    openapi_extra=_body_doc(["content"], {"content": {"type": "object"}, "state": _STATE}),
)
async def put_content(
    template_id: TemplateId, request: Request, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Replace all of the draft's content (``version`` defaults to 2022-01-01)."""
    _raw, body = await _body(request)
    _only(body, ("content", "state"), "put content")
    if "content" not in body:
        raise BadRequest("content is required")
    state = _state(body)
    content = _checked(
        lambda: domain.check_content(
            body["content"], "content", require_channel=False, default_version=True
        )
    )
    return await _edit_content(rt, request, template_id, state, lambda _old: content)


@router.put(
    "/{template_id}/elements/{element_id}",
    responses=_CONFLICT,
    openapi_extra=_body_doc(
        ["type"],
        {
            "type": {"type": "string"},
            "data": {"type": "object"},
            "channels": {"type": "array", "items": {"type": "string"}},
            "if": {"type": "string"},
            "loop": {"type": "string"},
            "ref": {"type": "string"},
            "state": _STATE,
        },
    ),
)
async def put_element(
    template_id: TemplateId, element_id: ElementId, request: Request, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Replace one element, found by id anywhere in the content (channel blocks too)."""
    _raw, body = await _body(request)
    state = _state(body)
    fields = {k: v for k, v in body.items() if k != "state"}

    def edit(content: dict[str, Any]) -> dict[str, Any]:
        try:
            return _checked(lambda: domain.replace_element(content, element_id, fields))
        except LookupError:
            raise NotFound(
                f"Notification template '{template_id}' has no element '{element_id}'"
            ) from None

    return await _edit_content(rt, request, template_id, state, edit)


@router.put(
    "/{template_id}/locales/{locale_id}",
    responses=_CONFLICT,
    openapi_extra=_body_doc(
        ["elements"],
        {"elements": {"type": "array", "items": {"type": "object"}}, "state": _STATE},
    ),
)
async def put_locale(
    template_id: TemplateId, locale_id: LocaleId, request: Request, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Set locale ``locale_id``'s overrides, stored in each element's ``locales``; the
    locale's earlier overrides are replaced."""
    _raw, body = await _body(request)
    _only(body, ("elements", "state"), "put locale")
    if "elements" not in body:
        raise BadRequest("elements is required")
    state = _state(body)

    def edit(content: dict[str, Any]) -> dict[str, Any]:
        try:
            return _checked(lambda: domain.set_locale(content, locale_id, body["elements"]))
        except LookupError as exc:
            raise NotFound(
                f"elements: notification template '{template_id}' has no element "
                f"'{exc.args[0]}' (a locale overrides existing elements only)"
            ) from None

    return await _edit_content(rt, request, template_id, state, edit)
