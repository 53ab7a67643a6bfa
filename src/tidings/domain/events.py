"""Provider-neutral delivery events: what a provider says happened to one recipient's email."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class EventKind(enum.StrEnum):
    """Provider-neutral delivery events (Mailgun's names, which are Courier's too)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DELIVERED = "delivered"
    FAILED = "failed"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    STORED = "stored"


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One provider event about one recipient of one message.

    ``event_id`` is the provider's identity of the event, used to deduplicate.
    ``tidings_id`` comes from the user variable Tidings put on the request, when present;
    ``provider_message_id`` is the provider's id without angle brackets.
    ``raw`` is the event as received, with any signature removed.
    """

    event_id: str
    kind: EventKind
    timestamp: datetime
    recipient: str | None
    provider_message_id: str | None
    tidings_id: str | None
    domain: str | None
    severity: str | None = None  # failed: "permanent" | "temporary"
    reason: str | None = None  # bounce, suppress-bounce, suppress-unsubscribe, generic, ...
    code: int | None = None
    message: str | None = None
    url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # What the provider knows this failure means and how to fix it, for people.
    hint: str | None = None
