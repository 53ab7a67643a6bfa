"""Courier's Lists API (``/lists``, ``/lists/{id}/subscriptions``) and ``profiles.lists``
(``/profiles/{user_id}/lists``).

* ``GET /lists`` (``pattern``, ``cursor``; ``limit`` 1–100, default 20, is a Tidings
  extension as on the other list routes): live lists in id order. ``PUT /lists/{id}``
  ``{name, preferences?}`` creates or replaces (204); ``DELETE`` archives (204; the list is
  then neither read, listed nor sent to, and keeps its subscribers); ``PUT …/restore`` brings
  it back (204). An archived list stays archived through a PUT or a subscription.
* Subscriptions: ``GET`` (``cursor``; ``limit`` 1–1000, default 100), ``POST`` adds users
  and leaves existing subscriptions alone, ``PUT`` makes the given users the whole list,
  ``PUT …/subscriptions/{user_id}`` subscribes one (overwriting its preferences),
  ``DELETE …/subscriptions/{user_id}`` unsubscribes. Subscribing to a list that does not
  exist creates it (named by its id), as Courier does.
* ``GET /profiles/{user_id}/lists`` (``cursor``): the user's live lists with each
  subscription's preferences; ``POST`` ``{lists: [{listId, preferences?}]}`` subscribes to
  several; ``DELETE`` removes every subscription of the user.

Ids and patterns are checked by :mod:`tidings.domain.lists`; preferences are Courier's
``RecipientPreferences``, checked field by field and kept exactly as given. The POST routes
take ``Idempotency-Key`` as ``/send`` does (the first answer is replayed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from tidings.api import idempotency_keys
from tidings.domain.lists import ListError, check_list_id, check_preferences, parse_pattern
from tidings.domain.recipients import MAX_USER_ID
from tidings.errors import BadRequest, NotFound
from tidings.runtime import Runtime, runtime
from tidings.store import idempotency
from tidings.store import lists as store
from tidings.store.clock import utcnow
from tidings.store.database import Conn

router = APIRouter(tags=["lists"])

MAX_IDEMPOTENCY_KEY = 200  # with its route prefix, within the column's 255

Cursor = Annotated[str | None, Query(max_length=512)]
# The query's own length limit is the pattern's (a longer one could match no list id).
Pattern = Annotated[str | None, Query()]

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_REPLAY_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Conflict: an Idempotency-Key was reused with another body.",
        "content": _ERROR,
    }
}
_PREFERENCES_DOC: dict[str, Any] = {
    "type": "object",
    "nullable": True,
    "description": "Courier's RecipientPreferences: {categories?, notifications?}, each "
    "{name: {status: OPTED_IN|OPTED_OUT|REQUIRED, channel_preferences?, rules?}}.",
}


def _body_doc(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "required": required, "properties": properties}
                }
            },
        }
    }


_RECIPIENTS_DOC = _body_doc(
    ["recipients"],
    {
        "recipients": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["recipientId"],
                "properties": {"recipientId": {"type": "string"}, "preferences": _PREFERENCES_DOC},
            },
        }
    },
)
_LIST_DOC = _body_doc(["name"], {"name": {"type": "string"}, "preferences": _PREFERENCES_DOC})
_SUBSCRIBE_USER_DOC = _body_doc([], {"preferences": _PREFERENCES_DOC})
_PROFILE_LISTS_DOC = _body_doc(
    ["lists"],
    {
        "lists": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["listId"],
                "properties": {"listId": {"type": "string"}, "preferences": _PREFERENCES_DOC},
            },
        }
    },
)


def _list_id(value: str, path: str = "list_id") -> str:
    try:
        return check_list_id(value, path)
    except ListError as exc:
        raise BadRequest(str(exc)) from None


def _user_id(value: Any, path: str = "user_id") -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{path} must be a non-empty string")
    if len(value) > MAX_USER_ID:
        raise BadRequest(f"{path} must be at most {MAX_USER_ID} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadRequest(f"{path} must not contain control characters")
    return value


def _preferences(value: Any, path: str) -> dict[str, Any] | None:
    try:
        return check_preferences(value, path)
    except ListError as exc:
        raise BadRequest(str(exc)) from None


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None


def _object(body: Any, fields: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object with {', '.join(fields)}")
    for key in body:
        if key not in fields:
            raise BadRequest(f"{key}: not a field here (fields: {', '.join(fields)})")
    for key in required:
        if body.get(key) is None:
            raise BadRequest(f"{key} is required")
    return body


def _recipients(body: Any) -> list[store.Subscription]:
    """``{recipients: [{recipientId, preferences?}]}`` (the SDK's
    ``PutSubscriptionsRecipientParam``), checked item by item."""
    items = _object(body, ("recipients",), ("recipients",))["recipients"]
    if not isinstance(items, list):
        raise BadRequest("recipients must be a list")
    subscriptions = []
    for i, item in enumerate(items):
        at = f"recipients[{i}]"
        entry = _object_at(item, at, ("recipientId", "preferences"), ("recipientId",))
        subscriptions.append(
            store.Subscription(
                user_id=_user_id(entry["recipientId"], f"{at}.recipientId"),
                preferences=_preferences(entry.get("preferences"), f"{at}.preferences"),
            )
        )
    return subscriptions


def _object_at(
    value: Any, path: str, fields: tuple[str, ...], required: tuple[str, ...]
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{path} must be an object")
    for key in value:
        if key not in fields:
            raise BadRequest(f"{path}.{key}: not a field here (fields: {', '.join(fields)})")
    for key in required:
        if value.get(key) is None:
            raise BadRequest(f"{path}.{key} is required")
    return value


async def _idempotent(
    request: Request,
    rt: Runtime,
    *,
    prefix: str,
    key: str | None,
    expiration: str | None,
    status_code: int,
    answer: dict[str, Any],
    work: Callable[[Conn], Awaitable[None]],
) -> Response:
    """Run ``work`` in one transaction and answer ``status_code``/``answer``; with an
    ``Idempotency-Key`` the first answer is stored with the change and replayed after."""
    raw = await request.body()
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    if expiration is not None and key is None:
        raise BadRequest("x-idempotency-expiration is given without an Idempotency-Key")
    stored_key = f"{prefix}:{key}" if key else None
    expires_at = idempotency_keys.expiry(expiration, utcnow()) if stored_key else None
    request_hash = hashlib.sha256(request.url.path.encode() + b"\n" + raw).hexdigest()

    def done() -> Response:
        if status_code == 204:
            return Response(status_code=204)
        return JSONResponse(answer, status_code=status_code)

    try:
        async with rt.db.write() as conn:
            if stored_key and (stored := await idempotency.find(conn, stored_key)) is not None:
                return idempotency_keys.replay(stored, request_hash)
            await work(conn)
            if stored_key and expires_at is not None:
                await idempotency.save(
                    conn,
                    stored_key,
                    request_hash=request_hash,
                    status_code=status_code,
                    body=answer,
                    expires_at=expires_at,
                )
    except IntegrityError:
        # Another request with the same key committed first (PostgreSQL): replay it.
        if not stored_key:
            raise
        async with rt.db.read() as conn:
            stored = await idempotency.find(conn, stored_key)
        if stored is None:
            raise
        return idempotency_keys.replay(stored, request_hash)
    return done()


async def _live(conn: Conn, list_id: str) -> None:
    found = await store.state(conn, list_id)
    if found is None:
        raise NotFound(f"No list '{list_id}'")
    if found == "archived":
        raise NotFound(
            f"List '{list_id}' is archived; restore it with PUT /lists/{list_id}/restore"
        )


# -- lists -------------------------------------------------------------------------------


@router.get("/lists")
async def list_lists(
    rt: Runtime = Depends(runtime),
    cursor: Cursor = None,
    pattern: Pattern = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Live lists in id order; ``pattern`` keeps those it matches."""
    try:
        parsed = parse_pattern(pattern, "pattern") if pattern else None
    except ListError as exc:
        raise BadRequest(str(exc)) from None
    async with rt.db.read() as conn:
        try:
            page = await store.list_page(conn, pattern=parsed, cursor=cursor or None, limit=limit)
        except ValueError as exc:
            raise BadRequest(f"cursor: {exc}") from None
    return {"items": page.items, "paging": {"cursor": page.cursor, "more": page.cursor is not None}}


