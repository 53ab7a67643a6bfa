"""Subscription preferences: sections and their topics (Courier's workspace preferences),
each recipient's choices per topic, the log of every change, and the server's own secrets.

A recipient is a ``user_id``; a message sent to an email address alone keys its
recipient's choices by that address (lower-cased), so that an unsubscribe from such a
message is kept too. Archived sections and topics are neither listed nor honoured, but
their rows stay (templates and logs name them).
"""

from __future__ import annotations

import secrets as _secrets
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tidings.domain.events import EventKind
from tidings.ids import new_id
from tidings.store.clock import utcnow
from tidings.store.database import Conn, Database
from tidings.store.tables import (
    preference_logs,
    preference_sections,
    preference_topics,
    server_secrets,
    user_preferences,
)


@dataclass(frozen=True, slots=True)
class StoredTopic:
    id: str
    section_id: str
    name: str
    description: str | None
    default_status: str
    allowed_preferences: list[str]
    include_unsubscribe_header: bool
    routing_options: list[str]
    topic_data: dict[str, Any]
    created: datetime
    creator: str | None
    updated: datetime
    updater: str | None


@dataclass(frozen=True, slots=True)
class StoredSection:
    id: str
    name: str
    description: str | None
    has_custom_routing: bool
    routing_options: list[str]
    created: datetime
    creator: str | None
    updated: datetime
    updater: str | None
    topics: list[StoredTopic]


@dataclass(frozen=True, slots=True)
class UserChoice:
    user_id: str
    topic_id: str
    status: str
    has_custom_routing: bool
    custom_routing: list[str]
    updated: datetime


@dataclass(frozen=True, slots=True)
class LogEntry:
    id: str
    user_id: str
    topic_id: str
    topic_name: str
    status: str
    has_custom_routing: bool
    custom_routing: list[str]
    previous: dict[str, Any] | None
    source: str
    timestamp: datetime


def _insert_ignore(conn: Conn, table: sa.Table) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def recipient_key(user_id: str | None, email: str | None) -> str | None:
    """Whose choices a message's recipient has: the user id, else the address."""
    if user_id:
        return user_id
    return email.strip().lower() if email else None


# -- sections -------------------------------------------------------------------------------


def _topic(row: sa.Row[Any]) -> StoredTopic:
    return StoredTopic(
        id=row.id,
        section_id=row.section_id,
        name=row.name,
        description=row.description,
        default_status=row.default_status,
        allowed_preferences=list(row.allowed_preferences or []),
        include_unsubscribe_header=bool(row.include_unsubscribe_header),
        routing_options=list(row.routing_options or []),
        topic_data=dict(row.topic_data or {}),
        created=row.created,
        creator=row.creator,
        updated=row.updated,
        updater=row.updater,
    )


async def _topics_of(conn: Conn, section_ids: list[str]) -> dict[str, list[StoredTopic]]:
    out: dict[str, list[StoredTopic]] = {s: [] for s in section_ids}
    if not section_ids:
        return out
    rows = await conn.execute(
        sa.select(preference_topics)
        .where(
            preference_topics.c.section_id.in_(section_ids),
            preference_topics.c.archived_at.is_(None),
        )
        .order_by(preference_topics.c.created, preference_topics.c.id)
    )
    for row in rows:
        out[row.section_id].append(_topic(row))
    return out


def _section(row: sa.Row[Any], topics: list[StoredTopic]) -> StoredSection:
    return StoredSection(
        id=row.id,
        name=row.name,
        description=row.description,
        has_custom_routing=bool(row.has_custom_routing),
        routing_options=list(row.routing_options or []),
        created=row.created,
        creator=row.creator,
        updated=row.updated,
        updater=row.updater,
        topics=topics,
    )


async def create_section(conn: Conn, *, who: str, **fields: Any) -> StoredSection:
    now = utcnow()
    section_id = new_id("ps_")
    await conn.execute(
        preference_sections.insert().values(
            id=section_id, created=now, creator=who, updated=now, updater=who, **fields
        )
    )
    found = await get_section(conn, section_id)
    assert found is not None  # just inserted, in this transaction
    return found


