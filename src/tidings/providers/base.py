"""The provider contract: what workers and routes may ask of any email provider.

Workers build an :class:`OutgoingEmail` from a stored, rendered message, hand it to a
provider's ``send`` and get back a :class:`SendOutcome` that says what to do next (done,
retry at a time, give up). Webhook and Events API readers turn a provider's events into
:class:`~tidings.domain.events.DeliveryEvent` values that the status merge in
``tidings.domain`` understands.
Nothing here knows Mailgun's URLs or field names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tidings.domain.events import DeliveryEvent, EventKind

__all__ = [
    "Attachment",
    "DeliveryEvent",
    "EventKind",
    "OutcomeKind",
    "OutgoingEmail",
    "ProviderConfig",
    "RequestRecord",
    "SendOutcome",
]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to send, byte-exact. ``inline`` parts are referenced from the HTML by cid."""

    filename: str
    content_type: str
    data: bytes
    inline: bool = False


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One rendered email for one recipient, ready for a provider.

    ``tidings_id`` is the Tidings message id; every provider request must carry it so that an
    in-doubt send can be found again in the provider's event log. ``provider_body`` is the
    user's raw override (``providers.mailgun.override.body``): merged last, it wins over every
    field computed here.
    """

    tidings_id: str
    from_address: str
    to: str
    subject: str
    html: str | None = None
    text: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: str | None = None
    tags: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    track_opens: bool | None = None
    track_clicks: bool | None = None
    provider_body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """Where and as whom to send: a stored provider configuration with per-message overrides
    already applied. ``base_url`` is a full URL (``https://api.mailgun.net`` or a sandbox
    ``http://127.0.0.1:PORT``); ``proxy_url`` routes every call through an egress proxy."""

    api_key: str
    domain: str
    base_url: str
    from_address: str | None = None
    webhook_signing_key: str | None = None
    proxy_url: str | None = None

    @property
    def region(self) -> str:
        """A person's name for where requests go: ``us``, ``eu`` or the base URL itself."""
        if "api.eu.mailgun.net" in self.base_url:
            return "eu"
        if "api.mailgun.net" in self.base_url:
            return "us"
        return self.base_url


class OutcomeKind(enum.StrEnum):
    """What the dispatcher does with an answer."""

    SENT = "sent"  # accepted by the provider; provider_message_id is set
    RETRY = "retry"  # transient (5xx, timeout, connection error): back off and try again
    THROTTLED = "throttled"  # 420/429: try again at retry_at, the time the provider gave
    FAILED = "failed"  # permanent: never retry this request
    IN_DOUBT = "in_doubt"  # the request may have been accepted; look it up before retrying


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What was sent, for the message history: never the API key; files as name/type/size."""

    method: str
    url: str
    region: str
    fields: list[tuple[str, str]]
    files: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    kind: OutcomeKind
    request: RequestRecord
    status_code: int | None = None
    response_body: str | None = None
    provider_message_id: str | None = None
    retry_at: datetime | None = None
    error_message: str | None = None
    hint: str | None = None
    duration_ms: float = 0.0
