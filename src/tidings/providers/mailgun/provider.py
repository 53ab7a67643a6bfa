"""Mailgun behind the provider contract: the one class the registry knows Mailgun by.

Everything Mailgun-specific lives in this package's modules (request building, answers,
hints, the Events API, signed webhooks, connect); this module only fits them to
:class:`tidings.providers.base.Provider`, so workers and routes never name Mailgun.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, cast

from tidings.providers.base import ConnectResult as _ConnectResult
from tidings.providers.base import (
    DeliveryEvent,
    DoctorOptions,
    EventFeed,
    EventsPage,
    Found,
    Hint,
    OutgoingBatch,
    OutgoingEmail,
    Provider,
    ProviderConfig,
    ProviderContext,
    ProviderSettings,
    Refusal,
    RequestRecord,
    SendOutcome,
    WebhookRead,
    WebhookReader,
)
from tidings.providers.mailgun.client import MailgunClient, Timeouts
from tidings.providers.mailgun.connect import connect
from tidings.providers.mailgun.doctor import describe_route, run_doctor
from tidings.providers.mailgun.events import parse_event_item
from tidings.providers.mailgun.hints import HINTS, hint_for
from tidings.providers.mailgun.lookup import find_sent, find_sent_many
from tidings.providers.mailgun.payload import (
    MAX_BATCH,
    MailgunRequest,
    build_batch_request,
    build_request,
    redact,
    redact_member,
)
from tidings.providers.mailgun.settings import MailgunConfig, MailgunSettings
from tidings.providers.mailgun.suppressions import MailgunSuppressionLists
from tidings.providers.mailgun.webhooks import WebhookParseError, check_webhook, parse_webhook

__all__ = ["MailgunEventFeed", "MailgunProvider", "MailgunWebhookReader"]


def _mailgun(config: ProviderConfig) -> MailgunConfig:
    if not isinstance(config, MailgunConfig):
        raise TypeError(f"not a Mailgun configuration: {type(config).__name__}")
    return config


class MailgunEventFeed(EventFeed):
    """Mailgun's Events API, paged by the ``next`` URLs it hands out."""

    page_limit: ClassVar[int] = 300  # Mailgun's maximum
    # The events that can change a message's status (polling asks for no others).
    DELIVERY_EVENTS: ClassVar[str] = (
        "delivered OR failed OR opened OR clicked OR complained OR unsubscribed OR rejected"
    )

    def __init__(self, client: MailgunClient) -> None:
        self.client = client

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
        return await self.client.events_page(
            _mailgun(config),
            begin=begin,
            end=end,
            ascending=ascending,
            limit=limit,
            filters=dict(filters) if filters is not None else {"event": self.DELIVERY_EVENTS},
        )

    async def next_page(self, config: ProviderConfig, url: str) -> EventsPage:
        return await self.client.events_next(_mailgun(config), url)

    def parse(self, item: dict[str, Any]) -> DeliveryEvent:
        return parse_event_item(item)


class MailgunWebhookReader(WebhookReader):
    """Mailgun's signed webhooks: JSON (today's) and form-encoded (legacy, signed with the
    API key rather than the webhook signing key)."""

    def read(
        self,
        settings: ProviderSettings,
        body: bytes,
        content_type: str,
        *,
        now: float,
        window_s: float,
    ) -> WebhookRead | Refusal:
        mailgun = cast(MailgunSettings, settings)
        try:
            parsed = parse_webhook(body, content_type)
        except WebhookParseError as exc:
            return Refusal("unparseable", f"not a Mailgun webhook: {exc}", 406)
        key = mailgun.api_key if parsed.legacy else mailgun.webhook_signing_key
        refusal = check_webhook(
            parsed,
            signing_key=key,
            expected_domain=mailgun.domain,
            now=now,
            window_s=window_s,
        )
        if refusal is not None:
            return Refusal(refusal.code, refusal.message, refusal.http_status)
        return WebhookRead(event=parsed.event, token=parsed.token)


class MailgunProvider(Provider):
    key: ClassVar[str] = "mailgun"
    name: ClassVar[str] = "Mailgun"
    channel: ClassVar[str] = "email"
    description: ClassVar[str] = "Email through Mailgun's Messages API (US or EU region)."
    settings_model: ClassVar[type[ProviderSettings]] = MailgunSettings
    hints: ClassVar[Sequence[Hint]] = tuple(hint for hint, _rule in HINTS)
    has_events: ClassVar[bool] = True
    max_batch: ClassVar[int] = MAX_BATCH

    def __init__(self, context: ProviderContext | None = None) -> None:
        super().__init__(context)
        ctx = self.context
        self.client = MailgunClient(
            timeouts=Timeouts(
                connect=ctx.connect_timeout_s, read=ctx.read_timeout_s, total=ctx.total_timeout_s
            ),
            connection_limit=ctx.connection_limit,
            user_agent=ctx.user_agent,
            outbound=ctx.outbound,
        )
        self.webhooks = MailgunWebhookReader()
        self.events = MailgunEventFeed(self.client)
        self.suppressions = MailgunSuppressionLists(self.client)

    async def close(self) -> None:
        await self.client.close()

    def build(self, email: OutgoingEmail, config: ProviderConfig) -> MailgunRequest:
        return build_request(email, _mailgun(config))

    def record(self, request: Any, secrets: Sequence[str | None] = ()) -> RequestRecord:
        return redact(cast(MailgunRequest, request), secrets)

    def build_batch(self, batch: OutgoingBatch, config: ProviderConfig) -> MailgunRequest:
        return build_batch_request(batch, _mailgun(config))

    def record_member(
        self, request: Any, recipient: str, secrets: Sequence[str | None] = ()
    ) -> RequestRecord:
        return redact_member(cast(MailgunRequest, request), recipient, secrets)

    async def send(self, request: Any, config: ProviderConfig) -> SendOutcome:
        return await self.client.send_request(cast(MailgunRequest, request), _mailgun(config))

    async def find_sent(
        self,
        config: ProviderConfig,
        *,
        tidings_id: str,
        recipient: str | None,
        begin: datetime,
    ) -> Found | None:
        return await find_sent(
            self.client, _mailgun(config), tidings_id=tidings_id, recipient=recipient, begin=begin
        )

    async def find_sent_many(
        self,
        config: ProviderConfig,
        wanted: Mapping[str, str | None],
        *,
        begin: datetime,
    ) -> dict[str, Found]:
        return await find_sent_many(self.client, _mailgun(config), wanted, begin=begin)

    @classmethod
    def hint_for(
        cls, status: int | None, message: str | None, code: int | None = None
    ) -> Hint | None:
        return hint_for(status, message, code)

    async def connect(self, config: ProviderConfig, url: str) -> _ConnectResult:
        mailgun = _mailgun(config)
        report = await connect(self.client, mailgun, url)
        return _ConnectResult(
            complete=report.complete,
            answer={"route": describe_route(mailgun), **report.as_dict()},
        )

    async def doctor(self, config: ProviderConfig, options: DoctorOptions) -> dict[str, Any]:
        mailgun = _mailgun(config)
        report = await run_doctor(self.client, mailgun, options)
        return {"route": describe_route(mailgun), "polling": options.polling, **report.as_dict()}
