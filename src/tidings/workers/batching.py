"""Which claimed messages go out together as one batch call, as pure functions.

Messages are sent in one provider call when they belong to the same request, go through
the same provider configuration at the same route step, and their emails are the same but
for each recipient's own values: the same rendered *shape* (:mod:`tidings.render.shape`)
and the same sender, tags, files, tracking, variables, override and header names. Header
values may differ (one unsubscribe URL per recipient): such a header becomes a
placeholder. Anything else makes a message a single send, as it was before batching.

No I/O: the dispatcher renders, calls these, and carries out what they return.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tidings.providers.base import BatchRecipient, OutgoingBatch, OutgoingEmail
from tidings.render.shape import Shape, substitute

__all__ = ["MAX_VALUES_CHARS", "Member", "batch_key", "outgoing_batch", "plan_batches", "units"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Member:
    """One message as a batch needs it: its email (as a single send would send it), its
    shape, and where it goes."""

    email: OutgoingEmail
    shape: Shape | None
    configuration_id: str
    step: int
    config: Any  # the provider configuration with this message's overrides (frozen)


def units(
    ids: Sequence[str], request_of: Callable[[str], str | None], size: int
) -> list[list[str]]:
    """Claimed ids as work units: the messages of one request together (at most ``size``
    each), every other message alone. ``size`` 1: every message alone."""
    if size <= 1:
        return [[message_id] for message_id in ids]
    by_request: dict[str, list[str]] = {}
    alone: list[list[str]] = []
    for message_id in ids:
        request_id = request_of(message_id)
        if request_id is None or request_id == message_id:
            alone.append([message_id])
        else:
            by_request.setdefault(request_id, []).append(message_id)
    out = list(alone)
    for members in by_request.values():
        out.extend(members[i : i + size] for i in range(0, len(members), size))
    return out


def _attachment_digest(email: OutgoingEmail) -> list[list[Any]]:
    return [
        [a.filename, a.content_type, a.inline, hashlib.sha256(a.data).hexdigest()]
        for a in email.attachments
    ]


def batch_key(member: Member) -> str | None:
    """What members must share to be one call, as a string; None: this one goes alone."""
    email, shape = member.email, member.shape
    if shape is None or email.cc or email.bcc:
        return None
    # The shape was found for the rendered parts; the email must carry them unchanged.
    if substitute(shape.subject, shape.values) != email.subject:
        return None
    if substitute(shape.html, shape.values) != (email.html or ""):
        return None
    if substitute(shape.text, shape.values) != (email.text or ""):
        return None
    common = [
        member.configuration_id,
        member.step,
        repr(member.config),
        shape.key,
        email.html is None,
        email.text is None,
        email.from_address,
        email.reply_to,
        list(email.tags),
        sorted(email.headers),
        email.variables,
        _attachment_digest(email),
        email.track_opens,
        email.track_clicks,
        email.provider_body,
    ]
    return hashlib.sha256(json.dumps(common, default=str, sort_keys=True).encode()).hexdigest()


# The most characters of recipients' own values one call carries: Mailgun takes messages
# of up to 25 MB, and the recipient variables are part of the request.
MAX_VALUES_CHARS = 10_000_000


def _weight(member: Member) -> int:
    values = member.shape.values if member.shape is not None else {}
    return (
        sum(len(k) + len(v) for k, v in values.items())
        + sum(len(v) for v in member.email.headers.values())
        + len(member.email.to)
        + len(member.email.tidings_id)
        + 64  # the JSON around them
    )


def plan_batches(
    items: Iterable[T],
    member_of: Callable[[T], Member],
    size: int,
    *,
    max_chars: int = MAX_VALUES_CHARS,
) -> tuple[list[list[T]], list[T]]:
    """``items`` as batches of 2 to ``size`` members that share a key (one address at most
    once per batch, as a provider keys each copy by its address; at most ``max_chars`` of
    their own values), and the rest, sent alone."""
    groups: dict[str, list[T]] = {}
    alone: list[T] = []
    for item in items:
        key = batch_key(member_of(item)) if size > 1 else None
        if key is None:
            alone.append(item)
        else:
            groups.setdefault(key, []).append(item)
    batches: list[list[T]] = []
    for members in groups.values():
        chunks: list[tuple[list[T], set[str], list[int]]] = []
        for item in members:
            member = member_of(item)
            address, weight = member.email.to.lower(), _weight(member)
            chunk = next(
                (
                    c
                    for c in chunks
                    if len(c[0]) < size and address not in c[1] and c[2][0] + weight <= max_chars
                ),
                None,
            )
            if chunk is None:
                chunk = ([], set(), [0])
                chunks.append(chunk)
            chunk[0].append(item)
            chunk[1].add(address)
            chunk[2][0] += weight
        for chunk_items, _, _ in chunks:
            if len(chunk_items) > 1:
                batches.append(chunk_items)
            else:
                alone.extend(chunk_items)
    return batches, alone


def outgoing_batch(members: Sequence[Member]) -> OutgoingBatch:
    """The one email of a batch (members share a :func:`batch_key`): the shape's parts,
    each header that differs between members as a placeholder, each member's values."""
    first = members[0]
    assert first.shape is not None
    header_slots: dict[str, tuple[str, ...]] = {}
    slot_of: dict[str, str] = {}
    for i, name in enumerate(sorted(first.email.headers)):
        distinct = {m.email.headers[name] for m in members}
        if len(distinct) == 1:
            header_slots[name] = (first.email.headers[name],)
        else:
            # Not h…, s…, t…: the shape's own placeholders (render/shape.py).
            slot_of[name] = f"x{i}"
            header_slots[name] = ("", f"x{i}", "")
    recipients = []
    for member in members:
        assert member.shape is not None
        values = dict(member.shape.values)
        for name, slot in slot_of.items():
            values[slot] = member.email.headers[name]
        recipients.append(
            BatchRecipient(tidings_id=member.email.tidings_id, to=member.email.to, values=values)
        )
    return OutgoingBatch(
        email=first.email,
        subject=first.shape.subject,
        html=first.shape.html if first.email.html is not None else None,
        text=first.shape.text if first.email.text is not None else None,
        headers={name: header_slots[name] for name in first.email.headers},
        recipients=tuple(recipients),
    )
