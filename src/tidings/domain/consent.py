"""Consent: whether a recipient may be sent a topic's email, and the one-click unsubscribe.

Pure functions, no I/O: the dispatcher's lookup (:mod:`tidings.workers.consent`) loads the
topic and the recipient's choices and asks :func:`decide`; the unsubscribe route and the
dispatcher sign and verify links with :func:`sign_token` / :func:`verify_token` given the
server's secret; :func:`unsubscribe_headers` builds RFC 8058's two headers.

The decision, in order (Courier's: REQUIRED beats everything, the recipient's own choice
beats the topic's default):

* a REQUIRED topic always sends;
* a recipient's own choice (``users.preferences``), else a per-list preference copied into
  the payload (``list_preferences``, Courier's RecipientPreferences shape: ``notifications``
  and ``categories`` keyed by topic id), else the topic's default status;
* OPTED_OUT by the recipient (or the list) → not sent, reason UNSUBSCRIBED; OPTED_OUT by
  the topic's default with no opt-in → not sent, reason OPT_IN_REQUIRED;
* an opted-in recipient whose own channel choice (``has_custom_routing``) leaves out email
  is not sent email either (UNSUBSCRIBED, saying so).

Courier shows such a message as FILTERED ("filtered out by preferences"), with the reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tidings.domain.status import Reason

PreferenceStatus = Literal["OPTED_IN", "OPTED_OUT", "REQUIRED"]
STATUSES: tuple[PreferenceStatus, ...] = ("OPTED_IN", "OPTED_OUT", "REQUIRED")
# Courier's ChannelClassification.
CHANNELS = ("direct_message", "email", "push", "sms", "webhook", "inbox")

ONE_CLICK = "List-Unsubscribe=One-Click"
TOKEN_VERSION = "u1"


@dataclass(frozen=True, slots=True)
class Topic:
    """What the decision needs of a subscription topic."""

    id: str
    name: str
    default_status: PreferenceStatus
    include_unsubscribe_header: bool = True


@dataclass(frozen=True, slots=True)
class Choice:
    """A recipient's own preference for one topic (a ``user_preferences`` row)."""

    status: PreferenceStatus
    has_custom_routing: bool = False
    custom_routing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """Send or not, and the words for the message's history."""

    send: bool
    reason: Reason | None  # with send=False: UNSUBSCRIBED or OPT_IN_REQUIRED
    why: str
    source: Literal["required", "recipient", "list", "default"]
    history: dict[str, Any] = field(default_factory=dict)


def list_choice(list_preferences: Any, topic_id: str) -> Choice | None:
    """The preference for ``topic_id`` in a RecipientPreferences-shaped document, if any.

    ``notifications`` is keyed by topic (Courier's per-notification preferences), and
    ``categories`` too; a malformed document counts as no choice rather than failing a
    send that had nothing to do with it.
    """
    if not isinstance(list_preferences, Mapping):
        return None
    for part in ("notifications", "categories"):
        entries = list_preferences.get(part)
        entry = entries.get(topic_id) if isinstance(entries, Mapping) else None
        if isinstance(entry, Mapping) and entry.get("status") in STATUSES:
            channels: list[str] = [
                str(c["channel"])
                for c in entry.get("channel_preferences") or []
                if isinstance(c, Mapping) and isinstance(c.get("channel"), str)
            ]
            return Choice(
                status=entry["status"],
                has_custom_routing=bool(channels),
                custom_routing=tuple(channels),
            )
    return None