async def get_section(conn: Conn, section_id: str) -> StoredSection | None:
    row = (
        await conn.execute(
            sa.select(preference_sections).where(
                preference_sections.c.id == section_id,
                preference_sections.c.archived_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    return _section(row, (await _topics_of(conn, [row.id]))[row.id])


async def list_sections(conn: Conn) -> list[StoredSection]:
    rows = list(
        await conn.execute(
            sa.select(preference_sections)
            .where(preference_sections.c.archived_at.is_(None))
            .order_by(preference_sections.c.created, preference_sections.c.id)
        )
    )
    topics = await _topics_of(conn, [r.id for r in rows])
    return [_section(r, topics[r.id]) for r in rows]


async def replace_section(
    conn: Conn, section_id: str, *, who: str, **fields: Any
) -> StoredSection | None:
    done = await conn.execute(
        preference_sections.update()
        .where(preference_sections.c.id == section_id, preference_sections.c.archived_at.is_(None))
        .values(updated=utcnow(), updater=who, **fields)
    )
    if done.rowcount == 0:
        return None
    return await get_section(conn, section_id)


async def archive_section(conn: Conn, section_id: str) -> bool:
    done = await conn.execute(
        preference_sections.update()
        .where(preference_sections.c.id == section_id, preference_sections.c.archived_at.is_(None))
        .values(archived_at=utcnow())
    )
    return bool(done.rowcount)


# -- topics ---------------------------------------------------------------------------------


async def create_topic(conn: Conn, section_id: str, *, who: str, **fields: Any) -> StoredTopic:
    now = utcnow()
    topic_id = new_id("tp_")
    await conn.execute(
        preference_topics.insert().values(
            id=topic_id,
            section_id=section_id,
            created=now,
            creator=who,
            updated=now,
            updater=who,
            **fields,
        )
    )
    found = await get_topic(conn, topic_id)
    assert found is not None
    return found


async def get_topic(conn: Conn, topic_id: str) -> StoredTopic | None:
    """A live topic, whatever its section (what a send and an unsubscribe need)."""
    row = (
        await conn.execute(
            sa.select(preference_topics).where(
                preference_topics.c.id == topic_id, preference_topics.c.archived_at.is_(None)
            )
        )
    ).first()
    return _topic(row) if row is not None else None


async def live_topics(conn: Conn) -> list[StoredTopic]:
    rows = await conn.execute(
        sa.select(preference_topics)
        .where(preference_topics.c.archived_at.is_(None))
        .order_by(preference_topics.c.created, preference_topics.c.id)
    )
    return [_topic(r) for r in rows]


async def replace_topic(
    conn: Conn, section_id: str, topic_id: str, *, who: str, **fields: Any
) -> StoredTopic | None:
    done = await conn.execute(
        preference_topics.update()
        .where(
            preference_topics.c.id == topic_id,
            preference_topics.c.section_id == section_id,
            preference_topics.c.archived_at.is_(None),
        )
        .values(updated=utcnow(), updater=who, **fields)
    )
    if done.rowcount == 0:
        return None
    return await get_topic(conn, topic_id)


async def archive_topic(conn: Conn, section_id: str, topic_id: str) -> bool:
    done = await conn.execute(
        preference_topics.update()
        .where(
            preference_topics.c.id == topic_id,
            preference_topics.c.section_id == section_id,
            preference_topics.c.archived_at.is_(None),
        )
        .values(archived_at=utcnow())
    )
    return bool(done.rowcount)


# -- users' choices -------------------------------------------------------------------------


def _choice(row: sa.Row[Any]) -> UserChoice:
    return UserChoice(
        user_id=row.user_id,
        topic_id=row.topic_id,
        status=row.status,
        has_custom_routing=bool(row.has_custom_routing),
        custom_routing=list(row.custom_routing or []),
        updated=row.updated,
    )


async def choices_of(conn: Conn, user_id: str) -> list[UserChoice]:
    rows = await conn.execute(
        sa.select(user_preferences)
        .where(user_preferences.c.user_id == user_id)
        .order_by(user_preferences.c.topic_id)
    )
    return [_choice(r) for r in rows]


async def choice(conn: Conn, user_id: str, topic_id: str) -> UserChoice | None:
    row = (
        await conn.execute(
            sa.select(user_preferences).where(
                user_preferences.c.user_id == user_id, user_preferences.c.topic_id == topic_id
            )
        )
    ).first()
    return _choice(row) if row is not None else None


async def choices_for(conn: Conn, user_ids: Iterable[str], topic_id: str) -> dict[str, UserChoice]:
    """The choices of each of ``user_ids`` for one topic (a send's recipient keys)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        sa.select(user_preferences).where(
            user_preferences.c.user_id.in_(ids), user_preferences.c.topic_id == topic_id
        )
    )
    return {r.user_id: _choice(r) for r in rows}


def _value(c: UserChoice) -> dict[str, Any]:
    return {
        "status": c.status,
        "has_custom_routing": c.has_custom_routing,
        "custom_routing": c.custom_routing if c.has_custom_routing else [],
    }


async def _log(
    conn: Conn,
    *,
    user_id: str,
    topic: StoredTopic,
    status: str,
    has_custom_routing: bool,
    custom_routing: list[str],
    previous: UserChoice | None,
    source: str,
    at: datetime,
) -> None:
    await conn.execute(
        preference_logs.insert().values(
            id=new_id("pl_"),
            user_id=user_id,
            topic_id=topic.id,
            topic_name=topic.name,
            status=status,
            has_custom_routing=has_custom_routing,
            custom_routing=custom_routing if has_custom_routing else [],
            previous=_value(previous) if previous is not None else None,
            source=source,
            timestamp=at,
        )
    )


async def set_choice(
    conn: Conn,
    user_id: str,
    topic: StoredTopic,
    *,
    status: str,
    has_custom_routing: bool = False,
    custom_routing: list[str] | None = None,
    source: str,
) -> bool:
    """Store the user's choice for ``topic``; logged when it changes anything. True when it
    changed (an unsubscribe repeated is no change: idempotent, one log entry)."""
    routing = list(custom_routing or [])
    previous = await choice(conn, user_id, topic.id)
    if previous is not None and _value(previous) == {
        "status": status,
        "has_custom_routing": has_custom_routing,
        "custom_routing": routing if has_custom_routing else [],
    }:
        return False
    now = utcnow()
    values = {
        "status": status,
        "has_custom_routing": has_custom_routing,
        "custom_routing": routing,
        "updated": now,
    }
    if previous is None:
        done = await conn.execute(
            _insert_ignore(conn, user_preferences).values(
                user_id=user_id, topic_id=topic.id, **values
            )
        )
        if not done.rowcount:
            # Another request stored a choice first: this one replaces it.
            previous = await choice(conn, user_id, topic.id)
            await _update(conn, user_id, topic.id, values)
    else:
        await _update(conn, user_id, topic.id, values)
    await _log(
        conn,
        user_id=user_id,
        topic=topic,
        status=status,
        has_custom_routing=has_custom_routing,
        custom_routing=routing,
        previous=previous,
        source=source,
        at=now,
    )
    return True


async def _update(conn: Conn, user_id: str, topic_id: str, values: dict[str, Any]) -> None:
    await conn.execute(
        user_preferences.update()
        .where(user_preferences.c.user_id == user_id, user_preferences.c.topic_id == topic_id)
        .values(**values)
    )


async def reset_choice(
    conn: Conn, user_id: str, topic: StoredTopic | None, topic_id: str, *, source: str
) -> bool:
    """Remove the user's choice (the topic's default applies again); logged as the default
    status when the topic still exists. True when there was one."""
    previous = await choice(conn, user_id, topic_id)
    if previous is None:
        return False
    await conn.execute(
        user_preferences.delete().where(
            user_preferences.c.user_id == user_id, user_preferences.c.topic_id == topic_id
        )
    )
    if topic is not None:
        await _log(
            conn,
            user_id=user_id,
            topic=topic,
            status=topic.default_status,
            has_custom_routing=False,
            custom_routing=[],
            previous=previous,
            source=source,
            at=utcnow(),
        )
    return True


# -- the log --------------------------------------------------------------------------------


def _entry(row: sa.Row[Any]) -> LogEntry:
    return LogEntry(
        id=row.id,
        user_id=row.user_id,
        topic_id=row.topic_id,
        topic_name=row.topic_name,
        status=row.status,
        has_custom_routing=bool(row.has_custom_routing),
        custom_routing=list(row.custom_routing or []),
        previous=dict(row.previous) if row.previous is not None else None,
        source=row.source,
        timestamp=row.timestamp,
    )


async def log_page(
    conn: Conn,
    *,
    limit: int,
    cursor: str | None,
    since: datetime | None,
    user_id: str | None,
) -> tuple[list[LogEntry], str | None]:
    """Newest first; the cursor is the id of the last entry handed out (ids are
    time-ordered and unique)."""
    query = sa.select(preference_logs)
    if user_id is not None:
        query = query.where(preference_logs.c.user_id == user_id)
    if since is not None:
        query = query.where(preference_logs.c.timestamp >= since)
    if cursor is not None:
        query = query.where(preference_logs.c.id < cursor)
    rows = list(await conn.execute(query.order_by(preference_logs.c.id.desc()).limit(limit + 1)))
    entries = [_entry(r) for r in rows[:limit]]
    return entries, entries[-1].id if len(rows) > limit else None


# -- the server's secrets -------------------------------------------------------------------


async def server_secret(conn: Conn, name: str) -> str:
    """The secret called ``name``, made (random, 32 bytes) the first time it is asked for.

    Two processes asking at once both insert; the primary key keeps the first, and the
    other reads it, so every process signs with the same key.
    """
    found = await conn.scalar(
        sa.select(server_secrets.c.value).where(server_secrets.c.name == name)
    )
    if found is not None:
        return str(found)
    await conn.execute(
        _insert_ignore(conn, server_secrets).values(
            name=name, value=_secrets.token_urlsafe(32), created=utcnow()
        )
    )
    found = await conn.scalar(
        sa.select(server_secrets.c.value).where(server_secrets.c.name == name)
    )
    assert found is not None
    return str(found)


UNSUBSCRIBE_SECRET = "unsubscribe-links"
_secret_cache: weakref.WeakKeyDictionary[Database, bytes] = weakref.WeakKeyDictionary()


async def unsubscribe_secret(db: Database) -> bytes:
    """The key that signs one-click unsubscribe links, made on first use and then kept in
    this process (it never changes: a link in an old email keeps working)."""
    found = _secret_cache.get(db)
    if found is None:
        async with db.write() as conn:
            found = (await server_secret(conn, UNSUBSCRIBE_SECRET)).encode()
        _secret_cache[db] = found
    return found


# -- opt-outs a provider reports --------------------------------------------------------------


async def opt_out_for_event(
    conn: Conn, kind: EventKind, row: Any, source: str
) -> list[StoredTopic]:
    """The opt-outs a provider's ``unsubscribed`` or ``complained`` event about the message
    ``row`` means; returns the topics the recipient was opted out of (newly or again).

    * unsubscribed: the message's own topic, as the one-click link would (not a REQUIRED
      one; the provider's own suppression of the address is recorded by the caller).
    * complained (marked as spam): every topic that can be opted out of. Whoever calls our
      mail spam wants none of what they may refuse; REQUIRED topics (receipts, security)
      stay, and the provider's suppression of the address is what stops those.
    """
    key = recipient_key(row.user_id, row.recipient_email)
    if key is None:
        return []
    if kind is EventKind.UNSUBSCRIBED:
        topic_id = (row.payload or {}).get("subscription_topic_id")
        topic = await get_topic(conn, topic_id) if isinstance(topic_id, str) else None
        topics = [topic] if topic is not None else []
    elif kind is EventKind.COMPLAINED:
        topics = await live_topics(conn)
    else:
        return []
    done = []
    for topic in topics:
        if topic.default_status == "REQUIRED":
            continue
        await set_choice(conn, key, topic, status="OPTED_OUT", source=source)
        done.append(topic)
    return done
