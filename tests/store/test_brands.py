"""Brands and the workspace default brand in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from tidings.store import brands as store
from tidings.store.database import Database

SETTINGS: Any = {
    "colors": {"primary": "#9D3789"},
    "email": {"header": {"logo": {"image": "https://cdn.example.test/logo.png"}}},
}
SNIPPETS: Any = {"items": [{"name": "tagline", "value": "Doing done well"}]}


async def test_round_trip_in_the_api_shape(db: Database) -> None:
    async with db.write() as conn:
        made = await store.create(
            conn, brand_id="acme", name="Acme", settings=SETTINGS, snippets=SNIPPETS
        )
    assert made["id"] == "acme" and made["name"] == "Acme" and made["version"] == "v1"
    assert made["settings"] == SETTINGS and made["snippets"] == SNIPPETS
    assert isinstance(made["created"], int) and made["published"] == made["updated"]
    async with db.read() as conn:
        assert await store.get_brand(conn, "acme") == made
        assert await store.get_brand(conn, "nothing") is None
        assert await store.exists(conn, "acme") and not await store.exists(conn, "nothing")
    async with db.write() as conn:
        replaced = await store.replace(conn, "acme", name="Acme 2", settings={}, snippets=None)
        assert await store.replace(conn, "nothing", name="x", settings={}, snippets=None) is None
    assert replaced is not None
    assert replaced["name"] == "Acme 2" and replaced["settings"] == {}
    assert "snippets" not in replaced and replaced["version"] == "v2"
    assert replaced["created"] == made["created"]
    async with db.write() as conn:
        assert await store.delete(conn, "acme")
        assert not await store.delete(conn, "acme")
        assert await store.get_brand(conn, "acme") is None


async def test_an_id_is_taken_once(db: Database) -> None:
    async with db.write() as conn:
        await store.create(conn, brand_id="b", name="B", settings={}, snippets=None)
    with pytest.raises(IntegrityError):
        async with db.write() as conn:
            await store.create(conn, brand_id="b", name="B again", settings={}, snippets=None)


async def test_list_pages_oldest_first(db: Database) -> None:
    async with db.write() as conn:
        for i in range(5):
            await store.create(conn, brand_id=f"b{i}", name=f"B{i}", settings={}, snippets=None)
    seen: list[str] = []
    cursor = None
    async with db.read() as conn:
        while True:
            page = await store.list_page(conn, limit=2, cursor=cursor)
            seen += [b["id"] for b in page.results]
            if page.cursor is None:
                break
            cursor = page.cursor
        with pytest.raises(ValueError, match="cursor"):
            await store.list_page(conn, limit=2, cursor="not-a-cursor")
    assert seen == [f"b{i}" for i in range(5)]


async def test_the_workspace_default(db: Database) -> None:
    async with db.write() as conn:
        for name in ("one", "two"):
            await store.create(conn, brand_id=name, name=name, settings=SETTINGS, snippets=None)
    async with db.read() as conn:
        assert await store.default_id(conn) is None and await store.default_brand(conn) is None
    async with db.write() as conn:
        await store.set_default(conn, "one")
        await store.set_default(conn, "two")  # replaces: there is one default
    async with db.read() as conn:
        assert await store.default_id(conn) == "two"
        found = await store.default_brand(conn)
        assert found is not None and found["id"] == "two" and found["settings"] == SETTINGS
    async with db.write() as conn:
        await store.clear_default(conn)
    async with db.read() as conn:
        assert await store.default_brand(conn) is None
