"""Consent at send: the subscription topic of a message, checked against its recipient.

The dispatcher calls :func:`check` at the last moment before a send (beside the
suppression list): a message whose payload names a topic (``subscription_topic_id``, from
the stored template or ``message.preferences``) is looked up against the recipient's own
choice, any per-list preference copied into the payload (``list_preferences``) and the
topic's default, and the pure :func:`tidings.domain.consent.decide` says whether it goes.

* Not sent: the message ends FILTERED with Courier's reason (UNSUBSCRIBED, or
  OPT_IN_REQUIRED for an opted-out-by-default topic nobody opted into), and its history
  has a FILTERED entry naming the topic and why. Nothing is failed over: it is about the
  recipient, not the provider.
* Sent: a PREFERENCES entry in the history says why, and the email carries RFC 8058's
  one-click ``List-Unsubscribe`` for this recipient and topic, unless the topic is REQUIRED
  (nobody may opt out of it, so offering a one-click opt-out would be a lie) or its
  ``include_unsubscribe_header`` is off. The link is on ``TIDINGS_PUBLIC_URL``; without it
  the email carries only the ``mailto:`` (``TIDINGS_UNSUBSCRIBE_MAILTO``) if set, and the
  history says why there is no link; in sandbox mode (nothing leaves the machine) the link
  is on the local address.

The recipient's choices are keyed by user id and by address (lower-cased): a message sent
to an address alone can be unsubscribed from, and an opt-out made through either key
stops mail to the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidings.domain.consent import Choice, Topic, decide, sign_token, unsubscribe_headers
from tidings.domain.status import with_unroutable
from tidings.runtime import Runtime
from tidings.store import facts as facts_codec
from tidings.store import messages as store
from tidings.store import preferences
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.status_feed import set_facts

FILTERED = "FILTERED"
PREFERENCES = "PREFERENCES"


@dataclass(frozen=True, slots=True)
class Consent:
    """A message may go: the headers its email carries for its topic (maybe none)."""

    headers: dict[str, str] = field(default_factory=dict)


NO_TOPIC = Consent()


def unsubscribe_url(public_url: str, token: str) -> str:
    """Where a recipient's one-click unsubscribe POSTs (and its confirmation page is)."""
    return f"{public_url.rstrip('/')}/unsubscribe/{token}"


async def headers_for(rt: Runtime, recipient: str, topic: Topic) -> tuple[dict[str, str], str]:
    """The List-Unsubscribe headers of ``topic``'s email to ``recipient`` (a user id or a
    lower-cased address) and a note for the history. Callable per recipient by a batch
    send as well."""
    if topic.default_status == "REQUIRED":
        return {}, "no List-Unsubscribe: the topic is REQUIRED, so it cannot be opted out of"
    if not topic.include_unsubscribe_header:
        return {}, "no List-Unsubscribe: the topic's include_unsubscribe_header is off"
    settings = rt.settings
    url = None
    note = "List-Unsubscribe: one-click link"
    # In sandbox mode nothing leaves the machine, so the local address is the right one: the
    # person trying Tidings can follow the link from the sandbox's copy.
    base = settings.public_url or (rt.public_url if rt.sandbox_mode else None)
    if base:
        secret = await preferences.unsubscribe_secret(rt.db)
        url = unsubscribe_url(base, sign_token(secret, recipient, topic.id))
        if not base.lower().startswith("https://"):
            note += f" on {base}, which is not https:// (mail clients offer only https ones)"
    else:
        note = (
            "no one-click List-Unsubscribe link: TIDINGS_PUBLIC_URL is not set, so there is "
            "no address recipients can reach this server at"
        )
    if settings.unsubscribe_mailto:
        note += "; mailto: " + settings.unsubscribe_mailto
    return unsubscribe_headers(url, settings.unsubscribe_mailto), note


def _effective(choices: list[preferences.UserChoice]) -> Choice | None:
    """Of the recipient's choices under its keys, an opt-out wins, else the first."""
    if not choices:
        return None
    chosen = next((c for c in choices if c.status == "OPTED_OUT"), choices[0])
    return Choice(
        status=chosen.status,  # type: ignore[arg-type]
        has_custom_routing=chosen.has_custom_routing,
        custom_routing=tuple(chosen.custom_routing),
    )


async def check(
    rt: Runtime,
    row: Any,
    email: str | None,
    pending: list[tuple[str, dict[str, Any]]],
    updates: dict[str, Any],
) -> Consent | None:
    """May ``row`` be sent to ``email``? None: it may not, and it has been ended FILTERED
    (with ``pending`` history and ``updates`` written); else the headers its email carries.
    A message with no topic costs nothing (no query)."""
    payload: dict[str, Any] = row.payload or {}
    topic_id = payload.get("subscription_topic_id")
    if not isinstance(topic_id, str) or not topic_id:
        return NO_TOPIC
    user_key = preferences.recipient_key(row.user_id, None)
    address_key = preferences.recipient_key(None, email)
    keys = [k for k in (user_key, address_key) if k]
    async with rt.db.read() as conn:
        stored = await preferences.get_topic(conn, topic_id)
        found = await preferences.choices_for(conn, keys, topic_id) if stored else {}
    if stored is None:
        pending.append(
            (
                PREFERENCES,
                {
                    "topic_id": topic_id,
                    "note": f"subscription topic {topic_id} no longer exists (archived): sent "
                    "without a preference check",
                },
            )
        )
        return NO_TOPIC
    topic = Topic(
        id=stored.id,
        name=stored.name,
        default_status=stored.default_status,  # type: ignore[arg-type]
        include_unsubscribe_header=stored.include_unsubscribe_header,
    )
    recipient = keys[0] if keys else "the recipient"
    decision = decide(
        topic,
        _effective([found[k] for k in keys if k in found]),
        payload.get("list_preferences"),
        recipient=recipient,
    )
    if not decision.send:
        assert decision.reason is not None
        await _filter(rt, row, decision.reason, decision.why, decision.history, pending, updates)
        return None
    headers: dict[str, str] = {}
    note = ""
    if keys:
        headers, note = await headers_for(rt, recipient, topic)
    pending.append(
        (PREFERENCES, {**decision.history, "note": decision.why, "unsubscribe": note or None})
    )
    return Consent(headers=headers)


async def _filter(
    rt: Runtime,
    row: Any,
    reason: Any,
    why: str,
    history: dict[str, Any],
    pending: list[tuple[str, dict[str, Any]]],
    updates: dict[str, Any],
) -> None:
    now = utcnow()
    facts = with_unroutable(facts_codec.load(row.facts), now, reason, why)

    async def write(conn: Conn) -> None:
        for type_, data in pending:
            await store.add_history(conn, row.id, type_, data)
        await set_facts(
            conn,
            row,
            facts,
            queued=False,
            in_doubt=False,
            lease_owner=None,
            lease_until=None,
            **updates,
        )
        await store.add_history(
            conn,
            row.id,
            FILTERED,
            {**history, "reason": reason.value, "error_message": why},
            ts=now,
        )

    await rt.db.grouped(write)