@router.get("/lists/{list_id}")
async def get_list(list_id: str, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    list_id = _list_id(list_id)
    async with rt.db.read() as conn:
        await _live(conn, list_id)
        found = await store.get(conn, list_id)
    assert found is not None
    return found


@router.put("/lists/{list_id}", status_code=204, openapi_extra=_LIST_DOC)
async def put_list(list_id: str, request: Request, rt: Runtime = Depends(runtime)) -> Response:
    """Create or replace a list's name and preferences (its subscribers are untouched)."""
    list_id = _list_id(list_id)
    body = _object(await _json(request), ("name", "preferences"), ("name",))
    name = body["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise BadRequest("name must be a non-empty string of at most 255 characters")
    preferences = _preferences(body.get("preferences"), "preferences")
    async with rt.db.write() as conn:
        await store.put(conn, list_id, name=name, preferences=preferences)
    return Response(status_code=204)


@router.delete("/lists/{list_id}", status_code=204)
async def delete_list(list_id: str, rt: Runtime = Depends(runtime)) -> Response:
    """Archive: the list is no longer read, listed or sent to; restore brings it back."""
    list_id = _list_id(list_id)
    async with rt.db.write() as conn:
        if not await store.archive(conn, list_id):
            raise NotFound(f"No list '{list_id}'")
    return Response(status_code=204)


@router.put("/lists/{list_id}/restore", status_code=204)
async def restore_list(list_id: str, rt: Runtime = Depends(runtime)) -> Response:
    list_id = _list_id(list_id)
    async with rt.db.write() as conn:
        if not await store.restore(conn, list_id):
            raise NotFound(f"No list '{list_id}'")
    return Response(status_code=204)


# -- subscriptions -----------------------------------------------------------------------


@router.get("/lists/{list_id}/subscriptions")
async def list_subscriptions(
    list_id: str,
    rt: Runtime = Depends(runtime),
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    list_id = _list_id(list_id)
    async with rt.db.read() as conn:
        await _live(conn, list_id)
        try:
            page = await store.subscriptions_page(conn, list_id, cursor=cursor or None, limit=limit)
        except ValueError as exc:
            raise BadRequest(f"cursor: {exc}") from None
    return {"items": page.items, "paging": {"cursor": page.cursor, "more": page.cursor is not None}}


@router.post(
    "/lists/{list_id}/subscriptions",
    status_code=204,
    openapi_extra=_RECIPIENTS_DOC,
    responses=_REPLAY_ERRORS,
)
async def add_subscriptions(
    list_id: str,
    request: Request,
    rt: Runtime = Depends(runtime),
    idempotency_key: str | None = Header(default=None),
    x_idempotency_expiration: str | None = Header(default=None),
) -> Response:
    """Subscribe more users; existing subscriptions are left as they are."""
    list_id = _list_id(list_id)
    subscriptions = _recipients(await _json(request))

    async def work(conn: Conn) -> None:
        await store.add(conn, list_id, subscriptions)

    return await _idempotent(
        request,
        rt,
        prefix="list-subscriptions",
        key=idempotency_key,
        expiration=x_idempotency_expiration,
        status_code=204,
        answer={},
        work=work,
    )


@router.put("/lists/{list_id}/subscriptions", status_code=204, openapi_extra=_RECIPIENTS_DOC)
async def replace_subscriptions(
    list_id: str, request: Request, rt: Runtime = Depends(runtime)
) -> Response:
    """The given users become the list's subscribers (overwriting their preferences);
    everyone else is unsubscribed."""
    list_id = _list_id(list_id)
    subscriptions = _recipients(await _json(request))
    async with rt.db.write() as conn:
        await store.subscribe(conn, list_id, subscriptions, replace_all=True)
    return Response(status_code=204)


@router.put(
    "/lists/{list_id}/subscriptions/{user_id}", status_code=204, openapi_extra=_SUBSCRIBE_USER_DOC
)
async def subscribe_user(
    list_id: str, user_id: str, request: Request, rt: Runtime = Depends(runtime)
) -> Response:
    list_id = _list_id(list_id)
    user_id = _user_id(user_id)
    raw = await request.body()
    body = _object(await _json(request) if raw else {}, ("preferences",))
    preferences = _preferences(body.get("preferences"), "preferences")
    async with rt.db.write() as conn:
        await store.subscribe(
            conn, list_id, [store.Subscription(user_id, preferences)], replace_all=False
        )
    return Response(status_code=204)


@router.delete("/lists/{list_id}/subscriptions/{user_id}", status_code=204)
async def unsubscribe_user(list_id: str, user_id: str, rt: Runtime = Depends(runtime)) -> Response:
    list_id = _list_id(list_id)
    user_id = _user_id(user_id)
    async with rt.db.write() as conn:
        if await store.state(conn, list_id) is None:
            raise NotFound(f"No list '{list_id}'")
        if not await store.unsubscribe(conn, list_id, user_id):
            raise NotFound(f"'{user_id}' is not subscribed to list '{list_id}'")
    return Response(status_code=204)


# -- profiles.lists ----------------------------------------------------------------------


@router.get("/profiles/{user_id}/lists")
async def lists_of_user(
    user_id: str,
    rt: Runtime = Depends(runtime),
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The live lists the user is subscribed to, each with its subscription's preferences."""
    user_id = _user_id(user_id)
    async with rt.db.read() as conn:
        try:
            page = await store.lists_of_user(conn, user_id, cursor=cursor or None, limit=limit)
        except ValueError as exc:
            raise BadRequest(f"cursor: {exc}") from None
    return {
        "paging": {"cursor": page.cursor, "more": page.cursor is not None},
        "results": page.items,
    }


@router.post(
    "/profiles/{user_id}/lists", openapi_extra=_PROFILE_LISTS_DOC, responses=_REPLAY_ERRORS
)
async def subscribe_user_to_lists(
    user_id: str,
    request: Request,
    rt: Runtime = Depends(runtime),
    idempotency_key: str | None = Header(default=None),
    x_idempotency_expiration: str | None = Header(default=None),
) -> Response:
    """Subscribe the user to each list (created if missing), with its preferences."""
    user_id = _user_id(user_id)
    items = _object(await _json(request), ("lists",), ("lists",))["lists"]
    if not isinstance(items, list):
        raise BadRequest("lists must be a list")
    choices: list[tuple[str, dict[str, Any] | None]] = []
    for i, item in enumerate(items):
        at = f"lists[{i}]"
        entry = _object_at(item, at, ("listId", "preferences"), ("listId",))
        choices.append(
            (
                _list_id(entry["listId"], f"{at}.listId"),
                _preferences(entry.get("preferences"), f"{at}.preferences"),
            )
        )

    async def work(conn: Conn) -> None:
        if choices:
            await store.subscribe_user(conn, user_id, choices)

    return await _idempotent(
        request,
        rt,
        prefix="profile-lists",
        key=idempotency_key,
        expiration=x_idempotency_expiration,
        status_code=200,
        answer={"status": "SUCCESS"},
        work=work,
    )


@router.delete("/profiles/{user_id}/lists")
async def unsubscribe_user_everywhere(
    user_id: str, rt: Runtime = Depends(runtime)
) -> dict[str, str]:
    """Remove every list subscription of the user (the profile is untouched)."""
    user_id = _user_id(user_id)
    async with rt.db.write() as conn:
        await store.unsubscribe_user(conn, user_id)
    return {"status": "SUCCESS"}
