"""The ``/send`` fields Courier documents that Tidings does not act on: refused, never dropped.

Every field of the SDK's ``send_message_params`` is either honoured (README, "What /send
does with each field") or refused here with a 400 that names it and says why. A field a
sender sets expects an effect; accepting it with a 202 and doing nothing would be a silent
lie about what was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tidings.errors import BadRequest

_AUDIENCES = (
    "audiences and subscription preferences are not supported yet (they come with the "
    "audiences and preferences work); send to user_id, email, list or audience recipients"
)
_FILTERS = (
    "recipient filters (MEMBER_OF account_id) are not supported: Tidings has no accounts; send "
    "to the whole list, or to a list of just those users"
)
_TENANTS = (
    "tenants are not supported: Tidings has one workspace; a recipient's to.tenant_id is "
    "recorded on its message (GET /messages?tenant_id=), nothing more"
)
_EMAIL_ONLY = "Tidings sends email only; give the recipient an email or a user_id"

# Recipient keys that name someone Tidings cannot send to, and why.
_RECIPIENT_KEYS = {
    "filters": _FILTERS,
    "preferences": _AUDIENCES,
    "slack": _EMAIL_ONLY,
    "ms_teams": _EMAIL_ONLY,
    "pagerduty": _EMAIL_ONLY,
    "webhook": _EMAIL_ONLY,
    "discord": _EMAIL_ONLY,
    "expo": _EMAIL_ONLY,
    "intercom": _EMAIL_ONLY,
}


# Fields of message and its parts as Courier's SDK defines them (plus Tidings' own, noted).
_KNOWN = {
    "message": (
        "to",
        "content",
        "template",
        "data",
        "metadata",
        "providers",
        "channels",
        "delay",
        "expiry",
        "timeout",
        "routing",
        "brand_id",
        "context",
        "preferences",
        "event",  # Courier's older name for sending by template alias
    ),
    "message.metadata": ("event", "tags", "trace_id", "utm"),
    "message.preferences": ("subscription_topic_id",),
    "message.delay": ("duration", "until", "timezone"),
    "message.expiry": ("expires_in", "expires_at"),
    # providers: Tidings' per-provider timeouts by key (the SDK's provider takes the same map)
    "message.timeout": ("message", "provider", "providers", "channel", "escalation", "criteria"),
}


def _check_known(message: Mapping[str, Any]) -> None:
    for path, fields in _KNOWN.items():
        part: Any = message
        for key in path.split(".")[1:]:
            part = part.get(key) if isinstance(part, Mapping) else None
        if not isinstance(part, Mapping):
            continue
        for key in part:
            if key not in fields:
                raise BadRequest(
                    f"{path}.{key}: not a field Courier defines here (known: {', '.join(fields)})"
                )


def _present(value: Any) -> bool:
    return value is not None and value != {} and value != []


def refuse_unhonoured(message: Mapping[str, Any]) -> None:
    """Raise :class:`BadRequest` naming the first field of ``message`` (the raw JSON
    object) that Tidings would accept and not act on."""
    _check_known(message)
    preferences = message.get("preferences")
    if preferences is not None and not isinstance(preferences, Mapping):
        raise BadRequest("message.preferences must be an object")
    if isinstance(preferences, Mapping) and preferences:
        # Honoured: the message is checked against the recipient's choice for this topic.
        topic = preferences.get("subscription_topic_id")
        if not isinstance(topic, str) or not topic:
            raise BadRequest(
                "message.preferences.subscription_topic_id is required: the id of a "
                "subscription topic (/preferences/sections/{id}/topics)"
            )
    context = message.get("context")
    if isinstance(context, Mapping) and _present(context.get("tenant_id")):
        raise BadRequest(f"message.context.tenant_id: {_TENANTS}")
    if _present(context) and not isinstance(context, Mapping):
        raise BadRequest("message.context must be an object")
    if isinstance(context, Mapping):
        for key in context:
            if key != "tenant_id":
                raise BadRequest(f"message.context.{key}: not a field Courier defines")
    delay = message.get("delay")
    if isinstance(delay, Mapping) and _present(delay.get("timezone")):
        raise BadRequest(
            "message.delay.timezone: a time zone only matters for opening-hours expressions "
            "in delay.until, which Tidings does not support; give delay.until as an ISO 8601 "
            "time with its zone (2026-01-01T09:00:00-05:00)"
        )
    timeout = message.get("timeout")
    if isinstance(timeout, Mapping):
        for key in ("channel", "escalation", "criteria"):
            if _present(timeout.get(key)):
                raise BadRequest(
                    f"message.timeout.{key}: Tidings sends email only, so there is no other "
                    "channel to escalate to; use timeout.message or timeout.provider"
                )
    for name, spec in (message.get("providers") or {}).items():
        metadata = spec.get("metadata") if isinstance(spec, Mapping) else None
        if isinstance(metadata, Mapping) and _present(metadata.get("utm")):
            raise BadRequest(
                f"message.providers.{name}.metadata.utm: UTM parameters go into the rendered "
                "email, which is the same whichever provider sends it; use message.metadata.utm "
                "or message.channels.email.metadata.utm"
            )
    for name, spec in (message.get("channels") or {}).items():
        if name == "email" or not isinstance(spec, Mapping):
            continue
        for key in ("brand_id", "metadata"):
            if _present(spec.get(key)):
                raise BadRequest(
                    f"message.channels.{name}.{key}: Tidings sends email only, so nothing "
                    f"is sent on {name}; remove it"
                )
    if message.get("template") is not None and message.get("content") is not None:
        raise BadRequest("message: give either content or template, not both")
    to = message.get("to")
    recipients = to if isinstance(to, list) else [to] if isinstance(to, Mapping) else []
    for i, recipient in enumerate(recipients):
        if not isinstance(recipient, Mapping):
            continue
        at = f"message.to[{i}]" if isinstance(to, list) else "message.to"
        for key, why in _RECIPIENT_KEYS.items():
            if _present(recipient.get(key)):
                raise BadRequest(f"{at}.{key}: {why}")
        # to.tenant_id and to.context.tenant_id are recorded on the message (messages.list
        # filters by them); domain/recipients.py checks them.
        context = recipient.get("context")
        if isinstance(context, Mapping):
            for key in context:
                if key != "tenant_id":
                    raise BadRequest(f"{at}.context.{key}: not a field Courier defines")
        named = recipient.get("email") or recipient.get("user_id")
        if not named and recipient.get("phone_number"):
            raise BadRequest(f"{at}.phone_number: {_EMAIL_ONLY}")


__all__ = ["refuse_unhonoured"]