def decide(
    topic: Topic,
    choice: Choice | None,
    list_preferences: Any = None,
    *,
    recipient: str,
) -> Decision:
    """Whether ``recipient`` is sent ``topic``'s email (see the module docstring)."""
    base = {"topic_id": topic.id, "topic_name": topic.name, "default_status": topic.default_status}
    if topic.default_status == "REQUIRED":
        return Decision(
            True,
            None,
            f"topic {topic.name!r} is REQUIRED: sent whatever the recipient chose",
            "required",
            {**base, "status": "REQUIRED", "source": "required"},
        )
    source: Literal["recipient", "list", "default"]
    if choice is not None:
        source, effective = "recipient", choice
    elif (listed := list_choice(list_preferences, topic.id)) is not None:
        source, effective = "list", listed
    else:
        source, effective = "default", Choice(topic.default_status)
    history = {**base, "status": effective.status, "source": source}
    whose = {
        "recipient": f"{recipient} chose",
        "list": f"{recipient}'s list subscription says",
        "default": "the topic's default is",
    }[source]
    if effective.status == "OPTED_OUT":
        if source == "default":
            return Decision(
                False,
                Reason.OPT_IN_REQUIRED,
                f"topic {topic.name!r} ({topic.id}) is opted out by default and {recipient} "
                "has not opted in: not sent",
                source,
                history,
            )
        return Decision(
            False,
            Reason.UNSUBSCRIBED,
            f"{whose} OPTED_OUT of topic {topic.name!r} ({topic.id}): not sent",
            source,
            history,
        )
    if effective.has_custom_routing and "email" not in effective.custom_routing:
        channels = ", ".join(effective.custom_routing) or "none"
        return Decision(
            False,
            Reason.UNSUBSCRIBED,
            f"{whose} to receive topic {topic.name!r} ({topic.id}) only on {channels}, "
            "not email: not sent",
            source,
            {**history, "custom_routing": list(effective.custom_routing)},
        )
    return Decision(
        True, None, f"{whose} {effective.status} for topic {topic.name!r}: sent", source, history
    )


# -- one-click unsubscribe tokens -------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> bytes:
    return hmac.new(secret, f"{TOKEN_VERSION}.{body}".encode(), hashlib.sha256).digest()


def sign_token(secret: bytes, recipient: str, topic_id: str) -> str:
    """An unsubscribe token for ``recipient`` and ``topic_id``: their ids (not secret: the
    recipient reads their own id) and an HMAC-SHA256 of them under the server's secret."""
    body = _b64(json.dumps([recipient, topic_id], separators=(",", ":")).encode())
    return f"{TOKEN_VERSION}.{body}.{_b64(_mac(secret, body))}"


def verify_token(secret: bytes, token: str) -> tuple[str, str] | None:
    """``(recipient, topic_id)`` of a token this server signed, else None (whatever was
    wrong: the caller says no more than "not a valid link"). The MAC is compared in
    constant time, and before the body is parsed."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_VERSION or len(token) > 2048:
        return None
    _, body, mac = parts
    try:
        given = _unb64(mac)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(given, _mac(secret, body)):
        return None
    try:
        recipient, topic_id = json.loads(_unb64(body))
    except (binascii.Error, ValueError, TypeError):
        return None
    if not isinstance(recipient, str) or not isinstance(topic_id, str):
        return None
    return recipient, topic_id


def unsubscribe_headers(url: str | None, mailto: str | None) -> dict[str, str]:
    """RFC 8058's headers for one recipient: ``List-Unsubscribe`` with the HTTPS ``url``
    (and ``mailto:`` when given), and ``List-Unsubscribe-Post`` — only with a URL, since
    one-click means a POST to it. Empty when there is neither."""
    targets = []
    if url:
        targets.append(f"<{url}>")
    if mailto:
        address = mailto if mailto.lower().startswith("mailto:") else f"mailto:{mailto}"
        targets.append(f"<{address}>")
    if not targets:
        return {}
    headers = {"List-Unsubscribe": ", ".join(targets)}
    if url:
        headers["List-Unsubscribe-Post"] = ONE_CLICK
    return headers


__all__ = [
    "CHANNELS",
    "ONE_CLICK",
    "STATUSES",
    "Choice",
    "Decision",
    "PreferenceStatus",
    "Topic",
    "decide",
    "list_choice",
    "sign_token",
    "unsubscribe_headers",
    "verify_token",
]
