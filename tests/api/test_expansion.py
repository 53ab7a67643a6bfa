"""``message.to`` read into entries and expanded against a real store (SQLite and
PostgreSQL): groups, dedupe, the limit, and a big list committed in one transaction."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.api.expansion import TooManyRecipients, expand_recipients, is_grouped, parse_to
from tidings.domain.errors import ValidationError
from tidings.errors import BadRequest
from tidings.ids import new_id
from tidings.store import lists, requests
from tidings.store import messages as messages_store
from tidings.store.clock import utcnow
from tidings.store.database import Database

PREFS: Any = {"categories": {"news": {"status": "OPTED_IN"}}}


def test_entries_are_checked() -> None:
    entries = parse_to(
        [{"user_id": "u"}, {"list_id": "a.b", "data": {"x": 1}}, {"list_pattern": "a.*"}]
    )
    assert [e.kind for e in entries] == [None, "list_id", "list_pattern"]
    assert is_grouped(entries) and not is_grouped(parse_to({"email": "a@b.test"}))
    for bad, path in [
        ([], "message.to"),
        ({"list_id": "a", "email": "a@b.test"}, "message.to.email"),
        ({"list_id": "a", "data": []}, "message.to.data"),
        ([{"email": "a@b.test"}, {"list_pattern": "a.**.b"}], "message.to[1].list_pattern"),
        ({"list_id": 5}, "message.to.list_id"),
    ]:
        with pytest.raises(ValidationError) as caught:
            parse_to(bad)
        assert caught.value.path == path


async def test_expansion_dedupes_keeps_order_and_records_the_list(db: Database) -> None:
    async with db.write() as conn:
        await lists.add(
            conn, "t.a", [lists.Subscription("u1", PREFS), lists.Subscription("u2", None)]
        )
        await lists.add(
            conn, "t.b", [lists.Subscription("u2", PREFS), lists.Subscription("u3", None)]
        )
    entries = parse_to(
        [{"email": "x@y.test"}, {"list_pattern": "t.*", "data": {"k": 1}}, {"user_id": "u3"}]
    )
    async with db.read() as conn:
        targets = await expand_recipients(conn, entries, limit=10)
    got = [
        (t.recipient.user_id or t.recipient.email, t.list_id, t.list_preferences) for t in targets
    ]
    assert got == [
        ("x@y.test", None, None),
        ("u1", "t.a", PREFS),
        ("u2", "t.a", None),
        ("u3", None, None),
    ]
    assert targets[1].raw_to == {"user_id": "u1", "data": {"k": 1}}
    async with db.read() as conn:
        with pytest.raises(TooManyRecipients) as caught:
            await expand_recipients(conn, entries, limit=3)
        assert "TIDINGS_MAX_SEND_RECIPIENTS" in str(caught.value)
        with pytest.raises(BadRequest) as missing:
            await expand_recipients(
                conn, parse_to([{"email": "a@b.test"}, {"list_id": "nope"}]), limit=3
            )
        assert str(missing.value).startswith("message.to[1].list_id: there is no list 'nope'")


async def test_a_big_list_is_one_transaction_and_filters_by_list_tenant_and_request(
    db: Database,
) -> None:
    count = 6000  # more rows times columns than one statement may bind: insert batches them
    async with db.write() as conn:
        await lists.add(conn, "big", [lists.Subscription(f"u{i:05}", None) for i in range(count)])
    async with db.read() as conn:
        targets = await expand_recipients(conn, parse_to({"list_id": "big"}), limit=count)
    assert len(targets) == count
    now = utcnow()
    request_id = new_id("req_")
    new = [
        messages_store.NewMessage(
            id=new_id(),
            request_id=request_id,
            recipient=t.recipient.user_id,
            recipient_email=None,
            user_id=t.recipient.user_id,
            payload={"to": t.raw_to},
            tags=["bulk"],
            trace_id=None,
            event=None,
            next_attempt_at=now,
            expires_at=None,
            tenant_id="acme" if i % 2 else None,
            list_id=t.list_id,
        )
        for i, t in enumerate(targets)
    ]
    history = [messages_store.HistoryEntry(type="ENQUEUED", ts=now, data={}) for _ in new]
    async with db.write() as conn:
        await requests.record(conn, request_id, total=len(new))
        await messages_store.insert(conn, new, history)

    async def total(**filters: Any) -> int:
        flt = messages_store.MessageFilter(**filters)
        seen, cursor = 0, None
        async with db.read() as conn:
            while True:
                rows, cursor = await messages_store.search(conn, flt, cursor=cursor, limit=500)
                seen += len(rows)
                if cursor is None:
                    return seen

    assert await total(list_id="big") == count
    assert await total(tenant_id="acme") == count // 2
    assert await total(message_ids=[request_id]) == count
    assert await total(list_id="other") == 0
    async with db.write() as conn:
        assert (await requests.counts(conn, request_id)) == {"ENQUEUED": count}
        found = await requests.get(conn, request_id)
        assert found is not None and found.total == count and found.archived_at is None
        assert await requests.archive(conn, request_id)
        assert not await requests.archive(conn, "req_none")
    assert await total(list_id="big") == 0
    assert await total(list_id="big", include_archived=True) == count


async def test_a_new_kind_of_group_plugs_in_with_one_entry(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the audiences integration does: a key, a check, a members function."""
    from tidings.api import expansion

    async def members(conn: Any, value: str, limit: int) -> list[expansion.GroupMember]:
        if value == "huge":
            raise expansion.GroupTooLarge()
        if value == "none":
            raise expansion.UnknownGroup("there is no crowd 'none'")
        return [expansion.GroupMember(f"{value}-{i}") for i in range(min(limit, 3))]

    def check(value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise ValidationError(path, "must be a string")
        return value

    monkeypatch.setitem(expansion.GROUPS, "crowd_id", expansion.Group(check, members))
    async with db.read() as conn:
        targets = await expand_recipients(conn, parse_to({"crowd_id": "c"}), limit=5)
        assert [t.recipient.user_id for t in targets] == ["c-0", "c-1", "c-2"]
        assert all(t.list_id is None for t in targets)
        with pytest.raises(TooManyRecipients) as caught:
            await expand_recipients(conn, parse_to({"crowd_id": "huge"}), limit=5)
        assert "more than 5 recipients" in str(caught.value)
        with pytest.raises(BadRequest) as unknown:
            await expand_recipients(conn, parse_to([{"crowd_id": "none"}]), limit=5)
        assert str(unknown.value) == "message.to[0].crowd_id: there is no crowd 'none'"
