"""Stored templates on SQLite and PostgreSQL: the interface sends and previews use
(find_sendable, find_version), versions, aliases, and the per-template message counts."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from tidings.domain.templates import check_write_payload
from tidings.store import messages
from tidings.store import templates as store
from tidings.store.clock import utcnow
from tidings.store.database import Database
from tidings.store.tables import template_aliases
from tidings.store.templates import AliasTaken, TemplateUnavailable

CONTENT: Any = {
    "version": "2022-01-01",
    "elements": [
        {
            "type": "channel",
            "channel": "email",
            "elements": [
                {"type": "meta", "title": "Hello", "locales": {"fr": {"title": "Salut"}}},
                {"type": "text", "content": "Hi {{name}}"},
            ],
        }
    ],
}


def _document(**overrides: Any) -> dict[str, Any]:
    notification: dict[str, Any] = {
        "name": "Welcome",
        "tags": ["t"],
        "brand": {"id": "brand_1"},
        "routing": {"strategy_id": "rs_1"},
        "subscription": {"topic_id": "topic_1"},
        "content": copy.deepcopy(CONTENT),
        "email": {"from": "a@example.test", "cc": ["c@example.test"]},
    }
    notification.update(overrides)
    return check_write_payload(notification, "notification", creating=True).document(None)


async def test_find_sendable_and_find_version(db: Database) -> None:
    async with db.write() as conn:
        template_id = await store.create(conn, document=_document(), creator="api")
        await store.set_alias(conn, template_id, "welcome")
    async with db.read() as conn:
        with pytest.raises(TemplateUnavailable, match="never been published"):
            await store.find_sendable(conn, template_id)
        with pytest.raises(TemplateUnavailable, match="never been published"):
            await store.find_sendable(conn, "welcome")
        with pytest.raises(TemplateUnavailable, match="no template with id or alias 'nope'"):
            await store.find_sendable(conn, "nope")
        draft = await store.find_version(conn, template_id, None)
        assert draft.version == "draft" and draft.name == "Welcome"
        with pytest.raises(TemplateUnavailable, match="never been published"):
            await store.find_version(conn, template_id, "published")

    async with db.write() as conn:
        found = await store.get(conn, template_id, lock=True)
        assert found is not None
        assert await store.publish(conn, template_id, document=found.draft, creator="api") == "v001"
        await store.update_draft(conn, template_id, _document(name="Changed"), updater="api")

    async with db.read() as conn:
        by_id = await store.find_sendable(conn, template_id)
        by_alias = await store.find_sendable(conn, "welcome")
        assert by_id == by_alias
        assert by_id.id == template_id and by_id.version == "v001" and by_id.name == "Welcome"
        assert by_id.alias == "welcome"
        assert by_id.brand_id == "brand_1" and by_id.routing_strategy_id == "rs_1"
        assert by_id.subscription_topic_id == "topic_1" and by_id.tags == ["t"]
        assert by_id.email == {"from": "a@example.test", "cc": ["c@example.test"]}
        meta = by_id.content["elements"][0]["elements"][0]
        assert meta["locales"] == {"fr": {"title": "Salut"}} and meta["id"] == "elem_meta_1"
        assert (await store.find_version(conn, template_id, None)).name == "Changed"
        assert (await store.find_version(conn, template_id, "draft")).name == "Changed"
        assert (await store.find_version(conn, template_id, "v001")).name == "Welcome"
        assert (await store.find_version(conn, template_id, "published")).version == "v001"
        with pytest.raises(TemplateUnavailable, match="no version 'v002'"):
            await store.find_version(conn, template_id, "v002")
        with pytest.raises(TemplateUnavailable, match="no template with id"):
            await store.find_version(conn, "nt_nothing", None)
        stored = await store.get(conn, template_id)
        assert stored is not None and stored.state == "DRAFT" and stored.has_changes

    async with db.write() as conn:
        assert await store.archive(conn, template_id)
        assert not await store.archive(conn, template_id)
    async with db.read() as conn:
        with pytest.raises(TemplateUnavailable, match="archived"):
            await store.find_sendable(conn, template_id)
        # Its alias was freed with it.
        with pytest.raises(TemplateUnavailable, match="no template"):
            await store.find_sendable(conn, "welcome")
        # Previews may still read an archived template's history.
        assert (await store.find_version(conn, template_id, "v001")).name == "Welcome"


async def test_a_published_version_never_changes(db: Database) -> None:
    async with db.write() as conn:
        template_id = await store.create(conn, document=_document(), creator="api")
        await store.publish(conn, template_id, document=_document(), creator="api")
        await store.update_draft(conn, template_id, _document(name="v2"), updater="api")
        await store.publish(conn, template_id, document=_document(name="v2"), creator="api")
        await store.update_draft(conn, template_id, _document(name="draft"), updater="api")
    async with db.read() as conn:
        names = [(v.version, v.document["name"]) for v in await store.versions(conn, template_id)]
        assert names == [("v002", "v2"), ("v001", "Welcome")]
        assert (await store.find_sendable(conn, template_id)).version == "v002"


async def test_an_alias_belongs_to_one_template(db: Database) -> None:
    async with db.write() as conn:
        first = await store.create(conn, document=_document(), creator="api")
        second = await store.create(conn, document=_document(), creator="api")
        await store.set_alias(conn, first, "a")
        await store.set_alias(conn, first, "a")  # again: no change
        with pytest.raises(AliasTaken) as raised:
            await store.set_alias(conn, second, "a")
        assert raised.value.template_id == first
    # The database itself refuses a second owner (what two racing requests run into).
    with pytest.raises(IntegrityError):
        async with db.write() as conn:
            await conn.execute(
                template_aliases.insert().values(alias="a", template_id=second, created=utcnow())
            )
    async with db.write() as conn:
        await store.set_alias(conn, first, "b")  # the only alias now
        await store.set_alias(conn, second, "a")
        assert await store.alias_owner(conn, "a") == second
        await store.set_alias(conn, second, None)
        assert await store.alias_owner(conn, "a") is None
        assert await store.alias_owner(conn, "b") == first


async def test_list_pages_filter_tags_and_alias(db: Database) -> None:
    async with db.write() as conn:
        ids = [
            await store.create(conn, document=_document(tags=tags), creator="api")
            for tags in (["A"], ["a", "b"], ["c"], ["B", "A"])
        ]
        await store.set_alias(conn, ids[2], "third")
        await store.archive(conn, ids[1])
    async with db.read() as conn:
        page = await store.list_page(conn, limit=2, cursor=None)
        assert [t.id for t in page.results] == [ids[0], ids[2]] and page.cursor
        rest = await store.list_page(conn, limit=2, cursor=page.cursor)
        assert [t.id for t in rest.results] == [ids[3]] and rest.cursor is None
        tagged = await store.list_page(conn, limit=1, cursor=None, tags=["a"])
        assert [t.id for t in tagged.results] == [ids[0]] and tagged.cursor
        more = await store.list_page(conn, limit=1, cursor=tagged.cursor, tags=["a"])
        assert [t.id for t in more.results] == [ids[3]] and more.cursor is None
        aliased = await store.list_page(conn, limit=5, cursor=None, alias="third")
        assert [t.id for t in aliased.results] == [ids[2]]
        routed = await store.list_page(conn, limit=5, cursor=None, strategy_id="rs_1")
        assert [t.id for t in routed.results] == [ids[0], ids[2], ids[3]]
        assert (await store.list_page(conn, limit=5, cursor=None, strategy_id="rs_2")).results == []
        with pytest.raises(ValueError, match="cursor"):
            await store.list_page(conn, limit=1, cursor="garbage")


async def test_count_messages_by_template(db: Database) -> None:
    async with db.write() as conn:
        template_id = await store.create(conn, document=_document(), creator="api")
        now = utcnow()
        new = [
            messages.NewMessage(
                id=f"msg_{i}",
                request_id=f"req_{i}",
                recipient=None,
                recipient_email=f"r{i}@example.test",
                user_id=None,
                payload={},
                tags=[],
                trace_id=None,
                event=None,
                next_attempt_at=now,
                expires_at=None,
            )
            for i in range(5)
        ]
        first = [messages.HistoryEntry(type="ENQUEUED", ts=now, data={}) for _ in new]
        await messages.insert(conn, new, first)
        # msg_0 delivered and opened, msg_1 sent, msg_2 undeliverable, msg_3 by another
        # template, msg_4 not by a template.
        await messages.update(
            conn,
            "msg_0",
            template_id=template_id,
            status="OPENED",
            sent=now,
            delivered=now,
            opened=now,
        )
        await messages.update(conn, "msg_1", template_id=template_id, status="SENT", sent=now)
        await messages.update(
            conn, "msg_2", template_id=template_id, status="UNDELIVERABLE", error="bounced"
        )
        await messages.update(conn, "msg_3", template_id="nt_other", status="SENT", sent=now)
    async with db.read() as conn:
        window = (now - timedelta(minutes=1), now + timedelta(minutes=1))
        counts = await store.count_messages(conn, template_id, *window)
        assert [
            (c.provider, c.sent, c.delivered, c.opened, c.clicked, c.errors, c.undeliverable)
            for c in counts
        ] == [("none", 2, 1, 1, 0, 1, 1)]
        assert await store.has_messages(conn, template_id, *window)
        later = (now + timedelta(minutes=1), now + timedelta(minutes=2))
        assert await store.count_messages(conn, template_id, *later) == []
        assert not await store.has_messages(conn, template_id, *later)
