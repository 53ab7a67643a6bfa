"""Stored lists and their subscriptions (Courier's Lists API and ``profiles.lists``).

A list is created by PUT (create or replace: name and preferences) or, as at Courier, by
subscribing someone to a list id that does not exist yet (its name is then its id).
Deleting archives: an archived list keeps its subscribers, is neither listed, read nor sent
to, stays archived through a PUT or a new subscription, and comes back whole with
:func:`restore`. Preferences (list-wide and per subscription) are Courier's
``RecipientPreferences``, kept and answered exactly as given.

Lists are listed in id order (stable for paging; a pattern's matches are then together);
subscriptions in user id order. Cursors are opaque to clients: the last key of a page.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tidings.domain.lists import ListPattern
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import list_subscriptions, lists

# Rows read at a time while a pattern is filtered (the store narrows by the pattern's
# literal prefix; the rest of the match is checked here).
_SCAN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    cursor: str | None  # for the next page; None when this is the last


@dataclass(frozen=True, slots=True)
class Member:
    """One subscriber of a list, as a send to the list needs them."""

    user_id: str
    list_id: str
    preferences: dict[str, Any] | None  # the subscription's, exactly as given


@dataclass(frozen=True, slots=True)
class Subscription:
    user_id: str
    preferences: dict[str, Any] | None


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _shape(row: sa.Row[Any]) -> dict[str, Any]:
    """A list as the API answers it (the SDK's ``SubscriptionList``, plus its preferences)."""
    return {
        "id": row.id,
        "name": row.name,
        "created": _iso(row.created),
        "updated": _iso(row.updated),
        "preferences": row.preferences,
    }


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([key]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The key a cursor names; ``ValueError`` if it is not one this module wrote."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        (key,) = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API returned") from exc
    if not isinstance(key, str):
        raise ValueError("cursor is not one this API returned")
    return key


def _upsert(conn: Conn, table: sa.Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + ".%"


# -- lists -------------------------------------------------------------------------------


async def get(conn: Conn, list_id: str) -> dict[str, Any] | None:
    """The list in the API's shape, or None if there is none or it is archived."""
    row = (
        await conn.execute(
            sa.select(lists).where(lists.c.id == list_id, lists.c.archived_at.is_(None))
        )
    ).first()
    return _shape(row) if row is not None else None


async def state(conn: Conn, list_id: str) -> str | None:
    """``"live"``, ``"archived"``, or None when there is no such list."""
    archived = (
        await conn.execute(sa.select(lists.c.archived_at).where(lists.c.id == list_id))
    ).first()
    if archived is None:
        return None
    return "live" if archived[0] is None else "archived"


async def put(conn: Conn, list_id: str, *, name: str, preferences: dict[str, Any] | None) -> bool:
    """Create or replace a list's name and preferences (an archived list stays archived;
    its subscribers are untouched). True if it was created."""
    now = utcnow()
    statement = _upsert(conn, lists).values(
        id=list_id, name=name, preferences=preferences, created=now, updated=now
    )
    existed = await state(conn, list_id) is not None
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[lists.c.id],
            set_={"name": name, "preferences": preferences, "updated": now},
        )
    )
    return not existed


async def ensure(conn: Conn, list_ids: Sequence[str]) -> None:
    """Create the lists that do not exist yet (named by their id), as subscribing to one
    does at Courier; existing ones, archived or not, are left as they are."""
    if not list_ids:
        return
    now = utcnow()
    await conn.execute(
        _upsert(conn, lists).on_conflict_do_nothing(),
        [
            {"id": i, "name": i, "preferences": None, "created": now, "updated": now}
            for i in dict.fromkeys(list_ids)
        ],
    )


async def archive(conn: Conn, list_id: str) -> bool:
    """Archive a list (Courier's delete); False if there is no such list. Archiving an
    archived list changes nothing."""
    found = await state(conn, list_id)
    if found is None:
        return False
    if found == "live":
        now = utcnow()
        await conn.execute(
            lists.update().where(lists.c.id == list_id).values(archived_at=now, updated=now)
        )
    return True


