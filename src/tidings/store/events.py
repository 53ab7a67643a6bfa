"""Recording a provider's delivery event: history, status facts, suppressions, unmatched.

Webhooks and polling both land here. The same event may come any number of times, by either
road, in any order: the history keeps it once (keyed by the provider's event id) and the
status facts merge (see ``tidings.domain.status``), so every road ends in the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tidings.domain.events import DeliveryEvent, EventKind
from tidings.domain.status import apply_event, history_type_for, is_permanent_failure
from tidings.store import facts as facts_codec
from tidings.store import messages as store
from tidings.store import preferences, suppressions
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.status_feed import set_fresh_facts
from tidings.store.tables import messages, unmatched_events, webhook_tokens

# Built once per dialect: one statement per webhook, its cache key and compiled form reused.
_TOKEN_INSERTS = {
    "postgresql": postgresql.insert(webhook_tokens).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(webhook_tokens).on_conflict_do_nothing(),
}
_UNMATCHED_INSERTS = {
    "postgresql": postgresql.insert(unmatched_events).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(unmatched_events).on_conflict_do_nothing(),
}


@dataclass(frozen=True, slots=True)
class Recorded:
    message_id: str | None  # None: no message matched, kept as unmatched
    new: bool  # False: seen before (a duplicate)
    status_changed: bool
    status: str | None = None


def event_key(event: DeliveryEvent, provider_key: str) -> str:
    """An event's identity across providers: the provider's key, then its own id."""
    return f"{provider_key}:{event.event_id}"


def suppression_for(event: DeliveryEvent) -> tuple[str, int | None, str | None] | None:
    """Which suppression an event calls for: hard bounces, complaints, unsubscribes."""
    if event.kind is EventKind.COMPLAINED:
        return "complaint", None, "the recipient marked an email as spam"
    if event.kind is EventKind.UNSUBSCRIBED:
        return "unsubscribe", None, "the recipient unsubscribed"
    if is_permanent_failure(event):
        reason = event.reason or ""
        if reason == "suppress-unsubscribe":
            return "unsubscribe", event.code, event.message
        if reason == "suppress-complaint":
            return "complaint", event.code, event.message
        if reason == "suppress-bounce":
            return "bounce", event.code, event.message
        if reason == "bounce":
            # Only a hard bounce: the recipient's server refused the address for good.
            bounce_type = (event.raw.get("delivery-status") or {}).get("bounce-type")
            if bounce_type in (None, "hard"):
                return "bounce", event.code, event.message
    return None


async def find_message(conn: Conn, event: DeliveryEvent) -> sa.Row[Any] | None:
    if event.tidings_id:
        row = await store.get(conn, event.tidings_id)
        if row is not None:
            return row
    if event.provider_message_id:
        return await store.by_provider_message_id(conn, event.provider_message_id, event.recipient)
    return None


def _history_data(
    event: DeliveryEvent, source: str, provider_id: str | None, provider_key: str
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source": source,
        "event": event.kind.value,
        "integration": {"id": provider_id, "provider": provider_key},
        "reference": event.provider_message_id,
        "provider_ts": event.timestamp.isoformat(),
        "raw": event.raw,
    }
    if event.severity:
        data["severity"] = event.severity
    if event.reason:
        data["provider_reason"] = event.reason
    if event.code is not None:
        data["code"] = event.code
    if event.message:
        data["error_message" if event.kind is EventKind.FAILED else "detail"] = event.message
    if event.kind is EventKind.FAILED and event.severity != "permanent":
        data["note"] = "temporary failure: the provider will retry"
    if event.url:
        data["url"] = event.url
    if event.hint:
        data["hint"] = event.hint
    return data


async def record_event(
    conn: Conn,
    event: DeliveryEvent,
    *,
    source: str,
    provider_id: str | None,
    provider_key: str,
) -> Recorded:
    """Apply one event inside the caller's transaction."""
    row = await find_message(conn, event)
    key = event_key(event, provider_key)
    if row is None:
        result = await conn.execute(
            _UNMATCHED_INSERTS[conn.dialect.name],
            {
                "event_key": key,
                "provider_id": provider_id,
                "kind": event.kind.value,
                "recipient": event.recipient,
                "provider_message_id": event.provider_message_id,
                "received_at": utcnow(),
                "source": source,
                "raw": event.raw,
            },
        )
        return Recorded(None, bool(result.rowcount), False)

    added = await store.add_history(
        conn,
        row.id,
        history_type_for(event).value,
        _history_data(event, source, provider_id, provider_key),
        ts=event.timestamp,
        event_key=key,
    )
    if not added:
        return Recorded(row.id, False, False, row.status)
    suppression = suppression_for(event)
    if suppression is not None and (event.recipient or row.recipient_email):
        reason, code, detail = suppression
        await suppressions.add(
            conn,
            event.recipient or row.recipient_email,
            reason=reason,
            code=code,
            detail=detail,
            message_id=row.id,
        )
    # An unsubscribe or a complaint is also an opt-out of subscription topics.
    left = await preferences.opt_out_for_event(conn, event.kind, row, f"{provider_key}:{source}")
    if left:
        names = ", ".join(f"{t.name} ({t.id})" for t in left)
        await store.add_history(
            conn,
            row.id,
            "PREFERENCES",
            {
                "note": f"opted {row.user_id or row.recipient_email} out of {names} "
                f"({event.kind.value} event)",
                "topics": [t.id for t in left],
            },
            ts=event.timestamp,
        )
    before = facts_codec.load(row.facts)
    after = apply_event(before, event)
    extra: dict[str, Any] = {}
    # A message-level hint explains why it has not arrived: not for a delivered one.
    if event.hint and not row.hint and after.delivered_at is None:
        extra["hint"] = event.hint
    if after == before:
        if extra:
            await conn.execute(messages.update().where(messages.c.id == row.id).values(**extra))
        return Recorded(row.id, True, False, row.status)
    if row.provider_message_id is None and event.provider_message_id:
        extra["provider_message_id"] = event.provider_message_id
    # Fresh: ``row`` was read above, in this transaction.
    changed = await set_fresh_facts(conn, row, after, **extra)
    return Recorded(row.id, True, changed is not None, changed or row.status)


