"""The commit of ``/send``: concurrent sends written together, on SQLite and PostgreSQL —
every row of every send there, in order; one the database refuses fails alone; an
idempotency key used twice in one gathered commit is stored once and replayed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tidings.api import send_commit
from tidings.store import idempotency, requests, status_feed
from tidings.store import messages as store
from tidings.store.clock import utcnow
from tidings.store.database import Database


def _send(
    request_id: str, count: int = 1, *, key: str | None = None, ids: list[str] | None = None
) -> send_commit.Send:
    now = utcnow()
    ids = ids or ([request_id] if count == 1 else [f"{request_id}-{n}" for n in range(count)])
    new = [
        store.NewMessage(
            id=message_id,
            request_id=request_id,
            recipient=f"{message_id}@example.test",
            recipient_email=f"{message_id}@example.test",
            user_id=None,
            payload={"n": n},
            tags=["one", "two"],
            trace_id=None,
            event=None,
            next_attempt_at=now + timedelta(days=1),
            expires_at=None,
        )
        for n, message_id in enumerate(ids)
    ]
    first = [
        store.HistoryEntry(type="ENQUEUED", ts=now, data={"request_id": request_id}) for _ in new
    ]
    return send_commit.Send(
        new=new,
        first=first,
        request_id=request_id,
        record_request=count != 1,
        idempotency_key=key,
        request_hash=f"hash-{request_id}",
        answer={"requestId": request_id},
        key_expiry=now + timedelta(days=1) if key else None,
    )


async def _stored(db: Database, message_id: str) -> tuple[bool, list[str], list[str], list[str]]:
    """(the row is there, its tags, its history types, its status events' statuses)"""
    async with db.read() as conn:
        row = await store.get(conn, message_id)
        tags = sorted(await store.tags_of(conn, message_id))
        history = [h.type for h in await store.history_of(conn, message_id)]
        events = [e.status for e in await status_feed.events_after(conn, 0, message_id=message_id)]
    return row is not None, tags, history, events


async def test_concurrent_sends_are_all_committed_with_every_row(db: Database) -> None:
    sends = [_send(f"m{i:03d}") for i in range(60)] + [_send(f"req_{i}", 3) for i in range(5)]
    outcomes = await asyncio.gather(*(send_commit.commit(db, s) for s in sends))
    assert outcomes == [None] * len(sends)
    for send in sends:
        for message in send.new:
            assert await _stored(db, message.id) == (
                True,
                ["one", "two"],
                ["ENQUEUED"],
                ["ENQUEUED"],
            )
    async with db.read() as conn:
        for i in range(5):
            recorded = await requests.get(conn, f"req_{i}")
            assert recorded is not None and recorded.total == 3
        assert await store.count_by_status(conn) == {"ENQUEUED": 60 + 15}


async def test_a_send_the_database_refuses_fails_alone(db: Database) -> None:
    await send_commit.commit(db, _send("taken"))
    good = [_send(f"g{i:02d}") for i in range(30)]
    clash = _send("req_clash", 2, ids=["fresh", "taken"])  # "taken" is already stored
    results = await asyncio.gather(
        *(send_commit.commit(db, s) for s in [*good[:15], clash, *good[15:]]),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], sa.exc.IntegrityError)
    assert results.count(None) == 30
    for send in good:
        assert (await _stored(db, send.request_id))[0]
    # Nothing of the refused send is left: not its other message, not its request.
    assert not (await _stored(db, "fresh"))[0]
    async with db.read() as conn:
        assert await requests.get(conn, "req_clash") is None
        assert await store.count_by_status(conn) == {"ENQUEUED": 31}


async def test_one_key_in_one_gathered_commit_is_stored_once_and_replayed(db: Database) -> None:
    first, again = _send("k1", key="the-key"), _send("k2", key="the-key")
    others = [_send(f"o{i}") for i in range(10)]
    outcomes = await asyncio.gather(*(send_commit.commit(db, s) for s in [first, *others, again]))
    assert outcomes[:-1] == [None] * 11
    replayed = outcomes[-1]
    assert replayed is not None and replayed.body == {"requestId": "k1"}
    assert replayed.request_hash == "hash-k1"
    assert not (await _stored(db, "k2"))[0]  # the repeat wrote nothing
    async with db.read() as conn:
        stored = await idempotency.find(conn, "the-key")
    assert stored == replayed


@pytest.mark.parametrize("count", [1, 2500])
async def test_a_big_send_is_committed_whole(db: Database, count: int) -> None:
    big = _send("req_big" if count > 1 else "m_big", count)
    small = [_send(f"s{i}") for i in range(5)]
    outcomes = await asyncio.gather(*(send_commit.commit(db, s) for s in [*small, big]))
    assert outcomes == [None] * 6
    async with db.read() as conn:
        assert await store.count_by_status(conn) == {"ENQUEUED": count + 5}
        events = await status_feed.events_after(conn, 0, limit=10_000)
    assert len(events) == count + 5
