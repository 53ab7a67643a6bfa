"""Preference sections, topics, users' choices, the change log and server secrets in the
store, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from tidings.store import preferences as store
from tidings.store.database import Database

SECTION = {
    "name": "Marketing",
    "description": None,
    "has_custom_routing": False,
    "routing_options": ["email"],
}
TOPIC = {
    "name": "Newsletter",
    "description": "Monthly",
    "default_status": "OPTED_IN",
    "allowed_preferences": [],
    "include_unsubscribe_header": True,
    "routing_options": [],
    "topic_data": {"k": 1},
}


async def test_sections_and_topics_round_trip(db: Database) -> None:
    async with db.write() as conn:
        section = await store.create_section(conn, who="api", **SECTION)
        topic = await store.create_topic(conn, section.id, who="api", **TOPIC)
    async with db.read() as conn:
        found = await store.get_section(conn, section.id)
        assert found is not None and [t.id for t in found.topics] == [topic.id]
        assert [s.id for s in await store.list_sections(conn)] == [section.id]
        got = await store.get_topic(conn, topic.id)
        assert got is not None and got.topic_data == {"k": 1} and got.default_status == "OPTED_IN"
    async with db.write() as conn:
        replaced = await store.replace_topic(
            conn, section.id, topic.id, who="k2", **{**TOPIC, "default_status": "REQUIRED"}
        )
        assert replaced is not None and replaced.default_status == "REQUIRED"
        assert await store.replace_topic(conn, "ps_other", topic.id, who="k", **TOPIC) is None
        assert await store.archive_topic(conn, section.id, topic.id)
        assert not await store.archive_topic(conn, section.id, topic.id)
    async with db.read() as conn:
        assert await store.get_topic(conn, topic.id) is None
        found = await store.get_section(conn, section.id)
        assert found is not None and found.topics == []
    async with db.write() as conn:
        assert await store.archive_section(conn, section.id)
    async with db.read() as conn:
        assert await store.get_section(conn, section.id) is None


async def test_choices_are_logged_once_per_change(db: Database) -> None:
    async with db.write() as conn:
        section = await store.create_section(conn, who="api", **SECTION)
        topic = await store.create_topic(conn, section.id, who="api", **TOPIC)
        assert await store.set_choice(conn, "u1", topic, status="OPTED_OUT", source="api")
        # The same again (a repeated one-click) changes nothing and logs nothing.
        assert not await store.set_choice(conn, "u1", topic, status="OPTED_OUT", source="x")
        assert await store.set_choice(
            conn,
            "u1",
            topic,
            status="OPTED_IN",
            has_custom_routing=True,
            custom_routing=["email"],
            source="api",
        )
    async with db.read() as conn:
        chosen = await store.choice(conn, "u1", topic.id)
        assert (
            chosen is not None
            and chosen.status == "OPTED_IN"
            and chosen.custom_routing == ["email"]
        )
        assert set(await store.choices_for(conn, ["u1", "u2"], topic.id)) == {"u1"}
        entries, cursor = await store.log_page(conn, limit=1, cursor=None, since=None, user_id="u1")
        assert cursor is not None and entries[0].status == "OPTED_IN"
        assert entries[0].previous == {
            "status": "OPTED_OUT",
            "has_custom_routing": False,
            "custom_routing": [],
        }
        older, end = await store.log_page(conn, limit=5, cursor=cursor, since=None, user_id="u1")
        assert end is None and [e.status for e in older] == ["OPTED_OUT"]
        assert older[0].previous is None
    async with db.write() as conn:
        assert await store.reset_choice(conn, "u1", topic, topic.id, source="api")
        assert not await store.reset_choice(conn, "u1", topic, topic.id, source="api")
    async with db.read() as conn:
        assert await store.choice(conn, "u1", topic.id) is None
        assert await store.choices_of(conn, "u1") == []


async def test_one_server_secret_however_many_ask_at_once(db: Database) -> None:
    async def ask() -> str:
        async with db.write() as conn:
            return await store.server_secret(conn, "unsubscribe")

    values = await asyncio.gather(*(ask() for _ in range(5)))
    assert len(set(values)) == 1 and len(values[0]) >= 40


def test_recipient_key() -> None:
    assert store.recipient_key("u1", "A@x.test") == "u1"
    assert store.recipient_key(None, " A@X.test ") == "a@x.test"
    assert store.recipient_key(None, None) is None
