"""Events of a batch send: many Tidings messages share one Mailgun message id, and each
event still lands on its own recipient's message (store.events), never on a neighbour's;
claiming takes enough of a request's messages to fill a batch (store.messages)."""

from __future__ import annotations

from datetime import timedelta

from tidings.domain.events import DeliveryEvent, EventKind
from tidings.store import events, messages
from tidings.store.clock import utcnow
from tidings.store.database import Database


def _new(message_id: str, request_id: str, email: str) -> messages.NewMessage:
    return messages.NewMessage(
        id=message_id,
        request_id=request_id,
        recipient=email,
        recipient_email=email,
        user_id=None,
        payload={},
        tags=[],
        trace_id=None,
        event=None,
        next_attempt_at=utcnow() - timedelta(seconds=1),
        expires_at=None,
    )


def _enqueued(new: list[messages.NewMessage]) -> list[messages.HistoryEntry]:
    return [messages.HistoryEntry(type="ENQUEUED", ts=utcnow(), data={}) for _ in new]


async def _insert(db: Database, new: list[messages.NewMessage]) -> None:
    async with db.write() as conn:
        await messages.insert(conn, new, _enqueued(new))


def _event(recipient: str | None, tidings_id: str | None, n: int) -> DeliveryEvent:
    return DeliveryEvent(
        event_id=f"ev{n}",
        kind=EventKind.DELIVERED,
        timestamp=utcnow(),
        recipient=recipient,
        provider_message_id="batch-1@mg.example.com",
        tidings_id=tidings_id,
        domain="mg.example.com",
    )


async def test_events_of_one_batch_find_each_recipients_message(db: Database) -> None:
    people = {f"msg_{i}": f"p{i}@example.test" for i in range(3)}
    await _insert(db, [_new(i, "req_1", e) for i, e in people.items()])
    async with db.write() as conn:
        for message_id in people:
            await messages.update(
                conn, message_id, provider_message_id="batch-1@mg.example.com", queued=False
            )
    async with db.write() as conn:
        # By the Tidings id each copy carries, and by (message id, recipient) without it.
        by_id = await events.record_event(
            conn,
            _event("p0@example.test", "msg_0", 1),
            source="poll",
            provider_id=None,
            provider_key="mailgun",
        )
        by_recipient = await events.record_event(
            conn,
            _event("P1@example.test", None, 2),
            source="poll",
            provider_id=None,
            provider_key="mailgun",
        )
        # Neither: the batch id alone names three messages, so none is picked.
        ambiguous = await events.record_event(
            conn, _event(None, None, 3), source="poll", provider_id=None, provider_key="mailgun"
        )
    assert by_id.message_id == "msg_0"
    assert by_recipient.message_id == "msg_1"
    assert ambiguous.message_id is None


async def test_a_claim_fills_a_request_up_to_the_batch_size(db: Database) -> None:
    await _insert(
        db,
        [_new(f"msg_{i}", "req_big", f"b{i}@example.test") for i in range(30)]
        + [_new("msg_alone", "msg_alone", "alone@example.test")],
    )
    async with db.write() as conn:
        first = await messages.claim_due(conn, owner="w1", limit=2, lease_s=60, fill_requests=25)
    assert len(first) == 25
    async with db.write() as conn:
        rest = await messages.claim_due(conn, owner="w2", limit=10, lease_s=60, fill_requests=25)
    assert not set(first) & set(rest)
    assert len(rest) == 6  # the other 5 of the request and the single send
