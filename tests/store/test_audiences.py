"""Audiences in the store and their members over stored profiles, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.domain.audiences import parse_filter
from tidings.store import audiences as store
from tidings.store import profiles
from tidings.store.database import Database

# User ids whose order differs between byte order and a PostgreSQL locale's collation:
# paging must still give each member once.
IDS = ["Zed", "adam", "émile", "user-10", "user_2", "user.3", "Ω", "a b", "0", "_x"]

FILTER: Any = {
    "operator": "AND",
    "filters": [
        {"operator": "EQ", "path": "location.city", "value": "Oakland"},
        {
            "operator": "OR",
            "filters": [
                {"operator": "GTE", "path": "age", "value": "30"},
                {"operator": "INCLUDES", "path": "tags", "value": ["vip"]},
            ],
        },
    ],
}


def profile_of(i: int) -> dict[str, Any]:
    return {
        "email": f"u{i}@acme.test",
        "age": 20 + i % 20,
        "location": {"city": "Oakland" if i % 3 else "Berkeley"},
        "tags": ["vip"] if i % 7 == 0 else [],
    }


def expected(count: int) -> set[str]:
    return {f"u{i:04}" for i in range(count) if i % 3 and (20 + i % 20 >= 30 or i % 7 == 0)}


async def _profiles(db: Database, count: int) -> None:
    async with db.write() as conn:
        for i in range(count):
            await profiles.put(conn, f"u{i:04}", profile_of(i))


async def test_create_replace_get_delete(db: Database) -> None:
    rule = parse_filter(FILTER)
    async with db.write() as conn:
        made = await store.update(conn, "a1", name="Oakland", description="d", rule=rule)
    assert made.id == "a1" and made.version == 1 and made.filter == FILTER
    assert made.operator == "AND" and made.created == made.updated
    async with db.write() as conn:
        one = parse_filter({"filters": [{"operator": "EXISTS", "path": "email", "value": "true"}]})
        replaced = await store.update(conn, "a1", name="All", description="", rule=one)
    assert replaced.version == 2 and replaced.name == "All" and replaced.operator is None
    assert replaced.created == made.created and replaced.updated >= made.updated
    async with db.read() as conn:
        assert await store.get(conn, "a1") == replaced
        assert await store.get(conn, "nothing") is None
    async with db.write() as conn:
        assert await store.delete(conn, "a1")
        assert not await store.delete(conn, "a1")
        assert await store.get(conn, "a1") is None


async def test_list_pages_oldest_first(db: Database) -> None:
    rule = parse_filter(FILTER)
    async with db.write() as conn:
        for i in range(5):
            await store.update(conn, f"a{i}", name=f"A{i}", description="", rule=rule)
    seen: list[str] = []
    cursor = None
    async with db.read() as conn:
        while True:
            page = await store.list_page(conn, limit=2, cursor=cursor)
            seen += [a.id for a in page.results]
            if page.cursor is None:
                break
            cursor = page.cursor
        for bad in ("not-a-cursor", "WyJ4Il0", ""):
            with pytest.raises(ValueError, match="cursor"):
                await store.list_page(conn, limit=2, cursor=bad)
    assert seen == [f"a{i}" for i in range(5)]


async def test_members_evaluate_the_filter_over_profiles(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small read pages, so that matches fall on every side of a page boundary.
    monkeypatch.setattr(store, "SCAN_BATCH", 7)
    count = 60
    await _profiles(db, count)
    async with db.write() as conn:
        await store.update(conn, "oak", name="Oakland", description="", rule=parse_filter(FILTER))
    async with db.read() as conn:
        found = await store.members(conn, "oak", limit=1000)
    assert {m.user_id for m in found} == expected(count)
    assert len(found) == len(expected(count))
    for m in found:
        assert m.profile == profile_of(int(m.user_id[1:]))
    # Paged as list_members pages: every member once.
    paged: list[str] = []
    cursor = None
    async with db.read() as conn:
        while True:
            page = await store.members_page(conn, "oak", limit=4, cursor=cursor)
            assert page.audience.id == "oak" and len(page.members) <= 4
            paged += [m.user_id for m in page.members]
            if page.cursor is None:
                break
            cursor = page.cursor
    assert paged == [m.user_id for m in found]


async def test_members_follow_the_profiles(db: Database) -> None:
    await _profiles(db, 10)
    async with db.write() as conn:
        await store.update(conn, "oak", name="", description="", rule=parse_filter(FILTER))
        before = {m.user_id for m in await store.members(conn, "oak", limit=100)}
        await profiles.put(conn, "u0000", {"location": {"city": "Oakland"}, "age": 99})
        await profiles.delete(conn, "u0001")
        after = {m.user_id for m in await store.members(conn, "oak", limit=100)}
    assert after == (before | {"u0000"}) - {"u0001"}


async def test_members_page_in_any_collation(db: Database) -> None:
    async with db.write() as conn:
        for user_id in IDS:
            await profiles.put(conn, user_id, {"email": f"{len(user_id)}@acme.test"})
        await profiles.put(conn, "nomail", {"name": "No mail"})
        rule = parse_filter({"filters": [{"operator": "EXISTS", "path": "email", "value": "true"}]})
        await store.update(conn, "mail", name="", description="", rule=rule)
    paged: list[str] = []
    cursor = None
    async with db.read() as conn:
        while True:
            page = await store.members_page(conn, "mail", limit=3, cursor=cursor)
            paged += [m.user_id for m in page.members]
            if page.cursor is None:
                break
            cursor = page.cursor
        every = [m.user_id for m in await store.members(conn, "mail", limit=100)]
    assert sorted(paged) == sorted(IDS) and len(paged) == len(IDS)
    assert paged == every  # the database's order, whichever it is, both ways


async def test_unknown_audience_and_too_many_members(db: Database) -> None:
    await _profiles(db, 10)
    rule = parse_filter({"filters": [{"operator": "EXISTS", "path": "email", "value": "true"}]})
    async with db.write() as conn:
        await store.update(conn, "all", name="", description="", rule=rule)
    async with db.read() as conn:
        with pytest.raises(store.UnknownAudience, match="No audience 'nope'"):
            await store.members(conn, "nope", limit=10)
        with pytest.raises(store.UnknownAudience):
            await store.members_page(conn, "nope", limit=10, cursor=None)
        assert len(await store.members(conn, "all", limit=10)) == 10
        with pytest.raises(store.TooManyMembers, match="more than 9 members"):
            await store.members(conn, "all", limit=9)
        with pytest.raises(ValueError, match="cursor"):
            await store.members_page(conn, "all", limit=10, cursor="%%%")
