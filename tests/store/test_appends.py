"""Deferred appends: history and status rows collected in a write transaction and written
together before the commit, in order, read back by the transaction itself, dropped with a
rollback, and never duplicated or lost when a group commit falls back to one work each."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tidings.store import appends, status_endpoints, status_feed
from tidings.store import messages as store
from tidings.store.clock import utcnow
from tidings.store.database import Conn, Database
from tidings.store.tables import history, messages, status_deliveries, status_events


def _new(message_id: str) -> store.NewMessage:
    now = utcnow()
    return store.NewMessage(
        id=message_id,
        request_id=message_id,
        recipient="user-1",
        recipient_email="a@example.com",
        user_id="user-1",
        payload={},
        tags=["t1", "t2"],
        trace_id=None,
        event=None,
        next_attempt_at=now + timedelta(hours=1),
        expires_at=None,
    )


async def _insert(db: Database, ids: list[str]) -> None:
    async with db.write() as conn:
        now = utcnow()
        rows = await store.insert(
            conn,
            [_new(i) for i in ids],
            [store.HistoryEntry(type="ENQUEUED", ts=now, data={}) for _ in ids],
        )
        await status_feed.publish_new(conn, ids, rows)


async def _history(db: Database) -> list[tuple[int, str, str]]:
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(history.c.id, history.c.message_id, history.c.type).order_by(history.c.id)
        )
        return [(r.id, r.message_id, r.type) for r in rows]


async def test_a_failing_member_of_a_group_loses_nothing_and_duplicates_nothing(
    db: Database,
) -> None:
    ids = [f"m{i:02d}" for i in range(20)]
    await _insert(db, ids)

    def work(message_id: str, *, fail: bool) -> Callable[[Conn], Awaitable[str]]:
        async def run(conn: Conn) -> str:
            for step in ("ONE", "TWO", "THREE"):
                await store.add_history(conn, message_id, step, {"step": step})
            await store.update(conn, message_id, hint=f"hint of {message_id}")
            if fail:
                raise RuntimeError("this work fails after appending")
            return message_id

        return run

    results = await asyncio.gather(
        *(db.grouped(work(i, fail=i == "m07")) for i in ids), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], RuntimeError)

    entries = await _history(db)
    for message_id in ids:
        types = [t for _, m, t in entries if m == message_id]
        if message_id == "m07":
            assert types == ["ENQUEUED"]
        else:
            assert types == ["ENQUEUED", "ONE", "TWO", "THREE"]
    async with db.read() as conn:
        hints = {r.id: r.hint for r in await conn.execute(sa.select(messages))}
        events = list((await conn.execute(sa.select(status_events.c.message_id))).scalars())
    assert hints["m07"] is None and hints["m03"] == "hint of m03"
    assert sorted(events) == ids  # the first event of each, exactly once


async def test_a_row_that_fails_when_written_fails_only_its_own_work(db: Database) -> None:
    """The rows are written at the commit: a bad one (no such message) fails the group,
    and then only its own work."""
    ids = ["a1", "a2", "a3"]
    await _insert(db, ids)

    def work(message_id: str) -> Callable[[Conn], Awaitable[None]]:
        async def run(conn: Conn) -> None:
            await store.add_history(conn, message_id, "NOTE", {})

        return run

    results = await asyncio.gather(
        db.grouped(work("a1")),
        db.grouped(work("no-such-message")),
        db.grouped(work("a2")),
        db.grouped(work("a3")),
        return_exceptions=True,
    )
    assert [isinstance(r, sa.exc.IntegrityError) for r in results] == [False, True, False, False]
    notes = [m for _, m, t in await _history(db) if t == "NOTE"]
    assert sorted(notes) == ids


async def test_a_transaction_reads_its_own_appends_in_order(db: Database) -> None:
    await _insert(db, ["r1"])

    async def work(conn: Conn) -> list[str]:
        await store.add_history(conn, "r1", "FIRST", {})
        # An insert with an event key writes the collected rows first: the order holds.
        assert await store.add_history(conn, "r1", "KEYED", {}, event_key="k1")
        assert not await store.add_history(conn, "r1", "KEYED", {}, event_key="k1")
        await store.add_history(conn, "r1", "LAST", {})
        return [r.type for r in await store.history_of(conn, "r1")]

    seen = await db.grouped(work)
    assert seen == ["ENQUEUED", "FIRST", "KEYED", "LAST"]
    assert [t for _, _, t in await _history(db)] == seen

    async with db.write() as conn:
        await store.add_history(conn, "r1", "IN_WRITE", {})
        assert [r.type for r in await store.history_of(conn, "r1")][-1] == "IN_WRITE"
        # text() cannot be analysed: everything is written before it.
        count = await conn.scalar(sa.text("SELECT count(*) FROM history"))
        assert count == 5


async def test_a_rolled_back_transaction_drops_its_appends(db: Database) -> None:
    await _insert(db, ["x1"])
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await store.add_history(conn, "x1", "GONE", {})
            raise RuntimeError("roll back")
    # The next transaction on the same (SQLite: the one writer) connection adds its own.
    async with db.write() as conn:
        await store.add_history(conn, "x1", "KEPT", {})
    assert [t for _, _, t in await _history(db)] == ["ENQUEUED", "KEPT"]


async def test_publish_new_with_the_inserted_rows_writes_what_reading_them_back_would(
    db: Database,
) -> None:
    endpoint = None
    async with db.write() as conn:
        endpoint = await status_endpoints.create(
            conn, url="https://example.com/hook", secret="s", enabled=True
        )
    await _insert(db, ["p1"])  # with the rows
    async with db.write() as conn:
        rows = await store.insert(
            conn, [_new("p2")], [store.HistoryEntry(type="ENQUEUED", ts=utcnow(), data={})]
        )
        await status_feed.publish_new(conn, ["p2"])  # read back
    async with db.read() as conn:
        events = {
            r.message_id: r.details
            for r in await conn.execute(sa.select(status_events).order_by(status_events.c.id))
        }
        deliveries = list((await conn.execute(sa.select(status_deliveries.c.message_id))).scalars())
    assert rows and set(events) == {"p1", "p2"}
    one, two = events["p1"], events["p2"]
    assert {k for k in one if one[k] != two[k]} == {"id", "requestId", "enqueued"}
    assert one["status"] == "ENQUEUED" and one["recipientEmail"] == "a@example.com"
    assert sorted(deliveries) == ["p1", "p2"] and endpoint.enabled


async def test_endpoint_writes_in_this_process_are_seen_at_once(db: Database) -> None:
    await _insert(db, ["e1"])  # reads (and keeps) the enabled endpoints: none
    async with db.write() as conn:
        first = await status_endpoints.create(
            conn, url="https://example.com/1", secret="s", enabled=True
        )
    await _insert(db, ["e2"])
    async with db.write() as conn:
        await status_endpoints.update(conn, first.id, enabled=False)
    await _insert(db, ["e3"])
    async with db.read() as conn:
        queued = list((await conn.execute(sa.select(status_deliveries.c.message_id))).scalars())
    assert queued == ["e2"]


def test_statement_analysis() -> None:
    assert appends.touched(sa.text("SELECT 1")) is None
    assert appends.touched(history.delete()) is None
    update = messages.update().where(messages.c.id == "x").values(hint="h")
    assert appends.touched(update) == frozenset({messages})
    nested = sa.select(messages.c.id).where(
        messages.c.id.in_(sa.select(history.c.message_id).scalar_subquery())
    )
    assert appends.touched(nested) == frozenset({messages, history})
    alias = history.alias("h")
    assert appends.touched(sa.select(alias.c.id)) == frozenset({history})
