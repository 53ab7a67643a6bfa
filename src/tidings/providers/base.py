"""The provider contract: everything workers, routes and pages may ask of an email provider.

One provider is one package under ``providers/`` exposing a :class:`Provider` subclass,
found through :mod:`tidings.providers.registry` by its ``key`` (``"mailgun"``, ``"smtp"``).
The model is django-anymail's: one backend and one webhook parser per provider, over shared
bases. What every provider has:

* a settings model (:class:`ProviderSettings`: pydantic, with the keys-stay-with-hosts class
  variables :func:`tidings.providers.settings.merge_override` needs) and a catalog entry;
* ``build`` (an :class:`OutgoingEmail` -> the provider's request, built once), ``record``
  (that request as history may show it: no secret, files as name/type/size);
* ``send`` (never raises: a :class:`SendOutcome` says sent / failed / throttled with a time /
  retry / in doubt, with a hint, and whether a failure is the provider's fault — the only
  kind routing fails over);
* ``find_sent`` (an unanswered attempt, looked up in the provider's log before anything is
  sent again; a provider without a log says so by raising :class:`ProviderRefused`).
* batch sending, for providers whose ``max_batch`` is above 1: ``build_batch`` (an
  :class:`OutgoingBatch`: one shared email with placeholders and each recipient's values ->
  one request) and ``record_member`` (that request as one recipient's history shows it).
  ``send`` sends it; its one answer is every recipient's. Every recipient's copy must
  carry its own Tidings id, so that ``find_sent`` finds each one in the log.

And optional capabilities, each ``None`` when the provider lacks it: ``webhooks`` (verify and
parse a webhook into delivery events), ``events`` (read the provider's event log by window,
for polling), ``suppressions`` (read the provider's own suppression lists, and remove an
address from them), ``connect`` (register our webhook URL at the provider), ``doctor``
checks.

Nothing here knows any provider's URLs or field names.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from tidings.domain.events import DeliveryEvent, EventKind
from tidings.providers.outbound import Outbound

__all__ = [
    "Attachment",
    "BatchRecipient",
    "ConnectResult",
    "DeliveryEvent",
    "DoctorOptions",
    "EventFeed",
    "EventKind",
    "EventParseError",
    "EventsPage",
    "Found",
    "Hint",
    "OutcomeKind",
    "OutgoingBatch",
    "OutgoingEmail",
    "Provider",
    "ProviderAPIError",
    "ProviderConfig",
    "ProviderContext",
    "ProviderError",
    "ProviderRefused",
    "ProviderSettings",
    "ProviderUnreachable",
    "Refusal",
    "RemoteSuppression",
    "RequestError",
    "RequestRecord",
    "Segments",
    "SendOutcome",
    "SuppressionLists",
    "WebhookActivity",
    "WebhookRead",
    "WebhookReader",
]


# -- errors ------------------------------------------------------------------------------


class ProviderError(Exception):
    """Base of every error a provider raises from its API calls; ``str()`` is for a person."""


class RequestError(ProviderError, ValueError):
    """The email cannot be made into a request this provider would take (too many tags, a
    field the provider refuses). Final for the message: sending it again changes nothing."""


class ProviderRefused(ProviderError):
    """The call cannot be made as configured (the network policy, a moved host, a missing
    capability): asking again would be refused again, so it is never retried."""


class ProviderUnreachable(ProviderError):
    """No answer (DNS, connect, timeout): worth asking again later."""


class ProviderAPIError(ProviderError):
    """The provider answered with an error."""

    def __init__(self, message: str, *, status_code: int, body: str, hint: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.hint = hint


# -- what is sent ------------------------------------------------------------------------


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
    user's raw override (``providers.<key>.override.body``): merged last, it wins over every
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


# Text with placeholders: literal text and placeholder names, alternating (even positions
# are literal, odd ones name a value each recipient has): ``("Hello ", "v0", "!")``.
Segments = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BatchRecipient:
    """One recipient of a batch: its own Tidings message, address and placeholder values."""

    tidings_id: str
    to: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutgoingBatch:
    """One email for many recipients, each copy filled with that recipient's values.

    ``email`` holds what every copy shares (sender, tags, files, tracking, the user's
    override); its ``to``, ``tidings_id``, subject and parts are the first recipient's and
    are not sent as such: ``subject``, ``html``, ``text`` and ``headers`` are, with their
    placeholders. Each copy must equal the single send of its recipient's email.
    """

    email: OutgoingEmail
    subject: Segments
    html: Segments | None
    text: Segments | None
    headers: dict[str, Segments]
    recipients: tuple[BatchRecipient, ...]


@runtime_checkable
class ProviderConfig(Protocol):
    """Where and as whom to send: a stored configuration with this message's overrides
    applied. Each provider has its own (frozen) type; this is what the others may read."""

    @property
    def target(self) -> str:
        """Where calls go, without credentials (a base URL, ``smtp://host:port``): shown in
        history, and with ``domain`` the identity of an event log."""
        ...

    @property
    def domain(self) -> str | None:
        """The sending domain, when the provider has one (events are matched to it)."""
        ...

    @property
    def from_address(self) -> str | None: ...

    @property
    def region(self) -> str:
        """A person's name for where requests go (``us``, ``eu``, or the target itself)."""
        ...

    def secrets(self) -> tuple[str | None, ...]:
        """Every credential in this configuration: masked wherever a request is shown."""
        ...


class ProviderSettings(BaseModel):
    """Base of each provider's settings model (what ``POST /providers`` stores).

    The class variables drive the one override rule (``providers.settings.merge_override``):
    an override that changes a ``TARGET_FIELDS`` setting must bring ``CREDENTIAL_FIELDS`` of
    its own, and may only name ``KNOWN_ORIGINS`` or origins the operator trusts.
    """

    model_config = ConfigDict(extra="forbid")

    TARGET_FIELDS: ClassVar[tuple[str, ...]] = ()
    CREDENTIAL_FIELDS: ClassVar[tuple[str, ...]] = ()
    KNOWN_ORIGINS: ClassVar[frozenset[str]] = frozenset()
    OVERRIDABLE: ClassVar[tuple[str, ...]] = ()
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ()
    # Catalog types for fields whose JSON type is not plain: {field: ("enum", [values])}.
    CATALOG_TYPES: ClassVar[Mapping[str, tuple[str, list[str] | None]]] = {}

    def to_config(self) -> ProviderConfig:
        raise NotImplementedError

    def polling_mode(self) -> str:
        """``on``, ``off`` or ``auto`` (off while webhooks flow): for providers with events."""
        return "off"

    def rate_limit_dict(self) -> dict[str, Any] | None:
        rate = getattr(self, "rate_limit", None)
        return rate.model_dump() if isinstance(rate, BaseModel) else None


class OutcomeKind(enum.StrEnum):
    """What the dispatcher does with an answer."""

    SENT = "sent"  # accepted by the provider; provider_message_id is set
    RETRY = "retry"  # transient (5xx, timeout, connection error): back off and try again
    THROTTLED = "throttled"  # 420/429: try again at retry_at, the time the provider gave
    FAILED = "failed"  # permanent: never retry this request
    IN_DOUBT = "in_doubt"  # the request may have been accepted; look it up before retrying


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What was sent, for the message history: never a credential; files as name/type/size."""

    method: str
    url: str
    region: str
    fields: list[tuple[str, str]]
    files: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "region": self.region,
            "fields": [list(f) for f in self.fields],
            "files": self.files,
        }


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """One answer, classified. ``provider_fault`` marks a FAILED answer that is about the
    provider, not the recipient or the message (a refused key, a disabled account, an unknown
    domain): routing tries the next provider for those, and only for those."""

    kind: OutcomeKind
    request: RequestRecord
    status_code: int | None = None
    response_body: str | None = None
    provider_message_id: str | None = None
    retry_at: datetime | None = None
    error_message: str | None = None
    hint: str | None = None
    duration_ms: float = 0.0
    provider_fault: bool = False


@dataclass(frozen=True, slots=True)
class Found:
    """An attempt whose answer was lost, found in the provider's log."""

    at: datetime
    provider_message_id: str | None


@dataclass(frozen=True, slots=True)
class Hint:
    """A known problem, in words a person on call understands, and the fix."""

    key: str
    title: str
    explanation: str
    fix: str

    def text(self) -> str:
        """One paragraph for a history entry or a log line."""
        return f"{self.title}. {self.explanation} Fix: {self.fix}"


# -- optional capabilities ---------------------------------------------------------------


class EventParseError(ValueError):
    """An event item this provider's parser does not understand (skipped, never fatal)."""


@dataclass(frozen=True, slots=True)
class EventsPage:
    """One page of a provider's event log; ``next_url`` continues it (stop on an empty page)."""

    items: list[dict[str, Any]]
    next_url: str | None


class EventFeed(ABC):
    """Reading a provider's event log by time window (polling)."""

    page_limit: ClassVar[int] = 300

    @abstractmethod
    async def first_page(
        self,
        config: ProviderConfig,
        *,
        begin: float,
        end: float | None = None,
        ascending: bool = True,
        limit: int = 300,
        filters: Mapping[str, str] | None = None,
    ) -> EventsPage:
        """Events between epoch seconds ``begin`` and ``end``. Raises ProviderError."""

    @abstractmethod
    async def next_page(self, config: ProviderConfig, url: str) -> EventsPage: ...

    @abstractmethod
    def parse(self, item: dict[str, Any]) -> DeliveryEvent:
        """One item of a page -> a delivery event; raises :class:`EventParseError`."""


@dataclass(frozen=True, slots=True)
class RemoteSuppression:
    """An address the provider itself will not send to, as Tidings' suppression list keeps
    it: ``reason`` is ``bounce``, ``complaint`` or ``unsubscribe``; ``detail`` says where it
    came from, for people."""

    address: str
    reason: str
    code: int | None
    detail: str
    created_at: datetime | None = None


class SuppressionLists(ABC):
    """The provider's own suppression lists for one configuration (its sending domain).

    Tidings imports them (``providers connect`` and a periodic sync) so that it refuses what
    the provider would drop anyway, and removes an address from them when a person removes
    it from Tidings' list, so that the two stay in step.
    """

    @abstractmethod
    def pages(self, config: ProviderConfig) -> AsyncIterator[list[RemoteSuppression]]:
        """Every suppressed address, a page at a time (each list, walked to its end).
        Raises :class:`ProviderError` (unreachable, refused, an error answer)."""

    @abstractmethod
    async def remove(self, config: ProviderConfig, address: str) -> list[str]:
        """Remove ``address`` from every list; the names of the lists it was on (empty when
        none). Raises :class:`ProviderError` when a list could not be changed."""

    async def import_all(
        self,
        config: ProviderConfig,
        write: Callable[[list[RemoteSuppression]], Awaitable[int]],
    ) -> tuple[int, int]:
        """Read every page and hand each to ``write`` (which stores it and says how many were
        new): ``(read, added)``. A failure midway keeps what was written before it."""
        read = added = 0
        async for page in self.pages(config):
            read += len(page)
            if page:
                added += await write(page)
        return read, added


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a webhook is refused: a stable ``code``, a sentence for the log, what to answer."""

    code: str
    message: str
    http_status: int


@dataclass(frozen=True, slots=True)
class WebhookRead:
    """A verified webhook: its event, and the token that may be accepted only once."""

    event: DeliveryEvent
    token: str


class WebhookReader(ABC):
    """Verifying and parsing the webhooks a provider posts to ``/webhooks/<key>/<token>``."""

    @abstractmethod
    def read(
        self,
        settings: ProviderSettings,
        body: bytes,
        content_type: str,
        *,
        now: float,
        window_s: float,
    ) -> WebhookRead | Refusal:
        """Verify (signature, freshness, domain) and parse; never fails open."""


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """What registering our webhook URL at the provider did, in the API's answer shape."""

    complete: bool
    answer: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WebhookActivity:
    """What the store knows about signed webhooks for this (host, domain)."""

    last_webhook_at: datetime | None = None
    webhooks_since: datetime | None = None  # start of the current unbroken run


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    """What the doctor of one configuration is told about it by the server."""

    provider_id: str
    webhook_url: str
    polling: str = "on"  # on | off | auto
    activity: WebhookActivity = WebhookActivity()
    dns_server: str | None = None
    dns_timeout_s: float = 3.0
    # The embedded sandbox's domain is not in public DNS: there is nothing to resolve.
    sandbox: bool = False
    poll_interval_s: float = 15.0
    auto_after_s: float = 3600.0
    quiet_s: float = 900.0
    now: datetime | None = None
    # Why the outbound network policy refuses this configuration's host or proxy, if it
    # does: then nothing is called (and so nothing the target answers is shown).
    refused: str | None = None


# -- the provider ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What a process gives every provider it opens: the outbound network policy (``None``:
    connect anywhere, for tools and tests), timeouts in seconds, and a pool size."""

    outbound: Outbound | None = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    total_timeout_s: float | None = 120.0
    connection_limit: int = 64
    user_agent: str = "tidings"


class Provider(ABC):
    """One email provider. Subclasses set the class variables and implement the abstract
    methods; optional capabilities stay ``None``. One instance per process, shared by every
    configuration of the provider; ``close`` ends its connections."""

    key: ClassVar[str]  # "mailgun": in the Providers API, routing, webhook URLs
    name: ClassVar[str]  # "Mailgun": for people
    channel: ClassVar[str] = "email"
    description: ClassVar[str] = ""
    settings_model: ClassVar[type[ProviderSettings]]
    # Validates message.providers.<key>.override (a pydantic model), or None: any object.
    override_model: ClassVar[type[BaseModel] | None] = None
    hints: ClassVar[Sequence[Hint]] = ()
    # What this provider's webhooks and polling can report; SMTP: none (ends at SENT).
    has_events: ClassVar[bool] = False
    # The most recipients one call may carry (``build_batch``); 1: no batch sending.
    max_batch: ClassVar[int] = 1

    webhooks: WebhookReader | None = None
    events: EventFeed | None = None
    suppressions: SuppressionLists | None = None

    def __init__(self, context: ProviderContext | None = None) -> None:
        self.context = context or ProviderContext()

    async def close(self) -> None:
        """Close pooled connections; the instance may not be used afterwards."""
        return None

    # -- settings ------------------------------------------------------------------------

    def parse_settings(self, settings: Mapping[str, Any]) -> ProviderSettings:
        """Stored settings -> the model; raises pydantic's ValidationError."""
        return self.settings_model.model_validate(dict(settings))

    # -- sending -------------------------------------------------------------------------

    @abstractmethod
    def build(self, email: OutgoingEmail, config: ProviderConfig) -> Any:
        """The provider's request for ``email``, built once; raises :class:`RequestError`."""

    @abstractmethod
    def record(self, request: Any, secrets: Sequence[str | None] = ()) -> RequestRecord:
        """``request`` as the history shows it: every secret in ``secrets`` masked."""

    @abstractmethod
    async def send(self, request: Any, config: ProviderConfig) -> SendOutcome:
        """Send one built request (single or batch). Never raises for the provider's answers
        or the network."""

    def build_batch(self, batch: OutgoingBatch, config: ProviderConfig) -> Any:
        """One request for every recipient of ``batch`` (at most ``max_batch``); raises
        :class:`RequestError` when this batch cannot be one request (then each recipient is
        sent alone)."""
        raise RequestError(f"{self.name} has no batch sending")

    def record_member(
        self, request: Any, recipient: str, secrets: Sequence[str | None] = ()
    ) -> RequestRecord:
        """A batch request as the history of ``recipient``'s message shows it: only that
        recipient's address and values, every secret masked."""
        return self.record(request, secrets)

    async def find_sent(
        self,
        config: ProviderConfig,
        *,
        tidings_id: str,
        recipient: str | None,
        begin: datetime,
    ) -> Found | None:
        """The earliest proof that ``tidings_id`` was accepted since ``begin``, or None when
        the log has none. Raises :class:`ProviderRefused` when there is no log to ask."""
        raise ProviderRefused(f"{self.name} keeps no event log Tidings can search")

    async def find_sent_many(
        self,
        config: ProviderConfig,
        wanted: Mapping[str, str | None],
        *,
        begin: datetime,
    ) -> dict[str, Found]:
        """:meth:`find_sent` for many attempts at once (an unanswered batch): ``wanted`` maps
        each Tidings id to its recipient; the answer has the ids found (one missing was not
        found). A provider whose log can be read by window does it in a few reads."""
        found: dict[str, Found] = {}
        for tidings_id, recipient in wanted.items():
            proof = await self.find_sent(
                config, tidings_id=tidings_id, recipient=recipient, begin=begin
            )
            if proof is not None:
                found[tidings_id] = proof
        return found

    @classmethod
    def hint_for(
        cls, status: int | None, message: str | None, code: int | None = None
    ) -> Hint | None:
        """The known problem an answer (HTTP ``status``) or an event's words and delivery
        ``code`` point to, when one is known."""
        return None

    # -- optional: connect and doctor -----------------------------------------------------

    async def connect(self, config: ProviderConfig, url: str) -> ConnectResult:
        """Register ``url`` as this configuration's webhook URL at the provider."""
        raise ProviderRefused(f"{self.name} has no webhooks to register")

    async def doctor(self, config: ProviderConfig, options: DoctorOptions) -> dict[str, Any] | None:
        """Every doctor check of this configuration (``GET /providers/{id}/doctor``), or
        None when the provider has none. Never raises for what it finds."""
        return None
