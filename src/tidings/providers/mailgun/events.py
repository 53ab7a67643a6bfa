"""Mailgun event items (Events API pages, webhook ``event-data``) -> :class:`DeliveryEvent`.

Real payloads are loose, and this module takes them as they come: ``delivery-status`` may be
``null``, ``user-variables`` is ``[]`` rather than ``{}`` when empty, message ids arrive with
or without angle brackets, ``rejected`` events have no recipient, and an item may lack an
``id`` (legacy webhooks), in which case a stable one is derived from its content so that the
same event read twice is still deduplicated.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from tidings.domain.events import DeliveryEvent, EventKind
from tidings.providers.base import EventParseError
from tidings.providers.mailgun.hints import hint_for
from tidings.providers.mailgun.payload import TIDINGS_ID_VARIABLE

__all__ = ["EventParseError", "message_id_domain", "parse_event_item", "parse_timestamp"]


def parse_timestamp(value: Any) -> datetime:
    """Mailgun's float (or, in legacy webhooks, string) epoch seconds as aware UTC."""
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise EventParseError(f"event timestamp {value!r} is not epoch seconds") from exc


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _code(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def strip_brackets(message_id: str | None) -> str | None:
    if not message_id:
        return None
    return message_id.strip().strip("<>").strip() or None


def message_id_domain(message_id: str | None) -> str | None:
    """The domain after ``@`` in a Mailgun message id (Mailgun uses the sending domain)."""
    if not message_id or "@" not in message_id:
        return None
    return message_id.rsplit("@", 1)[1].strip().strip("<>").lower() or None


def _derived_id(item: dict[str, Any]) -> str:
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


# Mailgun's delivery codes for a send it dropped because the address is on a list.
SUPPRESSION_CODES: dict[int, str] = {
    605: "suppress-bounce",
    606: "suppress-unsubscribe",
    607: "suppress-complaint",
}


def parse_event_item(item: dict[str, Any]) -> DeliveryEvent:
    """One Mailgun event item as a provider-neutral event; ``raw`` is the item itself."""
    if not isinstance(item, dict):
        raise EventParseError("event item is not a JSON object")
    name = item.get("event")
    try:
        kind = EventKind(str(name).lower())
    except ValueError as exc:
        raise EventParseError(f"unknown Mailgun event {name!r}") from exc
    if "timestamp" not in item:
        raise EventParseError("event has no timestamp")

    message = _dict(item.get("message"))
    headers = _dict(message.get("headers"))
    provider_message_id = strip_brackets(_text(headers.get("message-id")))
    status = _dict(item.get("delivery-status"))  # null on accepted, opened, rejected...
    reject = _dict(item.get("reject"))
    variables = _dict(item.get("user-variables"))  # [] when there are none

    reason = _text(item.get("reason")) or _text(reject.get("reason"))
    code = _code(status.get("code"))
    if kind is EventKind.FAILED and code in SUPPRESSION_CODES:
        # 605/606/607 name the list that dropped the send, whatever the reason says (older
        # events and some webhooks carry reason "generic" or none with these codes).
        reason = SUPPRESSION_CODES[code]
    message_text = (
        _text(status.get("message"))
        or _text(status.get("description"))
        or _text(reject.get("description"))
        or _text(reject.get("reason"))
    )
    domain = _text(_dict(item.get("domain")).get("name"))
    tidings_id = _text(variables.get(TIDINGS_ID_VARIABLE))

    return DeliveryEvent(
        event_id=_text(item.get("id")) or _derived_id(item),
        kind=kind,
        timestamp=parse_timestamp(item["timestamp"]),
        recipient=_text(item.get("recipient")),
        provider_message_id=provider_message_id,
        tidings_id=tidings_id,
        domain=(domain.lower() if domain else None) or message_id_domain(provider_message_id),
        severity=_text(item.get("severity")),
        reason=reason,
        code=code,
        message=message_text,
        url=_text(item.get("url")),
        raw=item,
        hint=_hint(kind, message_text, code),
    )


def _hint(kind: EventKind, message: str | None, code: int | None) -> str | None:
    if kind not in (EventKind.FAILED, EventKind.REJECTED):
        return None
    hint = hint_for(None, message, code)
    return hint.text() if hint else None
