"""The lookup at send (workers/consent.py) on a real SQLite database: what a message's topic,
its recipient's choices under both keys and a per-list preference in the payload decide,
and the List-Unsubscribe headers a sent one carries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tidings.config import Settings
from tidings.domain.consent import verify_token
from tidings.ids import new_id
from tidings.runtime import Runtime
from tidings.store import messages as messages_store
from tidings.store import preferences
from tidings.store.clock import utcnow
from tidings.store.database import Database
from tidings.store.keyring import KeyRing
from tidings.store.messages import HistoryEntry, NewMessage
from tidings.workers import consent

TOPIC: dict[str, Any] = {
    "description": None,
    "allowed_preferences": [],
    "include_unsubscribe_header": True,
    "routing_options": [],
    "topic_data": {},
}


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}")
    await db.upgrade()
    settings = Settings(
        public_url="https://tidings.example.test/", unsubscribe_mailto="leave@example.test"
    )
    yield Runtime(settings=settings, db=db, keyring=KeyRing(None, []))
    await db.close()


async def _topic(rt: Runtime, status: str = "OPTED_IN", **extra: Any) -> preferences.StoredTopic:
    async with rt.db.write() as conn:
        section = await preferences.create_section(
            conn, who="t", name="S", description=None, has_custom_routing=False, routing_options=[]
        )
        return await preferences.create_topic(
            conn,
            section.id,
            who="t",
            **{**TOPIC, "name": "News", "default_status": status, **extra},
        )


async def _message(rt: Runtime, user_id: str | None, email: str, payload: dict[str, Any]) -> Any:
    now = utcnow()
    message_id = new_id()
    async with rt.db.write() as conn:
        await messages_store.insert(
            conn,
            [
                NewMessage(
                    id=message_id,
                    request_id=message_id,
                    recipient=user_id or email,
                    recipient_email=email,
                    user_id=user_id,
                    payload=payload,
                    tags=[],
                    trace_id=None,
                    event=None,
                    next_attempt_at=now,
                    expires_at=None,
                )
            ],
            [HistoryEntry("ENQUEUED", now, {})],
        )
        return await messages_store.get(conn, message_id)


async def _history(rt: Runtime, message_id: str) -> list[str]:
    async with rt.db.read() as conn:
        return [h.type for h in await messages_store.history_of(conn, message_id)]


async def test_no_topic_costs_nothing(rt: Runtime) -> None:
    row = await _message(rt, "u1", "u1@example.test", {})
    pending: list[Any] = []
    assert await consent.check(rt, row, "u1@example.test", pending, {}) is consent.NO_TOPIC
    assert pending == []


async def test_a_sent_topic_email_carries_a_signed_link_and_the_mailto(rt: Runtime) -> None:
    topic = await _topic(rt)
    row = await _message(rt, "u1", "u1@example.test", {"subscription_topic_id": topic.id})
    pending: list[Any] = []
    found = await consent.check(rt, row, "u1@example.test", pending, {})
    assert found is not None
    link, mailto = found.headers["List-Unsubscribe"].split(", ")
    assert mailto == "<mailto:leave@example.test>"
    assert link.startswith("<https://tidings.example.test/unsubscribe/")
    assert found.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    secret = await preferences.unsubscribe_secret(rt.db)
    assert verify_token(secret, link.strip("<>").rsplit("/", 1)[1]) == ("u1", topic.id)
    ((kind, data),) = pending
    assert kind == "PREFERENCES" and data["source"] == "default"


async def test_list_preferences_and_the_address_key_filter(rt: Runtime) -> None:
    topic = await _topic(rt)
    listed = {"notifications": {topic.id: {"status": "OPTED_OUT"}}}
    row = await _message(
        rt,
        "u2",
        "u2@example.test",
        {"subscription_topic_id": topic.id, "list_preferences": listed},
    )
    assert await consent.check(rt, row, "u2@example.test", [], {}) is None
    async with rt.db.read() as conn:
        stored = await messages_store.get(conn, row.id)
    assert (stored.status, stored.reason) == ("FILTERED", "UNSUBSCRIBED")
    assert "FILTERED" in await _history(rt, row.id)

    # An opt-out made under the address (a send to the address alone) stops a user_id send.
    async with rt.db.write() as conn:
        await preferences.set_choice(conn, "u3@example.test", topic, status="OPTED_OUT", source="t")
    row = await _message(rt, "u3", "U3@example.test", {"subscription_topic_id": topic.id})
    assert await consent.check(rt, row, "U3@example.test", [], {}) is None


async def test_required_and_unheadered_topics_carry_no_unsubscribe(rt: Runtime) -> None:
    for topic in (
        await _topic(rt, "REQUIRED"),
        await _topic(rt, include_unsubscribe_header=False),
    ):
        row = await _message(rt, "u4", "u4@example.test", {"subscription_topic_id": topic.id})
        pending: list[Any] = []
        found = await consent.check(rt, row, "u4@example.test", pending, {})
        assert found is not None and found.headers == {}
        assert pending[0][1]["unsubscribe"].startswith("no List-Unsubscribe")


async def test_an_archived_topic_sends_and_says_so(rt: Runtime) -> None:
    topic = await _topic(rt)
    async with rt.db.write() as conn:
        await preferences.archive_topic(conn, topic.section_id, topic.id)
    row = await _message(rt, "u5", "u5@example.test", {"subscription_topic_id": topic.id})
    pending: list[Any] = []
    assert await consent.check(rt, row, "u5@example.test", pending, {}) is consent.NO_TOPIC
    assert "no longer exists" in pending[0][1]["note"]
