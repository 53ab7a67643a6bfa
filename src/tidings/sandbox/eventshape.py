"""Events in Mailgun's full shape, as the Events API lists them and webhooks post them.

Compare with ``mailgun-samples.json``: every item has ``id``, float ``timestamp``, ``event``,
``log-level``, ``recipient``, ``recipient-domain``, ``message.headers`` (message id without
angle brackets), ``envelope``, ``flags``, ``tags``, ``user-variables``, ``campaigns``,
``domain.name`` and ``account.id``; delivery attempts add ``delivery-status``, failures
``severity`` and ``reason``, opens and clicks ``ip``, ``geolocation`` and ``client-info``.
"""

from __future__ import annotations

import base64
import random
import re
from typing import Any

from tidings.sandbox import outcomes
from tidings.sandbox.forms import SendRequest
from tidings.sandbox.state import JSON, MessageCopy

ACCOUNT_ID = "5a4e0f3b2c1d0e9f8a7b6c5d"  # a fixed, made-up 24-hex account id
SENDING_IP = "127.0.0.1"
CLIENT_IP = "203.0.113.7"  # TEST-NET-3: documentation addresses, never routed
GEOLOCATION = {"country": "US", "region": "CA", "city": "San Francisco"}
CLIENT_INFO = {
    "client-type": "browser",
    "client-os": "Linux",
    "device-type": "desktop",
    "client-name": "Firefox",
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
}
FLAGS_BASE = {
    "is-authenticated": True,
    "is-routed": False,
    "is-big": False,
    "is-system-test": False,
}

