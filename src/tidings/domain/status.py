"""A message's status as a merge of facts, not a sequence of transitions.

Webhooks and polling report the same provider events in any order, any number of times.
Rather than moving a state machine (where a late ``delivered`` could move OPENED back),
each message keeps the *facts* learned so far — when it was sent, delivered, opened,
clicked, whether it failed — and every fact keeps the earliest time it was seen. Facts
form a join-semilattice under :func:`merge` (per field: the minimum under a total order,
``None`` being "not known yet"), so merging is commutative, associative and idempotent;
folding events with :func:`apply_event` therefore ends in the same facts whatever the
order or duplication. The Courier status is *derived* from the facts by rank
(:func:`derive`), never stored as the thing that changes.

Tie rules, chosen here and relied on by callers:

* An engagement implies what precedes it: ``opened`` implies delivered, ``clicked``
  implies opened and delivered. So ``delivered_at`` is the earliest of the delivered,
  opened and clicked times, and ``opened_at`` the earliest of opened and clicked.
* A permanent failure outranks every engagement: a bounce that arrives after a
  ``delivered`` (an asynchronous bounce) shows UNDELIVERABLE; the engagement times stay
  in the facts for anyone who looks.
* Evidence that the email left (sent, delivered, …) outranks CANCELED and UNROUTABLE: a
  cancel that raced a send did not stop the email.
* Between CANCELED and UNROUTABLE the earlier fact wins; on equal times, UNROUTABLE.
* Of two failures, the earliest wins; equal times are broken by a total order on the
  remaining fields, so the choice never depends on arrival order.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tidings.domain.events import DeliveryEvent, EventKind


class Status(enum.StrEnum):
    """Courier's message statuses."""

    ENQUEUED = "ENQUEUED"
    ROUTED = "ROUTED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    OPENED = "OPENED"
    CLICKED = "CLICKED"
    UNDELIVERABLE = "UNDELIVERABLE"
    UNROUTABLE = "UNROUTABLE"
    UNMAPPED = "UNMAPPED"
    CANCELED = "CANCELED"
    DELAYED = "DELAYED"
    THROTTLED = "THROTTLED"
    FILTERED = "FILTERED"
    SIMULATED = "SIMULATED"
    DIGESTED = "DIGESTED"


class Reason(enum.StrEnum):
    """Courier's reasons, given with UNDELIVERABLE and UNROUTABLE."""

    BOUNCED = "BOUNCED"
    FAILED = "FAILED"
    FILTERED = "FILTERED"
    NO_CHANNELS = "NO_CHANNELS"
    NO_PROVIDERS = "NO_PROVIDERS"
    OPT_IN_REQUIRED = "OPT_IN_REQUIRED"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    UNPUBLISHED = "UNPUBLISHED"
    UNSUBSCRIBED = "UNSUBSCRIBED"


@dataclass(frozen=True, slots=True)
class Failure:
    """A permanent failure: the email will not arrive."""

    at: datetime
    reason: Reason
    code: int | None = None
    message: str | None = None

    def order_key(self) -> tuple[datetime, str, bool, int, str]:
        """A total order over failures: earliest first, then every other field.

        Covering every field makes two different failures never compare equal, which is
        what makes "take the smaller" commutative.
        """
        return (
            self.at,
            self.reason.value,
            self.code is None,
            self.code or 0,
            self.message or "",
        )


@dataclass(frozen=True, slots=True)
class Unroutable:
    """The message could not be routed (no email address, no provider)."""

    at: datetime
    reason: Reason
    why: str | None = None

    def order_key(self) -> tuple[datetime, str, str]:
        """A total order over unroutable facts, as :meth:`Failure.order_key`."""
        return (self.at, self.reason.value, self.why or "")


@dataclass(frozen=True, slots=True)
class StatusFacts:
    """What is known about one message. Every field is "earliest seen", or None.

    Times must be timezone-aware: naive and aware datetimes do not compare, and a
    status merge that fails on the hot path is worse than a clear error where the
    naive time was made.
    """

    enqueued_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    failure: Failure | None = None
    unroutable: Unroutable | None = None
    canceled_at: datetime | None = None

    def __post_init__(self) -> None:
        for name, value in (
            ("enqueued_at", self.enqueued_at),
            ("sent_at", self.sent_at),
            ("delivered_at", self.delivered_at),
            ("opened_at", self.opened_at),
            ("clicked_at", self.clicked_at),
            ("failure.at", self.failure.at if self.failure else None),
            ("unroutable.at", self.unroutable.at if self.unroutable else None),
            ("canceled_at", self.canceled_at),
        ):
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"StatusFacts.{name} must be timezone-aware, got {value!r}")


NO_FACTS = StatusFacts()


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _smallest_failure(a: Failure | None, b: Failure | None) -> Failure | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a.order_key() <= b.order_key() else b


