"""Mailgun's signed webhooks: verify, parse (JSON and the legacy form format), check.

Mailgun signs only ``timestamp + token`` (hex HMAC-SHA256 with the account's HTTP webhook
signing key), not the body, so a valid signature proves little on its own. The checks here
are the pure part: a key must be configured (never fail open), the signature must match, the
timestamp must be near now, and the event must be about the configured domain. Refusing a
token seen before needs storage and is left to the caller, who gets the token in
:class:`ParsedWebhook`.

Refusals carry the HTTP status to answer: 401 where a configuration fix would make the same
webhook acceptable (no key yet, or a different key) so that Mailgun keeps retrying for its
8 hours; 406 ("never retry") where it never will be (stale, wrong domain).
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

from tidings.domain.events import DeliveryEvent
from tidings.providers.mailgun.events import (
    EventParseError,
    message_id_domain,
    parse_event_item,
)

__all__ = [
    "DEFAULT_WINDOW_S",
    "ParsedWebhook",
    "Refusal",
    "WebhookParseError",
    "check_webhook",
    "event_domain",
    "parse_webhook",
    "sign",
    "verify_signature",
]

# Mailgun's own SDK helper (SecurityGuard.verify_webhook) allows 900 s.
DEFAULT_WINDOW_S = 900.0

# Legacy (pre-2018) event names -> today's event, severity and reason.
_LEGACY_EVENTS: dict[str, tuple[str, str | None, str | None]] = {
    "delivered": ("delivered", None, None),
    "bounced": ("failed", "permanent", "bounce"),
    "dropped": ("failed", "permanent", None),
    "opened": ("opened", None, None),
    "clicked": ("clicked", None, None),
    "complained": ("complained", None, None),
    "unsubscribed": ("unsubscribed", None, None),
}
# Legacy fields that are Mailgun's own; any other field is a user variable (``v:`` fields
# were posted as top-level form fields).
_LEGACY_KNOWN = frozenset(
    {
        "event",
        "recipient",
        "domain",
        "message-id",
        "timestamp",
        "token",
        "signature",
        "code",
        "error",
        "notification",
        "description",
        "reason",
        "url",
        "message-headers",
        "tag",
        "x-mailgun-tag",
        "campaign-id",
        "campaign-name",
        "mailing-list",
        "ip",
        "country",
        "region",
        "city",
        "user-agent",
        "device-type",
        "client-type",
        "client-name",
        "client-os",
        "attachment-count",
        "body-plain",
        "x-mailgun-sid",
        "x-mailgun-variables",
    }
)


class WebhookParseError(ValueError):
    """The body is not a Mailgun webhook Tidings understands."""


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    timestamp: str
    token: str
    signature: str
    event: DeliveryEvent
    raw_without_signature: dict[str, Any]
    legacy: bool = False  # legacy webhooks were signed with the API key, not a signing key


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a webhook is refused: a stable ``code``, a sentence for the log, what to answer."""

    code: str
    message: str
    http_status: int


def sign(signing_key: str, timestamp: str, token: str) -> str:
    """Mailgun's signature of a webhook: hex HMAC-SHA256 over ``timestamp + token``."""
    return hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def verify_signature(signing_key: str, timestamp: str, token: str, signature: str) -> bool:
    """Constant-time check of a webhook signature; an empty key never verifies anything."""
    if not signing_key or not signature:
        return False
    expected = sign(signing_key, timestamp, token)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def _loads(body: bytes) -> Any:
    """orjson first (the ingest path parses every webhook); what it refuses and json takes
    (integers beyond 64 bits, NaN, UTF-16 text) still parses as before, and json's error
    says why the rest is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def _parse_json(body: bytes) -> ParsedWebhook:
    try:
        data = _loads(body)
    except ValueError as exc:
        raise WebhookParseError(f"webhook body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise WebhookParseError("webhook body is not a JSON object")
    signature = data.get("signature")
    item = data.get("event-data")
    if not isinstance(signature, dict):
        raise WebhookParseError("webhook has no 'signature' object")
    if not isinstance(item, dict):
        raise WebhookParseError("webhook has no 'event-data' object")
    try:
        event = parse_event_item(item)
    except EventParseError as exc:
        raise WebhookParseError(str(exc)) from exc
    return ParsedWebhook(
        timestamp=str(signature.get("timestamp", "")),
        token=str(signature.get("token", "")),
        signature=str(signature.get("signature", "")),
        event=event,
        raw_without_signature={k: v for k, v in data.items() if k != "signature"},
    )


def _form_fields(body: bytes, content_type: str) -> dict[str, str]:
    if content_type.lower().startswith("multipart/form-data"):
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields: dict[str, str] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str) and part.get_filename() is None:
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    fields[name] = payload.decode("utf-8", errors="replace")
        return fields
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookParseError("form webhook body is not UTF-8") from exc
    return dict(parse_qsl(text, keep_blank_values=True))


def _legacy_item(fields: dict[str, str]) -> dict[str, Any]:
    """A legacy webhook's flat fields as a modern event item."""
    lowered = {key.lower(): value for key, value in fields.items()}
    name = lowered.get("event", "").lower()
    if name not in _LEGACY_EVENTS:
        raise WebhookParseError(f"unknown legacy Mailgun event {name!r}")
    event, severity, reason = _LEGACY_EVENTS[name]
    variables = {k: v for k, v in fields.items() if k.lower() not in _LEGACY_KNOWN}
    if "x-mailgun-variables" in lowered:
        try:
            extra = json.loads(lowered["x-mailgun-variables"])
        except ValueError:
            extra = None
        if isinstance(extra, dict):
            variables = {**extra, **variables}
    item: dict[str, Any] = {
        "event": event,
        "timestamp": lowered.get("timestamp"),
        "recipient": lowered.get("recipient"),
        "domain": {"name": lowered["domain"]} if lowered.get("domain") else None,
        "message": {"headers": {"message-id": lowered.get("message-id")}},
        "severity": severity,
        "reason": lowered.get("reason") or reason,
        "url": lowered.get("url"),
        "user-variables": variables,
        "delivery-status": {
            "code": lowered.get("code"),
            "message": lowered.get("error") or lowered.get("description"),
        },
    }
    return item