# Mailgun's answers for a send to a suppressed address: (reason, code, message).
_SUPPRESSED: dict[str, tuple[str, int, str]] = {
    outcomes.SUPPRESSED: ("suppress-bounce", 605, "Not delivering to previously bounced address"),
    outcomes.SUPPRESSED_UNSUBSCRIBE: (
        "suppress-unsubscribe",
        606,
        "Not delivering to unsubscribed address",
    ),
    outcomes.SUPPRESSED_COMPLAINT: (
        "suppress-complaint",
        607,
        "Not delivering to a user who marked your messages as spam",
    ),
}
_FIRST_LINK = re.compile(r"""<a\s[^>]*?href\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_FIRST_URL = re.compile(r"https?://[^\s<>\"')]+")


def first_link(html: str | None, text: str | None, domain: str) -> str:
    """The URL a ``+click`` recipient clicks: the first link of the HTML (else of the text)."""
    if html:
        match = _FIRST_LINK.search(html)
        if match:
            return match.group(1)
    if text:
        match = _FIRST_URL.search(text)
        if match:
            return match.group(0)
    return f"http://{domain}/"


def bare_content_type(content_type: str) -> str:
    """A content type as Mailgun's events report it: ``text/plain``, no ``charset=...``."""
    return content_type.partition(";")[0].strip().lower()


def shared_parts(copy: MessageCopy, sender_address: str, to_header: str, storage_url: str) -> JSON:
    """Everything the events of one copy have in common, computed once per copy."""
    message: JSON = {
        "headers": {
            "to": to_header,
            "message-id": copy.message_id,
            "from": copy.sender,
            "subject": copy.subject,
        },
        "attachments": [
            {
                "filename": p.filename,
                "content-type": bare_content_type(p.content_type),
                "size": len(p.data),
            }
            for p in copy.attachments
        ],
        "size": copy.size,
        "recipients": copy.recipients,
    }
    if copy.scheduled_for is not None:
        message["scheduled-for"] = copy.scheduled_for
    return {
        "message": message,
        "sender": sender_address,
        "recipient-domain": copy.recipient.rpartition("@")[2].lower(),
        "flags": {**FLAGS_BASE, "is-test-mode": copy.test_mode},
        "storage": {"url": storage_url, "key": storage_url.rpartition("/")[2]},
    }


class EventFactory:
    """Builds event items; ids come from a (seedable) random source, so they never repeat."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def event_id(self) -> str:
        return base64.urlsafe_b64encode(self._rng.randbytes(16))[:22].decode()

    def _base(self, event: str, level: str, copy: MessageCopy, *, empty_vars: Any) -> JSON:
        shared = copy.shared
        return {
            "id": self.event_id(),
            "timestamp": 0.0,  # set when the store records it
            "event": event,
            "log-level": level,
            "recipient": copy.recipient,
            "recipient-domain": shared["recipient-domain"],
            "recipient-provider": "Other",
            "message": shared["message"],
            "flags": shared["flags"],
            "tags": copy.tags,
            "campaigns": [],
            "user-variables": copy.variables or empty_vars,
            "domain": {"name": copy.domain},
            "account": {"id": ACCOUNT_ID},
        }

    def _envelope(self, copy: MessageCopy) -> JSON:
        return {
            "sender": copy.shared["sender"],
            "targets": copy.recipient,
            "transport": "smtp",
            "sending-ip": SENDING_IP,
        }

    def accepted(self, copy: MessageCopy) -> JSON:
        item = self._base("accepted", "info", copy, empty_vars={})
        item["method"] = "HTTP"
        item["envelope"] = {
            "sender": copy.shared["sender"],
            "targets": copy.recipient,
            "transport": "smtp",
        }
        item["storage"] = copy.shared["storage"]
        return item

    def rejected(self, request: SendRequest, domain: str, message_id: str, why: str) -> JSON:
        """Mailgun's ``rejected``: the send was refused; no recipient, a ``reject`` reason."""
        return {
            "id": self.event_id(),
            "timestamp": 0.0,
            "event": "rejected",
            "log-level": "warn",
            "reject": {"reason": why, "description": ""},
            "message": {
                "headers": {
                    "to": ", ".join(a.display for a in request.to),
                    "message-id": message_id,
                    "from": request.sender,
                    "subject": request.subject,
                },
                "attachments": [
                    {
                        "filename": p.filename,
                        "content-type": bare_content_type(p.content_type),
                        "size": len(p.data),
                    }
                    for p in request.attachments
                ],
                "size": 0,
            },
            "flags": {**FLAGS_BASE, "is-test-mode": False},
            "tags": request.tags,
            "campaigns": [],
            "user-variables": request.variables or {},
            "domain": {"name": domain},
            "account": {"id": ACCOUNT_ID},
        }

    def step(self, kind: str, copy: MessageCopy, attempt: int) -> JSON:
        """The event of one outcome step (see :mod:`tidings.sandbox.outcomes`)."""
        if kind == outcomes.DELIVERED:
            item = self._base("delivered", "info", copy, empty_vars={})
            item["envelope"] = self._envelope(copy)
            item["storage"] = copy.shared["storage"]
            item["delivery-status"] = self._status(copy, attempt, 250, "", "OK")
            return item
        if kind in (
            outcomes.BOUNCED,
            outcomes.NO_MX,
            outcomes.SUPPRESSED,
            outcomes.SUPPRESSED_UNSUBSCRIBE,
            outcomes.SUPPRESSED_COMPLAINT,
            outcomes.DEFERRED,
            outcomes.RCPT_NO_MX,
            outcomes.TOO_OLD,
        ):
            return self._failed(kind, copy, attempt)
        item = self._base(
            kind, "warn" if kind == outcomes.COMPLAINED else "info", copy, empty_vars={}
        )
        if kind != outcomes.COMPLAINED:
            item["ip"] = CLIENT_IP
            item["geolocation"] = dict(GEOLOCATION)
            item["client-info"] = dict(CLIENT_INFO)
        if kind == outcomes.CLICKED:
            item["url"] = first_link(copy.html, copy.text, copy.domain)
        return item

    def _failed(self, kind: str, copy: MessageCopy, attempt: int) -> JSON:
        # Mailgun lists an empty user-variables of a failure as [] (see the samples).
        temporary = kind in (outcomes.DEFERRED, outcomes.RCPT_NO_MX)
        item = self._base("failed", "warn" if temporary else "error", copy, empty_vars=[])
        item["severity"] = "temporary" if temporary else "permanent"
        item["envelope"] = self._envelope(copy)
        item["storage"] = copy.shared["storage"]
        if kind == outcomes.BOUNCED:
            item["reason"] = "bounce"
            status = self._status(
                copy,
                attempt,
                550,
                "5.1.1",
                "5.1.1 The email account that you tried to reach does not exist. "
                "Please try double-checking the recipient's email address for typos.",
            )
            status["bounce-type"] = "hard"
        elif kind == outcomes.NO_MX:
            item["reason"] = "bounce"
            status = self._status(
                copy,
                attempt,
                550,
                "5.1.8",
                f"5.1.8 <{copy.shared['sender']}>: Sender address rejected: Domain not found. "
                f"The sending domain {copy.domain} has no MX record; add an MX record to "
                f"{copy.domain}.",
            )
            status["bounce-type"] = "hard"
        elif kind in _SUPPRESSED:
            reason, code, text = _SUPPRESSED[kind]
            item["reason"] = reason
            status = {
                "attempt-no": 1,
                "code": code,
                "message": text,
                "description": text,
                "enhanced-code": "",
                "session-seconds": 0.0,
            }
        elif kind == outcomes.RCPT_NO_MX:
            item["reason"] = "generic"
            domain = copy.shared["recipient-domain"]
            status = self._status(copy, attempt, 498, "", f"No MX for [{domain}]")
            status["description"] = f"No MX for [{domain}]"
            status["retry-seconds"] = 900
        elif kind == outcomes.TOO_OLD:
            item["reason"] = "old"
            status = self._status(copy, attempt, 602, "", "Too old")
            status["description"] = "Too old"
        else:
            item["reason"] = "greylisted"
            status = self._status(
                copy, attempt, 451, "4.7.1", "4.7.1 Greylisted, please try again later"
            )
            status["retry-seconds"] = 600
        item["delivery-status"] = status
        return item

    @staticmethod
    def _status(copy: MessageCopy, attempt: int, code: int, enhanced: str, message: str) -> JSON:
        return {
            "tls": True,
            "mx-host": f"mx.{copy.shared['recipient-domain']}",
            "attempt-no": attempt,
            "code": code,
            "enhanced-code": enhanced,
            "message": message,
            "description": "",
            "session-seconds": 0.1,
            "utf8": True,
            "certificate-verified": True,
        }