async def accept_token_once(conn: Conn, token: str) -> bool:
    """Remember a webhook token; False if it was seen before (a replay)."""
    insert = _TOKEN_INSERTS[conn.dialect.name]
    result = await conn.execute(insert, {"token": token, "seen_at": utcnow()})
    return bool(result.rowcount)


async def sweep_tokens(
    conn: Conn, older_than_s: float, *, now: datetime | None = None, limit: int | None = None
) -> int:
    """Forget webhook tokens seen more than ``older_than_s`` ago (at most ``limit``): a
    replay that old is refused by its timestamp anyway. Returns how many went."""
    old = webhook_tokens.c.seen_at < (now or utcnow()) - timedelta(seconds=older_than_s)
    if limit is not None:
        batch = sa.select(webhook_tokens.c.token).where(old).limit(limit)
        old = webhook_tokens.c.token.in_(batch.scalar_subquery())
    result = await conn.execute(webhook_tokens.delete().where(old))
    return int(result.rowcount or 0)


async def unmatched_page(
    conn: Conn, *, before_id: int | None, limit: int
) -> tuple[list[sa.Row[Any]], bool]:
    """Unmatched events, newest first, older than ``before_id``; and whether more follow."""
    query = sa.select(unmatched_events).order_by(unmatched_events.c.id.desc()).limit(limit + 1)
    if before_id is not None:
        query = query.where(unmatched_events.c.id < before_id)
    rows = list(await conn.execute(query))
    return rows[:limit], len(rows) > limit
