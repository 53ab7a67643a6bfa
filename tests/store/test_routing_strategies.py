"""Routing strategies and the workspace default in the store, and a message's frozen route,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tidings.domain.routing import Route
from tidings.store import messages
from tidings.store import routing_strategies as rs_store
from tidings.store.clock import utcnow
from tidings.store.database import Database

ROUTING: Any = {"method": "single", "channels": ["email"]}
CHANNELS: Any = {"email": {"providers": ["mailgun", "smtp"], "routing_method": "single"}}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 't.db'}"
    return str(request.getfixturevalue("postgres_url"))


async def test_store_round_trip(database_url: str) -> None:
    db = Database(database_url)
    await db.upgrade()
    try:
        async with db.write() as conn:
            made = [
                await rs_store.create(
                    conn,
                    name=f"s{i}",
                    routing=ROUTING,
                    channels=CHANNELS,
                    providers={},
                    description=None,
                    tags=["t"],
                    creator="api",
                )
                for i in range(3)
            ]
            await rs_store.set_default(conn, made[1].id)
            await rs_store.set_default(conn, made[2].id)
        async with db.read() as conn:
            page = await rs_store.list_page(conn, limit=2, cursor=None)
            assert [s.id for s in page.results] == [made[0].id, made[1].id]
            assert page.cursor is not None
            rest = await rs_store.list_page(conn, limit=2, cursor=page.cursor)
            assert [s.id for s in rest.results] == [made[2].id] and rest.cursor is None
            assert await rs_store.default_id(conn) == made[2].id
            got = await rs_store.get(conn, made[0].id)
            assert got is not None and got.channels == CHANNELS and got.tags == ["t"]
        async with db.write() as conn:
            assert await rs_store.archive(conn, made[0].id)
            assert not await rs_store.archive(conn, made[0].id)
            await rs_store.clear_default(conn)
        async with db.read() as conn:
            assert await rs_store.get(conn, made[0].id) is None
            assert await rs_store.default(conn) is None
    finally:
        await db.close()


async def test_set_route_stores_the_route_and_step(database_url: str) -> None:
    db = Database(database_url)
    await db.upgrade()
    try:
        now = utcnow()
        new = messages.NewMessage(
            id="msg_route",
            request_id="msg_route",
            recipient="a@example.test",
            recipient_email="a@example.test",
            user_id=None,
            payload={},
            tags=[],
            trace_id=None,
            event=None,
            next_attempt_at=now,
            expires_at=now + timedelta(hours=1),
        )
        first = messages.HistoryEntry(type="ENQUEUED", ts=now, data={})
        async with db.write() as conn:
            await messages.insert(conn, [new], [first])
        async with db.read() as conn:
            row = await messages.get(conn, "msg_route")
            assert row is not None and row.route is None and row.route_step == 0
        route = Route(("mailgun", "smtp"), (("sms", "Tidings does not deliver sms"),))
        async with db.write() as conn:
            await messages.set_route(conn, "msg_route", route.as_json(), 1)
        async with db.read() as conn:
            row = await messages.get(conn, "msg_route")
            assert row is not None and row.route_step == 1
            assert Route.from_json(row.route) == route
    finally:
        await db.close()