async def restore(conn: Conn, list_id: str) -> bool:
    """Bring an archived list back with its subscribers; False if there is no such list."""
    found = await state(conn, list_id)
    if found is None:
        return False
    if found == "archived":
        await conn.execute(
            lists.update().where(lists.c.id == list_id).values(archived_at=None, updated=utcnow())
        )
    return True


def _narrowed(query: sa.Select[Any], pattern: ListPattern | None) -> sa.Select[Any]:
    if pattern is None:
        return query
    prefix = pattern.literal_prefix
    if pattern.is_exact:
        return query.where(lists.c.id == prefix)
    if prefix:
        return query.where(lists.c.id.like(_like_prefix(prefix), escape="\\"))
    return query


async def _scan(
    conn: Conn, pattern: ListPattern | None, *, after: str | None, want: int
) -> list[sa.Row[Any]]:
    """Up to ``want`` live lists after ``after`` in id order that match ``pattern``."""
    found: list[sa.Row[Any]] = []
    while len(found) < want:
        query = _narrowed(sa.select(lists).where(lists.c.archived_at.is_(None)), pattern)
        if after is not None:
            query = query.where(lists.c.id > after)
        chunk = (await conn.execute(query.order_by(lists.c.id).limit(_SCAN_CHUNK))).all()
        found.extend(r for r in chunk if pattern is None or pattern.matches(r.id))
        if len(chunk) < _SCAN_CHUNK:
            break
        after = chunk[-1].id
    return found[:want]


async def list_page(
    conn: Conn, *, pattern: ListPattern | None, cursor: str | None, limit: int
) -> Page:
    """Live lists in id order, ``limit`` at a time, those matching ``pattern`` only."""
    after = decode_cursor(cursor) if cursor else None
    rows = await _scan(conn, pattern, after=after, want=limit + 1)
    page = rows[:limit]
    more = len(rows) > limit and bool(page)
    return Page([_shape(r) for r in page], encode_cursor(page[-1].id) if more else None)


async def matching(conn: Conn, pattern: ListPattern) -> list[str]:
    """Every live list id that ``pattern`` matches, in id order."""
    rows = await _scan(conn, pattern, after=None, want=2**62)
    return [r.id for r in rows]


# -- subscriptions -----------------------------------------------------------------------


def _subscription_rows(
    list_id: str, subscriptions: Sequence[Subscription], now: datetime
) -> list[dict[str, Any]]:
    # The last of several entries for one user wins, as if they were made one by one.
    latest = {s.user_id: s for s in subscriptions}
    return [
        {"list_id": list_id, "user_id": s.user_id, "preferences": s.preferences, "created": now}
        for s in latest.values()
    ]


async def add(conn: Conn, list_id: str, subscriptions: Sequence[Subscription]) -> None:
    """Subscribe users, leaving existing subscriptions (and their preferences) as they
    are; the list is created if it does not exist."""
    await ensure(conn, [list_id])
    rows = _subscription_rows(list_id, subscriptions, utcnow())
    if rows:
        await conn.execute(_upsert(conn, list_subscriptions).on_conflict_do_nothing(), rows)


async def subscribe(
    conn: Conn, list_id: str, subscriptions: Sequence[Subscription], *, replace_all: bool
) -> None:
    """Subscribe users, overwriting their subscriptions' preferences; with ``replace_all``
    the given users become the list's only subscribers. The list is created if missing."""
    await ensure(conn, [list_id])
    if replace_all:
        await conn.execute(
            list_subscriptions.delete().where(list_subscriptions.c.list_id == list_id)
        )
    rows = _subscription_rows(list_id, subscriptions, utcnow())
    if not rows:
        return
    statement = _upsert(conn, list_subscriptions)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[list_subscriptions.c.list_id, list_subscriptions.c.user_id],
            set_={"preferences": statement.excluded.preferences},
        ),
        rows,
    )