def _parse_form(body: bytes, content_type: str) -> ParsedWebhook:
    fields = _form_fields(body, content_type)
    if "event" not in {key.lower() for key in fields}:
        raise WebhookParseError("form webhook has no 'event' field")
    raw = {k: v for k, v in fields.items() if k.lower() != "signature"}
    try:
        event = parse_event_item(_legacy_item(fields))
    except EventParseError as exc:
        raise WebhookParseError(str(exc)) from exc
    # Legacy events carry no id: one is derived from the fields (minus the signature) so
    # that Mailgun's retries of the same webhook deduplicate.
    event = dataclasses.replace(event, raw=raw)
    lowered = {key.lower(): value for key, value in fields.items()}
    return ParsedWebhook(
        timestamp=lowered.get("timestamp", ""),
        token=lowered.get("token", ""),
        signature=lowered.get("signature", ""),
        event=event,
        raw_without_signature=raw,
        legacy=True,
    )


def parse_webhook(body: bytes, content_type: str) -> ParsedWebhook:
    """Parse a webhook POST: JSON (today's format) or form-encoded/multipart (legacy)."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _parse_form(body, content_type)
    if kind == "application/json" or kind.endswith("+json") or not kind:
        return _parse_json(body)
    raise WebhookParseError(f"unsupported webhook content type {content_type!r}")


def event_domain(event: DeliveryEvent) -> str | None:
    """The domain an event is about: ``domain.name``, else the message id's domain."""
    return (event.domain or message_id_domain(event.provider_message_id) or "").lower() or None


def check_webhook(
    parsed: ParsedWebhook,
    *,
    signing_key: str | None,
    expected_domain: str,
    now: float,
    window_s: float = DEFAULT_WINDOW_S,
) -> Refusal | None:
    """``None`` if the webhook may be accepted, else why not. Pure: ``now`` is epoch seconds.

    Checks, in order: a signing key is configured, the signature matches, the timestamp is
    within ``window_s`` of ``now`` (either side), the event's domain is the configured one.
    """
    if not signing_key:
        return Refusal(
            "no-signing-key",
            "no webhook signing key configured for this Mailgun configuration: refusing "
            "(never fail open); set webhook_signing_key to Mailgun's HTTP webhook signing key",
            401,
        )
    if not verify_signature(signing_key, parsed.timestamp, parsed.token, parsed.signature):
        return Refusal(
            "bad-signature",
            "webhook signature does not match the configured signing key (forged, or the "
            "key is not this account's HTTP webhook signing key)",
            401,
        )
    try:
        sent_at = float(parsed.timestamp)
    except ValueError:
        return Refusal(
            "bad-timestamp", f"webhook timestamp {parsed.timestamp!r} is not a number", 406
        )
    if abs(now - sent_at) > window_s:
        which = "old" if sent_at < now else "far in the future"
        return Refusal(
            "stale-timestamp",
            f"webhook timestamp is {which}: {abs(now - sent_at):.0f} s from now, more than "
            f"the allowed {window_s:.0f} s",
            406,
        )
    came = event_domain(parsed.event)
    expected = expected_domain.strip().lower()
    if came != expected:
        return Refusal(
            "domain-mismatch",
            f"webhook is about domain {came or '(none)'!s} but this configuration expects "
            f"{expected}",
            406,
        )
    return None