def _smallest_unroutable(a: Unroutable | None, b: Unroutable | None) -> Unroutable | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a.order_key() <= b.order_key() else b


def merge(a: StatusFacts, b: StatusFacts) -> StatusFacts:
    """Everything known from ``a`` and ``b``: per fact, the earliest.

    Commutative, associative and idempotent, with :data:`NO_FACTS` as identity. The
    implications (clicked ⇒ opened ⇒ delivered) are applied here too, so facts built by
    hand obey them after one merge.
    """
    clicked = _earliest(a.clicked_at, b.clicked_at)
    opened = _earliest(_earliest(a.opened_at, b.opened_at), clicked)
    delivered = _earliest(_earliest(a.delivered_at, b.delivered_at), opened)
    return StatusFacts(
        enqueued_at=_earliest(a.enqueued_at, b.enqueued_at),
        sent_at=_earliest(a.sent_at, b.sent_at),
        delivered_at=delivered,
        opened_at=opened,
        clicked_at=clicked,
        failure=_smallest_failure(a.failure, b.failure),
        unroutable=_smallest_unroutable(a.unroutable, b.unroutable),
        canceled_at=_earliest(a.canceled_at, b.canceled_at),
    )


# Mailgun ``reason`` values of a permanent failure that mean "the recipient opted out"
# rather than "the address does not work". A complaint (the recipient marked an earlier
# email as spam) is treated as an opt-out too: Mailgun suppresses the address for the
# same reason an unsubscribe does, and BOUNCED would send someone looking for a broken
# mailbox that is not broken.
_OPT_OUT_REASONS = frozenset({"suppress-unsubscribe", "suppress-complaint"})


def is_permanent_failure(event: DeliveryEvent) -> bool:
    """Whether a ``failed`` event is permanent.

    Only an explicit ``severity: permanent`` counts: a failure of unknown severity is
    treated as temporary, because Mailgun retries those and a wrong UNDELIVERABLE can
    never be taken back (status only moves forward).
    """
    return event.kind is EventKind.FAILED and event.severity == "permanent"


def failure_reason(event: DeliveryEvent) -> Reason:
    """The Courier reason for a permanent failure or a rejection."""
    if event.kind is EventKind.REJECTED:
        return Reason.PROVIDER_ERROR
    if event.reason in _OPT_OUT_REASONS:
        return Reason.UNSUBSCRIBED
    return Reason.BOUNCED


def facts_of(event: DeliveryEvent) -> StatusFacts:
    """The facts one provider event establishes on its own (possibly none)."""
    at = event.timestamp
    match event.kind:
        case EventKind.DELIVERED:
            return StatusFacts(delivered_at=at)
        case EventKind.OPENED:
            return StatusFacts(delivered_at=at, opened_at=at)
        case EventKind.CLICKED:
            return StatusFacts(delivered_at=at, opened_at=at, clicked_at=at)
        case EventKind.FAILED if is_permanent_failure(event):
            return StatusFacts(
                failure=Failure(at, failure_reason(event), event.code, event.message)
            )
        case EventKind.REJECTED:
            return StatusFacts(
                failure=Failure(at, Reason.PROVIDER_ERROR, event.code, event.message)
            )
        case _:
            # accepted, stored, temporary failures, complaints and unsubscribes go to
            # the history only. A complaint or unsubscribe after delivery does not make
            # the delivered email undeliverable; the suppression list handles the
            # next one.
            return NO_FACTS


def apply_event(facts: StatusFacts, event: DeliveryEvent) -> StatusFacts:
    """``facts`` after learning ``event``. Order and repetition of events do not matter."""
    return merge(facts, facts_of(event))


def apply_events(facts: StatusFacts, events: Iterable[DeliveryEvent]) -> StatusFacts:
    """``facts`` after learning every event of ``events``."""
    for event in events:
        facts = apply_event(facts, event)
    return facts


def with_enqueued(facts: StatusFacts, at: datetime) -> StatusFacts:
    """``facts`` after the message was accepted by the API."""
    return merge(facts, StatusFacts(enqueued_at=at))


def with_sent(facts: StatusFacts, at: datetime) -> StatusFacts:
    """``facts`` after the provider accepted the email."""
    return merge(facts, StatusFacts(sent_at=at))


def with_failure(
    facts: StatusFacts,
    at: datetime,
    reason: Reason,
    code: int | None = None,
    message: str | None = None,
) -> StatusFacts:
    """``facts`` after a permanent failure (a provider refusal, retries given up, …)."""
    return merge(facts, StatusFacts(failure=Failure(at, reason, code, message)))


def with_unroutable(
    facts: StatusFacts, at: datetime, reason: Reason, why: str | None = None
) -> StatusFacts:
    """``facts`` after routing found no way to send (``why`` is for people)."""
    return merge(facts, StatusFacts(unroutable=Unroutable(at, reason, why)))