async def unsubscribe(conn: Conn, list_id: str, user_id: str) -> bool:
    """Remove one subscription; False if there was none."""
    result = await conn.execute(
        list_subscriptions.delete().where(
            list_subscriptions.c.list_id == list_id, list_subscriptions.c.user_id == user_id
        )
    )
    return bool(result.rowcount)


async def subscriptions_page(conn: Conn, list_id: str, *, cursor: str | None, limit: int) -> Page:
    """A list's subscribers in user id order (the SDK's ``SubscriptionListResponse`` items)."""
    query = sa.select(list_subscriptions).where(list_subscriptions.c.list_id == list_id)
    if cursor:
        query = query.where(list_subscriptions.c.user_id > decode_cursor(cursor))
    rows = (await conn.execute(query.order_by(list_subscriptions.c.user_id).limit(limit + 1))).all()
    page = rows[:limit]
    items = [
        {"recipientId": r.user_id, "created": _iso(r.created), "preferences": r.preferences}
        for r in page
    ]
    more = len(rows) > limit and bool(page)
    return Page(items, encode_cursor(page[-1].user_id) if more else None)


async def members(conn: Conn, list_id: str, *, limit: int) -> list[Member]:
    """The subscribers of a live list, in user id order, at most ``limit`` of them (ask for
    one more than you allow to learn that there are too many). An archived or missing list
    has none."""
    rows = await conn.execute(
        sa.select(list_subscriptions.c.user_id, list_subscriptions.c.preferences)
        .join(lists, lists.c.id == list_subscriptions.c.list_id)
        .where(list_subscriptions.c.list_id == list_id, lists.c.archived_at.is_(None))
        .order_by(list_subscriptions.c.user_id)
        .limit(limit)
    )
    return [Member(user_id=r.user_id, list_id=list_id, preferences=r.preferences) for r in rows]


# -- a user's lists (profiles.lists) ------------------------------------------------------


async def lists_of_user(conn: Conn, user_id: str, *, cursor: str | None, limit: int) -> Page:
    """The live lists ``user_id`` is subscribed to, in id order, with the subscription's
    preferences (the SDK's ``profiles.ListRetrieveResponse`` results)."""
    query = (
        sa.select(lists, list_subscriptions.c.preferences.label("subscription_preferences"))
        .join(list_subscriptions, list_subscriptions.c.list_id == lists.c.id)
        .where(list_subscriptions.c.user_id == user_id, lists.c.archived_at.is_(None))
    )
    if cursor:
        query = query.where(lists.c.id > decode_cursor(cursor))
    rows = (await conn.execute(query.order_by(lists.c.id).limit(limit + 1))).all()
    page = rows[:limit]
    results = [
        {
            "id": r.id,
            "name": r.name,
            "created": _iso(r.created),
            "updated": _iso(r.updated),
            "preferences": r.subscription_preferences,
        }
        for r in page
    ]
    more = len(rows) > limit and bool(page)
    return Page(results, encode_cursor(page[-1].id) if more else None)


async def subscribe_user(
    conn: Conn, user_id: str, choices: Sequence[tuple[str, dict[str, Any] | None]]
) -> None:
    """Subscribe one user to several lists (each created if missing), overwriting the
    preferences of subscriptions that exist."""
    latest = dict(choices)
    await ensure(conn, list(latest))
    now = utcnow()
    statement = _upsert(conn, list_subscriptions)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[list_subscriptions.c.list_id, list_subscriptions.c.user_id],
            set_={"preferences": statement.excluded.preferences},
        ),
        [
            {"list_id": list_id, "user_id": user_id, "preferences": prefs, "created": now}
            for list_id, prefs in latest.items()
        ],
    )


async def unsubscribe_user(conn: Conn, user_id: str) -> int:
    """Remove every subscription of ``user_id`` (archived lists' too); how many."""
    result = await conn.execute(
        list_subscriptions.delete().where(list_subscriptions.c.user_id == user_id)
    )
    return int(result.rowcount or 0)
