"""Lists and subscriptions in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tidings.domain.lists import parse_pattern
from tidings.store import lists as store
from tidings.store.database import Database

PREFS = {"notifications": {"weekly": {"status": "OPTED_OUT", "rules": [{"until": "2030-01-01"}]}}}


async def test_put_creates_then_replaces_and_archive_survives_put(db: Database) -> None:
    async with db.write() as conn:
        assert await store.put(conn, "acme.eu", name="EU", preferences=PREFS)
        assert not await store.put(conn, "acme.eu", name="EU 2", preferences=None)
    async with db.read() as conn:
        found = await store.get(conn, "acme.eu")
    assert found is not None and found["name"] == "EU 2" and found["preferences"] is None
    assert found["created"].endswith("Z")
    async with db.write() as conn:
        assert await store.archive(conn, "acme.eu")
        assert await store.archive(conn, "acme.eu")  # again: still true, still archived
        assert not await store.archive(conn, "nothing")
        await store.put(conn, "acme.eu", name="EU 3", preferences=PREFS)
        assert await store.get(conn, "acme.eu") is None
        assert await store.state(conn, "acme.eu") == "archived"
        assert await store.restore(conn, "acme.eu")
        assert not await store.restore(conn, "nothing")
        restored = await store.get(conn, "acme.eu")
    assert restored is not None and restored["name"] == "EU 3" and restored["preferences"] == PREFS


async def test_patterns_and_paging(db: Database) -> None:
    ids = ["a", "a.b", "a.b.c", "a.c", "a.c.d.e", "b.b", "a_b.x", "ab.x"]
    async with db.write() as conn:
        for list_id in ids:
            await store.put(conn, list_id, name=list_id, preferences=None)
        await store.archive(conn, "a.c")

    async def all_of(pattern: str | None, limit: int = 2) -> list[str]:
        parsed = parse_pattern(pattern) if pattern else None
        seen: list[str] = []
        cursor = None
        async with db.read() as conn:
            while True:
                page = await store.list_page(conn, pattern=parsed, cursor=cursor, limit=limit)
                seen += [item["id"] for item in page.items]
                assert len(page.items) <= limit
                if page.cursor is None:
                    return seen
                cursor = page.cursor

    assert await all_of(None) == sorted(set(ids) - {"a.c"})
    assert await all_of("a.*") == ["a.b"]
    assert await all_of("*.b") == ["a.b", "b.b"]
    assert await all_of("a.**") == ["a.b", "a.b.c", "a.c.d.e"]
    assert await all_of("a.b") == ["a.b"]
    assert await all_of("a_b.*") == ["a_b.x"]  # _ is not a LIKE wildcard here
    async with db.read() as conn:
        assert await store.matching(conn, parse_pattern("*.**")) == [
            "a.b",
            "a.b.c",
            "a.c.d.e",
            "a_b.x",
            "ab.x",
            "b.b",
        ]
        with pytest.raises(ValueError):
            await store.list_page(conn, pattern=None, cursor="not-a-cursor", limit=2)


async def test_subscriptions_add_subscribe_replace_and_members(db: Database) -> None:
    sub = store.Subscription
    async with db.write() as conn:
        await store.add(conn, "news", [sub("u1", PREFS), sub("u2", None)])
        # add leaves existing subscriptions as they are
        await store.add(conn, "news", [sub("u1", None), sub("u3", None)])
    async with db.read() as conn:
        assert (await store.get(conn, "news") or {})["name"] == "news"  # created by subscribing
        page = await store.subscriptions_page(conn, "news", cursor=None, limit=10)
    assert [(i["recipientId"], i["preferences"]) for i in page.items] == [
        ("u1", PREFS),
        ("u2", None),
        ("u3", None),
    ]
    async with db.write() as conn:
        await store.subscribe(conn, "news", [sub("u2", PREFS)], replace_all=False)
        members = await store.members(conn, "news", limit=10)
        assert [(m.user_id, m.preferences) for m in members] == [
            ("u1", PREFS),
            ("u2", PREFS),
            ("u3", None),
        ]
        await store.subscribe(conn, "news", [sub("u9", None)], replace_all=True)
        assert [m.user_id for m in await store.members(conn, "news", limit=10)] == ["u9"]
        assert await store.unsubscribe(conn, "news", "u9")
        assert not await store.unsubscribe(conn, "news", "u9")


async def test_members_of_archived_list_are_none_and_many_are_paged(db: Database) -> None:
    async with db.write() as conn:
        await store.add(conn, "big", [store.Subscription(f"u{i:04}", None) for i in range(1500)])
        assert len(await store.members(conn, "big", limit=1501)) == 1500
        assert len(await store.members(conn, "big", limit=10)) == 10
        await store.archive(conn, "big")
        assert await store.members(conn, "big", limit=10) == []
    seen: list[str] = []
    cursor = None
    async with db.write() as conn:
        await store.restore(conn, "big")
        while True:
            page = await store.subscriptions_page(conn, "big", cursor=cursor, limit=400)
            seen += [i["recipientId"] for i in page.items]
            if page.cursor is None:
                break
            cursor = page.cursor
    assert seen == [f"u{i:04}" for i in range(1500)]


async def test_a_users_lists(db: Database) -> None:
    async with db.write() as conn:
        await store.subscribe_user(conn, "ann", [("x.1", PREFS), ("x.2", None), ("x.3", None)])
        await store.subscribe_user(conn, "ann", [("x.2", PREFS)])
        await store.add(conn, "x.1", [store.Subscription("bob", None)])
        await store.archive(conn, "x.3")
    async with db.read() as conn:
        first = await store.lists_of_user(conn, "ann", cursor=None, limit=1)
        assert first.cursor is not None
        second = await store.lists_of_user(conn, "ann", cursor=first.cursor, limit=5)
    got = [(r["id"], r["preferences"]) for r in first.items + second.items]
    assert got == [("x.1", PREFS), ("x.2", PREFS)] and second.cursor is None
    async with db.write() as conn:
        assert await store.unsubscribe_user(conn, "ann") == 3
        assert (await store.lists_of_user(conn, "ann", cursor=None, limit=5)).items == []
        assert [m.user_id for m in await store.members(conn, "x.1", limit=5)] == ["bob"]