def with_canceled(facts: StatusFacts, at: datetime) -> StatusFacts:
    """``facts`` after the message was canceled."""
    return merge(facts, StatusFacts(canceled_at=at))


# Reasons of an unroutable fact that mean "the recipient's preferences said no"
# (tidings.domain.consent): shown as FILTERED rather than UNROUTABLE.
_PREFERENCE_REASONS = frozenset({Reason.UNSUBSCRIBED, Reason.OPT_IN_REQUIRED})


def derive(facts: StatusFacts) -> tuple[Status, Reason | None]:
    """The Courier status and reason the facts amount to (see the module's tie rules)."""
    if facts.failure is not None:
        return Status.UNDELIVERABLE, facts.failure.reason
    if facts.clicked_at is not None:
        return Status.CLICKED, None
    if facts.opened_at is not None:
        return Status.OPENED, None
    if facts.delivered_at is not None:
        return Status.DELIVERED, None
    if facts.sent_at is not None:
        return Status.SENT, None
    unroutable, canceled_at = facts.unroutable, facts.canceled_at
    if unroutable is not None and (canceled_at is None or unroutable.at <= canceled_at):
        if unroutable.reason in _PREFERENCE_REASONS:
            # Not sent because of the recipient's preferences: Courier's FILTERED.
            return Status.FILTERED, unroutable.reason
        return Status.UNROUTABLE, unroutable.reason
    if canceled_at is not None:
        return Status.CANCELED, None
    return Status.ENQUEUED, None


def error_message(facts: StatusFacts) -> str | None:
    """The sentence for MessageDetails' ``error``, when the status has one."""
    status, _ = derive(facts)
    if status is Status.UNDELIVERABLE and facts.failure is not None:
        return facts.failure.message
    if status in (Status.UNROUTABLE, Status.FILTERED) and facts.unroutable is not None:
        return facts.unroutable.why
    return None


def is_final(facts: StatusFacts) -> bool:
    """Whether nothing a provider can still say would change the status.

    CLICKED is not final: a permanent failure outranks it (see the tie rules).
    """
    status, _ = derive(facts)
    return status in {Status.UNDELIVERABLE, Status.UNROUTABLE, Status.FILTERED, Status.CANCELED}


class HistoryType(enum.StrEnum):
    """Types of history entries: Courier's, then provider-specific ones of Tidings."""

    ENQUEUED = "ENQUEUED"
    MAPPED = "MAPPED"
    PROFILE_LOADED = "PROFILE_LOADED"
    RENDERED = "RENDERED"
    ROUTED = "ROUTED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    OPENED = "OPENED"
    CLICKED = "CLICKED"
    UNDELIVERABLE = "UNDELIVERABLE"
    UNROUTABLE = "UNROUTABLE"
    CANCELED = "CANCELED"
    # Provider events that change no status but belong in the history.
    ACCEPTED = "ACCEPTED"
    STORED = "STORED"
    TEMPORARY_FAILURE = "TEMPORARY_FAILURE"
    COMPLAINED = "COMPLAINED"
    UNSUBSCRIBED = "UNSUBSCRIBED"
    # Tidings': a message leaving one provider of its route for the next.
    FAILOVER = "FAILOVER"


_HISTORY_TYPE_OF_KIND = {
    EventKind.ACCEPTED: HistoryType.ACCEPTED,
    EventKind.REJECTED: HistoryType.UNDELIVERABLE,
    EventKind.DELIVERED: HistoryType.DELIVERED,
    EventKind.OPENED: HistoryType.OPENED,
    EventKind.CLICKED: HistoryType.CLICKED,
    EventKind.UNSUBSCRIBED: HistoryType.UNSUBSCRIBED,
    EventKind.COMPLAINED: HistoryType.COMPLAINED,
    EventKind.STORED: HistoryType.STORED,
}


def history_type_for(event: DeliveryEvent) -> HistoryType:
    """The history entry type under which ``event`` is recorded."""
    if event.kind is EventKind.FAILED:
        if is_permanent_failure(event):
            return HistoryType.UNDELIVERABLE
        return HistoryType.TEMPORARY_FAILURE
    return _HISTORY_TYPE_OF_KIND[event.kind]


__all__ = [
    "NO_FACTS",
    "Failure",
    "HistoryType",
    "Reason",
    "Status",
    "StatusFacts",
    "Unroutable",
    "apply_event",
    "apply_events",
    "derive",
    "error_message",
    "facts_of",
    "failure_reason",
    "history_type_for",
    "is_final",
    "is_permanent_failure",
    "merge",
    "with_canceled",
    "with_enqueued",
    "with_failure",
    "with_sent",
    "with_unroutable",
]
